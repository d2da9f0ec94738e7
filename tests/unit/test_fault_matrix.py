"""The fault matrix: one row per fault, with the outcome it must end in and how long it may take.

Every row runs the whole station flow (virtual board on a real pty, local Coiote server over real
HTTP, records in a real SQLite file) with one fault injected, then checks three things:

* the outcome: recovered ("registered"), or the specific error kind, exit code and failing step;
* the time bound: the attempt ends within `bound` seconds (nothing retries forever);
* the record tells the truth: the attempt's SQLite row has the same outcome, error kind, error,
  exit code, failing step and step list as the FlowResult.

Each row also proves its fault really happened (a counter on the device or the server), so a
row cannot pass because the fault silently did not fire.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hilprov.board.sim import SimBoard
from hilprov.cloud.coiote import CoioteClient
from hilprov.core.certs import generate_self_signed
from hilprov.errors import RecordsError
from hilprov.sim.board import Faults
from hilprov.sim.cloud import coiote_registrar
from hilprov.sim.coiote_server import CoioteServer
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station.flow import FlowResult, ProvisioningFlow, Timeouts
from hilprov.station.records import RecordStore, RecordWriter
from tests import CONFIGS
from tests.unit.flowkit import make_flow

ENDPOINT = "anjay-zephyr-demo-351234567890123"
TOKEN = "fault-matrix-token"
# smp 0.6 s: long enough that a loaded CI machine does not time out by itself, short enough that
# the rows whose fault costs one SMP timeout stay around a second.
TIMEOUTS = Timeouts(ready=5, prompt=1, smp=0.6, result=10, restored=5, registered=5)
# PSK blob (192 bytes): SMP request 1 reads the MCUmgr parameters, 2 downloads endpoint.txt,
# 3 uploads provision.cbor in lines 3-5, 4 downloads result.txt.
ENDPOINT_REQUEST, UPLOAD_REQUEST, UPLOAD_MIDDLE_LINE = 2, 3, 4


@dataclass
class Run:
    """Everything a row's extra check may look at."""

    result: FlowResult
    flow: ProvisioningFlow
    board: SimBoard
    server: CoioteServer
    sleeps: list[float]
    failed_record_writes: int
    seconds: float

    def posts(self) -> int:
        return sum(1 for r in self.server.requests if r.method == "POST")

    def stat(self, name: str) -> int:
        return self.board.device.stats.get(name, 0)


@dataclass(frozen=True)
class Row:
    fault: str
    outcome: str  # "registered", or "failed" with the fields below
    error_kind: str | None = None
    exit_code: int = 0
    failed_step: str | None = None
    bound: float = 10.0  # seconds the whole attempt may take
    faults: Faults = field(default_factory=Faults)
    cert: bool = False
    timeouts: Timeouts = field(default_factory=lambda: TIMEOUTS)
    cloud: Callable[[CoioteServer], object] | None = None  # injects faults into the server
    client: dict = field(default_factory=dict)  # CoioteClient overrides
    records_locked_for: float | None = None  # another writer holds BEGIN EXCLUSIVE this long
    check: Callable[[Run], None] | None = None  # proves the fault fired, and more


def smp_retried(run: Run) -> None:
    assert run.flow.smp.timeouts >= 1, "the fault should have cost at least one SMP timeout"


def check_dropped(run: Run) -> None:
    assert run.stat("lines dropped (fault injection)") == 1
    smp_retried(run)


def check_bad_crc(run: Run) -> None:
    assert run.stat("frames dropped (bad CRC)") == 1
    smp_retried(run)


def check_bad_base64(run: Run) -> None:
    assert run.stat("frames dropped (line is not valid base64)") == 1
    smp_retried(run)


def check_duplicated(run: Run) -> None:
    assert run.stat("responses duplicated (fault injection)") == 2
    assert run.flow.smp.timeouts == 0, "a duplicated response must be skipped, not retried"


def check_stalled(run: Run) -> None:
    assert run.stat("requests stalled") == 1
    smp_retried(run)


def check_stalled_upload(run: Run) -> None:
    check_stalled(run)
    outcome = run.board.device.attempts[-1]
    assert outcome.bytes_consumed == run.result.blob_size  # the write was not appended twice


def check_reset(run: Run) -> None:
    assert run.result.blob_size > 1024  # three writes: the reset comes in the second
    assert run.stat("boots") == 2  # the initial image's boot, then the reset
    assert "the device restarted during the upload" in run.result.error
    assert "re-run" in run.result.error


def check_no_ready(run: Run) -> None:
    assert "Device ready for provisioning" in run.result.error
    assert run.result.log_path and run.result.log_path in run.result.error


def check_never_registered(run: Run) -> None:
    assert run.result.step("wait-restored").status == "ok"
    assert run.board.device.registrations == []


def check_500(run: Run) -> None:
    assert run.posts() == 1, "a 500 is not retried"
    assert "Coiote server error (500)" in run.result.error and ENDPOINT in run.result.error


