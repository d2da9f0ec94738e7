"""The line report: its figures against a records database filled with known rows (on SQLite and
PostgreSQL), `hilprov report --json/--html`, and the page rendered in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hilprov.cli import main
from hilprov.station import process
from hilprov.station.flow import STEP_NAMES
from hilprov.station.records import RecordStore

SHIFT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STEP_TIME = {"flash-initial": 6.0, "wait-ready": 1.0, "read-endpoint": 0.2, "build-blob": 0.05,
             "upload": 2.5, "read-result": 1.5, "onboard": 0.8, "flash-final": 7.0,
             "wait-restored": 1.0, "wait-registered": 24.0}


def _stamp(minutes: float) -> str:
    return (SHIFT + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def _steps(outcome: str, failed_at: str | None, slow: float) -> str:
    steps = []
    for name in STEP_NAMES:
        status = "failed" if name == failed_at else "ok"
        steps.append({"name": name, "status": status, "detail": "",
                      "seconds": STEP_TIME.get(name, 0.01) * slow})
        if name == failed_at:
            break
    return json.dumps(steps)


def row(number: int, station: str, endpoint: str | None, minute: float, outcome: str,
        error_kind: str | None = None, step: str | None = None, **extra) -> dict:
    finished = minute + 1
    return {"attempt": f"attempt-{number:02d}", "started_at": _stamp(minute),
            "finished_at": _stamp(finished), "station": station, "source": "cli",
            "board": f"sim-{number % 2 + 1}", "board_kind": "sim", "endpoint": endpoint,
            "steps": _steps(outcome, step, 1 + number / 20), "outcome": outcome,
            "error_kind": error_kind, "current_step": step,
            "error": f"{error_kind} at {step}" if error_kind else None,
            "exit_code": 0 if outcome == "registered" else 9, "seconds": 40.0,
            "hilprov_version": "test", "host": process.host(), "pid": 1,
            "updated_at": _stamp(finished), **extra}


def known_rows(log: Path) -> list[dict]:
    """A shift on two stations. Units a..g; b retried at S1, f failed at S2 and registered at S1;
    c rejected (log on this machine), g interrupted (log on another host); two attempts failed
    before their endpoint was read."""
    return [
        row(1, "S1", "ep-a", 5, "registered"),
        row(2, "S2", "ep-d", 10, "registered"),
        row(3, "S1", "ep-b", 20, "failed", "not registered", "wait-registered"),
        row(4, "S2", "ep-e", 40, "registered"),
        row(5, "S2", "ep-f", 60, "failed", "cloud error", "onboard"),
        row(6, "S1", "ep-b", 70, "registered"),
        row(7, "S1", "ep-c", 90, "failed", "device rejected", "read-result",
            log_path=str(log)),
        row(8, "S1", None, 120, "failed", "board error", "wait-ready"),
        row(9, "S1", "ep-f", 150, "registered"),
        row(10, "S2", "ep-g", 165, "interrupted", "interrupted", "upload",
            host="another-station", log_path="/var/log/elsewhere.log"),
        row(11, "S2", None, 190, "failed", "board error", "wait-ready"),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request, tmp_path) -> tuple[str, Path]:
    """A records database holding `known_rows`, and the local serial log one of them names."""
    target = (str(tmp_path / "records.sqlite") if request.param == "sqlite"
              else request.getfixturevalue("postgres_url"))
    log = tmp_path / "logs" / "sim-2.log"
    log.parent.mkdir()
    log.write_text("*** Booting Zephyr OS ***\n")
    store = RecordStore(target)
    for each in known_rows(log):
        store.write(each)
    return target, log


LINE = {"attempts": 11, "units": 7, "registered": 5, "first_pass_yield": round(3 / 7, 4),
        "final_yield": round(5 / 7, 4), "attempts_without_unit": 2, "in_progress": 0,
        "failures": {"board error": 2, "cloud error": 1, "device rejected": 1,
                     "interrupted": 1, "not registered": 1}}
S1 = {"attempts": 6, "units": 4, "registered": 3, "first_pass_yield": 0.5,
      "final_yield": 0.75, "attempts_without_unit": 1,
      "failures": {"board error": 1, "device rejected": 1, "not registered": 1}}
S2 = {"attempts": 5, "units": 4, "registered": 2, "first_pass_yield": 0.5, "final_yield": 0.5,
      "attempts_without_unit": 1,
      "failures": {"board error": 1, "cloud error": 1, "interrupted": 1}}


def report_json(capsys, *argv: str) -> dict:
    assert main(["report", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_figures_match_the_rows_for_the_line_and_each_station(filled, capsys):
    target, log = filled
    got = report_json(capsys, "--records", target)
    assert {k: got[k] for k in LINE} == LINE
    assert list(got["failures"]) == list(LINE["failures"])  # Pareto order: most first
    assert set(got["stations"]) == {"S1", "S2"}
    assert {k: got["stations"]["S1"][k] for k in S1} == S1
    assert {k: got["stations"]["S2"][k] for k in S2} == S2
    assert [(h["hour"][11:16], h["attempts"], h["by_station"]) for h in got["hourly"]] == [
        ("08:00", 4, {"S1": 1, "S2": 2}), ("09:00", 3, {"S1": 1}), ("10:00", 3, {"S1": 1}),
        ("11:00", 1, {})]
    steps = got["steps"]
    assert max(steps, key=lambda n: steps[n]["median"]) == "wait-registered"
    assert steps["wait-registered"]["count"] == 6  # five registered, one failed there
    failed = [(u["endpoint"], u["error_kind"], u["log"]) for u in got["failed_units"]]
    assert failed == [("ep-c", "device rejected", str(log)), ("ep-g", "interrupted", None),
                      (None, "board error", None), (None, "board error", None)]


def test_since_and_station_narrow_the_figures(filled, capsys):
    target, _ = filled
    only = report_json(capsys, "--records", target, "--station", "S2")
    assert set(only["stations"]) == {"S2"}
    assert {k: only[k] for k in S2} == S2
    later = report_json(capsys, "--records", target, "--since", "2026-11-26T09:00")
    assert (later["attempts"], later["units"], later["registered"]) == (7, 4, 2)
    assert later["since"].startswith("2026-11-26T09:00")


def test_an_empty_database_gives_empty_figures_not_an_error(tmp_path, capsys):
    assert main(["report", "--records", str(tmp_path / "typo.sqlite")]) == 12  # no such file
    assert "no records database there" in capsys.readouterr().err
    RecordStore(tmp_path / "none.sqlite").ensure_schema()  # a station that recorded nothing yet
    got = report_json(capsys, "--records", str(tmp_path / "none.sqlite"))
    assert (got["attempts"], got["units"], got["first_pass_yield"], got["stations"]) == (
        0, 0, None, {})
    assert main(["report", "--records", str(tmp_path / "none.sqlite"), "--html",
                 str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert text.count("<svg") == 3 and "no attempts in this window" in text  # the chart says so
    assert "No failed unit in this window." in text


def test_without_html_or_json_a_short_table(filled, capsys):
    target, _ = filled
    assert main(["report", "--records", target]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["station", "attempts", "units"]
    assert out[-1].split()[:6] == ["(line)", "11", "7", "5", "42.9%", "71.4%"]


def _page(tmp_path, target: str) -> tuple[Path, str]:
    out = tmp_path / "report.html"
    assert main(["report", "--records", target, "--html", str(out)]) == 0
    return out, out.read_text()


def test_the_page_is_self_contained_and_shows_the_figures(filled, tmp_path):
    target, log = filled
    out, text = _page(tmp_path, target)
    assert text.count("<svg") == 3
    for chart in ("units-per-hour", "failures-pareto", "time-per-step"):
        assert f'data-chart="{chart}"' in text
    # Nothing is fetched: no script, stylesheet, image or font from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    assert not re.search(r"""(src|href)=["']?https?:""", text)
    assert not re.search(r"url\((?!#)", text) and "@import" not in text  # only its own ids
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # three charts in one page: no id used twice
    assert "ep-c" in text and html.escape("device rejected at read-result") in text
    assert f'href="{log.resolve().as_uri()}"' in text  # the log on this machine is linked
    assert "elsewhere.log" not in text  # another host's log is not
    assert "42.9%" in text and "71.4%" in text


