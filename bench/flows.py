"""Section 4: the whole station flow on virtual boards at emulated 115200 baud.

Boards run in this process (hilprov.board.sim.SimBoard) and are provisioned concurrently by
hilprov.station.runner.run_flows, one thread per board: that is what `hilprov provision --board
sim ...` does, and it is the harder case for scaling, since the host side and every simulated
device share one interpreter lock. The process's CPU time is reported next to the wall time to
show how close the run comes to being CPU-bound on this machine.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from bench.common import BAUD, Target, cert_flow_options, cloud_for, median
from hilprov.board.registry import SIM_IMEI_BASE, close_all
from hilprov.board.sim import SimBoard
from hilprov.cloud.coiote import CoioteClient
from hilprov.sim.cloud import coiote_registrar
from hilprov.sim.coiote_server import CoioteServer
from hilprov.station.flow import STEP_NAMES, FlowResult, ProvisioningFlow
from hilprov.station.runner import run_flows

SCALES = (1, 2, 4, 8)
TARGET_RATIO = 1.25


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_boards(count: int, server: CoioteServer, first: int) -> list[SimBoard]:
    boards: list[SimBoard] = []
    try:
        for n in range(first, first + count):
            boards.append(SimBoard(f"sim-{n}", baudrate=BAUD, emulate_baud=True,
                                   registrar=coiote_registrar(server),
                                   imei=str(SIM_IMEI_BASE + n)))
    except BaseException:
        close_all(boards)
        raise
    return boards


def _check(results: list[FlowResult]) -> None:
    for result in results:
        if result.outcome != "registered":
            raise AssertionError(f"flow on {result.board} ended {result.outcome}: "
                                 f"{result.error_kind}: {result.error}")


def whole_flow(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    rows: list[dict] = []
    with CoioteServer() as server, CoioteClient(server.url, server.token) as client:
        inputs, options = cert_flow_options(work)
        cloud = cloud_for(client, server.token)
        first = 1
        per_step: dict[str, list[float]] = {name: [] for name in STEP_NAMES}
        totals = []
        for _ in range(reps):
            server.reset()
            [board] = make_boards(1, server, first)
            first += 1
            try:
                result = ProvisioningFlow(board, inputs, options, cloud=cloud).run()
            finally:
                board.close()
            _check([result])
            totals.append(result.seconds)
            for step in result.steps:
                per_step[step.name].append(step.seconds)
        for name, samples in per_step.items():
            rows.append({"table": "steps", "step": name,
                         "median_ms": round(median(samples) * 1000, 2)})
        rows.append({"table": "steps", "step": "whole flow",
                     "median_ms": round(median(totals) * 1000, 2)})

        scaling = {}
        for count in SCALES:
            walls, cpus = [], []
            for _ in range(reps):
                server.reset()
                boards = make_boards(count, server, first)
                first += count
                try:
                    cpu0, start = cpu_seconds(), time.perf_counter()
                    results = run_flows(boards, inputs, options, cloud=cloud)
                    walls.append(time.perf_counter() - start)
                    cpus.append(cpu_seconds() - cpu0)
                finally:
                    close_all(boards)
                _check(results)
            scaling[count] = median(walls)
            rows.append({"table": "scaling", "boards": count,
                         "seconds": round(median(walls), 4),
                         "seconds_all": [round(w, 4) for w in walls],
                         "cpu_seconds": round(median(cpus), 3),
                         "cpu_load": round(median(cpus) / median(walls), 3)})
    for row in rows:
        if row["table"] == "scaling":
            row["vs_one_board"] = round(row["seconds"] / scaling[1], 3)
    ratio = scaling[SCALES[-1]] / scaling[1]
    eight = next(r for r in rows if r.get("boards") == SCALES[-1])
    targets = [Target(f"{SCALES[-1]} boards at once / one board", ratio, TARGET_RATIO, "x",
                      note=f"{eight['cpu_seconds']} CPU s in {eight['seconds']} s on "
                           f"{os.cpu_count()} cores")]
    notes = [f"Certificate mode with onboarding on the local Coiote server; medians of {reps} "
             "runs; boards are in-process SimBoards (emulated 115200 baud) provisioned by "
             "run_flows, one thread per board, all in one interpreter; board start-up "
             "is not timed. cpu_load = process CPU seconds (host + simulated devices) per wall "
             "second."]
    return rows, targets, notes
