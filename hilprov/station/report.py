"""The line's figures from its records: what a shift produced, per station and for the line.

A unit is an endpoint. Its first attempt is the earliest one in the rows given (the window asked
for); it passed first time if that attempt registered. Per station, the same figures are computed
over that station's attempts alone, so a unit retried at another station counts at both.
`hilprov report --json` prints these figures; `report_page` draws them.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from hilprov.station import process
from hilprov.station.states import Outcome
from hilprov.station.steps import STEP_NAMES

FAILED = (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.ABANDONED)


def when(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None


def _ordered(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["started_at"] or "", r.get("id") or 0))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _kind(row: dict) -> str:
    return row.get("error_kind") or str(row["outcome"])


def figures(rows: list[dict]) -> dict:
    """The figures of these attempts (one line or one station's)."""
    rows = _ordered(rows)
    by_unit: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("endpoint"):
            by_unit[row["endpoint"]].append(row)
    registered = {ep for ep, tries in by_unit.items()
                  if any(t["outcome"] == Outcome.REGISTERED for t in tries)}
    provisioned = {ep for ep, tries in by_unit.items()
                   if any(t["outcome"] in (Outcome.REGISTERED, Outcome.PROVISIONED)
                          for t in tries)}
    first_pass = sum(tries[0]["outcome"] == Outcome.REGISTERED for tries in by_unit.values())
    failures = Counter(_kind(r) for r in rows if r["outcome"] in FAILED)
    units = len(by_unit)
    return {
        "attempts": len(rows),
        "in_progress": sum(r["outcome"] == Outcome.IN_PROGRESS for r in rows),
        "units": units,
        "registered": len(registered),
        "provisioned": len(provisioned),
        "first_pass_yield": _ratio(first_pass, units),
        "final_yield": _ratio(len(registered), units),
        "failures": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        "attempts_without_unit": sum(1 for r in rows
                                     if not r.get("endpoint") and r["outcome"] in FAILED),
    }


def line_figures(rows: list[dict], *, since: str | None = None) -> dict:
    """The line's figures, the same per station, units per hour, time per step and the units
    that did not register."""
    stations = sorted({r["station"] for r in rows})
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since,
        **figures(rows),
        "stations": {s: figures([r for r in rows if r["station"] == s]) for s in stations},
        "hourly": hourly(rows),
        "steps": step_times(rows),
        "failed_units": failed_units(rows),
    }
    return result


def _hour(moment: datetime) -> str:
    return moment.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")


def hourly(rows: list[dict]) -> list[dict]:
    """Per hour (UTC) that had any attempt: attempts started, and units registered (at the end
    of their first registered attempt), per station."""
    hours: dict[str, dict] = {}

    def slot(moment: datetime) -> dict:
        return hours.setdefault(_hour(moment), {"attempts": 0, "registered": Counter()})

    done: set[str] = set()
    for row in _ordered(rows):
        slot(when(row["started_at"]))["attempts"] += 1
        endpoint = row.get("endpoint")
        if row["outcome"] == Outcome.REGISTERED and endpoint and endpoint not in done:
            done.add(endpoint)
            slot(when(row["finished_at"] or row["started_at"]))["registered"][row["station"]] += 1
    return [{"hour": hour, "attempts": value["attempts"],
             "registered": sum(value["registered"].values()),
             "by_station": dict(sorted(value["registered"].items()))}
            for hour, value in sorted(hours.items())]


def step_seconds(rows: list[dict]) -> dict[str, list[float]]:
    """Every finished step's duration, by step, in the flow's order."""
    seconds: dict[str, list[float]] = {name: [] for name in STEP_NAMES}
    for row in rows:
        for step in json.loads(row.get("steps") or "[]"):
            if step.get("status") in ("ok", "failed") and step.get("name") in seconds:
                seconds[step["name"]].append(float(step.get("seconds") or 0.0))
    return {name: values for name, values in seconds.items() if values}


def step_times(rows: list[dict]) -> dict[str, dict]:
    """Per step: how many ran, and the median, 90th percentile and longest time in seconds."""
    result = {}
    for name, values in step_seconds(rows).items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        result[name] = {"count": len(values), "median": round(statistics.median(values), 3),
                        "p90": round(p90, 3), "max": round(ordered[-1], 3)}
    return result


def failed_units(rows: list[dict]) -> list[dict]:
    """The units without a registered attempt (their last attempt), then the attempts that
    failed before their endpoint was read; `log` is the serial log when this machine has it."""
    last: dict[str, dict] = {}
    tries: Counter = Counter()
    registered = set()
    for row in _ordered(rows):
        endpoint = row.get("endpoint")
        if not endpoint:
            continue
        tries[endpoint] += 1
        last[endpoint] = row
        if row["outcome"] == Outcome.REGISTERED:
            registered.add(endpoint)
    chosen = [(ep, row) for ep, row in last.items()
              if ep not in registered and row["outcome"] in FAILED]
    chosen += [(None, row) for row in _ordered(rows)
               if not row.get("endpoint") and row["outcome"] in FAILED]
    return [{"endpoint": endpoint, "attempts": tries[endpoint] if endpoint else 1,
             "station": row["station"], "board": row["board"], "started_at": row["started_at"],
             "step": row.get("current_step"), "error_kind": _kind(row), "error": row.get("error"),
             "log": local_log(row)} for endpoint, row in chosen]


def local_log(row: dict) -> str | None:
    """The attempt's serial log, if it was written on this machine and is still there."""
    path = row.get("log_path")
    if not path or (row.get("host") and row["host"] != process.host()):
        return None
    return path if Path(path).is_file() else None


def summary_lines(report: dict) -> list[str]:
    """The figures as a few lines of text (`hilprov report` without --html or --json)."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    head = (f"{'station':<16} {'attempts':>8} {'units':>6} {'registered':>10} {'first pass':>10} "
            f"{'final':>7}  top failure")
    lines = [head]
    groups = [*report["stations"].items(), ("(line)", report)]
    for name, fig in groups:
        top = next(iter(fig["failures"].items()), None)
        lines.append(f"{name:<16} {fig['attempts']:>8} {fig['units']:>6} {fig['registered']:>10} "
                     f"{pct(fig['first_pass_yield']):>10} {pct(fig['final_yield']):>7}  "
                     + (f"{top[0]} ({top[1]})" if top else "-"))
    return lines
