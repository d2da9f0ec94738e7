"""The records on both back ends, SQLite and a real PostgreSQL server: one schema, the same rows
and exports, the line's rules claimed in the database under a race, abandoned rows found by
process (this host) or by lease (other hosts), and a database that goes away mid-run."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time

import pytest

from hilprov.board.sim import SimBoard
from hilprov.cloud.coiote import CoioteClient
from hilprov.errors import RecordsError
from hilprov.sim.cloud import CloudView
from hilprov.sim.coiote_server import CoioteServer
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station import process, schema
from hilprov.station.cloud import CloudTarget
from hilprov.station.flow import FlowObserver, FlowResult, ProvisioningFlow, StepRecord, Timeouts
from hilprov.station.records import RecordStore, RecordWriter, export, row_from_result
from tests import CONFIGS
from tests.unit.flowkit import split
from tests.unit.pgserver import CuttableProxy

TOKEN = "records-test-token"
FAST = Timeouts(ready=10, prompt=2, smp=2.0, result=15, restored=10, registered=10)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """A records database of each kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "records.sqlite")
    return request.getfixturevalue("postgres_url")


def result(board="sim", outcome="in progress", **kwargs) -> FlowResult:
    steps = [StepRecord("check-config", "ok", 0.01), StepRecord("upload", "running")]
    return FlowResult(board=board, board_kind="sim", steps=steps, outcome=outcome, **kwargs)


def columns(store: RecordStore) -> list[str]:
    with store.db.reading() as session:
        if store.db.kind == "sqlite":
            return [r["name"] for r in session.execute("PRAGMA table_info(attempts)")]
        return [r["column_name"] for r in session.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'attempts' "
            "AND table_schema = current_schema() ORDER BY ordinal_position")]


# -- one schema, the same rows ---------------------------------------------------------------------
def test_both_back_ends_have_the_same_schema_version_and_columns(target):
    store = RecordStore(target)
    store.ensure_schema()
    assert columns(store) == list(schema.COLUMNS)
    with store.db.reading() as session:
        assert store.db.tables(session) >= {"attempts", "identities", "endpoints",
                                            "schema_version"}
        assert session.execute("SELECT version FROM schema_version") == [
            {"version": schema.VERSION}]
    RecordStore(target).ensure_schema()  # current: nothing to do, nothing lost


def test_a_row_is_kept_truthful_and_exports_the_same_fields_on_both(target):
    store = RecordStore(target)
    writer = RecordWriter(store, station="line-2")
    run = result(endpoint="ep-1")
    writer.run_started(run)
    [row] = store.query()
    assert (row["outcome"], row["current_step"], row["station"]) == ("in progress", "upload",
                                                                     "line-2")
    run.steps[1].status, run.outcome = "ok", "registered"
    run.seconds = 1.25
    writer.run_finished(run)
    [exported] = json.loads(export(store.query(), "json"))
    assert set(exported) == set(schema.COLUMNS)
    assert (exported["endpoint"], exported["station"], exported["outcome"]) == (
        "ep-1", "line-2", "registered")
    assert [s["name"] for s in exported["steps"]] == ["check-config", "upload"]
    assert exported["seconds"] == 1.25 and exported["exit_code"] == 0
    assert isinstance(exported["id"], int) and exported["host"] == process.host()


