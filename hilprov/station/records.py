"""One SQLite row per provisioning attempt: what happened to each device, never a secret.

The row is inserted when the attempt starts ("in progress") and rewritten in its own short
transaction after every step, so a crash leaves a row that says how far it got. WAL mode and a
busy timeout let several processes (xdist workers, parallel boards) write at once. A write that
still fails (database locked for longer than the timeout) is retried at the next step, and at the
end of the attempt it becomes a RecordsError: the tool never claims a record it did not write.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from hilprov.errors import ConfigError, RecordsError
from hilprov.station.flow import FlowObserver, FlowResult, StepRecord
from hilprov.station.states import Outcome, StepStatus, sql_list
from hilprov.version import __version__

log = logging.getLogger("hilprov.station.records")

DEFAULT_PATH = Path("hilprov-records.sqlite")

COLUMNS = ("id", "attempt", "started_at", "finished_at", "station", "source", "board",
           "board_kind", "port", "endpoint", "security_mode", "cert_fingerprint",
           "initial_image_sha256", "final_image_sha256", "coiote", "current_step", "steps",
           "outcome", "error_kind", "error", "exit_code", "seconds", "hilprov_version")

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt TEXT UNIQUE NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    station TEXT NOT NULL,
    source TEXT NOT NULL,
    board TEXT NOT NULL,
    board_kind TEXT NOT NULL,
    port TEXT,
    endpoint TEXT,
    security_mode TEXT,
    cert_fingerprint TEXT,
    initial_image_sha256 TEXT,
    final_image_sha256 TEXT,
    coiote TEXT,
    current_step TEXT,
    steps TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_kind TEXT,
    error TEXT,
    exit_code INTEGER,
    seconds REAL,
    hilprov_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_endpoint ON attempts (endpoint);
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RecordStore:
    """The records database. Connections are short-lived, one per write, so threads and
    processes never share one."""

    def __init__(self, path: str | Path = DEFAULT_PATH, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RecordStore({str(self.path)!r})"

    def _connect(self, timeout: float | None = None) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=timeout or self.busy_timeout,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot open the records database: {exc}") from None
        conn.row_factory = sqlite3.Row
        return conn

    def ensure_schema(self) -> None:
        with self._lock:
            if self._ready:
                return
            conn = self._connect()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
            except sqlite3.Error as exc:
                raise RecordsError(f"{self.path}: cannot create the records table: {exc}") \
                    from None
            finally:
                conn.close()
            self._ready = True

    def write(self, row: dict, timeout: float | None = None) -> None:
        """Insert or replace one attempt's row in a single transaction."""
        self.ensure_schema()
        names = [c for c in COLUMNS if c != "id"]
        sql = (f"INSERT INTO attempts ({', '.join(names)}) VALUES "
               f"({', '.join('?' for _ in names)}) ON CONFLICT(attempt) DO UPDATE SET "
               + ", ".join(f"{n}=excluded.{n}" for n in names if n != "attempt"))
        conn = self._connect(timeout)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, [row.get(n) for n in names])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot write the record of attempt "
                               f"{row.get('attempt')}: {exc}") from None
        finally:
            conn.close()

    def query(self, *, since: str | None = None, endpoint: str | None = None,
              failed: bool = False, limit: int | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        self.ensure_schema()
        where, args = [], []
        if since:
            where.append("started_at >= ?")
            args.append(since)
        if endpoint:
            where.append("endpoint = ?")
            args.append(endpoint)
        if failed:
            where.append(f"outcome NOT IN ({sql_list(Outcome.successes())})")
        sql = "SELECT * FROM attempts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        conn = self._connect()
        try:
            return [dict(row) for row in conn.execute(sql, args)]
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot read records: {exc}") from None
        finally:
            conn.close()


def row_from_result(result: FlowResult, source: str, station: str) -> dict:
    """The database row for a FlowResult. Only names, hashes, outcomes: no secret fields exist."""
    finished = result.outcome != Outcome.IN_PROGRESS
    return {
        "attempt": result.attempt,
        "started_at": datetime.fromtimestamp(result.started, UTC).isoformat(
            timespec="milliseconds"),
        "finished_at": _now() if finished else None,
        "station": station, "source": source, "board": result.board,
        "board_kind": result.board_kind, "port": result.port, "endpoint": result.endpoint,
        "security_mode": result.security_mode, "cert_fingerprint": result.cert_fingerprint,
        "initial_image_sha256": result.images.get("initial"),
        "final_image_sha256": result.images.get("final"),
        "coiote": result.coiote, "current_step": result.current_step,
        "steps": json.dumps([_step(s) for s in result.steps if s.status != StepStatus.PENDING]),
        "outcome": str(result.outcome), "error_kind": result.error_kind, "error": result.error,
        "exit_code": result.exit_code if finished else None,
        "seconds": round(result.seconds, 3) if finished else None,
        "hilprov_version": __version__,
    }


def _step(step: StepRecord) -> dict:
    return {"name": step.name, "status": str(step.status), "seconds": round(step.seconds, 3),
            "detail": step.detail}


class RecordWriter(FlowObserver):
    """A flow observer that keeps the attempt's row truthful after every step."""

    def __init__(self, store: RecordStore, *, source: str = "cli",
                 station: str | None = None, final_timeout: float = 30.0) -> None:
        self.store = store
        self.source = source
        self.station = station or socket.gethostname()
        self.final_timeout = final_timeout

    def _save(self, result: FlowResult, *, final: bool = False) -> None:
        self.store.ensure_schema()  # an unusable database stops the run before the board
        row = row_from_result(result, self.source, self.station)
        try:
            self.store.write(row, timeout=self.final_timeout if final else None)
        except RecordsError as exc:
            if final:
                raise RecordsError(f"{exc}; the attempt on board {result.board} ended "
                                   f"{result.outcome!r} but is not recorded") from None
            log.warning("%s (will retry at the next step)", exc)

    def run_started(self, result: FlowResult) -> None:
        self._save(result)

    def step_started(self, result: FlowResult, step: StepRecord) -> None:
        self._save(result)  # so a crash mid-step shows which step was running

    def step_finished(self, result: FlowResult, step: StepRecord) -> None:
        self._save(result)

    def run_finished(self, result: FlowResult) -> None:
        self._save(result, final=True)


def export(rows: list[dict], fmt: str) -> str:
    """Rows as CSV or JSON text."""
    if fmt == "json":
        return json.dumps([{**r, "steps": json.loads(r["steps"] or "[]")} for r in rows],
                          indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def parse_since(text: str) -> str:
    """`--since` accepts an ISO date/time or a duration like 30m, 12h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        stamp = time.time() - int(text[:-1]) * units[text[-1]]
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected an ISO date (2026-11-26, "
                          "2026-11-26T08:00) or a duration (30m, 12h, 7d)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")
