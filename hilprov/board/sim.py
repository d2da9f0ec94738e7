"""`--board sim`: a virtual board (hilprov.sim) started in this process; its pty is the port."""

from __future__ import annotations

from pathlib import Path

from hilprov.board.base import Board


class SimBoard(Board):
    """A VirtualBoard driven like a real one: flashing goes to its fake flasher.

    `cloud` (a `hilprov.sim.cloud.CloudView`) is the Coiote its LwM2M server asks before it
    accepts a Register; `registrar` replaces that check outright (tests)."""

    kind = "sim"

    def __init__(self, name: str, *, state_dir: Path | None = None, baudrate: int = 115200,
                 emulate_baud: bool = False, cloud=None, registrar=None,
                 **board_kwargs) -> None:
        from hilprov.sim.board import VirtualBoard
        from hilprov.sim.cloud import rest_registrar

        if registrar is None and cloud is not None:
            registrar = rest_registrar(cloud)
        self.device = VirtualBoard(state_dir, baud=baudrate if emulate_baud else None,
                                   registrar=registrar, name=name, **board_kwargs)
        super().__init__(name, self.device.start(), baudrate)

    @property
    def default_images(self) -> tuple[Path, Path]:
        from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE

        return INITIAL_IMAGE, FINAL_IMAGE

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        if progress is not None:
            progress(f"flashing {Path(image).name} on the virtual board")
        self.device.flash(Path(image), erase=erase)

    def reset(self) -> None:
        self.device.reset()

    def close(self) -> None:
        self.device.stop()
