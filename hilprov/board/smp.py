"""SMP (MCUmgr) file transfer over the board's shared serial port, on the `smp` package.

Requests are built with `smp`'s message models and framed with `smp.packet.encode`; responses are
unframed with `smp.packet.decode`. Response bodies are decoded with cbor2 first, because the
strict `smp` models reject replies real Zephyr sends (``rc: 0`` from legacy-rc builds, the
offset-mismatch error that carries ``len``); the models are then used on the fields they know.

What this client adds over a plain request/response loop (see ``smp-notes.md`` §6):

* first use: a lone newline (flushes a partial line in the device's line buffer), 50 ms, drop
  stale input, then read the MCUmgr parameters to size requests (``buf_size - 4`` on serial);
* line pacing: at most two lines in flight. The device has two RX line buffers and frees one
  when its shell thread has base64-decoded the line (well under 1 ms), so line i is sent once
  line i-2 has arrived (its wire time at the port's baud rate) plus `line_delay` (2 ms). On a
  real UART the wire never idles; on USB CDC or a pty, where a burst arrives at once, it is what
  keeps the device from silently dropping the third line;
* responses matched by sequence number, stale and corrupt frames skipped;
* after a timeout, an echo sent behind the request tells a slow device from a lost request:
  only a lost request is sent again, so a write to a stream is never appended twice; a lost
  answer shows up as an offset mismatch on the resent write and the upload resumes from the
  ``len`` the device reports;
* a cap on the data bytes per write for files that need one (`max_chunk`);
* typed errors (`TransferError` subclasses) naming the operation and the remote path.
"""

from __future__ import annotations

import binascii
import dataclasses
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import cbor2
import pydantic
from smp import header as smphdr
from smp import packet as smppacket
from smp.error import MGMT_ERR
from smp.exceptions import SMPBadContinueDelimiter, SMPBadCRC, SMPBadStartDelimiter
from smp.file_management import (
    FS_MGMT_ERR,
    FileDownloadRequest,
    FileDownloadResponse,
    FileStatusRequest,
    FileStatusResponse,
    FileSystemManagementErrorV2,
    FileUploadRequest,
    FileUploadResponse,
)
from smp.message import Request, Response
from smp.os_management import (
    EchoWriteRequest,
    MCUMgrParametersReadRequest,
    MCUMgrParametersReadResponse,
)

from hilprov.board.serial import SMP_START, SerialPort
from hilprov.errors import TransferError

log = logging.getLogger(__name__)


