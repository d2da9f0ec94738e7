"""The device side of SMP over the Zephyr shell UART: line transport, framing, os/fs groups.

Modelled on Zephyr's MCUmgr shell transport and fs_mgmt as the spec and ``smp-notes.md`` describe
them, including the ways a real device loses requests without answering: lines longer than 127
bytes, lines that are not base64, frames with a bad length or CRC, requests larger than
``buf_size - 4`` and, when enabled, a third line arriving while both RX line buffers are still
being decoded. Responses are split into lines the way ``mcumgr_serial_tx_pkt`` does it (the
first line 127 bytes, later lines 123, and the CRC never split across lines).

File operations go to a :class:`FileSystem` the board provides; :class:`FsError` carries the
negative errno Zephyr's VFS would return, and :class:`SmpServer` maps it per operation exactly
like fs_mgmt (e.g. ``-ENOENT`` on open-for-write is MOUNT_POINT_NOT_FOUND, on stat NOT_FOUND;
any ``fs_write`` failure, ``-ENOSPC`` included, is FILE_WRITE_FAILED).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import logging
import queue
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2

log = logging.getLogger(__name__)

START = b"\x06\x09"
CONTINUE = b"\x04\x14"
RX_LINE_MAX = 127  # SMP_SHELL_RX_BUF_SIZE: marker + base64 + LF
TX_FRAME_MAX = 127  # MCUMGR_SERIAL_MAX_FRAME
PATH_LEN = 64  # MCUMGR_GRP_FS_PATH_LEN
DOWNLOAD_OVERHEAD = 44  # fs_mgmt download chunk = netbuf size - 44

GROUP_OS, GROUP_FS = 0, 8
OS_ECHO, OS_PARAMS = 0, 6
FS_FILE, FS_STATUS = 0, 1
OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3

# Generic MCUmgr error codes (MGMT_ERR_*).
EOK, EUNKNOWN, ENOMEM, EINVAL, ENOENT, ENOTSUP, EBUSY = 0, 1, 2, 3, 5, 8, 10
UNSUPPORTED_TOO_NEW = 13
# fs_mgmt group error codes (FS_MGMT_ERR_*).
FS_UNKNOWN, FS_INVALID_NAME, FS_NOT_FOUND, FS_IS_DIRECTORY = 1, 2, 3, 4
FS_SEEK_FAILED, FS_READ_FAILED, FS_TRUNCATE_FAILED, FS_WRITE_FAILED = 6, 7, 8, 10
FS_OFFSET_NOT_VALID, FS_MOUNT_POINT_NOT_FOUND, FS_READ_ONLY = 11, 14, 15
# How fs_mgmt maps a VFS errno: on stat and open-for-read, and on open-for-write.
_LOOKUP_RC = {errno.EINVAL: FS_INVALID_NAME, errno.ENOENT: FS_NOT_FOUND}
_OPEN_WRITE_RC = {errno.EINVAL: FS_INVALID_NAME, errno.ENOENT: FS_MOUNT_POINT_NOT_FOUND,
                  errno.EROFS: FS_READ_ONLY}


# --- file system interface ----------------------------------------------------------------

class FsError(Exception):
    """A VFS call failed with `errno` (positive, e.g. errno.ENOSPC); Zephyr returns -errno."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"{errno.errorcode.get(code, code)}{': ' + detail if detail else ''}")
        self.errno = code


class OpenFile(Protocol):
    def read(self, off: int, size: int) -> bytes: ...
    def write(self, off: int, data: bytes) -> None: ...
    def truncate(self) -> None: ...
    def close(self) -> None: ...


class FileSystem(Protocol):
    """What fs_mgmt needs from the device's VFS. Methods raise FsError."""

    def stat(self, path: str) -> tuple[bool, int]:
        """(is_file, size)."""

    def open(self, path: str, write: bool) -> OpenFile:
        """Open for reading, or for writing (creating the file)."""


# --- serial framing -----------------------------------------------------------------------