def test_the_slowest_step_is_named_in_red_and_no_time_is_drawn_below_zero(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite")
    for each in known_rows(tmp_path / "sim-2.log"):
        store.write(each)
    _, text = _page(tmp_path, str(tmp_path / "records.sqlite"))
    chart = re.search(r'data-chart="time-per-step".*?</svg>', text, re.S).group(0)
    red = chart.count("fill: #d62728")
    assert red >= 2, red  # wait-registered's box and its name (a box of equal times is a line)
    ticks = re.findall(r"<!-- \$\\mathdefault\{(.*?)\}\$ -->", chart)  # the axis labels
    assert "0" in ticks and not any(t.startswith(("-", "\N{MINUS SIGN}")) for t in ticks), ticks


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None,
                    reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_the_page_renders_in_headless_chromium_with_its_charts(tmp_path, capsys):
    """The page loads offline in a real browser, with no error and nothing it failed to load;
    the DOM it built holds the three charts and the figures; a screenshot is taken."""
    store_path = tmp_path / "records.sqlite"
    log = tmp_path / "sim-2.log"
    log.write_text("log\n")
    store = RecordStore(store_path)
    for each in known_rows(log):
        store.write(each)
    page, _ = _page(tmp_path, str(store_path))
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0"]

    def run(*argv: str, profile: str) -> subprocess.CompletedProcess:
        return subprocess.run([*browser, f"--user-data-dir={tmp_path / profile}", *argv,
                               page.as_uri()], capture_output=True, text=True, timeout=180)

    dom = run("--dump-dom", profile="dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h1>Line report</h1>" in dom.stdout
    for chart in ("units-per-hour", "failures-pareto", "time-per-step"):
        svg = re.search(rf'<figure id="{chart}">.*?</figure>', dom.stdout, re.S)
        assert svg is not None and svg.group(0).count("<path") > 10, chart
    assert re.search(r"<td>line</td><td>11</td><td>7</td><td>5</td><td>42.9%</td>"
                     r"<td>71.4%</td>", dom.stdout)
    for failure in ("Failed to load resource", "Uncaught", "net::ERR_"):
        assert failure not in dom.stderr, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    taken = run(f"--screenshot={shot}", "--window-size=1200,2600", "--hide-scrollbars",
                profile="shot")
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
