"""SMP (MCUmgr) file transfer over the board's shared serial port.

Requests are plain SMP v2 messages (:mod:`hilprov.board.smp_messages`) framed with
`smp.packet.encode`; responses are unframed with `smp.packet.decode` and read with cbor2, which
also takes replies a strict schema would reject (``rc: 0`` from legacy-rc builds, the
offset-mismatch error that carries ``len``).

What this client adds over a plain request/response loop (see ``smp-notes.md`` §6):

* first use: a lone newline (flushes a partial line in the device's line buffer), 50 ms, drop
  stale input, then read the MCUmgr parameters to size requests (``buf_size - 4`` on serial);
* a link that adapts (:mod:`hilprov.board.smp_link`): requests go out as fast as the link takes
  them, with no pacing by the nominal baud rate. A request of several lines that is not answered
  soon is checked with an echo sent behind it; if the echo comes back first, the device dropped
  lines (its RX line buffers were full, or it printed ``fragment dropped``), so the port moves one
  step down the ladder (fewer lines in flight, smaller requests, pacing) and the request is sent
  again. What works is remembered for the port for the rest of the process, and an error after
  the last step says what was tried;
* responses matched by sequence number, stale and corrupt frames skipped;
* after a timeout, the same echo tells a slow device from a lost request: only a lost request is
  sent again, so a write to a stream is never appended twice; a lost answer shows up as an
  offset mismatch on the resent write and the upload resumes from the ``len`` the device reports;
* a cap on the data bytes per write for files that need one (`max_chunk`);
* typed errors (`TransferError` subclasses) naming the operation and the remote path.
"""

from __future__ import annotations

import binascii
import dataclasses
import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from smp import packet as smppacket
from smp.exceptions import SMPBadContinueDelimiter, SMPBadCRC, SMPBadStartDelimiter

from hilprov.board import smp_link
from hilprov.board import smp_messages as msg
from hilprov.board.serial import SMP_START, SerialPort
from hilprov.board.smp_link import LINE_LENGTH, LinkLevel, LinkState
from hilprov.errors import TransferError

log = logging.getLogger(__name__)


