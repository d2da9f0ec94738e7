"""What the provisioning flow needs from a board, whatever drives it.

A `Board` names one device under test, knows the serial port its console and SMP share, and can
flash an image (with or without a chip erase) and reset. The kinds live in their own modules
(`nordic`, `port`, `sim`) and are found by their `--board` spec through `hilprov.board.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from hilprov.core.files import read_input
from hilprov.errors import BoardError, ConfigError


class Board(ABC):
    """A device under test reachable over one serial port."""

    kind = "board"
    can_flash = True

    def __init__(self, name: str, port: str | None = None, baudrate: int = 115200) -> None:
        self.name = name
        self._port = port
        self.baudrate = baudrate
        self.flashed: Path | None = None  # the image this session last flashed (None: unknown)

    @property
    def port(self) -> str:
        if self._port is None:
            raise BoardError(f"board {self.name}: no serial port known; give --port")
        return self._port

    @property
    def flasher_name(self) -> str | None:
        """The tool that flashes this board ("nrfutil", "pynrfjprog"), for records; None when
        no external tool does (virtual boards, `--port` alone)."""
        return None

    @property
    def default_images(self) -> tuple[Path, Path] | None:
        """(initial, final) images this board runs when none are given (virtual boards)."""
        return None

    def flash(self, image: Path, *, erase: bool, progress=None) -> None:
        """Write `image` (Intel HEX) and start it; with `erase`, wipe the whole chip first.
        `progress(text)` may be called with what is happening (erasing, programming, …)."""
        self.flashed = None  # a failed flash leaves the board in an unknown state
        self._flash(Path(image), erase=erase, progress=progress)
        self.flashed = Path(image)

    @abstractmethod
    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        """The board-specific flashing behind `flash`."""

    def reset(self) -> None:  # pragma: no cover - overridden where possible
        raise BoardError(f"board {self.name}: cannot be reset from the host")

    def close(self) -> None:  # noqa: B027 - most boards hold nothing to release
        """Release the probe or stop the virtual board."""

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        flashed = self.flashed.name if self.flashed else None
        return f"{type(self).__name__}({self.name!r}, port={self._port!r}, flashed={flashed!r})"


def image_sha256(path: Path) -> str:
    """Short identity of a firmware image for records (SHA-256 of the file)."""
    import hashlib

    return hashlib.sha256(read_input(path, "firmware image", ConfigError)).hexdigest()
