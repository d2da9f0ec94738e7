"""SMP (MCUmgr) messages without a schema library: the 8-byte header, CBOR bodies, error names.

The host needs only a handful of requests (echo, MCUmgr parameters, file upload, download and
status), and `smp`'s pydantic models cost a third of a second to import in every `hilprov fs`
command. Requests here are byte-identical to `smp`'s (the tests compare them); the serial framing
(base64 lines, CRC) stays `smp.packet`'s.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import cbor2

HEADER_SIZE = 8
_HEADER = struct.Struct(">BBHHBB")

OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3
VERSION_2 = 1  # the header's version bits: 0 = SMP v1 (legacy), 1 = SMP v2

GROUP_OS = 0
GROUP_FS = 8
OS_ECHO = 0
OS_PARAMS = 6
FS_FILE = 0
FS_STATUS = 1

MGMT_ERR_NAMES = {
    0: "EOK", 1: "EUNKNOWN", 2: "ENOMEM", 3: "EINVAL", 4: "ETIMEOUT", 5: "ENOENT",
    6: "EBADSTATE", 7: "EMSGSIZE", 8: "ENOTSUP", 9: "ECORRUPT", 10: "EBUSY",
    11: "EACCESSDENIED", 12: "UNSUPPORTED_TOO_OLD", 13: "UNSUPPORTED_TOO_NEW", 256: "EPERUSER",
}
"""Generic MCUmgr error codes (``MGMT_ERR_*``)."""

FS_ERR_NAMES = {
    0: "OK", 1: "UNKNOWN", 2: "FILE_INVALID_NAME", 3: "FILE_NOT_FOUND", 4: "FILE_IS_DIRECTORY",
    5: "FILE_OPEN_FAILED", 6: "FILE_SEEK_FAILED", 7: "FILE_READ_FAILED",
    8: "FILE_TRUNCATE_FAILED", 9: "FILE_DELETE_FAILED", 10: "FILE_WRITE_FAILED",
    11: "FILE_OFFSET_NOT_VALID", 12: "FILE_OFFSET_LARGER_THAN_FILE",
    13: "CHECKSUM_HASH_NOT_FOUND", 14: "MOUNT_POINT_NOT_FOUND", 15: "READ_ONLY_FILESYSTEM",
    16: "FILE_EMPTY",
}
"""fs_mgmt group error codes (``FS_MGMT_ERR_*``)."""

# The codes the client acts on, by name.
EUNKNOWN, ENOMEM, EINVAL, ENOENT, ENOTSUP, EBUSY, EACCESSDENIED = 1, 2, 3, 5, 8, 10, 11
TOO_OLD, TOO_NEW = 12, 13
FS_INVALID_NAME, FS_NOT_FOUND, FS_IS_DIRECTORY, FS_WRITE_FAILED = 2, 3, 4, 10
FS_OFFSET_NOT_VALID, FS_MOUNT_POINT_NOT_FOUND, FS_READ_ONLY = 11, 14, 15


@dataclass(frozen=True)
class Header:
    """The SMP header: op, version, flags, body length, group, sequence number, command."""

    op: int
    version: int
    flags: int
    length: int
    group: int
    sequence: int
    command: int

    def pack(self) -> bytes:
        return _HEADER.pack((self.version << 3) | self.op, self.flags, self.length, self.group,
                            self.sequence, self.command)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """The header at the start of `data` (ValueError if it is shorter than 8 bytes)."""
        if len(data) < HEADER_SIZE:
            raise ValueError(f"an SMP header is {HEADER_SIZE} bytes, got {len(data)}")
        first, flags, length, group, sequence, command = _HEADER.unpack_from(data)
        return cls(first & 0x07, (first >> 3) & 0x03, flags, length, group, sequence, command)

    def answer_key(self) -> tuple[int, int, int, int]:
        """(op, group, sequence, command) of the response that answers this request."""
        return self.op + 1, self.group, self.sequence, self.command

    def key(self) -> tuple[int, int, int, int]:
        return self.op, self.group, self.sequence, self.command


@dataclass(frozen=True)
class Request:
    """One SMP v2 request: what it is (`kind`, for messages) and its encoded packet."""

    kind: str
    header: Header
    fields: dict[str, Any]
    packet: bytes


def request(kind: str, op: int, group: int, command: int, sequence: int,
            fields: dict[str, Any]) -> Request:
    """An SMP v2 request with `fields` as its CBOR map (in the given order)."""
    body = cbor2.dumps(fields)
    header = Header(op, VERSION_2, 0, len(body), group, sequence % 256, command)
    return Request(kind, header, fields, header.pack() + body)


def echo(sequence: int, text: str) -> Request:
    return request("echo", OP_WRITE, GROUP_OS, OS_ECHO, sequence, {"d": text})


def params_read(sequence: int) -> Request:
    return request("parameter read", OP_READ, GROUP_OS, OS_PARAMS, sequence, {})


def file_upload(sequence: int, *, off: int, data: bytes, name: str,
                total: int | None = None) -> Request:
    """A write of `data` at `off`; the first one (off 0) carries the file's length."""
    fields: dict[str, Any] = {} if total is None else {"len": total}
    fields.update(off=off, data=data, name=name)
    return request("upload", OP_WRITE, GROUP_FS, FS_FILE, sequence, fields)


def file_download(sequence: int, *, off: int, name: str) -> Request:
    return request("download", OP_READ, GROUP_FS, FS_FILE, sequence, {"off": off, "name": name})


def file_status(sequence: int, *, name: str) -> Request:
    return request("status", OP_READ, GROUP_FS, FS_STATUS, sequence, {"name": name})


def upload_overhead(*, off: int, name: str, total: int | None) -> int:
    """Bytes of an upload request with empty data: header, CBOR keys, offset, path, length."""
    return len(file_upload(0, off=off, data=b"", name=name, total=total).packet)


def bstr_extra(n: int) -> int:
    """Extra CBOR header bytes of an `n`-byte bstr compared with an empty one."""
    return 0 if n < 24 else 1 if n < 256 else 2 if n < 65536 else 4




def error_name(group: int | None, rc: int) -> str:
    """``FS_MGMT_ERR_FILE_NOT_FOUND``, ``MGMT_ERR_EBUSY``, or the raw numbers."""
    if group == GROUP_FS:
        name = FS_ERR_NAMES.get(rc)
        return f"FS_MGMT_ERR_{name}" if name else f"FS_MGMT_ERR {rc}"
    if group is None:
        name = MGMT_ERR_NAMES.get(rc)
        return f"MGMT_ERR_{name}" if name else f"MGMT_ERR {rc}"
    return f"group {group} rc {rc}"
