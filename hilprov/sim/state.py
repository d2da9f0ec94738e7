"""What the virtual board keeps across reboots, flashes and processes: its flash contents.

It exists so that the on-disk format (``board.json`` plus ``anjay_factory.cbor`` in the state
directory) and its CBOR encoding of the LwM2M objects live in one place. :class:`StateStore`
holds the current :class:`BoardState` (every reader goes through ``store.state``, so a chip erase
that replaces it is seen everywhere) and the lock that guards writing it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2

from hilprov.core.files import write_atomic
from hilprov.core.lwm2m import Objlink
from hilprov.errors import BoardError

ANJAY_VERSION = "3.11.0"
STATE_FILE = "board.json"
FACTORY_FILE = "anjay_factory.cbor"
_OBJLINK_TAG = 40001  # private CBOR tag for Objlink values in the persisted objects


@dataclass
class BoardState:
    image: str = "initial"
    version: str = ANJAY_VERSION
    factory: dict | None = None
    persistence: bool = False
    boots: int = 0


def encode_objects(objects: dict) -> bytes:
    def default(encoder: cbor2.CBOREncoder, value: Any) -> None:
        if isinstance(value, Objlink):
            encoder.encode(cbor2.CBORTag(_OBJLINK_TAG, [value.oid, value.iid]))
        else:
            raise TypeError(f"cannot persist a {type(value).__name__} value")

    return cbor2.dumps(objects, default=default)


def decode_objects(data: bytes) -> dict:
    def tag_hook(decoder: cbor2.CBORDecoder, tag: cbor2.CBORTag) -> Any:
        if tag.tag == _OBJLINK_TAG:
            return Objlink(*tag.value)
        return tag

    return cbor2.loads(data, tag_hook=tag_hook)


class StateStore:
    """The board's state, loaded from `state_dir` (None: kept in memory only)."""

    def __init__(self, state_dir: Path | None, default_image: str) -> None:
        self.state_dir = state_dir
        self.lock = threading.RLock()  # the persisted state (never held while joining)
        self.state = self._load(default_image)

    def _load(self, default_image: str) -> BoardState:
        state = BoardState(image=default_image)
        if self.state_dir is None:
            return state
        path = self.state_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as err:
            raise BoardError(f"virtual board state {path} is unreadable: {err}") from None
        state.image = raw.get("image", default_image)
        state.version = raw.get("version", ANJAY_VERSION)
        state.persistence = bool(raw.get("persistence", False))
        state.boots = int(raw.get("boots", 0))
        factory = self.state_dir / FACTORY_FILE
        if factory.exists():
            try:
                state.factory = decode_objects(factory.read_bytes())
            except (OSError, ValueError, cbor2.CBORDecodeError) as err:
                raise BoardError(f"virtual board state {factory} is unreadable: {err}") from None
        return state

    def save(self, endpoint: str) -> None:
        """Write board.json and the factory objects (mode 0600: they hold PSKs and keys)."""
        if self.state_dir is None:
            return
        with self.lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            raw = {"image": self.state.image, "version": self.state.version,
                   "persistence": self.state.persistence, "boots": self.state.boots,
                   "endpoint": endpoint}
            write_atomic(self.state_dir / STATE_FILE, json.dumps(raw, indent=1).encode())
            factory = self.state_dir / FACTORY_FILE
            if self.state.factory is not None:
                write_atomic(factory, encode_objects(self.state.factory))
            elif factory.exists():
                factory.unlink()

    def erase(self) -> None:
        """A chip erase: a blank state, and no state files."""
        self.state = BoardState()
        if self.state_dir is not None:
            for name in (STATE_FILE, FACTORY_FILE):
                (self.state_dir / name).unlink(missing_ok=True)
