"""The virtual board's fault injection: which realism knobs exist, and where they bite.

It exists so that every deliberate misbehaviour (lost or corrupted SMP lines, stalled requests,
lost or duplicated answers, a reboot mid-upload) is decided in one place, apart from the code
that models the device working correctly. :class:`Faults` is the configuration;
:class:`FaultInjector` keeps the counters and is consulted by the SMP transport, the board's
response path and the ``/factory`` upload.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger("hilprov.sim.board")  # the virtual board's one logger


@dataclass
class Faults:
    """Realism knobs. Line and request numbers are 1-based and count from `start()`."""

    drop_lines: frozenset[int] = frozenset()
    """SMP lines (as received by the device) to lose."""
    corrupt_lines: Mapping[int, str] = field(default_factory=dict)
    """SMP line number -> "base64" (invalid character) or "crc" (valid base64, wrong bits)."""
    stall_requests: Mapping[int, float] = field(default_factory=dict)
    """SMP request number -> seconds the device waits before handling it."""
    duplicate_responses: frozenset[int] = frozenset()
    """SMP responses (in sending order) the device sends twice, back to back."""
    drop_responses: frozenset[int] = frozenset()
    """SMP responses (in sending order) lost on the way to the host (the request was handled)."""
    reset_after_provision_bytes: int | None = None
    """Reboot once provision.cbor has received this many bytes (once; the attempt is lost)."""
    rx_buffer_drop: bool = False
    """Two RX line buffers: a line arriving while both are still being decoded is dropped."""
    rx_line_buffers: int = 2
    line_process_time: float = 0.0005
    """Seconds the shell thread needs to decode one SMP line (frees its buffer)."""
    no_ready_line: bool = False
    """The initial image never prints "Device ready for provisioning."."""
    never_register: bool = False
    """The final image restores and sends Register, but registration never completes."""
    params_supported: bool = True
    """MCUmgr parameters command available (else rc 8 ENOTSUP)."""
    legacy_rc: bool = False
    """Successful responses carry "rc": 0 (CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR=y)."""
    eof_idle: float = 15.0
    """Seconds without provision.cbor data (after the first byte) that count as EOF."""
    retry_interval: float = 3.0
    """Seconds between the final image's network/initialisation retries without data."""
    boot_line_delay: float = 0.002
    """Seconds between boot log lines."""


class FaultInjector:
    """Applies `faults` to the traffic; `reset()` is how it reboots the board.

    The counters (lines, requests, responses) are never reset: they count over the board's
    whole life, like the numbers in :class:`Faults` do.
    """

    def __init__(self, faults: Faults, reset: Callable[[], None]) -> None:
        self.faults = faults
        self.reset_fired = False
        self._reset = reset
        self._counts: Counter[str] = Counter()

    def line(self, line: bytes) -> bytes | None:
        """An SMP line as received: itself, a corrupted copy, or None (lost)."""
        self._counts["line"] += 1
        number = self._counts["line"]
        if number in self.faults.drop_lines:
            log.info("virtual board: dropping SMP line %d (fault)", number)
            return None
        how = self.faults.corrupt_lines.get(number)
        if how is None:
            return line
        log.info("virtual board: corrupting SMP line %d (%s)", number, how)
        body = bytearray(line[2:-1])
        spot = max(0, len(body) // 2 - 1)
        if how == "base64":
            body[spot] = ord("*")
        else:
            body[spot] = ord("A") if body[spot] != ord("A") else ord("B")
        return line[:2] + bytes(body) + b"\n"

    def request_delay(self) -> float:
        """Seconds the next SMP request stalls before it is handled."""
        self._counts["request"] += 1
        return float(self.faults.stall_requests.get(self._counts["request"], 0.0))

    def response_copies(self, stats: Counter[str]) -> int:
        """How many times the next SMP response goes out (0: lost); counted in `stats`."""
        self._counts["response"] += 1
        number = self._counts["response"]
        if number in self.faults.drop_responses:
            log.info("virtual board: losing SMP response %d (fault)", number)
            stats["responses lost (fault injection)"] += 1
            return 0
        if number in self.faults.duplicate_responses:
            log.info("virtual board: sending SMP response %d twice (fault)", number)
            stats["responses duplicated (fault injection)"] += 1
            return 2
        return 1

    def provision_bytes(self, total: int) -> None:
        """provision.cbor has received `total` bytes: reboot once past the configured limit."""
        limit = self.faults.reset_after_provision_bytes
        if limit is not None and total >= limit and not self.reset_fired:
            self.reset_fired = True
            log.info("virtual board: resetting after %d bytes of provision.cbor (fault)", total)
            threading.Thread(target=self._reset, daemon=True, name="sim-fault-reset").start()