def check_503_then_ok(run: Run) -> None:
    assert run.posts() == 3 and len(run.sleeps) == 2
    assert run.result.coiote == "created"


def check_retry_after(run: Run) -> None:
    assert run.posts() == 2
    assert run.sleeps == [1.0], "the client must wait exactly what Retry-After says"
    assert run.result.step("onboard").seconds >= 1.0


def check_slow(run: Run) -> None:
    assert run.posts() == 2
    assert "gave no usable answer after 2 attempts" in run.result.error
    assert "Timeout" in run.result.error
    assert run.result.step("onboard").seconds < 2.0


def check_locked(run: Run) -> None:
    assert run.failed_record_writes >= 1, "the lock should have made some writes wait"


MATRIX = [
    Row("SMP line dropped in the middle of the upload", "registered", bound=8,
        faults=Faults(drop_lines=frozenset({UPLOAD_MIDDLE_LINE})), check=check_dropped),
    Row("SMP line with a bad CRC", "registered", bound=8,
        faults=Faults(corrupt_lines={UPLOAD_MIDDLE_LINE: "crc"}), check=check_bad_crc),
    Row("SMP line that is not base64", "registered", bound=8,
        faults=Faults(corrupt_lines={UPLOAD_MIDDLE_LINE: "base64"}), check=check_bad_base64),
    Row("SMP responses sent twice (endpoint read and upload)", "registered", bound=8,
        faults=Faults(duplicate_responses=frozenset({ENDPOINT_REQUEST, UPLOAD_REQUEST})),
        check=check_duplicated),
    Row("device stalls 1.3 s (> SMP timeout) on a download", "registered", bound=8,
        faults=Faults(stall_requests={ENDPOINT_REQUEST: 1.3}), check=check_stalled),
    Row("device stalls 4 s (> all SMP retries) on a download", "failed", "transfer error", 8,
        "read-endpoint", bound=6, faults=Faults(stall_requests={ENDPOINT_REQUEST: 4.0}),
        check=check_stalled),
    Row("device stalls 1.3 s (> SMP timeout) on the provision.cbor write", "registered",
        bound=8, faults=Faults(stall_requests={UPLOAD_REQUEST: 1.3}), check=check_stalled_upload),
    Row("reset in the middle of a 3-write Certificate-mode upload", "failed", "transfer error",
        8, "upload", bound=8, cert=True,
        faults=Faults(reset_after_provision_bytes=600, eof_idle=1.0), check=check_reset),
    Row("initial image never prints the ready line", "failed", "board error", 7, "wait-ready",
        bound=4, faults=Faults(no_ready_line=True),
        timeouts=Timeouts(ready=0.5, prompt=1, smp=0.6), check=check_no_ready),
    Row("final image restores but never registers", "failed", "not registered", 11,
        "wait-registered", bound=6, faults=Faults(never_register=True),
        timeouts=Timeouts(ready=5, prompt=1, smp=0.6, restored=5, registered=1.0),
        check=check_never_registered),
    Row("Coiote answers 500 to every request", "failed", "cloud error", 6, "onboard", bound=5,
        cloud=lambda s: s.inject(500, times=50, method="POST"), check=check_500),
    Row("Coiote answers 503 twice, then works", "registered", bound=6,
        cloud=lambda s: s.inject(503, times=2, method="POST"), check=check_503_then_ok),
    Row("Coiote answers 429 with Retry-After: 1", "registered", bound=7,
        cloud=lambda s: s.inject(429, retry_after=1, method="POST"), check=check_retry_after),
    Row("Coiote answers slower than the client's 0.3 s timeout", "failed", "cloud error", 6,
        "onboard", bound=5, cloud=lambda s: s.inject(delay=3.0, times=10, method="POST"),
        client={"timeout": 0.3, "max_attempts": 2}, check=check_slow),
    Row("records database held by another writer (BEGIN EXCLUSIVE) for 2 s", "registered",
        bound=8, records_locked_for=2.0, check=check_locked),
]


# -- running one row ------------------------------------------------------------------------------
class CountingStore(RecordStore):
    """The real store; counts the writes that failed (the lock made them time out)."""

    failed = 0

    def write(self, row: dict, timeout: float | None = None) -> None:
        try:
            super().write(row, timeout)
        except RecordsError:
            self.failed += 1
            raise


