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

from hilprov.core.hexfile import read_intel_hex
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


def identify(path: Path) -> SimImage:
    """Which virtual-board image `path` is; BoardError for anything else."""
    found = _MARKER.search(read_intel_hex(path).data)
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
