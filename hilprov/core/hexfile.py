"""Intel HEX files: checked completely (record lengths, checksums, end record) before a probe or
the virtual board's flasher is touched, so a truncated or binary file fails with its name and
line instead of half-programming a chip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hilprov.core.files import read_input
from hilprov.errors import ConfigError


@dataclass(frozen=True)
class HexImage:
    """What an Intel HEX file holds and covers."""

    path: Path
    data: bytes  # every data byte, in file order
    start: int
    end: int  # one past the last byte

    @property
    def data_bytes(self) -> int:
        return len(self.data)


def read_intel_hex(path: str | Path) -> HexImage:
    """Parse and check `path`; ConfigError (a bad input, exit 3) names the file (and line) on any
    defect."""
    path = Path(path)
    try:
        text = read_input(path, "firmware file", ConfigError).decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not an Intel HEX file (binary; an .elf or .bin?)") from None
    base = 0
    data = bytearray()
    start, end = 0xFFFFFFFF, 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{path}: line {number}"
        record = _record(line, where)
        kind, payload = record[3], record[4:-1]
        if kind == 0x00 and payload:
            address = base + (record[1] << 8 | record[2])
            start, end = min(start, address), max(end, address + len(payload))
            data += payload
        elif kind == 0x01:
            if not data:
                raise ConfigError(f"{path}: Intel HEX file contains no data")
            return HexImage(path, bytes(data), start, end)
        elif kind in (0x02, 0x04) and len(payload) == 2:
            base = int.from_bytes(payload, "big") << (4 if kind == 0x02 else 16)
        elif kind not in (0x03, 0x05):
            raise ConfigError(f"{where}: unknown or malformed record type {kind:02X}")
    raise ConfigError(f"{path}: Intel HEX file has no end-of-file record (truncated?)")


def _record(line: str, where: str) -> bytes:
    """The bytes of one `:`-record, its length and checksum checked."""
    if not line.startswith(":"):
        raise ConfigError(f"{where}: not an Intel HEX record (lines must start with ':')")
    try:
        record = bytes.fromhex(line[1:])
    except ValueError:
        raise ConfigError(f"{where}: not hexadecimal") from None
    if len(record) < 5 or len(record) != record[0] + 5:
        raise ConfigError(f"{where}: record length does not match its byte count")
    if sum(record) & 0xFF:
        raise ConfigError(f"{where}: checksum mismatch (corrupted file?)")
    return record
