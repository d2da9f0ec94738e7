"""A device already running the initial image, known only by its serial port (`--port`)."""

from __future__ import annotations

from pathlib import Path

from hilprov.board.base import Board
from hilprov.errors import BoardError


class PortBoard(Board):
    """No probe: nothing is flashed; the flow starts at reading the endpoint name."""

    kind = "port"
    can_flash = False

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        raise BoardError(f"board on {self.port}: cannot flash without a probe; give --board SNR")
