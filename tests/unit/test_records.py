"""Device records: one truthful row per attempt, safe with several writers, never a secret."""

import json
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from hilprov.errors import RecordsError
from hilprov.station.flow import FlowResult, StepRecord
from hilprov.station.records import RecordStore, RecordWriter, export, parse_since


def result(board="sim", outcome="in progress", **kwargs) -> FlowResult:
    steps = [StepRecord("check-config", "ok", 0.01), StepRecord("upload", "running")]
    return FlowResult(board=board, board_kind="sim", steps=steps, outcome=outcome, **kwargs)


def test_a_row_is_written_at_start_and_rewritten_after_each_step(tmp_path):
    store = RecordStore(tmp_path / "r.sqlite")
    writer = RecordWriter(store, station="bench-7")
    run = result()
    writer.run_started(run)
    [row] = store.query()
    assert (row["outcome"], row["current_step"], row["station"]) == ("in progress", "upload",
                                                                     "bench-7")
    run.steps[1].status, run.outcome, run.endpoint = "ok", "registered", "ep-1"
    writer.step_finished(run, run.steps[1])
    writer.run_finished(run)
    [row] = store.query()
    assert (row["outcome"], row["endpoint"], row["current_step"]) == ("registered", "ep-1", None)
    assert [s["name"] for s in json.loads(row["steps"])] == ["check-config", "upload"]
    assert row["finished_at"] is not None


def _write_many(path: str, board: str, count: int) -> None:
    writer = RecordWriter(RecordStore(path))
    for _ in range(count):
        run = result(board=board)
        writer.run_started(run)
        run.outcome = "registered"
        writer.run_finished(run)


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, f"board-{i}", 15)) for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    rows = RecordStore(path).query()
    assert len(rows) == 60
    assert {r["board"] for r in rows} == {f"board-{i}" for i in range(4)}
    assert all(r["outcome"] == "registered" for r in rows)


def test_a_killed_run_is_shown_abandoned_at_once_with_the_step_it_was_in(tmp_path):
    """kill -9 a provisioning run while it waits for registration: while it runs the row says
    "in progress"; the very next look at the records says "abandoned" (its process is gone from
    this host) and how far it got — never "in progress" for a run that no longer exists."""
    db = tmp_path / "r.sqlite"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hilprov.board.sim import SimBoard
        from hilprov.station.flow import Timeouts
        from hilprov.station.records import RecordStore, RecordWriter
        from tests.unit.flowkit import make_flow
        from hilprov.sim.board import Faults
        from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
        from tests import CONFIGS
        board = SimBoard("sim", faults=Faults(never_register=True))
        writer = RecordWriter(RecordStore(Path({str(db)!r})))
        make_flow(board, endpoint_cfg=CONFIGS / "endpoint_cfg", initial_hex=INITIAL_IMAGE,
                  final_hex=FINAL_IMAGE, timeouts=Timeouts(registered=120),
                  observers=[writer]).run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(_repo_root()))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = RecordStore(db).query() if db.exists() else []
            if rows and rows[0]["current_step"] == "wait-registered":
                assert rows[0]["outcome"] == "in progress"  # alive: not mistaken for abandoned
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    [row] = RecordStore(db).query()
    assert row["outcome"] == "abandoned" and row["error_kind"] == "abandoned"
    assert row["current_step"] == "wait-registered" and row["finished_at"] is not None
    steps = {s["name"]: s["status"] for s in json.loads(row["steps"])}
    assert steps["read-result"] == "ok" and steps["wait-restored"] == "ok"


def _repo_root():
    from tests import REPO_ROOT

    return REPO_ROOT


def test_a_locked_database_is_retried_at_the_next_step_and_reported_if_it_stays_locked(
        tmp_path):
    store = RecordStore(tmp_path / "r.sqlite", busy_timeout=0.2)
    writer = RecordWriter(store, final_timeout=0.3)
    run = result()
    writer.run_started(run)
    blocker = sqlite3.connect(tmp_path / "r.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    run.steps[1].status = "ok"
    writer.step_finished(run, run.steps[1])  # locked: warned, kept for later
    run.outcome = "registered"
    with pytest.raises(RecordsError, match="ended 'registered' but is not recorded"):
        writer.run_finished(run)
    blocker.execute("ROLLBACK")
    writer.run_finished(run)  # the lock is gone: the row catches up with the truth
    [row] = store.query()
    assert row["outcome"] == "registered"


def test_query_filters_and_exports(tmp_path):
    store = RecordStore(tmp_path / "r.sqlite")
    writer = RecordWriter(store)
    for endpoint, outcome in (("ep-1", "registered"), ("ep-2", "failed"), ("ep-1", "failed")):
        run = result(outcome=outcome, endpoint=endpoint)
        writer.run_started(run)
        writer.run_finished(run)
    assert len(store.query(endpoint="ep-1")) == 2
    assert [r["endpoint"] for r in store.query(failed=True)] == ["ep-2", "ep-1"]
    assert store.query(since=parse_since("1h")) and not store.query(since="2999-01-01")
    rows = json.loads(export(store.query(), "json"))
    assert rows[0]["steps"][0]["name"] == "check-config"
    assert export(store.query(), "csv").splitlines()[0].startswith("id,attempt,started_at")


def test_since_accepts_dates_and_durations():
    assert parse_since("2026-11-26").startswith("2026-11-26T00:00:00")
    assert parse_since("30m") < parse_since("1m")
    with pytest.raises(Exception, match="expected an ISO date"):
        parse_since("yesterday")


def test_unwritable_database_is_a_records_error(tmp_path):
    with pytest.raises(RecordsError, match="cannot"):
        RecordWriter(RecordStore(tmp_path / "no" / "such" / "dir.sqlite")).run_started(result())


def test_reading_a_records_file_that_is_not_there_or_a_bad_since_is_an_error(tmp_path, capsys):
    from hilprov.cli import main

    assert main(["records", "--records", str(tmp_path / "typo.sqlite")]) == 12
    assert "no records database there" in capsys.readouterr().err
    assert not (tmp_path / "typo.sqlite").exists()  # reading creates nothing
    RecordStore(tmp_path / "r.sqlite").ensure_schema()
    assert main(["records", "--records", str(tmp_path / "r.sqlite"), "--since", "abc"]) == 2
    assert "--since 'abc'" in capsys.readouterr().err
