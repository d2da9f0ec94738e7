"""The command line: `ptool` (the seed's flags) and `hilprov` (subcommands). The only layer that
prints for the user and turns errors into exit codes.

The entry points catch SIGINT and SIGTERM from their first line on, before anything heavy is
imported, so an interrupt at any moment ends with one line and exit 130 / 143, never a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    return _entry("hilprov", "main", argv)


def ptool_main(argv: Sequence[str] | None = None) -> int:
    return _entry("ptool", "ptool_main", argv)


def _raise_interrupted(signum, frame) -> None:
    from hilprov.errors import Interrupted

    raise Interrupted(signum)


def _entry(prog: str, name: str, argv: Sequence[str] | None) -> int:
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        from hilprov.cli import parsers

        return getattr(parsers, name)(argv)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{prog}: interrupted ({signal.Signals(signum).name}) while starting; nothing "
              "was done", file=sys.stderr)
        return 128 + signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["main", "ptool_main"]
