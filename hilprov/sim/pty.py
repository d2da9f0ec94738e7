"""The virtual board's UART: the device end of a pseudo-terminal, with optional wire timing.

The host opens the slave path (``/dev/pts/N``) like any serial port. The board keeps the slave fd
open itself, so the pty survives the host closing and reopening it, and reads/writes the master.
With `baud` set, bytes take their wire time at 10 bits per byte in both directions: received data
is handed on only when its last byte would have arrived, and output is released line by line at
the UART's pace. Output nobody reads is dropped after a short wait, like a UART without a
listener, so the board never blocks on a full pty buffer.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import termios
import threading
import time
import tty
from collections.abc import Callable

log = logging.getLogger(__name__)

WRITE_STALL = 0.2  # seconds a write waits for the host to read before the bytes are dropped


class PtyLink:
    """One pty pair; `on_rx(segment)` gets received bytes split after each LF."""

    def __init__(self, on_rx: Callable[[bytes], None], *, baud: int | None = None) -> None:
        self.on_rx = on_rx
        self.baud = baud
        self.path = ""
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_dropped = 0
        self._master = -1
        self._slave = -1
        self._wake_r = self._wake_w = -1
        self._tx_lock = threading.Lock()
        self._stop = threading.Event()
        self._rx_clock = 0.0
        self._thread: threading.Thread | None = None

    def open(self) -> str:
        """Create the pty and start the receive thread; returns the slave path."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._rx_loop, name=f"sim-uart {self.path}",
                                        daemon=True)
        self._thread.start()
        return self.path

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self._tx_lock:
            for fd in (self._master, self._slave, self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = self._wake_r = self._wake_w = -1

    def discard_pending(self) -> None:
        """Drop what the host sent that the device had not read yet (a reboot loses its RX).

        Only that direction: what the device already sent sits in the host's driver buffer on
        real hardware too, and flushing it under a host blocked in select() makes pyserial see
        a readable port with no data ("device disconnected")."""
        if self._slave >= 0:
            with contextlib.suppress(termios.error):
                termios.tcflush(self._slave, termios.TCOFLUSH)

    def wire_time(self, nbytes: int) -> float:
        return nbytes * 10.0 / self.baud if self.baud else 0.0

    def write(self, data: bytes) -> None:
        """Transmit to the host, paced at the baud rate when emulated (thread-safe)."""
        with self._tx_lock:
            view = memoryview(data)
            while view and not self._stop.is_set():
                newline = bytes(view).find(b"\n")
                piece = view[:newline + 1] if newline >= 0 else view
                if self.baud and self._stop.wait(self.wire_time(len(piece))):
                    return
                self._write_all(bytes(piece))
                view = view[len(piece):]

    def _write_all(self, data: bytes) -> None:
        while data:
            if self._master < 0:
                return
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                _, ready, _ = select.select([], [self._master], [], WRITE_STALL)
                if not ready:
                    self.tx_dropped += len(data)
                    return
                continue
            except OSError as err:
                if err.errno in (errno.EIO, errno.EBADF):
                    self.tx_dropped += len(data)
                    return
                raise
            self.tx_bytes += written
            data = data[written:]

    def _rx_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._stop.is_set():
                return
            if self._master not in ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError as err:
                if err.errno == errno.EIO:  # no slave open (cannot happen: we hold one)
                    time.sleep(0.05)
                    continue
                return
            if not chunk:
                continue
            self.rx_bytes += len(chunk)
            self._deliver(chunk, time.monotonic())

    def _deliver(self, chunk: bytes, now: float) -> None:
        start = 0
        while start < len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline + 1
            segment = chunk[start:end]
            start = end
            if self.baud:
                self._rx_clock = max(self._rx_clock, now) + self.wire_time(len(segment))
                delay = self._rx_clock - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                # Handed on late (a busy machine): the next segment still takes its own wire
                # time after this one, as a UART never delivers faster than its baud rate.
                self._rx_clock = max(self._rx_clock, time.monotonic())
            try:
                self.on_rx(segment)
            except Exception:  # the device model must not kill the UART
                log.exception("virtual board failed to handle received bytes")
