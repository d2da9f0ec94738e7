"""Firmware images the virtual board's fake flasher accepts.

Two tiny, valid Intel HEX files ship in ``hilprov/sim/images/``: ``initial.hex`` and ``final.hex``.
Their data carries a marker ``HILPROV-SIM-IMAGE:<kind>;demo=<version>;`` which the flasher looks
for after checking every record's checksum; any other image is refused, as a real board would not
run a firmware it was not built for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hilprov.errors import BoardError

IMAGE_DIR = Path(__file__).with_name("images")
INITIAL_IMAGE = IMAGE_DIR / "initial.hex"
FINAL_IMAGE = IMAGE_DIR / "final.hex"
KINDS = ("initial", "final")

_MARKER = re.compile(rb"HILPROV-SIM-IMAGE:(?P<kind>[a-z]+);demo=(?P<version>[0-9A-Za-z.\-]+);")


@dataclass(frozen=True)
class SimImage:
    kind: str  # "initial" | "final"
    version: str  # the demo version the final image logs at boot
    path: Path


def read_hex_data(path: Path) -> bytes:
    """All data bytes of an Intel HEX file in file order; BoardError names file and line."""
    try:
        text = Path(path).read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise BoardError(f"{path}: not an Intel HEX file (binary data)") from None
    except OSError as err:
        raise BoardError(f"{path}: cannot read firmware image: {err.strerror}") from None
    data = bytearray()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{path}: line {number}"
        if not line.startswith(":"):
            raise BoardError(f"{where}: not an Intel HEX record (must start with ':')")
        try:
            record = bytes.fromhex(line[1:])
        except ValueError:
            raise BoardError(f"{where}: not hexadecimal") from None
        if len(record) < 5 or len(record) != record[0] + 5:
            raise BoardError(f"{where}: record length does not match its byte count")
        if sum(record) & 0xFF:
            raise BoardError(f"{where}: checksum mismatch (corrupted file?)")
        if record[3] == 0x00:
            data += record[4:-1]
        elif record[3] == 0x01:
            return bytes(data)
    raise BoardError(f"{path}: Intel HEX file has no end-of-file record (truncated?)")


def identify(path: Path) -> SimImage:
    """Which virtual-board image `path` is; BoardError for anything else."""
    found = _MARKER.search(read_hex_data(path))
    if found is None or found["kind"].decode() not in KINDS:
        raise BoardError(
            f"flash: {path} is not a virtual-board image (unknown image: no "
            f"HILPROV-SIM-IMAGE marker). The virtual board runs only {INITIAL_IMAGE.name} and "
            f"{FINAL_IMAGE.name} from {IMAGE_DIR}")
    return SimImage(found["kind"].decode(), found["version"].decode(), Path(path))


def make_hex(payload: bytes, base: int = 0) -> str:
    """Intel HEX text for `payload` at address `base` (16-byte records, 32-bit addressing)."""

    def record(kind: int, address: int, data: bytes) -> str:
        body = bytes([len(data), address >> 8 & 0xFF, address & 0xFF, kind]) + data
        return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()

    lines = [record(0x04, 0, (base >> 16).to_bytes(2, "big"))]
    for start in range(0, len(payload), 16):
        lines.append(record(0x00, (base + start) & 0xFFFF, payload[start:start + 16]))
    lines.append(record(0x01, 0, b""))
    return "\n".join(lines) + "\n"
