"""hilprov benchmark: `python -m bench` (or `python bench/run.py`) from the repository root.

Runs every section in one process: the virtual board at emulated 115200 baud, and the real
Zephyr MCUmgr servers at full speed (../shared/zephyr-smp); prints a table per section and the
targets, and writes every number, with the commit, to bench/results.json (a full run) or to
--out. `--quick` is a smoke run with one repetition; `--only SECTION` runs one section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config_scaling, flashing, flows, host, startup, transfer, zephyr  # noqa: E402
from bench.common import BAUD, REPO, Target  # noqa: E402
from hilprov.core.files import write_atomic  # noqa: E402

RESULTS = REPO / "bench" / "results.json"

# name -> (title, function(work_dir, repetitions), full repetitions, quick repetitions)
SECTIONS = {
    "smp": ("1. SMP file transfers to /lfs1 (board subprocess, 115200 baud)",
            transfer.smp_transfers, 5, 1),
    "provision": ("2. Provisioning upload, Certificate-mode blob, 512-byte writes",
                  transfer.provisioning_upload, 5, 1),
    "host": ("3. Host work per device", host.host_work, 50, 5),
    "flow": ("4. Whole flow on virtual boards (115200 baud)", flows.whole_flow, 3, 1),
    # The real Zephyr MCUmgr servers (native_sim builds on a pty, full speed).
    "zephyr": ("5. Real Zephyr, full speed: hilprov fs vs smpclient, whole commands",
               zephyr.full_speed, 5, 1),
    "zephyr-default": ("6. Real Zephyr, default MCUmgr UART buffers: learn, then upload",
                       zephyr.default_config, 3, 1),
    "zephyr-shell": ("7. Real Zephyr, shell transport: round trips beside the console",
                     zephyr.shell_transport, 10, 3),
    "flash": ("8. Flashing 1 and 4 boards at once (fake probes, 1 s per program)",
              flashing.parallel_flash, 3, 1),
    "startup": ("9. Start-up: ptool -c configs/endpoint_cfg vs python -c 'import cbor2'",
                startup.startup, 30, 3),
    "config": ("10. Config parse + validate, one line of 10^4 to 10^6 entries",
               config_scaling.config_scaling, 3, 1),
}

# name -> columns (header, key, format) of its table
COLUMNS = {
    "smp": [("client", "client", "{}"), ("size B", "size", "{}"), ("dir", "direction", "{}"),
            ("median s", "seconds", "{:.3f}"), ("wire B", "wire_bytes", "{}"),
            ("line-rate s", "line_rate_seconds", "{:.3f}"),
            ("vs line rate", "vs_line_rate", "{:.3f}x"),
            ("payload/wire", "payload_per_wire_byte", "{:.3f}"),
            ("vs smpclient", "vs_smpclient", "{:.3f}x")],
    "provision": [("client", "client", "{}"), ("blob B", "size", "{}"),
                  ("median s", "seconds", "{:.4f}"), ("wire B", "wire_bytes", "{}"),
                  ("payload/wire", "payload_per_wire_byte", "{:.3f}"),
                  ("vs optimum", "vs_optimum_time", "{:.3f}x"),
                  ("ms/request over", "overhead_ms_per_request", "{:.2f}")],
    "host": [("what", "what", "{}"), ("median ms", "median_ms", "{:.3f}"),
             ("min ms", "min_ms", "{:.3f}"), ("max ms", "max_ms", "{:.3f}"),
             ("runs", "runs", "{}")],
    "zephyr": [("client", "client", "{}"), ("size B", "size", "{}"),
               ("dir", "direction", "{}"), ("median s", "seconds", "{:.3f}"),
               ("spread s", "spread", "{:.3f}"), ("vs smpclient", "vs_smpclient", "{:.3f}x")],
    "zephyr-default": [("client", "client", "{}"), ("size B", "size", "{}"),
                       ("median s", "seconds", "{:.3f}"), ("B/s", "bytes_per_second", "{}"),
                       ("result", "result", "{}")],
    "zephyr-shell": [("what", "what", "{}"), ("median ms", "median_ms", "{:.2f}"),
                     ("min ms", "min_ms", "{:.2f}"), ("max ms", "max_ms", "{:.2f}"),
                     ("runs", "runs", "{}")],
    "config": [("entries", "entries", "{}"), ("characters", "characters", "{}"),
               ("parse s", "parse_s", "{:.3f}"), ("validate s", "validate_s", "{:.3f}"),
               ("us/entry", "us_per_entry", "{:.3f}")],
    "flow-steps": [("step", "step", "{}"), ("median ms", "median_ms", "{:.1f}")],
    "flash": [("flasher", "flasher", "{}"), ("boards", "boards", "{}"),
              ("median s", "seconds", "{:.3f}"), ("min s", "min_seconds", "{:.3f}"),
              ("vs one", "vs_one_board", "{:.3f}x"), ("runs", "runs", "{}")],
    "startup": [("command", "command", "{}"), ("median ms", "median_ms", "{:.1f}"),
                ("min ms", "min_ms", "{:.1f}"), ("CPU ms", "cpu_ms", "{:.1f}"),
                ("vs cbor2", "vs_cbor2", "{:.2f}x"), ("CPU vs cbor2", "cpu_vs_cbor2",
                                                      "{:.2f}x"), ("runs", "runs", "{}")],
    "flow-scaling": [("boards", "boards", "{}"), ("median s", "seconds", "{:.3f}"),
                     ("vs one", "vs_one_board", "{:.3f}x"), ("CPU s", "cpu_seconds", "{:.2f}"),
                     ("CPU load", "cpu_load", "{:.2f}")],
}


def machine() -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": os.getloadavg(),
            "hilprov": version("hilprov"), "smpclient": version("smpclient"),
            "smp": version("smp"), "git_commit": commit}


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    def cell(row: dict, key: str, fmt: str) -> str:
        value = row.get(key)
        return "-" if value is None else fmt.format(value)

    cells = [[cell(r, key, fmt) for _, key, fmt in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _, _) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (h, _, _), w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def print_section(name: str, title: str, rows: list[dict], notes: list[str]) -> None:
    print(f"\n{title}\n{'=' * len(title)}")
    if name == "flow":
        for part in ("steps", "scaling"):
            print(table([r for r in rows if r["table"] == part], COLUMNS[f"flow-{part}"]))
            print()
    else:
        print(table(rows, COLUMNS[name]))
    for note in notes:
        print(f"  {note}")
    sys.stdout.flush()


def print_targets(targets: list[Target]) -> None:
    print("\nTargets\n=======")
    rows = [{"target": t.name, "value": f"{t.value:.3f} {t.unit}",
             "limit": f"<= {t.limit:g} {t.unit}", "met": "yes" if t.met else "NO",
             "note": t.note} for t in targets]
    print(table(rows, [(h, h, "{}") for h in ("target", "value", "limit", "met", "note")]))


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(results, indent=1) + "\n").encode(), mode=0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition: a smoke run")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append",
                        help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, help="results file (default: bench/results.json for "
                        "a full run; a file in the temp directory for --quick/--only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    chosen = args.only or list(SECTIONS)
    partial = args.quick or args.only is not None
    out = args.out or (Path(tempfile.gettempdir()) / "hilprov-bench-results.json" if partial
                       else RESULTS)

    results: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                     "machine": machine(), "baud": BAUD, "quick": args.quick,
                     "sections": {}, "targets": []}
    box = results["machine"]
    print(f"hilprov benchmark {results['date']} at commit {box['git_commit'] or 'unknown'}: "
          f"{box['cpu_count']} CPUs, Python "
          f"{box['python']}, load average {box['load_average_at_start'][0]:.2f}"
          f"{', quick run' if args.quick else ''}")
    targets: list[Target] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="hilprov-bench-") as tmp:
        for name in chosen:
            title, run, full, quick = SECTIONS[name]
            reps = quick if args.quick else full
            work = Path(tmp) / name
            work.mkdir()
            try:
                rows, section_targets, notes = run(work, reps)
            except Exception as exc:  # report it, run the other sections, exit non-zero
                failed.append(name)
                print(f"\n{title}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
                results["sections"][name] = {"title": title, "error": traceback.format_exc()}
                continue
            print_section(name, title, rows, notes)
            targets += section_targets
            results["sections"][name] = {
                "title": title, "repetitions": reps, "rows": rows, "notes": notes,
                "targets": [t.as_dict() for t in section_targets]}
    print_targets(targets)
    results["targets"] = [t.as_dict() for t in targets]
    results["all_targets_met"] = all(t.met for t in targets) and not failed
    write_results(out, results)
    print(f"\nresults written to {out}")
    if failed:
        return 1
    if args.quick:  # one repetition says the code runs, not how fast it is
        print("quick run: one repetition each; the targets are shown, not judged")
        return 0
    return 0 if results["all_targets_met"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
