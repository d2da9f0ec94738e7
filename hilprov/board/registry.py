"""Board kinds by `--board` spec: each kind is one entry (how its spec looks, how to open it), so
`sim`, a J-Link serial number and `labgrid:PLACE` are table rows, not `if` chains."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hilprov.board.base import Board
from hilprov.errors import BoardError, ConfigError

log = logging.getLogger(__name__)

SIM = "sim"
SIM_IMEI_BASE = 351234567890123  # the IMEIs bench and test boards count up from


@dataclass(frozen=True)
class BoardOptions:
    """What opening a board may use besides its spec."""

    port: str | None = None  # --port: the console, overriding the probe's VCOM
    baudrate: int = 115200
    emulate_baud: bool = False  # virtual boards: bytes take their wire time
    state_root: Path | None = None  # virtual boards: where their flash is kept
    cloud: object | None = None  # virtual boards: the CloudView their LwM2M server asks
    first_sim: int = 1  # number of the first virtual board (names sim-N, distinct IMEIs)
    lg_coordinator: str | None = None  # labgrid places: the coordinator (else $LG_COORDINATOR)
    flasher: str = "auto"  # J-Link boards: nrfutil, pynrfjprog or auto (hilprov.board.flashers)
    verify: str = "hash"  # J-Link boards: how each flash is checked (hash, read, none)


@dataclass(frozen=True)
class BoardKind:
    name: str
    form: str  # the spec as users write it, for help and errors
    matches: Callable[[str], bool]
    open: Callable[[str, str, int, BoardOptions], Board]  # (spec, name, sim number, options)


def _is_sim(spec: str) -> bool:
    return spec == SIM or spec.startswith(SIM + ":")


def _sim_imei(spec: str) -> str:
    """The IMEI a `sim` spec pins (`sim:<IMEI>`), else a fresh random one."""
    from hilprov.sim import imei

    _, _, pinned = spec.partition(":")
    if not pinned:
        return imei.random_imei()
    if not imei.valid(pinned):
        raise ConfigError(f"--board {spec}: {pinned!r} is not an IMEI (15 digits, the last a "
                          "Luhn check digit)")
    return pinned


def _open_sim(spec: str, name: str, number: int, options: BoardOptions) -> Board:
    from hilprov.board.sim import SimBoard

    state = options.state_root / name if options.state_root else None
    return SimBoard(name, state_dir=state, baudrate=options.baudrate,
                    emulate_baud=options.emulate_baud, cloud=options.cloud,
                    imei=_sim_imei(spec))


def _open_nordic(spec: str, name: str, number: int, options: BoardOptions) -> Board:
    from hilprov.board import flashers
    from hilprov.board.nordic import NordicBoard

    return NordicBoard(spec, options.port, options.baudrate,
                       flasher=flashers.choose(options.flasher), verify=options.verify)


def _open_labgrid(spec: str, name: str, number: int, options: BoardOptions) -> Board:
    from hilprov.board import labgrid

    if options.port is not None:
        raise ConfigError(f"--board {spec}: the place's NetworkSerialPort is its console; "
                          "--port cannot replace it")
    coordinator = labgrid.Coordinator(labgrid.coordinator_address(options.lg_coordinator))
    return labgrid.LabgridBoard.open(spec, coordinator)


KINDS: tuple[BoardKind, ...] = (
    BoardKind("sim", "sim[:IMEI]", _is_sim, _open_sim),
    BoardKind("nordic", "<J-Link serial number>",
              lambda spec: re.fullmatch(r"\d+", spec) is not None, _open_nordic),
    BoardKind("labgrid", "labgrid:PLACE", lambda spec: spec.startswith("labgrid:"),
              _open_labgrid),
)


def kind_of(spec: str) -> BoardKind:
    """The kind a spec names; ConfigError listing the accepted forms otherwise."""
    for kind in KINDS:
        if kind.matches(spec):
            return kind
    raise ConfigError(f"--board {spec}: {spec!r} is not a board: expected one of "
                      f"{accepted_forms()}")


def accepted_forms() -> str:
    return ", ".join(kind.form for kind in KINDS)


def check_spec(spec: str) -> str:
    """`spec` itself if some board kind takes it (for option parsing)."""
    kind = kind_of(spec).name
    if kind == "sim":
        _sim_imei(spec)
    elif kind == "labgrid":
        from hilprov.board.labgrid import place_of

        place_of(spec)
    return spec


def open_boards(specs: Sequence[str], options: BoardOptions) -> list[Board]:
    """Boards for the `--board` values; with none, `--port` alone names one device. All are
    closed again if any of them cannot be opened."""
    if not specs:
        if options.port is None:
            return []
        from hilprov.board.port import PortBoard

        return [PortBoard(options.port, options.port, options.baudrate)]
    if options.port is not None and len(specs) > 1:
        raise ConfigError("--port names one serial port: it cannot be used with several --board")
    kinds = [kind_of(spec) for spec in specs]
    twice = sorted({spec for spec in specs if not _is_sim(spec) and specs.count(spec) > 1})
    if twice:  # before opening: a second acquire of a labgrid place would blame a killed run
        raise ConfigError(f"the same board is given twice: {', '.join(twice)}")
    sims = sum(1 for kind in kinds if kind.name == "sim")
    pinned = [spec for spec in specs if _is_sim(spec) and spec != SIM]
    if len(set(pinned)) != len(pinned):
        raise ConfigError(f"the same virtual board IMEI is pinned twice ({', '.join(pinned)}): "
                          "two units cannot share an endpoint name")
    boards: list[Board] = []
    try:
        number = options.first_sim
        for spec, kind in zip(specs, kinds, strict=True):
            if kind.name != "sim":
                boards.append(kind.open(spec, spec, 0, options))
                continue
            name = SIM if sims == 1 and options.first_sim == 1 else f"sim-{number}"
            boards.append(kind.open(spec, name, number, options))
            number += 1
        names = [b.name for b in boards]
        if len(set(names)) != len(names):
            raise ConfigError(f"the same board is given twice: {', '.join(names)}")
    except BaseException:
        close_all(boards)
        raise
    return boards


def close_all(boards: Sequence[Board]) -> None:
    """Close every board; a failure to close one is logged, not raised (it must not hide the
    outcome), and an interrupt while closing one is raised only after the rest are closed."""
    interrupt: KeyboardInterrupt | None = None
    for board in boards:
        try:
            board.close()
        except BoardError as exc:
            log.warning("closing board %s: %s", board.name, exc)
        except KeyboardInterrupt as exc:  # the others are still closed (their places released)
            interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt
