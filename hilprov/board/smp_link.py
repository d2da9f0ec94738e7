"""How fast a request's SMP lines may go to a device, learned per port and remembered.

A Zephyr device receives SMP lines into a few RX line buffers (``UART_MCUMGR_RX_BUF_COUNT`` and
``SMP_SHELL_RX_BUF_COUNT`` are 2 by default, and MCUmgr's parameters do not report them) and
frees one when its work queue has decoded the line. A line that finds no free buffer is dropped
in silence (the device may log ``Insufficient buffers, fragment dropped`` or ``Failed to alloc
SMP buf``), and its request is never answered. How many lines a device takes at once depends on
the build and on the link: a real UART delivers lines no faster than its baud rate, while a pty,
USB CDC ACM or a high baud rate delivers a burst at once, and a device that polls its UART (the
native_sim builds: every 10 ms) frees buffers only so often.

So nothing is assumed from the nominal baud rate: requests start as bursts, and each request
lost on the way down the :data:`LADDER` moves the port one step down (fewer lines in flight,
smaller requests, then pacing). What works is remembered process-wide, keyed by the port URL,
so later clients on the same port start there; a level lost to a single request in a transfer
(perhaps noise on the line) is tried again after a long run of whole requests.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LINE_LENGTH = 127
"""Bytes per SMP line including the marker and LF (Zephyr's shell transport limit)."""

LINE_RAW = (LINE_LENGTH - 3) * 3 // 4
"""Raw bytes one line carries: 124 base64 characters (marker and LF aside) = 93 bytes."""

DROP_MARKERS = re.compile(r"fragment dropped|Insufficient buffers|Failed to alloc SMP buf|"
                          r"Line too long", re.IGNORECASE)
"""Console text a Zephyr device prints when it drops an SMP line (uart_mcumgr, smp_shell)."""


def packet_room(lines: int) -> int:
    """Largest SMP packet that fits `lines` lines: the serial frame adds a 2-byte length and a
    2-byte CRC before base64."""
    return lines * LINE_RAW - 4


@dataclass(frozen=True)
class LinkLevel:
    """One way to send a request's lines.

    `window` lines leave back to back (None: the whole request in one write); the next line
    leaves `gap` seconds after the line `window` places before it. `max_lines` caps the lines of
    one request (None: as many as the device's buffer takes), so that a request fits the
    device's RX line buffers whole and its answer frees them all.
    """

    name: str
    window: int | None
    gap: float
    max_lines: int | None

    def describe(self) -> str:
        if self.window is None:
            pacing = "whole requests in one write"
        else:
            pacing = f"{self.window} line(s) in flight, {self.gap * 1000:g} ms apart"
        size = (f"requests of at most {self.max_lines} line(s) ({packet_room(self.max_lines)} B)"
                if self.max_lines else "requests as large as the device buffer")
        return f"{pacing}; {size}"

    def max_request(self, device_max: int) -> int:
        """Largest request packet at this level for a device that takes `device_max`."""
        if self.max_lines is None:
            return device_max
        return min(device_max, packet_room(self.max_lines))


LADDER: tuple[LinkLevel, ...] = (
    LinkLevel("burst", None, 0.0, None),
    LinkLevel("2 lines in flight", 2, 0.002, None),
    LinkLevel("2-line requests", 2, 0.002, 2),
    LinkLevel("2-line requests, 1 line per 15 ms", 1, 0.015, 2),
    LinkLevel("2-line requests, 1 line per 50 ms", 1, 0.05, 2),
)
"""From the fastest to the safest. 2 lines in flight is Zephyr's default RX pool; a 2-line
request (182 bytes) fits it whole, and the answer proves both buffers free again; the pacing
steps cover devices that free a buffer only every poll period (native_sim: 10 ms)."""


@dataclass
class LinkState:
    """What the transport knows about one port: the level in use and how it got there."""

    url: str
    level: int = 0
    buf_size: int | None = None
    buf_count: int | None = None
    round_trip: float | None = None
    """Seconds of the smallest exchange seen (the MCUmgr parameters request)."""
    losses: list[tuple[int, str]] = field(default_factory=list)
    """One entry per lost request: the level it was sent at, and what was sent."""
    confirmed: int = 0
    """Multi-line requests answered at the current level."""
    too_fast: set[int] = field(default_factory=set)
    """Levels known to lose lines on this port: never tried again."""

    @property
    def current(self) -> LinkLevel:
        return LADDER[self.level]

    @property
    def at_bottom(self) -> bool:
        return self.level >= len(LADDER) - 1

    def lost(self, what: str, *, probing: bool) -> None:
        """A request sent at the current level was lost; a loss to a deliberate probe, or a
        second one here, marks the level as too fast for good."""
        self.losses.append((self.level, what))
        if probing or self.lost_at(self.level) > 1:
            self.too_fast.add(self.level)

    def lost_at(self, level: int) -> int:
        """Requests lost at `level` so far."""
        return sum(1 for index, _ in self.losses if index == level)

    def confirm(self) -> bool:
        """A request of several lines was answered at the current level. True when that made
        the port move one level up again (see PROMOTE_AFTER)."""
        self.confirmed += 1
        if self.confirmed < PROMOTE_AFTER or self.level == 0 or self.level - 1 in self.too_fast:
            return False
        self.level -= 1
        self.confirmed = 0
        return True

    def tried(self) -> str:
        """The levels used so far, for an error message."""
        counts: dict[int, int] = {}
        for index, _ in self.losses:
            counts[index] = counts.get(index, 0) + 1
        parts = [f"{LADDER[i].name} ({counts[i]} request(s) lost)" for i in sorted(counts)]
        if self.level not in counts:
            parts.append(f"{self.current.name} (in use)")
        return ", then ".join(parts)

    def as_dict(self) -> dict:
        level = self.current
        return {"port": self.url, "buf_size": self.buf_size, "buf_count": self.buf_count,
                "level": level.name, "level_index": self.level, "window": level.window,
                "gap_ms": level.gap * 1000, "max_lines": level.max_lines,
                "round_trip_ms": (None if self.round_trip is None
                                  else round(self.round_trip * 1000, 2)),
                "requests_lost": len(self.losses),
                "too_fast": [LADDER[i].name for i in sorted(self.too_fast)],
                "confirmed_requests": self.confirmed}


PROMOTE_AFTER = 50
"""Requests of several lines answered in a row at one level after which the level above is
tried again, unless it is known to be too fast (two requests lost there, or one lost to a
deliberate probe): one loss in a transfer may have been noise on the line, and a long session
should not stay slow for it."""


_STATES: dict[str, LinkState] = {}
_STATES_LOCK = threading.Lock()


def state_for(url: str) -> LinkState:
    """The remembered state of `url` (a new one, starting at the top, on first use)."""
    with _STATES_LOCK:
        state = _STATES.get(url)
        if state is None:
            state = _STATES[url] = LinkState(url)
        return state


def remembered(url: str) -> LinkState | None:
    """What this process learned about `url`, if anything."""
    with _STATES_LOCK:
        return _STATES.get(url)


def forget(url: str | None = None) -> None:
    """Forget what was learned about `url` (every port when None)."""
    with _STATES_LOCK:
        if url is None:
            _STATES.clear()
        else:
            _STATES.pop(url, None)


def send_lines(write: Callable[[Sequence[bytes]], None], lines: Sequence[bytes],
               level: LinkLevel, sleep: Callable[[float], None] = time.sleep) -> None:
    """Send one request's `lines` at `level`: line i leaves `gap` seconds after line
    i - `window`, so no more than `window` lines are ever within one gap of each other."""
    window = level.window
    if window is None or window >= len(lines):
        write(lines)
        return
    sent: deque[float] = deque(maxlen=window)
    for start in range(0, len(lines), window):
        if sent:
            delay = sent[0] + level.gap - time.monotonic()
            if delay > 0:
                sleep(delay)
        write(lines[start:start + window])
        now = time.monotonic()
        sent.extend([now] * min(window, len(lines) - start))


def packet_lines(packet_len: int) -> int:
    """Lines one SMP packet of `packet_len` bytes takes on the wire."""
    return -(-(packet_len + 4) // LINE_RAW)
