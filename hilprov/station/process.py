"""Which process runs an attempt, and whether it still does: a row "in progress" whose process
is gone on this host was abandoned (killed, crashed), whatever the row says."""

from __future__ import annotations

import functools
import os
import socket


@functools.cache
def host() -> str:
    return socket.gethostname()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not
    mistaken for the process that wrote the row; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Field 2 (the command) is in parentheses and may hold spaces; fields 3.. follow it.
    return stat.rsplit(b")", 1)[-1].split()[19].decode()


def me() -> tuple[str, int, str | None]:
    """(host, pid, start time) of this process."""
    pid = os.getpid()
    return host(), pid, start_time(pid)


def alive(pid: int | None, started: str | None) -> bool:
    """Whether process `pid` of this host still runs (the same process, when the start time is
    known)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return started is None or start_time(pid) in (None, started)