class _NoPacketBytes(logging.Filter):
    """`smp.packet` logs every request and response in full at DEBUG level; an upload carries
    the provisioning blob (the PSK or private key), so those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Serializing request=", "Response length_and"))


logging.getLogger("smp.packet").addFilter(_NoPacketBytes())

_ENCODE_LINE_LENGTH = LINE_LENGTH + 1
"""`smp.packet.encode` puts ``line_length - 4`` base64 characters in a line (it reserves one byte
too many), so 128 gives 124 characters: 127-byte lines, as smpclient does."""

FALLBACK_MAX_REQUEST = smp_link.packet_room(2)
"""Largest request without MCUmgr parameters: length + packet + CRC fit two 93-byte lines, so
it passes a two-line RX pool and any netbuf size in use (Zephyr's default: 384)."""

FLUSH_SETTLE = 0.05
"""Seconds to wait after the newline flush before dropping what the device sent back."""

PARAMS_TIMEOUT = 2.0
"""Seconds to wait for the MCUmgr parameters (a device without them may stay silent)."""

LOSS_CHECK = 0.25
"""Seconds after which an unanswered request of several lines is checked with an echo (plus
its wire time at the nominal baud rate, and a few round trips): a device answers an intact
request well within that, so a missing answer most likely means dropped lines."""

_CONSOLE_POLL = 0.02  # seconds between looks at the console for a device's "fragment dropped"

_FS_GROUP = msg.GROUP_FS
_NOT_FOUND = ((_FS_GROUP, msg.FS_NOT_FOUND), (None, msg.ENOENT))
_OFFSET_MISMATCH = ((_FS_GROUP, msg.FS_OFFSET_NOT_VALID),
                    (None, msg.EUNKNOWN))  # v1 servers: rc 1 + len
_DECODE_ERRORS = (SMPBadStartDelimiter, SMPBadContinueDelimiter, SMPBadCRC, binascii.Error,
                  struct.error, ValueError, IndexError)

Progress = Callable[[int, int], None]
Build = Callable[[int], msg.Request]  # sequence number -> request


# --- errors -------------------------------------------------------------------------------

class SmpRemoteError(TransferError):
    """The device answered with an SMP error; `group`/`rc` are the raw codes."""

    def __init__(self, message: str, *, operation: str, remote: str, group: int | None = None,
                 rc: int | None = None, rc_name: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.remote = remote
        self.offset = offset
        self.group = group
        self.rc = rc
        self.rc_name = rc_name


class RemoteFileNotFound(SmpRemoteError):
    """The file does not exist on the device (FS NOT_FOUND, or ENOENT from a v1 server)."""


class RemoteNotMounted(SmpRemoteError):
    """The device could not open the file for writing: its mount point is missing."""


class NoSpaceError(SmpRemoteError):
    """The device failed to write (Zephyr fs_mgmt reports -ENOSPC as FILE_WRITE_FAILED)."""


class RemoteBusy(SmpRemoteError):
    """The device's file management is busy with another transfer (EBUSY) after the retries."""


class RemoteReadOnly(SmpRemoteError):
    """The file or file system is read-only, or access was denied."""


class RemoteInvalidName(SmpRemoteError):
    """The device rejected the path or a request field (INVALID_NAME, IS_DIRECTORY, EINVAL)."""


class UnsupportedCommand(SmpRemoteError):
    """The device does not implement this SMP command or protocol version."""


class SmpTimeout(TransferError):
    """No valid response arrived after every retry."""


class SmpProtocolError(TransferError):
    """The device's response is well framed but makes no sense for the request."""


_FS_ERRORS: dict[int, tuple[type[SmpRemoteError], str]] = {
    msg.FS_NOT_FOUND: (RemoteFileNotFound, "the file does not exist"),
    msg.FS_MOUNT_POINT_NOT_FOUND: (
        RemoteNotMounted, "the device could not open it: its mount point is not mounted "
        "(for /factory: factory data is already present, or this boot's provisioning attempt "
        "is over)"),
    msg.FS_WRITE_FAILED: (
        NoSpaceError, "the device's fs_write failed; Zephyr reports -ENOSPC this way (a full "
        "file system, or one write larger than the file accepts)"),
    msg.FS_READ_ONLY: (RemoteReadOnly, "the file system is read-only"),
    msg.FS_INVALID_NAME: (RemoteInvalidName, "the path is not valid on the device"),
    msg.FS_IS_DIRECTORY: (RemoteInvalidName, "the path is a directory"),
}
_MGMT_ERRORS: dict[int, tuple[type[SmpRemoteError], str]] = {
    msg.ENOENT: (RemoteFileNotFound, "no such file"),
    msg.EBUSY: (RemoteBusy, "the device is busy with another file transfer"),
    msg.ENOMEM: (NoSpaceError, "the device ran out of memory or space"),
    msg.EINVAL: (RemoteInvalidName, "the device rejected the request (bad path or field)"),
    msg.EACCESSDENIED: (RemoteReadOnly, "access denied"),
    msg.ENOTSUP: (UnsupportedCommand, "the device does not support this command"),
    msg.TOO_OLD: (UnsupportedCommand, "the SMP protocol version is too old"),
    msg.TOO_NEW: (UnsupportedCommand, "the SMP protocol version is too new"),
}


# --- parameters ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SmpParams:
    """Buffer parameters the requests are sized by."""

    buf_size: int | None
    buf_count: int | None

    @property
    def from_device(self) -> bool:
        return self.buf_size is not None

    @property
    def max_request(self) -> int:
        """Largest SMP packet (header + CBOR) one request may be: ``buf_size - 4`` on serial,
        since the device's buffer also holds the 2-byte length and the 2-byte CRC."""
        if self.buf_size is None:
            return FALLBACK_MAX_REQUEST
        return self.buf_size - 4


@dataclass(frozen=True)
class _Reply:
    header: msg.Header
    body: dict[str, Any]
    frame: bytes
    attempt: int = 1  # how many times the request had been sent when this answer came
    sent: tuple[msg.Request, ...] = ()  # every sending of the request, first to last
    request: msg.Request | None = None  # the sending this answers


def wire_time(nbytes: int, baudrate: int) -> float:
    """Seconds `nbytes` take on an 8N1 UART (10 bits per byte)."""
    return nbytes * 10.0 / baudrate if baudrate > 0 else 0.0


def _encode(packet: bytes) -> list[bytes]:
    return list(smppacket.encode(packet, line_length=_ENCODE_LINE_LENGTH))


class _FrameReader:
    """Reassembles SMP frames from lines; counts lines and frames that make no sense."""

    def __init__(self, stats: dict[str, int]) -> None:
        self.stats = stats
        self._decoder = None

    def feed(self, line: bytes) -> bytes | None:
        """The frame `line` completes, or None."""
        if line.startswith(SMP_START):
            if self._decoder is not None:
                self.stats["corrupt"] += 1  # a frame that never completed
            self._decoder = smppacket.decode()
            next(self._decoder)
        elif self._decoder is None:
            self.stats["corrupt"] += 1
            return None
        try:
            self._decoder.send(line)
            return None  # more lines to come
        except StopIteration as done:
            self._decoder = None
            return bytes(done.value)
        except _DECODE_ERRORS as err:
            log.debug("dropping undecodable SMP frame: %s", err)
            self.stats["corrupt"] += 1
            self._decoder = None
            return None


class SmpFileClient:
    """Synchronous SMP file client on a :class:`SerialPort` (which it shares with `expect`).

    `timeout` bounds the wait for each response, `retries` is how many times one request is
    sent before giving up (lost requests that moved the link a step down do not count).
    `link` pins how lines are sent (a :data:`~hilprov.board.smp_link.LADDER` level) and turns
    learning off; by default the port's remembered level is used and adapted.
    """

    def __init__(self, port: SerialPort, *, timeout: float = 5.0, retries: int = 3,
                 link: LinkLevel | None = None) -> None:
        if retries < 1:
            raise ValueError("retries must be at least 1")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.pinned = link
        self._state: LinkState | None = smp_link.state_for(port.url) if link is None else None
        self._params: SmpParams | None = None
        self._seq = 0
        self.timeouts = 0  # responses that did not arrive in time (each led to a resync)
        self.resumes = 0  # uploads continued from the offset the device reported
        self.losses = 0  # requests the device did not get whole (it answered the echo instead)
        self._learning = False  # in learn(): steps down are the point, not news

    # --- public API -----------------------------------------------------------------------

    @property
    def level(self) -> LinkLevel:
        """How request lines are sent now."""
        if self.pinned is not None:
            return self.pinned
        assert self._state is not None
        return self._state.current

    @property
    def link(self) -> LinkState | None:
        """What the transport learned about this port (None when `link` was pinned)."""
        return self._state

    def params(self) -> SmpParams:
        """The MCUmgr buffer parameters (read from the device on first use, else a fallback)."""
        self._ensure_ready()
        assert self._params is not None
        return self._params

    def echo(self, text: str, *, timeout: float | None = None) -> tuple[str, float]:
        """Send `text` with the OS echo command; returns the device's echo and the seconds the
        exchange took (sending included)."""
        self._ensure_ready()
        started = time.monotonic()
        reply = self._transact(lambda seq: msg.echo(seq, text), "echo", "(echo)", timeout)
        seconds = time.monotonic() - started
        self._raise_for_error(reply, "echo", "(echo)")
        echoed = reply.body.get("r")
        if not isinstance(echoed, str):
            raise SmpProtocolError(f"SMP echo: unexpected response {reply.body!r:.200}")
        return echoed, seconds

    def learn(self, rounds: int = 3, *, timeout: float | None = None) -> LinkState | None:
        """Find the fastest level that works now: echo messages as large as the largest request
        until `rounds` in a row are answered at one level (stepping down on each loss).
        Transfers learn the same way as they go; this does it up front, for `hilprov smp
        params` and for benchmarks. Returns the port's state (None when pinned)."""
        self._ensure_ready()
        if self._state is None:
            return None
        passed = 0
        self._learning = True
        try:
            while passed < rounds:
                passed = self._learn_round(passed, timeout)
        finally:
            self._learning = False
        return self._state

    def _learn_round(self, passed: int, timeout: float | None) -> int:
        """One echo as large as the largest request; the new count of answers in a row."""
        assert self._state is not None
        level = self._state.level
        reply = self._transact(lambda seq: msg.echo(seq, "x" * self._echo_room()), "echo",
                               "(link probe)", timeout)
        # Any answer (an echo, or an error from a device with a shorter echo limit) proves
        # every line arrived.
        log.debug("link probe at %r answered: %s", self.level.name, sorted(reply.body))
        return passed + 1 if self._state.level == level else 1

    def status(self, remote: str, *, timeout: float | None = None) -> int:
        """Size in bytes of `remote` on the device."""
        self._ensure_ready()
        reply = self._transact(lambda seq: msg.file_status(seq, name=remote), "status", remote,
                               timeout)
        self._raise_for_error(reply, "status", remote)
        return self._int(reply, "len", "status", remote)

    def upload(self, data: bytes, remote: str, *, progress: Progress | None = None,
               max_chunk: int | None = None, timeout: float | None = None) -> None:
        """Write `data` to `remote`; resumes where the device says it is after a lost reply.

        `max_chunk` caps the data bytes per request (a device file that takes only so much per
        write, such as the Anjay application's provision.cbor)."""
        self._ensure_ready()
        total = len(data)
        limit = max_chunk if max_chunk is not None else total
        off = 0
        best = -1
        stuck = 0
        while True:
            reply = self._transact(self._upload_builder(data, remote, off, limit), "upload",
                                   remote, timeout)
            new_off = self._upload_result(reply, remote, off, total)
            if new_off > best:
                best, stuck = new_off, 0
            else:
                stuck += 1
                if stuck > self.retries:
                    raise TransferError(
                        f"SMP upload to {remote}: no progress after {stuck} requests at offset "
                        f"{off} of {total} (the device keeps asking for offset {new_off})"
                        f"{self._console_hint()}")
            off = new_off
            if progress is not None:
                progress(off, total)
            if off >= total:
                return

    def download(self, remote: str, *, progress: Progress | None = None,
                 timeout: float | None = None) -> bytes:
        """Read `remote` from the device. `timeout` per response (result.txt may block)."""
        self._ensure_ready()
        buf = bytearray()
        total: int | None = None
        failures = 0
        while True:
            off = len(buf)
            reply = self._transact(lambda seq, off=off: msg.file_download(seq, off=off,
                                                                          name=remote),
                                   "download", remote, timeout)
            self._raise_for_error(reply, "download", remote, off=off)
            got_off = self._int(reply, "off", "download", remote)
            chunk = self._bytes(reply, "data", "download", remote)
            length = self._int(reply, "len", "download", remote, required=False)
            problem = None
            if got_off != off:
                problem = f"answered for offset {got_off} instead of {off}"
            elif off == 0 and length is None:
                problem = "sent the first chunk without the file length"
            if problem is None:
                if off == 0:
                    total = length
                assert total is not None
                if off + len(chunk) > total:
                    raise SmpProtocolError(
                        f"SMP download of {remote}: the device sent {off + len(chunk)} "
                        f"bytes of a file it said is {total} bytes long")
                if not chunk and off < total:
                    problem = f"sent an empty chunk at offset {off} of {total}"
            if problem is not None:
                failures += 1
                log.warning("download %s: the device %s", remote, problem)
                if failures >= self.retries:
                    raise TransferError(f"SMP download of {remote}: the device {problem} "
                                        f"({failures} times){self._console_hint()}")
                continue
            assert total is not None
            buf += chunk
            if progress is not None:
                progress(len(buf), total)
            if len(buf) >= total:
                return bytes(buf)

    # --- upload steps ---------------------------------------------------------------------

    def _upload_builder(self, data: bytes, remote: str, off: int, limit: int) -> Build:
        """The write at `off`, sized when it is (re)sent: a step down the link ladder may have
        made requests smaller since the last sending."""
        total = len(data)

        def build(seq: int) -> msg.Request:
            size = self._chunk_size(remote, off, total, limit)
            return msg.file_upload(seq, off=off, data=data[off:off + size], name=remote,
                                   total=total if off == 0 else None)
        return build

    def _upload_result(self, reply: _Reply, remote: str, off: int, total: int) -> int:
        """The offset the upload continues at after `reply` to the write at `off`."""
        assert reply.request is not None
        size = len(reply.request.fields["data"])
        expected = self._offset_mismatch(reply)
        if expected is not None:
            if not 0 <= expected <= total:
                raise SmpProtocolError(
                    f"SMP upload to {remote}: the device expects offset {expected}, but the "
                    f"file is {total} bytes long (another upload to the same file?)")
            log.info("upload %s: device expects offset %d (sent %d); resuming", remote,
                     expected, off)
            self.resumes += 1
            return expected
        if self._last_chunk_already_taken(reply, total):
            log.warning("upload %s: the reply to the last chunk was lost and the device has "
                        "closed the upload, so it took that chunk; the device's own result "
                        "confirms the data", remote)
            return total
        hint = ""
        if off > 0 and self._error_codes(reply) in _NOT_FOUND:
            hint = "; the device no longer knows this upload: did it reboot?" + \
                self._console_hint()
        self._raise_for_error(reply, "upload", remote, off=off, size=size, hint=hint)
        new_off = self._int(reply, "off", "upload", remote)
        if not 0 <= new_off <= total:
            raise SmpProtocolError(
                f"SMP upload to {remote}: the device reports offset {new_off} after "
                f"{off}+{size} bytes of a {total}-byte file")
        return new_off

    # --- request/response -----------------------------------------------------------------

    def _ensure_ready(self) -> None:
        if self._params is not None:
            return
        self._flush()
        started = time.monotonic()
        self._params = self._read_params()
        seconds = time.monotonic() - started
        log.debug("SMP parameters: %s (%.1f ms)", self._params, seconds * 1000)
        state = self._state
        if state is None:
            return
        device = (self._params.buf_size, self._params.buf_count)
        if state.buf_size is not None and (state.buf_size, state.buf_count) != device:
            log.info("SMP link %s: the device's buffers changed (%s x %s -> %s x %s); "
                     "learning the link again", self.port.url, state.buf_size, state.buf_count,
                     *device)
            state.level, state.losses, state.confirmed, state.too_fast = 0, [], 0, set()
        state.buf_size, state.buf_count = device
        if self._params.from_device and (state.round_trip is None
                                         or seconds < state.round_trip):
            state.round_trip = seconds

    def _flush(self, *, drain: bool = True) -> None:
        """Newline on its own, so a partial line in the device's buffer can't spoil a frame;
        `drain` then drops what came back (not after a timeout, where a late answer counts)."""
        self.port.write(b"\n")
        time.sleep(FLUSH_SETTLE)
        if drain:
            self.port.drain_smp()

    def _read_params(self) -> SmpParams:
        fallback = SmpParams(None, None)
        try:
            reply = self._transact(msg.params_read, "parameter read", "(MCUmgr parameters)",
                                   PARAMS_TIMEOUT, attempts=2)
        except SmpTimeout:
            log.warning("no answer to the MCUmgr parameters request on %s; using %d-byte "
                        "requests", self.port.url, FALLBACK_MAX_REQUEST)
            return fallback
        if self._error_codes(reply) is not None:
            log.info("device does not report MCUmgr parameters; using %d-byte requests",
                     FALLBACK_MAX_REQUEST)
            return fallback
        buf_size = self._int(reply, "buf_size", "parameter read", "(MCUmgr parameters)")
        buf_count = self._int(reply, "buf_count", "parameter read", "(MCUmgr parameters)")
        if buf_size <= 4 + msg.HEADER_SIZE + 64:
            return fallback
        return SmpParams(buf_size, buf_count)

    def _transact(self, build: Build, operation: str, remote: str, timeout: float | None,
                  attempts: int | None = None) -> _Reply:
        """Send a request until a matching response arrives.

        After a timeout an echo is sent behind the request (see `_probe`). The request is sent
        again only when the device answers the echo but not the request, i.e. the request or
        its answer was lost; while the device is silent (busy, stalled) it is not resent, so a
        write to a stream such as /factory/provision.cbor is never appended twice because it
        was merely slow. An answer to any sending of the request is accepted. A request of
        several lines is checked early (`_loss_check`), and a lost one moves the link a step
        down before it is sent again (`_step_down`)."""
        wait = self.timeout if timeout is None else timeout
        attempts = self.retries if attempts is None else attempts
        stats = {"stale": 0, "corrupt": 0}
        sendings: list[msg.Request] = []
        sent = ""
        failures = 0
        resend = True
        while True:
            first_wait, watch = wait, None
            if resend:
                request = build(self._next_seq())
                sent, lines = self._send(request)
                sendings.append(request)
                early = self._loss_check(lines, wait)
                if early is not None:
                    first_wait, watch = early, self.port.console_mark
            reply = self._await(sendings, first_wait, stats, watch)
            lost = False
            if reply is None:
                reply, lost = self._probe(sendings, wait, stats)
            if reply is not None:
                reply = self._answered(reply, sendings, lines)
                if self._error_codes(reply) == (None, msg.EBUSY) and failures + 1 < attempts:
                    failures += 1
                    time.sleep(0.2)
                    resend = True
                    continue
                return reply
            self.timeouts += 1
            if lost:
                self.losses += 1
                # One line always fits a free RX line buffer: its loss says nothing about how
                # many lines the device takes at once, so only longer requests step down.
                if lines > 1 and self._step_down(operation, remote, sent):
                    resend = True
                    continue
            failures += 1
            resend = lost
            log.warning("SMP %s %s: no response to %s within %g s (attempt %d of %d)%s",
                        operation, remote, sent, wait, failures, attempts,
                        "; sending it again" if resend and failures < attempts else
                        "; the device is silent, waiting")
            if failures >= attempts:
                raise SmpTimeout(
                    f"SMP {operation} {remote}: no valid response within {wait:g} s, "
                    f"{attempts} attempt(s); last sent: {sent} "
                    f"({fields_summary(sendings[-1].fields)}); came back: {stats['stale']} "
                    f"stale and {stats['corrupt']} undecodable SMP frame(s)"
                    f"{self._link_hint(lost and lines > 1)}{self._console_hint()}")

    def _answered(self, reply: _Reply, sendings: list[msg.Request], lines: int) -> _Reply:
        request = next((r for r in sendings if r.header.answer_key() == reply.header.key()),
                       sendings[-1])
        if self._state is not None and lines > 1 and self._state.confirm():
            log.info("SMP link %s: %d requests in a row arrived whole; trying %r again",
                     self.port.url, smp_link.PROMOTE_AFTER, self._state.current.name)
        return dataclasses.replace(reply, attempt=len(sendings), sent=tuple(sendings),
                                   request=request)

    def _loss_check(self, lines: int, wait: float) -> float | None:
        """Seconds to wait before checking whether a request of `lines` lines was lost, or
        None to wait the whole timeout: one line always fits the device's buffers, a pinned
        link does not learn, and the last level has nowhere to go."""
        state = self._state
        if state is None or lines < 2 or state.at_bottom:
            return None
        assert self._params is not None
        exchange = (lines + smp_link.packet_lines(self._params.max_request)) * LINE_LENGTH
        check = LOSS_CHECK + wire_time(exchange, self.port.baudrate)
        if state.round_trip is not None:
            check += 4 * state.round_trip
        return check if check < wait else None

    def _step_down(self, operation: str, remote: str, sent: str) -> bool:
        """The device answered the echo but not the request: its lines were dropped. Move the
        port one level down; False when pinned or already at the last level."""
        state = self._state
        if state is None:
            return False
        state.lost(f"{operation} {remote}: {sent}", probing=self._learning)
        if state.at_bottom:
            return False
        before = state.current
        state.level += 1
        state.confirmed = 0
        log.log(logging.INFO if self._learning else logging.WARNING,
                "SMP link %s: the device dropped a request sent as %r (%s); sending it "
                "again as %r (%s)", self.port.url, before.name, sent, state.current.name,
                    state.current.describe())
        return True

    def _link_hint(self, lost: bool) -> str:
        """What the error message adds about the link."""
        state = self._state
        if state is None:
            assert self.pinned is not None
            return f"; link pinned to {self.pinned.name!r} ({self.pinned.describe()})"
        if lost:
            return (f". The device answers an echo but not this request, so its lines are lost "
                    f"on the way (full RX line buffers, or a link that drops bytes); tried: "
                    f"{state.tried()}; nothing slower is left to try")
        return f"; link: {state.current.name!r} ({state.current.describe()})"

    def _probe(self, sendings: list[msg.Request], wait: float,
               stats: dict[str, int]) -> tuple[_Reply | None, bool]:
        """After a timeout: is the device still busy with the request, or did it never get it?

        The device answers requests in order, so send a harmless echo behind it and wait for
        either answer. (reply, False): the request's late answer. (None, True): the echo came
        back first, so the request or its answer was lost: send it again. (None, False): the
        device said nothing: do not pile up copies. Even a device without echo answers it
        with an error, which orders just as well."""
        self._flush(drain=False)  # end any partial line, but keep queued frames
        echo = msg.echo(self._next_seq(), "hilprov")
        self._send(echo)
        reply = self._await([*sendings, echo], wait, stats)
        if reply is None:
            return None, False
        if reply.header.sequence == echo.header.sequence:
            self.port.drain_smp()
            return None, True
        log.info("SMP: the device answered late (after %g s); not sending again", wait)
        return reply, False

    def _send(self, request: msg.Request) -> tuple[str, int]:
        """Frame and send `request` at the current level; returns what was sent (for
        messages) and how many lines it took."""
        lines = _encode(request.packet)
        smp_link.send_lines(self.port.write_smp_lines, lines, self.level)
        return (f"{len(request.packet)}-byte request seq {request.header.sequence} in "
                f"{len(lines)} line(s)"), len(lines)

    def _await(self, sent: list[msg.Request], timeout: float, stats: dict[str, int],
               watch: int | None = None) -> _Reply | None:
        """Read SMP lines until the response to one of `sent` arrives; None on timeout, or as
        soon as the console shows the device dropping a line when `watch` (a console mark)
        is given."""
        deadline = time.monotonic() + timeout
        frames = _FrameReader(stats)
        wanted = {r.header.answer_key() for r in sent}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if watch is not None:
                if self._drop_seen(watch):
                    return None
                remaining = min(remaining, _CONSOLE_POLL)
            line = self.port.read_smp_line(remaining)
            frame = frames.feed(line) if line is not None else None
            if frame is None:
                continue
            reply = self._parse_frame(frame)
            if reply is None:
                stats["corrupt"] += 1
                continue
            if reply.header.key() not in wanted:
                got = reply.header
                log.debug("skipping SMP frame op %d group %d seq %d cmd %d (want %s)",
                          got.op, got.group, got.sequence, got.command, wanted)
                stats["stale"] += 1
                continue
            return reply

    def _drop_seen(self, mark: int) -> bool:
        dropped = [line for line in self.port.console_since(mark)
                   if smp_link.DROP_MARKERS.search(line)]
        if dropped:
            log.info("SMP link %s: the device reports a dropped line: %s", self.port.url,
                     dropped[-1].strip())
        return bool(dropped)

    @staticmethod
    def _parse_frame(frame: bytes) -> _Reply | None:
        try:
            head = msg.Header.unpack(frame)
        except ValueError:
            return None
        payload = frame[msg.HEADER_SIZE:]
        if head.length != len(payload):
            return None
        try:
            body = cbor2.loads(payload) if payload else {}
        except (cbor2.CBORDecodeError, ValueError):
            return None
        if not isinstance(body, dict):
            return None
        return _Reply(head, body, frame)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    # --- response interpretation ----------------------------------------------------------

    @staticmethod
    def _error_codes(reply: _Reply) -> tuple[int | None, int] | None:
        """(group, rc) of an error reply; group None for SMP-level/v1 errors; None if success."""
        err = reply.body.get("err")
        if isinstance(err, dict):
            group, rc = err.get("group"), err.get("rc")
            if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
                return (group if isinstance(group, int) else None), rc
            return None
        rc = reply.body.get("rc", 0)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            return None, rc
        return None

    def _last_chunk_already_taken(self, reply: _Reply, total: int) -> bool:
        """A retried last chunk answered "not found": its first sending arrived (the reply was
        lost) and completed the file, so the device closed the upload. A file it cannot stat
        (/factory/provision.cbor) then looks missing; other files answer an offset mismatch."""
        if reply.attempt < 2 or self._error_codes(reply) not in _NOT_FOUND:
            return False
        return any(r.fields["off"] + len(r.fields["data"]) >= total for r in reply.sent)

    def _offset_mismatch(self, reply: _Reply) -> int | None:
        """The offset the device expects, if this is Zephyr's offset-mismatch reply."""
        length = reply.body.get("len")
        if isinstance(length, int) and self._error_codes(reply) in _OFFSET_MISMATCH:
            return length
        return None

    def _raise_for_error(self, reply: _Reply, operation: str, remote: str, *,
                         off: int | None = None, size: int | None = None,
                         hint: str = "") -> None:
        codes = self._error_codes(reply)
        if codes is None:
            return
        group, rc = codes
        if group == _FS_GROUP:
            cls, why = _FS_ERRORS.get(rc, (SmpRemoteError, "file system error"))
        elif group is None:
            cls, why = _MGMT_ERRORS.get(rc, (SmpRemoteError, "SMP error"))
        else:
            cls, why = SmpRemoteError, "error"
        name = msg.error_name(group, rc)
        where = ""
        if off is not None:
            where = f" at offset {off}" + (f" ({size} data bytes)" if size is not None else "")
        raise cls(f"SMP {operation} of {remote} failed{where}: the device reports {name}: "
                  f"{why}{hint}", operation=operation, remote=remote, group=group, rc=rc,
                  rc_name=name, offset=off)

    @staticmethod
    def _int(reply: _Reply, key: str, operation: str, remote: str, *,
             required: bool = True) -> int | None:
        value = reply.body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SmpProtocolError(
                f"SMP {operation} of {remote}: unexpected response {reply.body!r:.200}: "
                f"{key!r} should be a non-negative integer")
        return value

    @staticmethod
    def _bytes(reply: _Reply, key: str, operation: str, remote: str) -> bytes:
        value = reply.body.get(key)
        if not isinstance(value, bytes):
            raise SmpProtocolError(
                f"SMP {operation} of {remote}: unexpected response {reply.body!r:.200}: "
                f"{key!r} should be a byte string")
        return value

    def _chunk_size(self, remote: str, off: int, total: int, limit: int) -> int:
        """Data bytes for the request at `off`: fills the device buffer (or the smaller
        requests of the link's level) minus the CBOR overhead."""
        remaining = total - off
        if remaining <= 0:
            return 0
        assert self._params is not None
        overhead = msg.upload_overhead(off=off, name=remote, total=total if off == 0 else None)
        room = self.level.max_request(self._params.max_request)
        if overhead + 1 + msg.bstr_extra(1) > room:
            room = self._params.max_request  # a long path: the level's small requests can't
        size = min(remaining, limit, room - overhead)
        while size > 0 and overhead + size + msg.bstr_extra(size) > room:
            size -= 1
        if size <= 0:
            raise TransferError(
                f"SMP upload to {remote}: a request has no room for data (device buffer "
                f"{self._params.buf_size or 'unknown'}, {overhead} bytes of header and path)")
        return size

    def _echo_room(self) -> int:
        """Characters of an echo as large as the largest request at the current level."""
        assert self._params is not None
        room = self.level.max_request(self._params.max_request)
        size = room - len(msg.echo(0, "").packet)
        while size > 0 and len(msg.echo(0, "").packet) + size + msg.bstr_extra(size) > room:
            size -= 1
        return max(1, size)

    def _console_hint(self) -> str:
        tail = [line for line in self.port.tail(5) if line.strip()]
        if not tail:
            return ""
        return "\nConsole tail:\n" + "\n".join(f"  | {line}" for line in tail)


def fields_summary(fields: Mapping[str, Any]) -> str:
    """Request fields for a message, with data shown by size only."""
    parts = []
    for key, value in fields.items():
        if isinstance(value, bytes | bytearray):
            parts.append(f"{key}=<{len(value)} bytes>")
        elif isinstance(value, str) and len(value) > 64:
            parts.append(f"{key}=<{len(value)} characters>")
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts) or "no fields"