class ExclusiveWriter:
    """Another process's writer: creates the records table, then holds BEGIN EXCLUSIVE."""

    def __init__(self, path, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.locked, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True, name="exclusive-writer")

    def __enter__(self) -> ExclusiveWriter:
        self.thread.start()
        assert self.locked.wait(5), "the competing writer never got its lock"
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(5)

    def _hold(self) -> None:
        RecordStore(self.path).ensure_schema()
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.locked.set()
            self.done.wait(self.seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()


@pytest.fixture
def server():
    with CoioteServer(token=TOKEN) as running:
        yield running


@pytest.fixture
def server_cert(tmp_path):
    path = tmp_path / "server.der"
    path.write_bytes(generate_self_signed({"commonName": "server"}, None).cert_der)
    return path


def run_row(row: Row, tmp_path, server: CoioteServer, server_cert) -> Run:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    settings = {"timeout": 2.0, "max_attempts": 4, "max_total_time": 10.0,
                "backoff_base": 0.05, "jitter": 0.0, **row.client}
    client = CoioteClient(server.url, TOKEN, sleep=sleep, **settings)
    mode = ({"endpoint_cfg": CONFIGS / "endpoint_cfg_cert", "cert_info": CONFIGS /
             "cert_info.json", "server_cert": server_cert, "cert_dir": tmp_path / "cert"}
            if row.cert else {"endpoint_cfg": CONFIGS / "endpoint_cfg"})
    options = {"initial_hex": INITIAL_IMAGE, "final_hex": FINAL_IMAGE, "timeouts": row.timeouts,
               **mode}
    if row.cloud is not None:
        row.cloud(server)
    store = CountingStore(tmp_path / "records.sqlite", busy_timeout=0.2)
    writer = RecordWriter(store, source="fault-matrix", final_timeout=10.0)
    board = SimBoard("sim", state_dir=tmp_path / "state", faults=row.faults,
                     registrar=coiote_registrar(server))
    try:
        flow = make_flow(board, client=client, token=TOKEN, observers=[writer],
                         log_dir=tmp_path / "logs", **options)
        start = time.monotonic()
        if row.records_locked_for is not None:
            with ExclusiveWriter(store.path, row.records_locked_for):
                result = flow.run()
        else:
            result = flow.run()
        seconds = time.monotonic() - start
        return Run(result, flow, board, server, sleeps, store.failed, seconds)
    finally:
        board.close()
        client.close()


def assert_record_tells_the_truth(result: FlowResult, path) -> None:
    [row] = RecordStore(path).query()
    failed = [s.name for s in result.steps if s.status == "failed"]
    assert row["attempt"] == result.attempt
    assert row["outcome"] == result.outcome
    assert row["error_kind"] == result.error_kind
    assert row["error"] == result.error
    assert row["exit_code"] == result.exit_code
    assert row["current_step"] == (failed[0] if failed else None)
    assert row["finished_at"] is not None
    recorded = [(s["name"], s["status"], s["detail"]) for s in json.loads(row["steps"])]
    assert recorded == [(s.name, s.status, s.detail) for s in result.steps
                        if s.status != "pending"]


@pytest.mark.parametrize("row", MATRIX, ids=[row.fault for row in MATRIX])
def test_fault_matrix(row: Row, tmp_path, server, server_cert):
    run = run_row(row, tmp_path, server, server_cert)
    result = run.result

    assert run.seconds < row.bound, f"took {run.seconds:.1f} s, bound {row.bound} s"
    assert_record_tells_the_truth(result, tmp_path / "records.sqlite")
    failed = [s.name for s in result.steps if s.status == "failed"]
    got = (result.outcome, result.error_kind, result.exit_code, failed[0] if failed else None)
    wanted = (row.outcome, row.error_kind, row.exit_code, row.failed_step)
    assert got == wanted, result.error
    if row.check is not None:
        row.check(run)
    if row.outcome == "registered":
        assert run.board.device.registrations == [ENDPOINT]
        assert all(s.status in ("ok", "skipped") for s in result.steps)
    else:
        assert result.step("flash-final").status in ("pending", "ok")  # nothing half-done


def test_records_locked_past_the_final_timeout_is_a_records_error_not_a_false_record(tmp_path):
    """Decision: an attempt whose record cannot be written within the final timeout ends with a
    RecordsError (exit 12) naming the real outcome and saying it is NOT recorded and where its
    row is kept; once the database can be written, the kept row goes in, with the real outcome."""
    store = RecordStore(tmp_path / "records.sqlite", busy_timeout=0.1)
    writer = RecordWriter(store, source="fault-matrix", final_timeout=0.5)
    board = SimBoard("sim", state_dir=tmp_path / "state")
    try:
        flow = make_flow(board, endpoint_cfg=CONFIGS / "endpoint_cfg", initial_hex=INITIAL_IMAGE,
                         final_hex=FINAL_IMAGE, timeouts=TIMEOUTS, until="onboard",
                         observers=[writer])
        with ExclusiveWriter(store.path, 30.0), pytest.raises(RecordsError) as info:
            flow.run()
    finally:
        board.close()
    assert flow.result.outcome == "provisioned"
    message = str(info.value)
    assert f"ended {str(flow.result.outcome)!r} but is not recorded" in message
    assert "database is locked" in message and str(store.path) in message
    assert info.value.exit_code == 12
    assert f"the row is kept in {store.journal.directory}" in message
    [row] = store.query()  # the lock is gone: the kept row is written first
    assert (row["attempt"], row["outcome"]) == (flow.result.attempt, "provisioned")
    assert store.journal.pending() == []