def test_a_first_release_sqlite_file_is_migrated_and_its_rows_kept(tmp_path):
    """The first release wrote only `attempts` (23 columns, no schema_version); its rows stay,
    its registered endpoints are held so the line does not provision them again."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(schema.statements(schema.MIGRATIONS[0], schema.SQLITE)[0])
    conn.execute("INSERT INTO attempts (attempt, started_at, finished_at, station, source, "
                 "board, board_kind, endpoint, steps, outcome, exit_code, seconds, "
                 "hilprov_version) VALUES ('a1', '2026-01-05T08:00:00.000+00:00', "
                 "'2026-01-05T08:01:00.000+00:00', 'bench-1', 'cli', '960012345', 'nordic', "
                 "'ep-old', '[]', 'registered', 0, 60.0, '0.1.0')")
    conn.commit()
    conn.close()
    store = RecordStore(path)
    [row] = store.query()
    assert (row["attempt"], row["endpoint"], row["station"], row["outcome"]) == (
        "a1", "ep-old", "bench-1", "registered")
    assert columns(store) == list(schema.COLUMNS) and row["log_path"] is None
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT version FROM schema_version").fetchall() == [
            (schema.VERSION,)]
    holder = store.endpoint_holder("ep-old", "a2")
    assert holder is not None and (holder.attempt, holder.outcome) == ("a1", "registered")


# -- the line's rules ------------------------------------------------------------------------------
def test_an_endpoint_is_held_by_its_provisioning_unless_reprovisioning_is_asked(target):
    store = RecordStore(target)
    writer = RecordWriter(store, station="S1")
    first = result(endpoint="ep-1")
    writer.run_started(first)
    assert store.endpoint_holder("ep-1", first.attempt, station="S1") is None
    assert store.endpoint_holder("ep-1", first.attempt, station="S1") is None  # again: mine
    busy = store.endpoint_holder("ep-1", "other", station="S2", reprovision=True)
    assert busy is not None and busy.running and busy.station == "S1"  # running: never shared
    first.outcome = "registered"
    writer.run_finished(first)
    done = store.endpoint_holder("ep-1", "second", station="S2")
    assert done is not None and (done.outcome, done.attempt) == ("registered", first.attempt)
    assert store.endpoint_holder("ep-1", "second", station="S2", reprovision=True) is None
    # A failed holder gives the endpoint up.
    failed = result(endpoint="ep-2", outcome="failed")
    writer.run_started(failed)
    store.endpoint_holder("ep-2", failed.attempt)
    writer.run_finished(failed)
    assert store.endpoint_holder("ep-2", "retry") is None


def _race(target: str, endpoint: str, digest: str, barrier, results) -> None:
    store = RecordStore(target)
    writer = RecordWriter(store, station=f"S-{multiprocessing.current_process().name}",
                          heartbeat=3600)
    run = result(endpoint=endpoint)
    writer.run_started(run)
    barrier.wait(60)
    holder = store.endpoint_holder("the-unit", run.attempt, station=writer.station)
    owner = store.claim_identity(digest, endpoint, run.attempt)
    results.put((holder is None, owner))
    barrier.wait(60)  # every claim is made while every racer still runs


def test_racing_processes_get_an_endpoint_and_an_identity_once(target):
    """Six processes at once ask for one endpoint and one PSK identity (each for its own
    endpoint name): the database gives each to exactly one."""
    RecordStore(target).ensure_schema()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(target, f"ep-{i}", "digest-1", barrier, results),
                         name=f"p{i}") for i in range(6)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert sum(won for won, _ in got) == 1
    owners = {owner for _, owner in got}
    assert len([o for _, o in got if o is None]) == 1 and len(owners - {None}) == 1
    with RecordStore(target).db.reading() as session:
        assert len(session.execute("SELECT * FROM endpoints")) == 1
        assert len(session.execute("SELECT * FROM identities")) == 1


# -- abandoned rows ------------------------------------------------------------------------------
def test_another_hosts_row_is_abandoned_once_its_heartbeat_is_older_than_the_lease(target):
    store = RecordStore(target, lease=60)
    now = time.time()
    for attempt, age in (("stale", 61), ("fresh", 5)):
        row = row_from_result(result(endpoint=attempt), "cli", "S9")
        row.update(attempt=attempt, host="station-9", pid=4242,
                   updated_at=_iso(now - age), started_at=_iso(now - 600))
        store.write(row)
    rows = {r["attempt"]: r for r in store.query()}
    assert rows["fresh"]["outcome"] == "in progress"
    assert rows["stale"]["outcome"] == "abandoned"
    assert "no heartbeat from host station-9" in rows["stale"]["error"]
    assert store.endpoint_holder("stale", "mine") is None  # its endpoint is free again


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def test_the_heartbeat_refreshes_a_running_attempt_during_a_long_step(target):
    store = RecordStore(target)
    writer = RecordWriter(store, heartbeat=0.2)
    run = result()
    writer.run_started(run)
    [first] = store.query()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # no step ends: only the heartbeat writes
        [now] = store.query()
        if now["updated_at"] > first["updated_at"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the heartbeat never refreshed the row")
    run.outcome = "registered"
    writer.run_finished(run)
    deadline = time.monotonic() + 30
    while writer._beating is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer._beating is None  # nothing runs: no thread left behind


# -- a database that is not there, or goes away -------------------------------------------
def test_a_database_down_at_start_is_a_records_error_that_shows_no_password(postgres_server):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    url = postgres_server.url("nothing", port=closed)
    with pytest.raises(RecordsError) as info:
        RecordStore(url).ensure_schema()
    message = str(info.value)
    assert "cannot connect" in message and postgres_server.password not in message
    assert f"postgresql://hilprov:***@127.0.0.1:{closed}/nothing" in message
    assert info.value.exit_code == 12


class Cutter(FlowObserver):
    """Cuts the line to the database when `step` starts; mends it `after` seconds later (never,
    for None)."""

    def __init__(self, proxy: CuttableProxy, step: str, after: float | None) -> None:
        self.proxy, self.step, self.after = proxy, step, after

    def step_started(self, result, step) -> None:
        if step.name == self.step:
            self.proxy.cut()
            if self.after is not None:
                threading.Timer(self.after, self.proxy.mend).start()


@pytest.fixture
def coiote():
    """The Coiote the flow onboards into, which the virtual board checks at registration."""
    with CoioteServer(token=TOKEN) as server, \
            CoioteClient(server.url, TOKEN, timeout=5.0) as client:
        yield server, client


def run_cut(tmp_path, url: str, coiote, *, final_timeout: float):
    inputs, options = split(endpoint_cfg=CONFIGS / "endpoint_cfg", initial_hex=INITIAL_IMAGE,
                            final_hex=FINAL_IMAGE, timeouts=FAST)
    store = RecordStore(url)
    writer = RecordWriter(store, station="S1", final_timeout=final_timeout)
    board = SimBoard("sim", state_dir=tmp_path / "state", cloud=CloudView(coiote[0].url, TOKEN))
    flow = ProvisioningFlow(board, inputs, options, observers=[writer], history=store,
                            cloud=CloudTarget(coiote[1], "/embedded/", TOKEN))
    return flow, board


@pytest.mark.parametrize("mend_after", [1.5, None], ids=["comes-back", "stays-away"])
def test_a_database_that_goes_away_mid_run_gets_the_row_when_it_comes_back(
        tmp_path, postgres_server, postgres_url, coiote, mend_after, caplog):
    proxy = CuttableProxy(postgres_server.port)
    try:
        flow, board = run_cut(tmp_path, proxy.url(postgres_url), coiote, final_timeout=6.0)
        flow.observers.insert(0, Cutter(proxy, "upload", mend_after))
        try:
            if mend_after is None:
                with pytest.raises(RecordsError) as info:
                    flow.run()
            else:
                result = flow.run()
        finally:
            board.close()
        if mend_after is None:
            rows = RecordStore(postgres_url).query()  # what the line sees meanwhile
            proxy.mend()  # the database is back: this station's next read writes the kept row
            [kept] = RecordStore(proxy.url(postgres_url)).query()
            assert (kept["attempt"], kept["outcome"]) == (flow.result.attempt, "registered")
    finally:
        proxy.close()
    if mend_after is not None:
        rows = RecordStore(postgres_url).query()
    if mend_after is not None:
        assert result.outcome == "registered", result.error
        [row] = rows
        assert (row["outcome"], row["endpoint"]) == ("registered", result.endpoint)
        assert json.loads(row["steps"])[-1]["name"] == "wait-registered"
        warned = [r for r in caplog.records if r.levelname == "WARNING"
                  and "will retry at the next step" in r.getMessage()]
        assert len(warned) == 1, warned  # the writes during the cut: warned once
        assert "records written again" in caplog.text
        return
    message = str(info.value)
    assert flow.result.outcome == "registered"
    assert f"unit {flow.result.endpoint} is provisioned, onboarded and registered" in message
    assert "ended 'registered' but is not recorded" in message
    assert "the row is kept in" in message
    assert postgres_server.password not in message and info.value.exit_code == 12
    [row] = rows  # the last row written before the cut: it never claims "registered"
    assert row["outcome"] == "in progress"