class _NoPacketBytes(logging.Filter):
    """`smp.packet` logs every request and response in full at DEBUG level; an upload carries
    the provisioning blob (the PSK or private key), so those records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Serializing request=", "Response length_and"))


logging.getLogger("smp.packet").addFilter(_NoPacketBytes())

LINE_LENGTH = 127
"""Bytes per SMP line including the marker and LF (Zephyr's shell transport limit)."""

_ENCODE_LINE_LENGTH = LINE_LENGTH + 1
"""`smp.packet.encode` puts ``line_length - 4`` base64 characters in a line (it reserves one byte
too many), so 128 gives 124 characters: 127-byte lines, as smpclient does."""

FALLBACK_MAX_REQUEST = 182
"""Largest request without MCUmgr parameters: length + packet + CRC fit two 93-byte lines, so
it passes even an unpaced two-line RX pool and any netbuf size in use (Zephyr's default: 384)."""

FLUSH_SETTLE = 0.05
"""Seconds to wait after the newline flush before dropping what the device sent back."""

PARAMS_TIMEOUT = 2.0
"""Seconds to wait for the MCUmgr parameters (a device without them may stay silent)."""

_FS_GROUP = int(smphdr.GroupId.FILE_MANAGEMENT)
_NOT_FOUND = ((_FS_GROUP, FS_MGMT_ERR.FILE_NOT_FOUND), (None, MGMT_ERR.ENOENT))
_OFFSET_MISMATCH = ((_FS_GROUP, FS_MGMT_ERR.FILE_OFFSET_NOT_VALID),
                    (None, MGMT_ERR.EUNKNOWN))  # v1 servers: rc 1 + len
_DECODE_ERRORS = (SMPBadStartDelimiter, SMPBadContinueDelimiter, SMPBadCRC, binascii.Error,
                  struct.error, ValueError, IndexError)

Progress = Callable[[int, int], None]
M = TypeVar("M", bound=Response)


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
    FS_MGMT_ERR.FILE_NOT_FOUND: (RemoteFileNotFound, "the file does not exist"),
    FS_MGMT_ERR.MOUNT_POINT_NOT_FOUND: (
        RemoteNotMounted, "the device could not open it: its mount point is not mounted "
        "(for /factory: factory data is already present, or this boot's provisioning attempt "
        "is over)"),
    FS_MGMT_ERR.FILE_WRITE_FAILED: (
        NoSpaceError, "the device's fs_write failed; Zephyr reports -ENOSPC this way (a full "
        "file system, or one write larger than the file accepts)"),
    FS_MGMT_ERR.READ_ONLY_FILESYSTEM: (RemoteReadOnly, "the file system is read-only"),
    FS_MGMT_ERR.FILE_INVALID_NAME: (RemoteInvalidName, "the path is not valid on the device"),
    FS_MGMT_ERR.FILE_IS_DIRECTORY: (RemoteInvalidName, "the path is a directory"),
}
_MGMT_ERRORS: dict[int, tuple[type[SmpRemoteError], str]] = {
    MGMT_ERR.ENOENT: (RemoteFileNotFound, "no such file"),
    MGMT_ERR.EBUSY: (RemoteBusy, "the device is busy with another file transfer"),
    MGMT_ERR.ENOMEM: (NoSpaceError, "the device ran out of memory or space"),
    MGMT_ERR.EINVAL: (RemoteInvalidName, "the device rejected the request (bad path or field)"),
    MGMT_ERR.EACCESSDENIED: (RemoteReadOnly, "access denied"),
    MGMT_ERR.ENOTSUP: (UnsupportedCommand, "the device does not support this command"),
    MGMT_ERR.UNSUPPORTED_TOO_OLD: (UnsupportedCommand, "the SMP protocol version is too old"),
    MGMT_ERR.UNSUPPORTED_TOO_NEW: (UnsupportedCommand, "the SMP protocol version is too new"),
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
    header: smphdr.Header
    body: dict[str, Any]
    frame: bytes
    attempt: int = 1  # which sending of the request this answers (2+: after a timeout)


def wire_time(nbytes: int, baudrate: int) -> float:
    """Seconds `nbytes` take on an 8N1 UART (10 bits per byte)."""
    return nbytes * 10.0 / baudrate if baudrate > 0 else 0.0


def _bstr_extra(n: int) -> int:
    """Extra CBOR header bytes of an `n`-byte bstr compared with an empty one."""
    return 0 if n < 24 else 1 if n < 256 else 2 if n < 65536 else 4


class SmpFileClient:
    """Synchronous SMP file client on a :class:`SerialPort` (which it shares with `expect`).

    `timeout` bounds the wait for each response, `retries` is how many times one request is
    sent before giving up, `line_delay` is the idle gap added after each line's wire time.
    """

    def __init__(self, port: SerialPort, *, timeout: float = 5.0, retries: int = 3,
                 line_delay: float = 0.002) -> None:
        if retries < 1:
            raise ValueError("retries must be at least 1")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.line_delay = line_delay
        self._params: SmpParams | None = None
        self._seq = 0
        self.timeouts = 0  # responses that did not arrive in time (each led to a resync)
        self.resumes = 0  # uploads continued from the offset the device reported

    # --- public API -----------------------------------------------------------------------

    def params(self) -> SmpParams:
        """The MCUmgr buffer parameters (read from the device on first use, else a fallback)."""
        self._ensure_ready()
        assert self._params is not None
        return self._params

    def echo(self, text: str, *, timeout: float | None = None) -> str:
        """Send `text` to the OS group's echo command; the device's answer."""
        self._ensure_ready()
        reply = self._transact(EchoWriteRequest, {"d": text}, "echo", "(OS group)", timeout)
        self._raise_for_error(reply, "echo", "(OS group)")
        return str(reply.body.get("r", ""))

    def status(self, remote: str, *, timeout: float | None = None) -> int:
        """Size in bytes of `remote` on the device."""
        self._ensure_ready()
        reply = self._transact(FileStatusRequest, {"name": remote}, "status", remote, timeout)
        self._raise_for_error(reply, "status", remote)
        return self._model(FileStatusResponse, reply, "status", remote).len

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
            size = self._chunk_size(remote, off, total, limit)
            fields: dict[str, Any] = {"off": off, "data": data[off:off + size], "name": remote}
            if off == 0:
                fields["len"] = total
            reply = self._transact(FileUploadRequest, fields, "upload", remote, timeout)
            expected = self._offset_mismatch(reply)
            if expected is not None:
                if not 0 <= expected <= total:
                    raise SmpProtocolError(
                        f"SMP upload to {remote}: the device expects offset {expected}, but the "
                        f"file is {total} bytes long (another upload to the same file?)")
                log.info("upload %s: device expects offset %d (sent %d); resuming", remote,
                         expected, off)
                self.resumes += 1
                new_off = expected
            elif self._last_chunk_already_taken(reply, off + size, total):
                log.warning("upload %s: the reply to the last chunk was lost and the device has "
                            "closed the upload, so it took that chunk; the device's own result "
                            "confirms the data", remote)
                new_off = total
            else:
                hint = ""
                if off > 0 and self._error_codes(reply) in _NOT_FOUND:
                    hint = ("; the device no longer knows this upload: did it reboot?"
                            + self._console_hint())
                self._raise_for_error(reply, "upload", remote, off=off, size=size, hint=hint)
                new_off = self._model(FileUploadResponse, reply, "upload", remote).off
                if not 0 <= new_off <= total:
                    raise SmpProtocolError(
                        f"SMP upload to {remote}: the device reports offset {new_off} after "
                        f"{off}+{size} bytes of a {total}-byte file")
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
            reply = self._transact(FileDownloadRequest, {"off": off, "name": remote},
                                   "download", remote, timeout)
            self._raise_for_error(reply, "download", remote, off=off)
            resp = self._model(FileDownloadResponse, reply, "download", remote)
            problem = None
            if resp.off != off:
                problem = f"answered for offset {resp.off} instead of {off}"
            elif off == 0 and resp.len is None:
                problem = "sent the first chunk without the file length"
            if problem is None:
                if off == 0:
                    total = resp.len
                assert total is not None
                if off + len(resp.data) > total:
                    raise SmpProtocolError(
                        f"SMP download of {remote}: the device sent {off + len(resp.data)} "
                        f"bytes of a file it said is {total} bytes long")
                if not resp.data and off < total:
                    problem = f"sent an empty chunk at offset {off} of {total}"
            if problem is not None:
                failures += 1
                log.warning("download %s: the device %s", remote, problem)
                if failures >= self.retries:
                    raise TransferError(f"SMP download of {remote}: the device {problem} "
                                        f"({failures} times){self._console_hint()}")
                continue
            assert total is not None
            buf += resp.data
            if progress is not None:
                progress(len(buf), total)
            if len(buf) >= total:
                return bytes(buf)

    # --- request/response -----------------------------------------------------------------

    def _ensure_ready(self) -> None:
        if self._params is not None:
            return
        self._flush()
        self._params = self._read_params()
        log.debug("SMP parameters: %s", self._params)

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
            reply = self._transact(MCUMgrParametersReadRequest, {}, "parameter read",
                                   "(MCUmgr parameters)", PARAMS_TIMEOUT, attempts=2)
        except SmpTimeout:
            log.warning("no answer to the MCUmgr parameters request on %s; using %d-byte "
                        "requests", self.port.url, FALLBACK_MAX_REQUEST)
            return fallback
        if self._error_codes(reply) is not None:
            log.info("device does not report MCUmgr parameters; using %d-byte requests",
                     FALLBACK_MAX_REQUEST)
            return fallback
        resp = self._model(MCUMgrParametersReadResponse, reply, "parameter read",
                           "(MCUmgr parameters)")
        if resp.buf_size <= 4 + smphdr.Header.SIZE + 64:
            return fallback
        return SmpParams(resp.buf_size, resp.buf_count)

    def _transact(self, request_type: type[Request], fields: dict[str, Any], operation: str,
                  remote: str, timeout: float | None, attempts: int | None = None) -> _Reply:
        """Send a request until a matching response arrives.

        After a timeout an echo is sent behind the request (see `_probe`). The request is sent
        again only when the device answers the echo but not the request, i.e. the request or
        its answer was lost; while the device is silent (busy, stalled) it is not resent, so a
        write to a stream such as /factory/provision.cbor is never appended twice because it
        was merely slow. An answer to any sending of the request is accepted."""
        wait = self.timeout if timeout is None else timeout
        attempts = self.retries if attempts is None else attempts
        stats = {"stale": 0, "corrupt": 0}
        sent = ""
        sendings: list[smphdr.Header] = []
        resend = True
        for attempt in range(1, attempts + 1):
            if resend:
                request = request_type(sequence=self._next_seq(), **fields)
                sent = self._send(request)
                sendings.append(request.header)
            reply = self._await(sendings, wait, stats)
            if reply is None:
                reply, resend = self._probe(sendings, wait, stats)
            if reply is not None:
                reply = dataclasses.replace(reply, attempt=len(sendings))
                codes = self._error_codes(reply)
                if codes == (None, MGMT_ERR.EBUSY) and attempt < attempts:
                    time.sleep(0.2)
                    resend = True
                    continue
                return reply
            self.timeouts += 1
            log.warning("SMP %s %s: no response to %s within %g s (attempt %d of %d)%s",
                        operation, remote, sent, wait, attempt, attempts,
                        "; sending it again" if resend and attempt < attempts else
                        "; the device is silent, waiting")
        raise SmpTimeout(
            f"SMP {operation} {remote}: no valid response within {wait:g} s, {attempts} "
            f"attempt(s); last sent: {sent} ({fields_summary(fields)}); came back: "
            f"{stats['stale']} stale and {stats['corrupt']} undecodable SMP frame(s)"
            f"{self._console_hint()}")

    def _probe(self, sendings: list[smphdr.Header], wait: float,
               stats: dict[str, int]) -> tuple[_Reply | None, bool]:
        """After a timeout: is the device still busy with the request, or did it never get it?

        The device answers requests in order, so send a harmless echo behind it and wait for
        either answer. (reply, False): the request's late answer. (None, True): the echo came
        back first, so the request or its answer was lost: send it again. (None, False): the
        device said nothing: do not pile up copies. Even a device without echo answers it
        with an error, which orders just as well."""
        self._flush(drain=False)  # end any partial line, but keep queued frames
        echo = EchoWriteRequest(sequence=self._next_seq(), d="hilprov")
        self._send(echo)
        reply = self._await([*sendings, echo.header], wait, stats)
        if reply is None:
            return None, False
        if reply.header.sequence == echo.header.sequence:
            self.port.drain_smp()
            return None, True
        log.info("SMP: the device answered late (after %g s); not sending again", wait)
        return reply, False

    def _send(self, request: Request) -> str:
        """Frame and send `request`; returns what was sent, for messages."""
        packet = bytes(request)
        lines = list(smppacket.encode(packet, line_length=_ENCODE_LINE_LENGTH))
        self._send_lines(lines)
        return f"{len(packet)}-byte request seq {request.header.sequence} in {len(lines)} line(s)"

    def _send_lines(self, lines: list[bytes]) -> None:
        """Send a request's lines with at most two in the device's hands: it has two receive
        line buffers and decodes lines one after the other (`line_delay` each), so line i leaves
        once line i-2 is estimated decoded. Arrival is estimated from the wire time at the port's
        baud rate. On a real UART the wire never idles; on a pty or USB CDC, where a burst
        arrives at once, the device never holds a third line."""
        arrived = 0.0  # estimated wire end of the previous line
        decoded: deque[float] = deque([0.0, 0.0], maxlen=2)  # of the last two lines
        for line in lines:
            delay = decoded[0] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.monotonic()
            self.port.write_smp_line(line)
            arrived = max(started, arrived) + wire_time(len(line), self.port.baudrate)
            decoded.append(max(arrived, decoded[-1]) + self.line_delay)

    def _await(self, sent: list[smphdr.Header], timeout: float,
               stats: dict[str, int]) -> _Reply | None:
        """Read SMP lines until the response to one of `sent` arrives; None on timeout."""
        deadline = time.monotonic() + timeout
        decoder = None
        wanted = {(int(h.op) + 1, int(h.group_id), h.sequence, int(h.command_id)) for h in sent}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            line = self.port.read_smp_line(remaining)
            if line is None:
                return None
            if line.startswith(SMP_START):
                if decoder is not None:
                    stats["corrupt"] += 1  # a frame that never completed
                decoder = smppacket.decode()
                next(decoder)
            elif decoder is None:
                stats["corrupt"] += 1
                continue
            try:
                decoder.send(line)
                continue  # more lines to come
            except StopIteration as done:
                frame = bytes(done.value)
            except _DECODE_ERRORS as err:
                log.debug("dropping undecodable SMP frame: %s", err)
                stats["corrupt"] += 1
                decoder = None
                continue
            decoder = None
            reply = self._parse_frame(frame)
            if reply is None:
                stats["corrupt"] += 1
                continue
            got = reply.header
            if (int(got.op), int(got.group_id), got.sequence, int(got.command_id)) not in wanted:
                log.debug("skipping SMP frame op %d group %d seq %d cmd %d (want %s)",
                          got.op, got.group_id, got.sequence, got.command_id, wanted)
                stats["stale"] += 1
                continue
            return reply

    @staticmethod
    def _parse_frame(frame: bytes) -> _Reply | None:
        if len(frame) < smphdr.Header.SIZE:
            return None
        try:
            head = smphdr.Header.loads(frame[:smphdr.Header.SIZE])
        except (ValueError, AssertionError):
            return None
        payload = frame[smphdr.Header.SIZE:]
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
            try:
                parsed = FileSystemManagementErrorV2(
                    header=reply.header, smp_data=reply.frame, err=err).err
                return int(parsed.group), int(parsed.rc)
            except (pydantic.ValidationError, ValueError):
                group, rc = err.get("group"), err.get("rc")
                if isinstance(rc, int) and rc != 0:
                    return (group if isinstance(group, int) else None), rc
                return None
        rc = reply.body.get("rc", 0)
        if isinstance(rc, int) and rc != 0:
            return None, rc
        return None

    def _last_chunk_already_taken(self, reply: _Reply, end: int, total: int) -> bool:
        """A retried last chunk answered "not found": its first sending arrived (the reply was
        lost) and completed the file, so the device closed the upload. A file it cannot stat
        (/factory/provision.cbor) then looks missing; other files answer an offset mismatch."""
        return reply.attempt > 1 and end >= total and self._error_codes(reply) in _NOT_FOUND

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
            try:
                name = f"FS_MGMT_ERR_{FS_MGMT_ERR(rc).name}"
            except ValueError:
                name = f"FS_MGMT_ERR {rc}"
        elif group is None:
            cls, why = _MGMT_ERRORS.get(rc, (SmpRemoteError, "SMP error"))
            try:
                name = f"MGMT_ERR_{MGMT_ERR(rc).name}"
            except ValueError:
                name = f"MGMT_ERR {rc}"
        else:
            cls, why, name = SmpRemoteError, "error", f"group {group} rc {rc}"
        where = ""
        if off is not None:
            where = f" at offset {off}" + (f" ({size} data bytes)" if size is not None else "")
        raise cls(f"SMP {operation} of {remote} failed{where}: the device reports {name}: "
                  f"{why}{hint}", operation=operation, remote=remote, group=group, rc=rc,
                  rc_name=name, offset=off)

    def _model(self, model: type[M], reply: _Reply, operation: str, remote: str) -> M:
        """Validate the fields `model` knows (extra keys such as ``rc: 0`` are ignored)."""
        skip = {"header", "version", "sequence", "smp_data"}
        known = {k: v for k, v in reply.body.items() if k in model.model_fields and k not in skip}
        try:
            return model(header=reply.header, smp_data=reply.frame, **known)
        except (pydantic.ValidationError, ValueError) as err:
            raise SmpProtocolError(
                f"SMP {operation} of {remote}: unexpected response {reply.body!r:.200}: "
                f"{str(err).splitlines()[0]}") from None

    def _chunk_size(self, remote: str, off: int, total: int, limit: int) -> int:
        """Data bytes for the request at `off`: fills the device buffer minus CBOR overhead."""
        remaining = total - off
        if remaining <= 0:
            return 0
        assert self._params is not None
        empty = FileUploadRequest(off=off, data=b"", name=remote,
                                  len=total if off == 0 else None, sequence=0)
        overhead = len(bytes(empty))
        room = self._params.max_request - overhead
        size = min(remaining, limit, room)
        while size > 0 and overhead + size + _bstr_extra(size) > self._params.max_request:
            size -= 1
        if size <= 0:
            raise TransferError(
                f"SMP upload to {remote}: a request has no room for data (device buffer "
                f"{self._params.buf_size or 'unknown'}, {overhead} bytes of header and path)")
        return size

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
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts) or "no fields"