def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (Zephyr's crc16_itu_t with seed 0)."""
    return binascii.crc_hqx(data, 0)


def zephyr_tx_lines(packet: bytes, max_frame: int = TX_FRAME_MAX) -> list[bytes]:
    """Frame a response like Zephyr: base64 lines of at most `max_frame` bytes, CRC not split.

    The first line carries the 2-byte length with the first packet byte plus up to 90 packet
    bytes; continuation lines carry up to 90 bytes (Zephyr keeps the reduced budget), and the
    last 0-2 packet bytes always travel with the CRC.
    """
    crc = crc16(packet).to_bytes(2, "big")
    budget = ((max_frame - 3) // 4) * 3 - 3
    src, n, lines, first = 0, len(packet), [], True
    while src < n:
        raw = b""
        if first:
            raw = (n + 2).to_bytes(2, "big") + packet[:1]
            src = 1
        todo = min(budget, n - src)
        spare = budget - (n - src)
        last = spare >= 2
        if spare in (0, 1):
            todo -= 1
        take = (todo // 3) * 3
        raw += packet[src:src + take]
        src += take
        if last:
            raw += packet[src:] + crc
            src = n
        lines.append((START if first else CONTINUE) + base64.b64encode(raw) + b"\n")
        first = False
    return lines


class FrameAssembler:
    """Zephyr's per-line frame reassembly; `feed` returns a complete packet, else None.

    `dropped` counts why frames were discarded (bad base64, too large for the netbuf, bad length
    or CRC, continuation without a start).
    """

    def __init__(self, buf_size: int) -> None:
        self.buf_size = buf_size
        self._buf: bytearray | None = None
        self._pkt_len = 0
        self.dropped: Counter[str] = Counter()

    def reset(self) -> None:
        self._buf = None

    def _drop(self, why: str) -> None:
        self._buf = None
        self.dropped[why] += 1
        log.debug("SMP frame dropped: %s", why)

    def feed(self, line: bytes) -> bytes | None:
        body = line.rstrip(b"\n")
        marker, payload = body[:2], body[2:]
        if marker == START:
            self._buf = bytearray()
        elif marker == CONTINUE:
            if not self._buf:
                self._drop("continuation without a start line")
                return None
        else:
            return None
        try:
            decoded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._drop("line is not valid base64")
            return None
        assert self._buf is not None
        if len(self._buf) + len(decoded) + (2 if marker == CONTINUE else 0) > self.buf_size:
            self._drop(f"frame larger than the {self.buf_size}-byte netbuf")
            return None
        self._buf += decoded
        if marker == START:
            if len(self._buf) < 2:
                self._drop("first line shorter than the length field")
                return None
            self._pkt_len = int.from_bytes(self._buf[:2], "big")
            del self._buf[:2]
        if len(self._buf) < self._pkt_len:
            return None
        if len(self._buf) > self._pkt_len:
            self._drop("more data than the length field says")
            return None
        data = bytes(self._buf)
        self._buf = None
        if len(data) < 2 or crc16(data) != 0:
            self._drop("bad CRC")
            return None
        return data[:-2]


# --- request handling ---------------------------------------------------------------------

@dataclass
class _Transfer:
    """fs_mgmt's single upload/download context."""

    kind: str  # "upload" | "download"
    path: str
    handle: OpenFile
    off: int = 0
    length: int = 0
    touched: float = 0.0


class _GroupError(Exception):
    def __init__(self, rc: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(rc)
        self.rc = rc
        self.extra = extra or {}


class _SmpError(Exception):
    def __init__(self, rc: int) -> None:
        super().__init__(rc)
        self.rc = rc


class SmpServer:
    """Handles one SMP request packet and returns the response packet (or None: no answer).

    OS group: echo (cmd 0) and MCUmgr parameters (cmd 6, unless `params_supported` is False).
    FS group: file upload/download (cmd 0) and status (cmd 1) on `fs`, with fs_mgmt's upload
    context, offset-mismatch replies and 4 s idle close. v2 requests get ``err`` replies, v1
    requests the generic ``rc`` codes fs_mgmt's v1 translation gives. `legacy_rc` adds ``rc: 0``
    to successes like ``CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR``.
    """

    def __init__(self, fs: FileSystem, *, buf_size: int = 2048, buf_count: int = 4,
                 params_supported: bool = True, legacy_rc: bool = False,
                 idle_close: float = 4.0) -> None:
        self.fs = fs
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.params_supported = params_supported
        self.legacy_rc = legacy_rc
        self.idle_close = idle_close
        self._transfer: _Transfer | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the open transfer (the device rebooted)."""
        with self._lock:
            self._cleanup()

    def handle(self, packet: bytes) -> bytes | None:
        if len(packet) < 8:
            return None
        op_ver, _flags, length, group, seq, cmd = struct.unpack(">BBHHBB", packet[:8])
        op, version = op_ver & 0x07, (op_ver >> 3) & 0x03
        if op not in (OP_READ, OP_WRITE):
            return None  # a response or garbage: servers don't answer those
        reply_version = min(version, 1)

        def respond(body: dict[str, Any]) -> bytes:
            payload = cbor2.dumps(body)
            head = struct.pack(">BBHHBB", (reply_version << 3) | (op + 1), 0, len(payload),
                               group, seq, cmd)
            return head + payload

        if version > 1:
            return respond({"rc": UNSUPPORTED_TOO_NEW})
        if length != len(packet) - 8:
            return respond({"rc": EINVAL})
        try:
            request = cbor2.loads(packet[8:]) if length else {}
        except (cbor2.CBORDecodeError, ValueError):
            return respond({"rc": EINVAL})
        if not isinstance(request, dict):
            return respond({"rc": EINVAL})
        with self._lock:
            try:
                body = self._dispatch(group, cmd, op, request)
            except _SmpError as err:
                return respond({"rc": err.rc})
            except _GroupError as err:
                if version == 0:
                    return respond({"rc": _v1_code(err.rc), **err.extra})
                return respond({"err": {"group": group, "rc": err.rc}, **err.extra})
        if self.legacy_rc:
            body = {"rc": EOK, **body}
        return respond(body)

    def _dispatch(self, group: int, cmd: int, op: int, req: dict[str, Any]) -> dict[str, Any]:
        if group == GROUP_OS and cmd == OS_ECHO:
            text = req.get("d")
            if not isinstance(text, str):
                raise _SmpError(EINVAL)
            return {"r": text}
        if group == GROUP_OS and cmd == OS_PARAMS and op == OP_READ:
            if not self.params_supported:
                raise _SmpError(ENOTSUP)
            return {"buf_size": self.buf_size, "buf_count": self.buf_count}
        if group == GROUP_FS and cmd == FS_FILE:
            return self._upload(req) if op == OP_WRITE else self._download(req)
        if group == GROUP_FS and cmd == FS_STATUS and op == OP_READ:
            return self._status(req)
        raise _SmpError(ENOTSUP)

    # --- fs_mgmt ------------------------------------------------------------------------------

    def _expire_idle(self) -> None:
        t = self._transfer
        if t is not None and time.monotonic() - t.touched > self.idle_close:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._transfer is not None:
            with contextlib.suppress(FsError):
                self._transfer.handle.close()
            self._transfer = None

    def _finish_check(self) -> None:
        t = self._transfer
        assert t is not None
        if t.length > 0 and t.off >= t.length:
            self._cleanup()
        else:
            t.touched = time.monotonic()

    def _stat(self, path: str) -> int:
        try:
            is_file, size = self.fs.stat(path)
        except FsError as err:
            raise _GroupError(_LOOKUP_RC.get(err.errno, FS_UNKNOWN)) from None
        if not is_file:
            raise _GroupError(FS_IS_DIRECTORY)
        return size

    @staticmethod
    def _name(req: dict[str, Any]) -> str:
        name = req.get("name")
        if not isinstance(name, str) or not name or len(name.encode()) > PATH_LEN:
            raise _SmpError(EINVAL)
        return name

    def _upload(self, req: dict[str, Any]) -> dict[str, Any]:
        off, data, total = req.get("off"), req.get("data", b""), req.get("len")
        name = self._name(req)
        if (not isinstance(off, int) or off < 0 or not isinstance(data, bytes)
                or (off == 0 and not isinstance(total, int))):
            raise _SmpError(EINVAL)
        self._expire_idle()
        t = self._transfer
        if t is None or t.kind != "upload" or t.path != name:
            self._cleanup()
            try:
                handle = self.fs.open(name, write=True)
            except FsError as err:
                raise _GroupError(_OPEN_WRITE_RC.get(err.errno, FS_UNKNOWN)) from None
            t = self._transfer = _Transfer("upload", name, handle, touched=time.monotonic())
            if off > 0:
                # The context was lost (idle close, reboot): adopt the file's size.
                try:
                    t.off = self._stat(name)
                except _GroupError:
                    self._cleanup()
                    raise
        if off == 0:
            t.length = total
            t.off = 0
        elif off != t.off:
            expected = t.off
            self._cleanup()
            raise _GroupError(FS_OFFSET_NOT_VALID, {"len": expected})
        if data:
            try:
                if off == 0:
                    t.handle.truncate()
                t.handle.write(off, data)
            except FsError as err:
                self._cleanup()
                raise _GroupError(FS_WRITE_FAILED) from err
            t.off += len(data)
        self._finish_check()
        return {"off": t.off}

    def _download(self, req: dict[str, Any]) -> dict[str, Any]:
        off = req.get("off")
        name = self._name(req)
        if not isinstance(off, int) or off < 0:
            raise _SmpError(EINVAL)
        self._expire_idle()
        t = self._transfer
        if t is None or t.kind != "download" or t.path != name:
            self._cleanup()
            length = self._stat(name)
            try:
                handle = self.fs.open(name, write=False)
            except FsError as err:
                raise _GroupError(_LOOKUP_RC.get(err.errno, FS_UNKNOWN)) from None
            t = self._transfer = _Transfer("download", name, handle, length=length,
                                           touched=time.monotonic())
        try:
            data = t.handle.read(off, self.buf_size - DOWNLOAD_OVERHEAD)
        except FsError:
            self._cleanup()
            raise _GroupError(FS_READ_FAILED) from None
        t.off = off + len(data)
        body: dict[str, Any] = {"off": off, "data": data}
        if off == 0:
            body["len"] = t.length
        self._finish_check()
        return body

    def _status(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"len": self._stat(self._name(req))}


def _v1_code(fs_rc: int) -> int:
    """fs_mgmt's translation of group errors for SMP v1 clients."""
    if fs_rc == FS_INVALID_NAME:
        return EINVAL
    if fs_rc in (FS_NOT_FOUND, FS_MOUNT_POINT_NOT_FOUND):
        return ENOENT
    return EUNKNOWN


# --- the shell transport ------------------------------------------------------------------

LineFilter = Callable[[bytes], bytes | None]
_DROPPED = b""  # queued for the shell thread in place of a line that found no RX buffer (a real
# line is never empty: it has its marker and LF)


class SmpShellTransport:
    """Zephyr's SMP-over-shell receive path and its two threads.

    `rx_line` is called by the UART receive side with each complete SMP line. The line waits in
    one of `rx_line_buffers` buffers (None: unlimited, no drops) until the shell thread has spent
    `line_process_time` decoding it into the frame assembler; a line that finds no free buffer is
    dropped, and the shell thread then calls `on_drop` (Zephyr's smp_shell logs "Failed to alloc
    SMP buf"). Complete requests go to the SMP work queue thread, which may stall
    (`request_delay`) and then answers through `send` (a list of lines) unless the device
    rebooted meanwhile.
    """

    def __init__(self, server: SmpServer, send: Callable[[list[bytes]], None], *,
                 rx_line_buffers: int | None = None, line_process_time: float = 0.0005,
                 line_filter: LineFilter | None = None,
                 request_delay: Callable[[], float] | None = None,
                 on_drop: Callable[[], None] | None = None) -> None:
        self.server = server
        self.on_drop = on_drop
        self.send = send
        self.rx_line_buffers = rx_line_buffers
        self.line_process_time = line_process_time
        self.line_filter = line_filter
        self.request_delay = request_delay
        self.assembler = FrameAssembler(server.buf_size)
        self.stats: Counter[str] = Counter()
        self._lines: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._requests: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._busy_buffers = 0
        self._generation = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._shell_thread, name="sim-smp-shell", daemon=True),
            threading.Thread(target=self._work_thread, name="sim-smp-work", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._lines.put(None)
        self._requests.put(None)
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=2.0)

    def reset(self) -> None:
        """The device rebooted: drop queued lines and requests, never answer in-flight ones."""
        with self._lock:
            self._generation += 1
            self._busy_buffers = 0
        self.assembler.reset()
        self.server.reset()

    def rx_line(self, line: bytes) -> None:
        """A complete line (marker ... LF) arrived on the UART."""
        with self._lock:
            self.stats["lines received"] += 1
            if self.line_filter is not None:
                filtered = self.line_filter(line)
                if filtered is None:
                    self.stats["lines dropped (fault injection)"] += 1
                    return
                line = filtered
            if len(line) > RX_LINE_MAX:
                self.stats["lines dropped (longer than 127 bytes)"] += 1
                return
            generation = self._generation
            if self.rx_line_buffers is not None and self._busy_buffers >= self.rx_line_buffers:
                self.stats["lines dropped (RX buffers full)"] += 1
                line = _DROPPED
            else:
                self._busy_buffers += 1
        self._lines.put((generation, line))

    def _shell_thread(self) -> None:
        while True:
            item = self._lines.get()
            if item is None or self._stop.is_set():
                return
            generation, line = item
            if line == _DROPPED:
                if self.on_drop is not None and generation == self._generation:
                    self.on_drop()
                continue
            if self.line_process_time > 0:
                self._stop.wait(self.line_process_time)
            with self._lock:
                if generation != self._generation:
                    continue
                self._busy_buffers = max(0, self._busy_buffers - 1)
                packet = self.assembler.feed(line)
            if packet is not None:
                self.stats["requests"] += 1
                self._requests.put((generation, packet))

    def _work_thread(self) -> None:
        while True:
            item = self._requests.get()
            if item is None or self._stop.is_set():
                return
            generation, packet = item
            delay = self.request_delay() if self.request_delay is not None else 0.0
            if delay > 0:
                self.stats["requests stalled"] += 1
                if self._stop.wait(delay):
                    return
            if generation != self._generation:
                continue
            try:
                response = self.server.handle(packet)
            except Exception:  # a bug in the model must not kill the device thread
                log.exception("SMP request handling failed")
                continue
            if response is None or generation != self._generation:
                continue
            self.stats["responses"] += 1
            self.send(zephyr_tx_lines(response))
