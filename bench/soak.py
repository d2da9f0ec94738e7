"""Soak run: provision N devices in a row on fresh virtual boards with random faults.

    python bench/soak.py [-n 200] [--fault-rate 0.05] [--seed S]

Each device is a new in-process virtual board (Certificate mode, emulated 115200 baud unless
--no-baud) onboarded on the local Coiote server, with a record in a temporary SQLite database.
Each fault kind is drawn independently with probability --fault-rate: a lost SMP line, a
corrupted SMP line, a stalled SMP request (longer than the SMP timeout), a reset in the middle
of the provisioning upload, and 1-2 Coiote 503 answers. A watchdog bounds every device; a device
that outlives it is counted as hung and its board is powered off.

The report gives successes, recoveries (succeeded although a fault fired), failures by error
class, total time, and peak memory (maxrss), tracemalloc's current size, threads and open file
descriptors at the start, after the first device, after the last one and after tearing down the
local Coiote server (whose keep-alive connection holds one handler thread while it runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/soak.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BAUD, cert_flow_options, cloud_for  # noqa: E402
from hilprov.board.registry import SIM_IMEI_BASE  # noqa: E402
from hilprov.board.sim import SimBoard  # noqa: E402
from hilprov.cloud.coiote import CoioteClient  # noqa: E402
from hilprov.sim.board import Faults  # noqa: E402
from hilprov.sim.cloud import coiote_registrar  # noqa: E402
from hilprov.sim.coiote_server import CoioteServer  # noqa: E402
from hilprov.station.flow import ProvisioningFlow, Timeouts  # noqa: E402
from hilprov.station.records import RecordStore, RecordWriter  # noqa: E402

TIMEOUTS = Timeouts(ready=10, prompt=2, smp=1.0, result=15, restored=10, registered=10)
FAULT_KINDS = ("drop", "corrupt", "stall", "reset", "coiote503")
SMP_LINES = 20  # lines a Certificate-mode flow sends: params, endpoint.txt, 17 upload, result
SMP_REQUESTS = 6  # params, endpoint.txt, 3 upload requests, result.txt
BLOB_BYTES = 1200  # a little less than the Certificate-mode blob (1208-1212 bytes)


@dataclass
class Plan:
    """The faults drawn for one device; `fired` is filled in afterwards."""

    drop_line: int | None = None
    corrupt_line: tuple[int, str] | None = None
    stall: tuple[int, float] | None = None
    reset_after: int | None = None
    coiote_503: int = 0
    fired: set[str] = field(default_factory=set)

    @property
    def injected(self) -> set[str]:
        kinds = {"drop": self.drop_line, "corrupt": self.corrupt_line, "stall": self.stall,
                 "reset": self.reset_after, "coiote503": self.coiote_503 or None}
        return {kind for kind, value in kinds.items() if value is not None}

    def board_faults(self) -> Faults:
        return Faults(drop_lines=frozenset([self.drop_line] if self.drop_line else []),
                      corrupt_lines=dict([self.corrupt_line] if self.corrupt_line else []),
                      stall_requests=dict([self.stall] if self.stall else []),
                      reset_after_provision_bytes=self.reset_after)


def draw(rng: random.Random, rate: float) -> Plan:
    plan = Plan()
    if rng.random() < rate:
        plan.drop_line = rng.randint(1, SMP_LINES)
    if rng.random() < rate:
        plan.corrupt_line = (rng.randint(1, SMP_LINES), rng.choice(("crc", "base64")))
    if rng.random() < rate:
        plan.stall = (rng.randint(1, SMP_REQUESTS), round(rng.uniform(1.2, 2.5), 2))
    if rng.random() < rate:
        plan.reset_after = rng.randint(1, BLOB_BYTES)
    if rng.random() < rate:
        plan.coiote_503 = rng.randint(1, 2)
    return plan


@dataclass
class Outcome:
    number: int
    ok: bool
    error_kind: str | None
    seconds: float
    plan: Plan
    hung: bool = False
    error: str = ""


def provision_one(number: int, plan: Plan, options, server: CoioteServer,
                  records: RecordWriter, *, baud: bool, timeout: float) -> Outcome:
    """One device on a fresh board; never blocks longer than `timeout` plus the power-off."""
    board = SimBoard(f"soak-{number}", baudrate=BAUD, emulate_baud=baud,
                     registrar=coiote_registrar(server), imei=str(SIM_IMEI_BASE + number),
                     faults=plan.board_faults())
    cloud_fault = (server.inject(503, times=plan.coiote_503, method="POST", path="/devices")
                   if plan.coiote_503 else None)
    inputs, run_options, cloud = options
    flow = ProvisioningFlow(board, inputs, run_options, cloud=cloud, observers=[records])
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = flow.run()
        except Exception as exc:  # a library bug: the flow has recorded it and re-raised
            box["crash"] = f"internal error ({type(exc).__name__})"

    start = time.monotonic()
    worker = threading.Thread(target=run, name=f"soak-device-{number}", daemon=True)
    worker.start()
    worker.join(timeout)
    hung = worker.is_alive()
    try:
        board.close()  # powers the board off; a hung flow then fails on its closed port
    finally:
        server.clear_faults()
    if hung:
        worker.join(10.0)
    seconds = time.monotonic() - start
    stats = board.device.stats
    if plan.drop_line and stats.get("lines dropped (fault injection)"):
        plan.fired.add("drop")
    if plan.corrupt_line and stats.get("lines received", 0) >= plan.corrupt_line[0]:
        plan.fired.add("corrupt")
    if plan.stall and stats.get("requests stalled"):
        plan.fired.add("stall")
    if plan.reset_after and getattr(board.device, "_reset_fired", False):
        plan.fired.add("reset")
    if cloud_fault is not None and cloud_fault.times < plan.coiote_503:
        plan.fired.add("coiote503")
    result = box.get("result")
    if hung:
        return Outcome(number, False, "hung (watchdog)", seconds, plan, hung=True)
    if result is None:
        return Outcome(number, False, box.get("crash", "internal error"), seconds, plan)
    return Outcome(number, result.ok, None if result.ok else result.error_kind, seconds, plan,
                   error=(result.error or "").splitlines()[0] if not result.ok else "")


def resources() -> dict:
    gc.collect()
    return {"maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "tracemalloc_current_mib": round(tracemalloc.get_traced_memory()[0] / 2**20, 2),
            "threads": threading.active_count(), "open_fds": len(os.listdir("/proc/self/fd"))}


def summarize(outcomes: list[Outcome], total: float, snapshots: dict, rows: list[dict]) -> dict:
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    by_kind: dict[str, dict] = {}
    for o in failed:
        entry = by_kind.setdefault(o.error_kind or "?", {"count": 0, "faults fired": Counter()})
        entry["count"] += 1
        entry["faults fired"].update(o.plan.fired or {"none"})
    injected = Counter(k for o in outcomes for k in o.plan.injected)
    fired = Counter(k for o in outcomes for k in o.plan.fired)
    outcomes_in_db = Counter(r["outcome"] for r in rows)
    return {
        "devices": len(outcomes), "succeeded": len(ok),
        "recovered": sum(1 for o in ok if o.plan.fired),
        "failed": len(failed),
        "failed_without_reset": sum(1 for o in failed if "reset" not in o.plan.fired),
        "hung": sum(1 for o in outcomes if o.hung),
        "failures": {k: {"count": v["count"], "faults fired": dict(v["faults fired"])}
                     for k, v in sorted(by_kind.items())},
        "faults": {k: {"injected": injected[k], "fired": fired[k]} for k in FAULT_KINDS},
        "recovered_by_fault": dict(Counter(k for o in ok for k in o.plan.fired)),
        "total_seconds": round(total, 1),
        "median_device_seconds": round(statistics.median(o.seconds for o in outcomes), 3),
        "max_device_seconds": round(max(o.seconds for o in outcomes), 3),
        "records": {"rows": len(rows), "registered": outcomes_in_db.get("registered", 0),
                    "agree": len(rows) == len(outcomes)
                    and outcomes_in_db.get("registered", 0) == len(ok)},
        "resources": snapshots,
    }


def report(summary: dict, header: str) -> str:
    s = summary
    lines = [header,
             f"devices             {s['devices']}",
             f"succeeded           {s['succeeded']}  (recovered despite a fault: "
             f"{s['recovered']}; by fault: {s['recovered_by_fault'] or '-'})",
             f"failed              {s['failed']}  (without a reset fault: "
             f"{s['failed_without_reset']}; hung: {s['hung']})"]
    for kind, entry in s["failures"].items():
        lines.append(f"  {kind:<18}{entry['count']}  faults fired: {entry['faults fired']}")
    lines.append("faults injected/fired: " + ", ".join(
        f"{k} {v['injected']}/{v['fired']}" for k, v in s["faults"].items()))
    lines.append(f"total time          {s['total_seconds']} s  (per device: median "
                 f"{s['median_device_seconds']} s, max {s['max_device_seconds']} s)")
    rec = s["records"]
    lines.append(f"records             {rec['rows']} rows, {rec['registered']} registered; "
                 f"agree with the run: {'yes' if rec['agree'] else 'NO'}")
    snaps = s["resources"]
    names = list(snaps)
    lines.append(f"{'':<26}" + "".join(f"{n:>18}" for n in names))
    for key in snaps[names[0]]:
        lines.append(f"{key:<26}" + "".join(f"{snaps[n][key]:>18}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/soak.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="devices to provision (200)")
    parser.add_argument("--fault-rate", type=float, default=0.05,
                        help="probability of each fault kind per device (0.05)")
    parser.add_argument("--seed", type=int, help="random seed (default: drawn and printed)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="watchdog seconds per device (60)")
    parser.add_argument("--no-baud", action="store_true",
                        help="no 115200 baud wire-time emulation (faster)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("-v", "--verbose", action="store_true", help="library warnings")
    args = parser.parse_args(argv)
    if args.n < 1 or not 0 <= args.fault_rate <= 1:
        parser.error("-n must be at least 1 and --fault-rate between 0 and 1")
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL,
                        format="%(levelname)s %(name)s: %(message)s")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    header = (f"soak: {args.n} devices, fault rate {args.fault_rate}, seed {seed}, "
              f"{'no baud emulation' if args.no_baud else f'{BAUD} baud emulated'}, "
              f"watchdog {args.timeout:g} s per device")
    print(header, flush=True)

    tracemalloc.start()
    snapshots = {"start": resources()}
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with (tempfile.TemporaryDirectory(prefix="hilprov-soak-") as tmp,
          CoioteServer() as server,
          CoioteClient(server.url, server.token, timeout=5.0, backoff_base=0.05) as client):
        store = RecordStore(Path(tmp) / "records.sqlite")
        records = RecordWriter(store, source="soak")  # one for the run, as a station has
        options = (*cert_flow_options(Path(tmp), timeouts=TIMEOUTS),
                   cloud_for(client, server.token))
        for number in range(1, args.n + 1):
            outcome = provision_one(number, draw(rng, args.fault_rate), options, server,
                                    records, baud=not args.no_baud, timeout=args.timeout)
            outcomes.append(outcome)
            if not outcome.ok:
                print(f"  device {number}: FAILED ({outcome.error_kind}); faults fired: "
                      f"{sorted(outcome.plan.fired) or 'none'}: {outcome.error[:160]}",
                      flush=True)
            if number == 1:
                snapshots["after 1st device"] = resources()
            if number % 20 == 0:
                done = sum(o.ok for o in outcomes)
                print(f"  {number}/{args.n} devices, {done} ok, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
        total = time.monotonic() - started
        snapshots["after last device"] = resources()
        rows = store.query()
    snapshots["after teardown"] = resources()
    tracemalloc.stop()
    summary = summarize(outcomes, total, snapshots, rows)
    summary.update(seed=seed, fault_rate=args.fault_rate, baud=None if args.no_baud else BAUD)
    print(report(summary, "\nsoak result"))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if summary["hung"] == 0 and summary["records"]["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
