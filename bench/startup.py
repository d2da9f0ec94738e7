"""Start-up: `ptool -c configs/endpoint_cfg` (no board, PSK: build, validate, write the blob)
against `python -c "import cbor2"`, both as fresh processes, alternated run by run.

Both commands run with the same interpreter and environment, bytecode caches written first
(a PYTHONDONTWRITEBYTECODE=1 in the caller's environment is dropped: a station's installed
package has its .pyc files). Wall time is the target; the processes' CPU time (user + system, from
wait4) is shown beside it because it is less disturbed by other load on the machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import PSK_CFG, Target

TARGET_RATIO = 3.0


def _ptool() -> list[str]:
    script = Path(sys.executable).with_name("ptool")
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                   "from hilprov.cli import ptool_main; "
                                                   "raise SystemExit(ptool_main())"]


def _run(command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one run; a failed run stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {error[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def startup(work: Path, runs: int) -> tuple[list[dict], list[Target], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    commands = {"python -c 'import cbor2'": [sys.executable, "-c", "import cbor2"],
                "ptool -c configs/endpoint_cfg": [*_ptool(), "-c", str(PSK_CFG)]}
    for command in commands.values():  # write the bytecode caches, warm the file cache
        _run(command, work, env)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    ratios = []
    names = list(commands)
    for rep in range(max(runs, 1)):
        order = names if rep % 2 == 0 else names[::-1]  # alternate who goes first
        pair = {}
        for name in order:
            wall, cpu = _run(commands[name], work, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            pair[name] = wall
        ratios.append(pair[names[1]] / pair[names[0]])
    base_wall = statistics.median(walls[names[0]])
    base_cpu = statistics.median(cpus[names[0]])
    rows = [{"command": name, "median_ms": statistics.median(walls[name]) * 1000,
             "min_ms": min(walls[name]) * 1000, "cpu_ms": statistics.median(cpus[name]) * 1000,
             "vs_cbor2": statistics.median(walls[name]) / base_wall,
             "cpu_vs_cbor2": statistics.median(cpus[name]) / base_cpu, "runs": len(walls[name])}
            for name in names]
    ratio = rows[1]["vs_cbor2"]
    targets = [Target("start-up: ptool -c configs/endpoint_cfg / python -c 'import cbor2'",
                      ratio, TARGET_RATIO, "x",
                      note=f"median of {len(ratios)} alternated pairs; paired ratio median "
                           f"{statistics.median(ratios):.2f}")]
    notes = [f"{len(ratios)} alternated runs of each, fresh processes, bytecode cached; wall "
             "time medians (the target) and CPU time (user+system) medians",
             f"machine load average at the end: {os.getloadavg()[0]:.2f}"]
    return rows, targets, notes
