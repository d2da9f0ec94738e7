"""The virtual board's Zephyr shell: line editing, echo and the few commands it knows.

It exists so that what a person (or a host waiting for the prompt) typing on the console sees is
modelled apart from the boot scripts and from SMP. Input only counts once the running boot shows
the prompt. It answers `help`, `kernel version`, `kernel uptime` and `device list`;
``kernel reboot cold|warm`` reboots the initial image (the final one does not offer it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hilprov.sim.console import PROMPT, Boot, Console

ZEPHYR_VERSION = "3.4.99"  # the nRF Connect SDK 2.5.0 fork the demo images name at boot


class Shell:
    """Edits the line being typed and runs it at Enter; `reboot()` is ``kernel reboot``."""

    def __init__(self, console: Console, reboot: Callable[[], None]) -> None:
        self._console = console
        self._reboot = reboot
        self._line = bytearray()
        self._last_enter = b""

    def clear(self) -> None:
        """The device rebooted: the half-typed line is gone."""
        self._line.clear()

    def feed(self, boot: Boot | None, data: bytes) -> None:
        """Bytes typed while `boot` runs (None: the board is off)."""
        if boot is None or not boot.shell:
            return
        for value in data:
            char = bytes([value])
            if char in (b"\r", b"\n"):
                if char == b"\n" and self._last_enter == b"\r":
                    self._last_enter = b""
                    continue
                self._last_enter = char
                self._enter(boot)
                continue
            self._last_enter = b""
            if char in (b"\x7f", b"\x08"):
                if self._line:
                    self._line = self._line[:-1]
                    self._console.tx(boot, b"\x08 \x08")
            elif 0x20 <= value < 0x7F:
                self._line += char
                self._console.tx(boot, char)

    def _enter(self, boot: Boot) -> None:
        command = self._line.decode("ascii", "replace").strip()
        self._line.clear()
        self._console.tx(boot, b"\r\n")
        self._run(boot, command)
        self._console.tx(boot, PROMPT)

    def _run(self, boot: Boot, command: str) -> None:
        if not command:
            return
        if command in ("kernel reboot cold", "kernel reboot warm") and boot.image == "initial":
            threading.Thread(target=self._reboot, daemon=True, name="sim-shell-reboot").start()
            return
        answer = COMMANDS.get(command)
        if answer is not None:
            self._console.tx(boot, answer(boot).replace("\n", "\r\n").encode())
            return
        name = command.split()[0]
        if name in ("kernel", "device", "help"):
            self._console.tx(boot, f"{command}: wrong parameter\r\n".encode())
            return
        self._console.tx(boot, f"{name}: command not found\r\n".encode())


def _help(boot: Boot) -> str:
    reboot = "  kernel reboot cold|warm\n" if boot.image == "initial" else ""
    return ("Available commands:\n  help\n  kernel version\n  kernel uptime\n" + reboot
            + "  device list\n")


def _uptime(boot: Boot) -> str:
    return f"Uptime: {int((time.monotonic() - boot.started) * 1000)} ms\n"


COMMANDS: dict[str, Callable[[Boot], str]] = {
    "help": _help,
    "kernel version": lambda boot: f"Zephyr version {ZEPHYR_VERSION}\n",
    "kernel uptime": _uptime,
    "device list": lambda boot: ("devices:\n- uart@8000 (READY)\n- flash-controller@39000 "
                                 "(READY)\n- gpio@842500 (READY)\n"),
}
"""The commands the virtual board answers, besides `kernel reboot` (initial image only)."""
