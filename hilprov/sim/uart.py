"""The virtual board's UART receive side: SMP lines apart from shell input.

It exists because Zephyr's shell UART carries both on one wire and tells them apart by a
marker, with rules of its own (where a marker counts, how long a line may get); keeping that
here leaves the shell and the SMP transport each with only their own bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from hilprov.sim.smp_server import CONTINUE, START

SMP_LINE_MAX = 256  # what the receive buffer keeps of one SMP line; the rest is lost


class UartSplitter:
    """Hands each SMP line to `smp_line` and every other received byte to `shell`.

    Like Zephyr's shell UART, an SMP line is recognised by its marker at the start of a
    received chunk or right after a newline.
    """

    def __init__(self, smp_line: Callable[[bytes], None], shell: Callable[[bytes], None]) -> None:
        self._smp_line_out = smp_line
        self._shell_out = shell
        self._smp_line: bytearray | None = None
        self._half_marker = b""

    def reset(self) -> None:
        """The device rebooted: a partly received SMP line or marker is gone."""
        self._smp_line, self._half_marker = None, b""

    def feed(self, segment: bytes) -> None:
        """Received bytes, split after each LF (see :class:`~hilprov.sim.pty.PtyLink`)."""
        if self._smp_line is not None:
            self._smp_line += segment[:SMP_LINE_MAX - len(self._smp_line)]  # longer: dropped
            if segment.endswith(b"\n"):
                line, self._smp_line = bytes(self._smp_line), None
                self._smp_line_out(line)  # a truncated line is > 127 bytes: dropped
            return
        segment = self._half_marker + segment
        self._half_marker = b""
        if segment[:1] in (START[:1], CONTINUE[:1]):
            if len(segment) == 1:
                self._half_marker = segment
                return
            if segment[:2] in (START, CONTINUE):
                self._smp_line = bytearray()
                self.feed(segment)
                return
        self._shell_out(segment)
