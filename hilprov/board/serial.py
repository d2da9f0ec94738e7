"""One owner of the board's serial port, split into two streams: console text and SMP lines.

The Zephyr UART carries log lines and the shell prompt *and* MCUmgr SMP frames (lines that start
with the bytes 06 09 or 04 14, base64 inside). A reader thread splits the byte stream: SMP lines
go to a queue for :mod:`hilprov.board.smp`; everything else is console text for
:meth:`SerialPort.expect`, the per-port log file (one timestamped entry per line) and the
``hilprov.serial`` logger.

Console text is normalised so patterns stay simple: CR LF, LF and a lone CR all end a line, VT100
escape sequences (the shell's colours and line erasing) are removed unless ``strip_ansi=False``, and
undecodable bytes become U+FFFD. A line still being received (a prompt such as ``uart:~$ `` that has
no newline yet) can already be matched. An SMP marker in the middle of a console line (the device's
reply right after the prompt it printed for our newline) ends that console line.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import queue
import re
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO

import serial

from hilprov.errors import BoardError, ExpectTimeout

log = logging.getLogger("hilprov.serial")

SMP_START = b"\x06\x09"
SMP_CONTINUE = b"\x04\x14"
SMP_MARKERS = (SMP_START, SMP_CONTINUE)

# Where a console segment ends: a newline (CR LF, LF, or a lone CR followed by something), an SMP
# marker, or a byte at the very end of the buffer that may be the first half of either.
_SPLIT = re.compile(rb"\r\n|\n|\r(?=[^\n])|\x06\x09|\x04\x14|[\x06\x04\r]\Z")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_ANSI_INCOMPLETE = re.compile(r"\x1b(\[[0-?]*[ -/]*)?\Z")

_MAX_SMP_LINE = 1024  # an SMP "line" this long without a newline is noise, not a frame
_MAX_UNCONSUMED = 1_000_000  # characters of console text kept for expect()
_PARTIAL_LOG_AFTER = 0.3  # seconds of silence before a line without newline is logged
_CLOSED = object()


class SerialPort:
    """The board's serial port, opened once: console text for `expect`, SMP lines for SMP.

    `url` is anything pyserial's `serial_for_url` opens (``/dev/ttyACM0``, ``/dev/pts/3``,
    ``rfc2217://host:port``, ``socket://host:port``, ``loop://``). `log_path` receives every
    console line with a timestamp; `name` prefixes the lines mirrored to the ``hilprov.serial``
    logger.
    """

    def __init__(self, url: str, baudrate: int = 115200, *, log_path: Path | None = None,
                 name: str = "", strip_ansi: bool = True, history: int = 2000) -> None:
        self.url = url
        self.baudrate = baudrate
        self.name = name
        self.strip_ansi = strip_ansi
        self._log_path = Path(log_path) if log_path is not None else None
        self._prefix = f"[{name}] " if name else ""
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._smp: queue.Queue[object] = queue.Queue()
        self._error: str | None = None
        # Console state, guarded by _cond.
        self._lines: deque[str] = deque(maxlen=history)
        self._line_total = 0  # console lines ever appended to _lines
        self._unconsumed = ""  # completed lines not consumed by expect(), "\n"-terminated
        self._partial = bytearray()  # the console line being received
        self._partial_t0 = 0.0
        self._partial_skip = 0  # characters of the partial line consumed by expect()
        self._partial_logged = 0  # characters of the partial line already written to the log
        self._rest = b""  # undecided bytes carried to the next read (half a marker or CR)
        self._smp_line: bytearray | None = None
        self._last_rx = time.monotonic()
        self._log_file: IO[str] | None = None
        if self._log_path is not None:
            try:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_file = self._log_path.open("a", encoding="utf-8", buffering=1)
            except OSError as err:
                raise BoardError(f"cannot open serial log file {self._log_path}: "
                                 f"{err.strerror}") from None
        try:
            self._serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05,
                                                 exclusive=True)
        except (serial.SerialException, OSError, ValueError) as err:
            self._close_log()
            raise BoardError(f"serial port {url}: cannot open: {err}") from None
        self._thread = threading.Thread(target=self._read_loop, name=f"serial-reader {url}",
                                        daemon=True)
        self._thread.start()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> SerialPort:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SerialPort({self.url!r}, {self.baudrate})"

    def close(self) -> None:
        """Stop the reader, close the port and the log file (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        cancel = getattr(self._serial, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):  # best effort while closing
                cancel()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()
        with self._cond:
            if self._partial:
                self._finish_console_line()
            if self._error is None:
                self._error = "closed"
            self._cond.notify_all()
        self._smp.put(_CLOSED)
        self._close_log()

    @property
    def log_path(self) -> Path | None:
        """The file that receives every console line, or None."""
        return self._log_path

    # --- writing --------------------------------------------------------------------------

    def write(self, data: bytes, *, drain: bool = True) -> None:
        """Send raw bytes to the board (thread-safe). With `drain`, wait until the OS has sent
        them; SMP lines do not, so the next line can follow on the wire without a gap."""
        self._check_usable("write")
        with self._write_lock:
            try:
                self._serial.write(data)
                if drain:
                    self._serial.flush()
            except (serial.SerialException, OSError) as err:
                raise BoardError(f"serial port {self.url}: write failed: {err}") from None

    def write_smp_line(self, line: bytes) -> None:
        """Send one SMP line (marker + base64 + LF) as a single write."""
        if line[:2] not in SMP_MARKERS or not line.endswith(b"\n"):
            raise ValueError("an SMP line starts with 06 09 or 04 14 and ends with LF")
        self.write(line, drain=False)

    def write_smp_lines(self, lines) -> None:
        """Send SMP lines (each marker + base64 + LF) back to back in one write."""
        for line in lines:
            if line[:2] not in SMP_MARKERS or not line.endswith(b"\n"):
                raise ValueError("an SMP line starts with 06 09 or 04 14 and ends with LF")
        self.write(b"".join(lines), drain=False)

    # --- SMP side -------------------------------------------------------------------------

    def read_smp_line(self, timeout: float) -> bytes | None:
        """The next SMP line received (marker ... LF), or None after `timeout` seconds."""
        try:
            item = self._smp.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._smp.put(_CLOSED)  # keep telling later readers
            raise BoardError(f"serial port {self.url}: {self._error or 'closed'} "
                             f"(while waiting for an SMP response)")
        assert isinstance(item, bytes)
        return item

    def drain_smp(self) -> int:
        """Drop every SMP line received so far; returns how many were dropped."""
        dropped = 0
        while True:
            try:
                item = self._smp.get_nowait()
            except queue.Empty:
                return dropped
            if item is _CLOSED:
                self._smp.put(_CLOSED)
                return dropped
            dropped += 1

    # --- console side ---------------------------------------------------------------------

    def expect(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait for `pattern` in console output not consumed yet; consume up to the match's end.

        A str pattern is compiled with re.MULTILINE (``^``/``$`` match at line boundaries).
        Raises ExpectTimeout with the last lines received and the log path.
        """
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.MULTILINE)
        return self._wait_for(regex.search, f"pattern {regex.pattern!r}", timeout)

    def expect_exact(self, text: str, timeout: float) -> str:
        """Wait for the literal `text` in console output; consume up to it and return it."""
        if not text:
            raise ValueError("expect_exact needs a non-empty text")

        literal = re.compile(re.escape(text))
        return self._wait_for(literal.search, f"text {text!r}", timeout).group(0)

    def expect_with(self, search, what: str, timeout: float) -> re.Match[str]:
        """Wait until `search(text)` returns a match in console output not consumed yet (it may
        raise to stop early); consume up to the match's end. `what` names it in errors."""
        return self._wait_for(search, what, timeout)

    def clear(self) -> None:
        """Forget unconsumed console output (e.g. before flashing, so an old boot can't match)."""
        with self._cond:
            self._unconsumed = ""
            self._partial_skip = len(self._partial_text())

    @property
    def console_lines(self) -> list[str]:
        """Recent console lines (completed ones, then the line being received if any)."""
        with self._cond:
            lines = list(self._lines)
            partial = self._partial_text()
        return lines + [partial] if partial else lines

    @property
    def console_mark(self) -> int:
        """A count of the console lines completed so far, for :meth:`console_since`."""
        with self._cond:
            return self._line_total

    def console_since(self, mark: int) -> list[str]:
        """Console lines completed after `mark` was taken (as many as the history keeps)."""
        with self._cond:
            new = self._line_total - mark
            return list(self._lines)[-new:] if new > 0 else []

    def tail(self, n: int = 20) -> list[str]:
        """The last `n` console lines received."""
        return self.console_lines[-n:] if n > 0 else []

    # --- internals ------------------------------------------------------------------------

    def _wait_for(self, search, what: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                partial = self._partial_text()[self._partial_skip:]
                haystack = self._unconsumed + partial
                match = search(haystack)
                if match is not None:
                    self._consume(match.end())
                    return match
                if self._error is not None:
                    raise BoardError(f"serial port {self.url}: {self._error} while waiting for "
                                     f"{what}{self._tail_text()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExpectTimeout(
                        f"{self._label()}: {what} did not appear within {timeout:g} s."
                        f"{self._tail_text()}\nFull log: "
                        f"{self._log_path if self._log_path else '(no log file for this port)'}")
                self._cond.wait(remaining)

    def _consume(self, end: int) -> None:
        done_len = len(self._unconsumed)
        if end <= done_len:
            self._unconsumed = self._unconsumed[end:]
        else:
            self._unconsumed = ""
            self._partial_skip += end - done_len

    def _label(self) -> str:
        return f"serial port {self.url}" + (f" ({self.name})" if self.name else "")

    def _tail_text(self, n: int = 20) -> str:
        lines = self.tail(n)  # _cond is reentrant: callers may hold it
        if not lines:
            return " Nothing was received on the console."
        body = "\n".join(f"  | {line}" for line in lines)
        return f" Last {len(lines)} console line(s) received:\n{body}"

    def _check_usable(self, action: str) -> None:
        if self._error is not None:
            raise BoardError(f"serial port {self.url}: cannot {action}: {self._error}")

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                waiting = self._serial.in_waiting
                data = self._serial.read(waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                if not self._stop.is_set():
                    self._fail(f"disconnected ({err})")
                return
            now = time.monotonic()
            with self._cond:
                if data:
                    self._last_rx = now
                    self._feed(data)
                    self._cond.notify_all()
                elif self._partial and now - self._last_rx > _PARTIAL_LOG_AFTER:
                    self._log_partial()

    def _fail(self, reason: str) -> None:
        with self._cond:
            self._error = reason
            self._cond.notify_all()
        self._smp.put(_CLOSED)
        log.warning("%sserial port %s %s", self._prefix, self.url, reason)

    def _feed(self, data: bytes) -> None:
        """Split received bytes into console text and SMP lines (caller holds _cond)."""
        buf = self._rest + data
        self._rest = b""
        pos = 0
        while pos < len(buf):
            if self._smp_line is not None:
                newline = buf.find(b"\n", pos)
                end = len(buf) if newline < 0 else newline + 1
                self._smp_line += buf[pos:end]
                pos = end
                if newline >= 0:
                    self._smp.put(bytes(self._smp_line.rstrip(b"\r\n")) + b"\n")
                    self._smp_line = None
                elif len(self._smp_line) > _MAX_SMP_LINE:
                    noise, self._smp_line = bytes(self._smp_line), None
                    self._console_bytes(noise)
                continue
            match = _SPLIT.search(buf, pos)
            if match is None:
                self._console_bytes(buf[pos:])
                break
            token = match.group()
            self._console_bytes(buf[pos:match.start()])
            if token in SMP_MARKERS:
                if self._partial:
                    self._finish_console_line()
                self._smp_line = bytearray()
                pos = match.start()  # the SMP branch copies the marker
            elif match.end() == len(buf) and token in (b"\x06", b"\x04", b"\r"):
                self._rest = token  # decide when the next byte arrives
                break
            else:
                self._finish_console_line()
                pos = match.end()

    def _console_bytes(self, data: bytes) -> None:
        if data:
            if not self._partial:
                self._partial_t0 = time.time()
            self._partial += data

    def _partial_text(self) -> str:
        """Clean text of the line being received, without an incomplete character or escape."""
        if not self._partial:
            return ""
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(bytes(self._partial))
        if self.strip_ansi:
            text = _ANSI.sub("", text)
            text = _ANSI_INCOMPLETE.sub("", text)
        return text.replace("\r", "")

    def _clean_line(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        if self.strip_ansi:
            text = _ANSI.sub("", text)
        return text.replace("\r", "")

    def _finish_console_line(self) -> None:
        text = self._clean_line(bytes(self._partial))
        stamp = self._partial_t0 or time.time()
        self._unconsumed += text[self._partial_skip:] + "\n"
        if len(self._unconsumed) > _MAX_UNCONSUMED:
            cut = self._unconsumed.find("\n", len(self._unconsumed) - _MAX_UNCONSUMED // 2)
            self._unconsumed = self._unconsumed[cut + 1:]
        if text.strip():
            self._lines.append(text)
            self._line_total += 1
        if len(text) > self._partial_logged:
            self._record(text[self._partial_logged:], stamp)
        self._partial = bytearray()
        self._partial_skip = 0
        self._partial_logged = 0
        self._partial_t0 = 0.0

    def _log_partial(self) -> None:
        text = self._partial_text()
        if len(text) > self._partial_logged:
            self._record(text[self._partial_logged:], self._partial_t0 or time.time())
            self._partial_logged = len(text)

    def _record(self, text: str, stamp: float) -> None:
        if not text.strip():
            return
        log.info("%s%s", self._prefix, text)
        if self._log_file is not None:
            when = datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            with contextlib.suppress(OSError, ValueError):
                self._log_file.write(f"[{when}] {text}\n")

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None
