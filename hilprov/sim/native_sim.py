"""A real Zephyr MCUmgr server built for native_sim, run as a process on its own pty.

The virtual board is hilprov's model of a device; these executables are the real Zephyr code
(``smp_server`` sample builds, see ``shared/zephyr-smp/README.md``), the reference the tests and
the benchmark check the host against. Each one prints ``uart connected to pseudotty: /dev/pts/N``
and keeps its flash in ``flash.bin`` of its working directory, so every server here starts in a
fresh temporary directory; its console output (the Zephyr log of the UART builds) goes to a file
that :meth:`NativeSimServer.log_text` reads.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

_PTY_LINE = re.compile(r"uart connected to pseudotty: (/dev/pts/\d+)")

SERVERS = {
    "serial": "native_sim_serial.exe",  # Zephyr's default MCUmgr UART settings: 384 x 4
    "serial_fs": "native_sim_serial_fs.exe",  # 1024 x 4, LittleFS at /lfs1, full speed
    "shell": "native_sim_shell.exe",  # SMP over the Zephyr shell, with shell and log output
    "serial_noparams": "native_sim_serial_noparams.exe",  # no MCUmgr parameters command
}


class NativeSimServer:
    """One server process; `port` is its pty. Use as a context manager, or call `stop()`."""

    def __init__(self, executable: Path, *, start_timeout: float = 10.0) -> None:
        self.executable = Path(executable)
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"{self.executable.stem}-"))
        self.log_path = self.work_dir / "console.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(self.executable)], cwd=self.work_dir, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.port = self._wait_for_pty(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_for_pty(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _PTY_LINE.search(self.log_text())
            if match:
                return match.group(1)
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.executable.name} exited with {self._process.returncode}"
                                   f" before printing its pty: {self.log_text()[-500:]!r}")
            time.sleep(0.01)
        raise RuntimeError(f"{self.executable.name} printed no pty within {timeout:g} s")

    def log_text(self) -> str:
        """Everything the server printed so far (its Zephyr log, for the UART builds)."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        """Kill the server, reap it and remove its directory (idempotent)."""
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        self._log.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> NativeSimServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def server_path(directory: Path | None, kind: str) -> Path | None:
    """The executable of `kind` (a key of SERVERS) in `directory`, if it is there."""
    if directory is None:
        return None
    path = Path(directory) / SERVERS[kind]
    return path if path.is_file() else None
