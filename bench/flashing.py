"""Flashing many boards at once: 1 board against 4, with fake probes that take 1 s per program.

* pynrfjprog: `program_many` (what `hilprov flash` runs) in this process, on the fake J-Link
  library of the unit tests, which keeps the real library's rules (one open library per process,
  one handle per probe): the boards share the library and program at the same time.
* nRF Util: the whole `hilprov flash HEX --board … --flasher nrfutil` command as a process, with
  the fake `nrfutil` executable of the unit tests on PATH (one nrfutil process per board; start-up
  of both programs included).

Repetitions alternate 1 and 4 boards. The target: 4 boards in at most 1.3x the time of one.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Target
from hilprov.board.flashers.batch import program_many
from hilprov.board.flashers.pynrfjprog import PynrfjprogFlasher
from hilprov.core.hexfile import read_intel_hex
from hilprov.sim.images import INITIAL_IMAGE
from tests.unit.fake_nrfutil import FakeNrfutil, device
from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe

PROGRAM_SECONDS = 1.0
BOARDS = 4
SERIALS = [str(960012345 + n) for n in range(BOARDS)]
TARGET_RATIO = 1.3


def parallel_flash(work: Path, runs: int) -> tuple[list[dict], list[Target], list[str]]:
    hex_path = INITIAL_IMAGE  # a real Intel HEX file (the virtual board's initial image)
    runs = max(runs, 1)
    rows, targets = [], []
    for flasher, measure in (("pynrfjprog", _pynrfjprog(hex_path)),
                             ("nrfutil", _nrfutil(work, hex_path))):
        times: dict[int, list[float]] = {1: [], BOARDS: []}
        for rep in range(runs):
            for count in ((1, BOARDS) if rep % 2 == 0 else (BOARDS, 1)):
                times[count].append(measure(SERIALS[:count]))
        one = statistics.median(times[1])
        for count, samples in times.items():
            rows.append({"flasher": flasher, "boards": count,
                         "seconds": statistics.median(samples), "min_seconds": min(samples),
                         "vs_one_board": statistics.median(samples) / one, "runs": len(samples)})
        targets.append(Target(f"flash {BOARDS} boards at once / one board ({flasher})",
                              rows[-1]["vs_one_board"], TARGET_RATIO, "x",
                              note=f"fake probes, {PROGRAM_SECONDS:g} s per program"))
    notes = [f"{runs} alternated repetitions of 1 and {BOARDS} boards; pynrfjprog: "
             "program_many in this process on the fake library (one open API, a handle per "
             "probe); nrfutil: whole `hilprov flash` commands with the fake nrfutil on PATH"]
    return rows, targets, notes


def _pynrfjprog(hex_path: Path):
    image = read_intel_hex(hex_path)

    def measure(serials: list[str]) -> float:
        bench = FakeHighLevel(*(FakeProbe(int(s)) for s in serials),
                              program_seconds=PROGRAM_SECONDS)
        start = time.perf_counter()
        outcomes = program_many(PynrfjprogFlasher(lambda: bench), serials, image)
        seconds = time.perf_counter() - start
        failed = [str(o.error) for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"pynrfjprog fake flash failed: {failed}")
        return seconds
    return measure


def _nrfutil(work: Path, hex_path: Path):
    fake = FakeNrfutil(work / "nrfutil")
    fake.configure(devices=[device(s) for s in SERIALS], program_seconds=PROGRAM_SECONDS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PATH"] = f"{fake.bin}{os.pathsep}{env.get('PATH', '')}"
    hilprov = Path(sys.executable).with_name("hilprov")
    command = [str(hilprov)] if hilprov.exists() else [sys.executable, "-m", "hilprov"]

    def measure(serials: list[str]) -> float:
        argv = [*command, "flash", str(hex_path), "--flasher", "nrfutil", "-q",
                *[arg for snr in serials for arg in ("--board", snr)]]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"hilprov flash failed ({done.returncode}): {done.stderr[-500:]}")
        return seconds
    return measure
