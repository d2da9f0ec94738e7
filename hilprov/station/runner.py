"""A provisioning station: turn `--board` values into boards, run the flow on each (concurrently),
report progress, and keep the records.

Board specs: a J-Link serial number (a real nRF board), `sim` (a virtual board, in this process),
or none at all with `--port` (a device that already runs the initial image).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from hilprov.board.base import Board, NordicProbeBoard, PortBoard
from hilprov.errors import BoardError, ConfigError
from hilprov.station.flow import FlowObserver, FlowOptions, FlowResult, ProvisioningFlow, StepRecord

log = logging.getLogger("hilprov.station.runner")

SIM = "sim"
SIM_IMEI_BASE = 351234567890123  # virtual board n gets IMEI base + n - 1: distinct endpoints


class SimBoard(Board):
    """A virtual board (hilprov.sim) started in this process; its pty is the port."""

    kind = "sim"

    def __init__(self, name: str, *, state_dir: Path | None = None, baudrate: int = 115200,
                 emulate_baud: bool = False, registrar=None, **board_kwargs) -> None:
        from hilprov.sim.board import VirtualBoard

        self.device = VirtualBoard(state_dir, baud=baudrate if emulate_baud else None,
                                   registrar=registrar, name=name, **board_kwargs)
        super().__init__(name, self.device.start(), baudrate)

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        if progress is not None:
            progress(f"flashing {Path(image).name} on the virtual board")
        self.device.flash(Path(image), erase=erase)

    def reset(self) -> None:
        self.device.reset()

    def close(self) -> None:
        self.device.stop()


def sim_images() -> tuple[Path, Path]:
    from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE

    return INITIAL_IMAGE, FINAL_IMAGE


def resolve_images(options: FlowOptions, image_dir: Path | None, any_sim: bool) -> None:
    """Fill initial/final hex from --image-dir (or the virtual board's own images)."""
    if image_dir is not None:
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise ConfigError(f"--image-dir {image_dir}: not a directory")
        options.initial_hex = options.initial_hex or image_dir / "initial.hex"
        options.final_hex = options.final_hex or image_dir / "final.hex"
    elif any_sim:
        initial, final = sim_images()
        options.initial_hex = options.initial_hex or initial
        options.final_hex = options.final_hex or final
    for which in ("initial_hex", "final_hex"):
        path = getattr(options, which)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: firmware image not found "
                              f"(--{which.replace('_', '-')} / --image-dir)")


def make_boards(specs: Sequence[str], *, port: str | None, baudrate: int,
                emulate_baud: bool = False, registrar=None,
                state_root: Path | None = None, first_sim: int = 1) -> list[Board]:
    """Boards for the `--board` values; with none, `--port` alone names one device.
    Virtual boards are numbered from `first_sim` (names sim-N, distinct IMEIs)."""
    if not specs:
        if port is None:
            return []
        return [PortBoard(port, port, baudrate)]
    if port is not None and len(specs) > 1:
        raise ConfigError("--port names one serial port: it cannot be used with several --board")
    boards: list[Board] = []
    try:
        sims = sum(1 for s in specs if s == SIM)
        for spec in specs:
            if spec == SIM:
                number = first_sim + sum(1 for b in boards if b.kind == "sim")
                name = SIM if sims == 1 and first_sim == 1 else f"sim-{number}"
                state = state_root / name if state_root else None
                boards.append(SimBoard(name, state_dir=state, baudrate=baudrate,
                                       emulate_baud=emulate_baud, registrar=registrar,
                                       imei=str(SIM_IMEI_BASE + number - 1)))
            else:
                boards.append(NordicProbeBoard(spec, port, baudrate))
        names = [b.name for b in boards]
        if len(set(names)) != len(names):
            raise ConfigError(f"the same board is given twice: {', '.join(names)}")
    except BaseException:
        for board in boards:
            board.close()
        raise
    return boards


def run_flows(boards: Sequence[Board], options: FlowOptions, *,
              observers: Sequence[FlowObserver] = (), log_dir: Path | None = None
              ) -> list[FlowResult]:
    """Provision every board, concurrently (one thread per board); results in board order."""
    def one(board: Board) -> FlowResult:
        return ProvisioningFlow(board, options, observers=list(observers), log_dir=log_dir).run()

    if len(boards) == 1:
        return [one(boards[0])]
    with ThreadPoolExecutor(max_workers=len(boards), thread_name_prefix="board") as pool:
        return list(pool.map(one, boards))


class ProgressPrinter(FlowObserver):
    """One line per step and board on stderr (`[board] step  ok  1.23 s  detail`); a transfer
    progress bar when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, prefix: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._last_bar = 0.0

    def _line(self, result: FlowResult, text: str) -> None:
        head = f"[{result.board}] " if self.prefix else ""
        with self._lock:
            end = "\x1b[K\n" if self.tty else "\n"
            self.stream.write(("\r" if self.tty else "") + head + text + end)
            self.stream.flush()

    def status(self, result: FlowResult, step: str, text: str) -> None:
        if self.tty:
            with self._lock:
                self.stream.write(f"\r[{result.board}] {step:<16} {text} ...\x1b[K")
                self.stream.flush()

    def step_finished(self, result: FlowResult, step: StepRecord) -> None:
        seconds = f"{step.seconds:6.2f} s" if step.status != "skipped" else "      -"
        detail = step.detail if len(step.detail) < 160 else step.detail[:157] + "..."
        self._line(result, f"{step.name:<16} {step.status:<7} {seconds}  {detail}".rstrip())

    def run_finished(self, result: FlowResult) -> None:
        what = result.outcome if result.ok else f"FAILED ({result.error_kind})"
        endpoint = f" {result.endpoint}" if result.endpoint else ""
        self._line(result, f"{'result':<16} {what}{endpoint} in {result.seconds:.2f} s")

    def transfer(self, result: FlowResult, step: str, done: int, total: int) -> None:
        if not self.tty or total <= 0:
            return
        now = time.monotonic()
        if done < total and now - self._last_bar < 0.1:
            return
        self._last_bar = now
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        with self._lock:
            self.stream.write(f"\r[{result.board}] {step:<16} [{bar}] {done}/{total} B\x1b[K")
            self.stream.flush()


def close_all(boards: Sequence[Board]) -> None:
    for board in boards:
        try:
            board.close()
        except BoardError as exc:  # closing must not hide the outcome
            log.warning("closing board %s: %s", board.name, exc)
