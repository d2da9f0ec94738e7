"""What the virtual board writes on its UART, and the boot it belongs to.

It exists because the boot scripts, the shell and the SMP answers all write to the same UART
under the same rules: nothing from a boot that is over (the board rebooted or powered off), log
lines in Zephyr's format and only while the log backend is on, and the shell prompt redrawn
under a log line that overwrote it. :class:`Boot` is one run of an image; :class:`Console`
applies those rules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hilprov.sim.factory_fs import FactoryFs
from hilprov.sim.faults import Faults

PROMPT = b"uart:~$ "
ERASE_LINE = b"\r\x1b[K"  # what Zephyr's shell sends before a log line overwrites the prompt


def uptime_stamp(seconds: float) -> str:
    """Zephyr's log timestamp: ``[HH:MM:SS.mmm,uuu]``."""
    micros = int(seconds * 1_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    secs, micros = divmod(micros, 1_000_000)
    millis, micros = divmod(micros, 1000)
    return f"[{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d},{micros:03d}]"


@dataclass
class Boot:
    """One run of an image, from reset to the next reset or power-off."""

    generation: int
    image: str
    started: float
    stop: threading.Event = field(default_factory=threading.Event)
    factory: FactoryFs | None = None
    shell: bool = False  # prompt shown, input handled
    logging: bool = True  # the UART log backend is on
    thread: threading.Thread | None = None


class Console:
    """Writes through `write` for the boot whose generation is `generation()`."""

    def __init__(self, write: Callable[[bytes], None], generation: Callable[[], int],
                 faults: Faults) -> None:
        self.faults = faults
        self._write = write
        self._generation = generation

    def is_current(self, boot: Boot) -> bool:
        """`boot` is the board's latest (it may be stopping: see `boot.stop`)."""
        return boot.generation == self._generation()

    def tx(self, boot: Boot, data: bytes) -> None:
        if self.is_current(boot) and not boot.stop.is_set():
            self._write(data)

    def say(self, boot: Boot, text: str) -> None:
        """One console line; if the prompt is shown, overwrite it and print it again."""
        out = (ERASE_LINE if boot.shell else b"") + text.encode() + b"\r\n"
        self.tx(boot, out + (PROMPT if boot.shell else b""))

    def log(self, boot: Boot, level: str, module: str, text: str) -> None:
        if boot.logging:
            stamp = uptime_stamp(time.monotonic() - boot.started)
            self.say(boot, f"{stamp} <{level}> {module}: {text}")
            boot.stop.wait(self.faults.boot_line_delay)

    def start_shell(self, boot: Boot) -> None:
        boot.shell = True
        self.tx(boot, PROMPT)
