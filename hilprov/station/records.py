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
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from hilprov.errors import ConfigError, RecordsError
from hilprov.station import process, schema
from hilprov.station.flow import FlowObserver, FlowResult, StepRecord
from hilprov.station.states import Outcome, StepStatus, sql_list
from hilprov.version import __version__

log = logging.getLogger("hilprov.station.records")

DEFAULT_PATH = Path("hilprov-records.sqlite")

SQL_COLUMNS = schema.COLUMNS
COLUMNS = SQL_COLUMNS  # kept for exports and callers of the first release


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RecordStore:
    """The records database (SQLite). Connections are short-lived, one per write, so threads and
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
        """Create the schema, or migrate an older one (never losing a row)."""
        with self._lock:
            if self._ready:
                return
            conn = self._connect()
            try:
                if self._version(conn) < schema.VERSION:  # reading needs no write lock
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    self._migrate(conn)
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RecordsError(f"{self.path}: cannot create or migrate the records "
                                   f"tables: {exc}") from None
            finally:
                conn.close()
            self._ready = True

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        """The schema version of the file: 0 for a new one, 1 for the first release's."""
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" in tables:
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if version:
                return version
        return 1 if "attempts" in tables else 0

    @classmethod
    def _migrate(cls, conn: sqlite3.Connection) -> None:
        version = cls._version(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for migration in schema.MIGRATIONS:
            if migration.version > version:
                for statement in schema.statements(migration, schema.SQLITE):
                    conn.execute(statement)
        if version < schema.VERSION:
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.VERSION,))

    def write(self, row: dict, timeout: float | None = None) -> None:
        """Insert or replace one attempt's row in a single transaction."""
        self.ensure_schema()
        names = [c for c in SQL_COLUMNS if c != "id"]
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

    def claim_identity(self, digest: str, endpoint: str | None, attempt: str) -> str | None:
        """Give the PSK identity with this digest to `endpoint`; returns the other endpoint it
        already belongs to, if any. Atomic: two stations cannot both claim it."""
        self.ensure_schema()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO identities (digest, endpoint, attempt, claimed_at) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING",
                         (digest, endpoint or "", attempt, _now()))
            owner = conn.execute("SELECT endpoint FROM identities WHERE digest = ?",
                                 (digest,)).fetchone()[0]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot check the PSK identity: {exc}") from None
        finally:
            conn.close()
        return owner if owner != (endpoint or "") else None

    def sweep_abandoned(self) -> int:
        """Mark this host's "in progress" rows whose process is gone as abandoned; how many."""
        if not self.path.exists():
            return 0
        self.ensure_schema()
        conn = self._connect()
        try:
            rows = conn.execute("SELECT attempt, pid, pid_started FROM attempts WHERE outcome = ? "
                                "AND host = ?", (str(Outcome.IN_PROGRESS), process.host()))
            gone = [r["attempt"] for r in rows.fetchall()
                    if not process.alive(r["pid"], r["pid_started"])]
            if gone:
                conn.execute("BEGIN IMMEDIATE")
                for attempt in gone:
                    conn.execute(
                        "UPDATE attempts SET outcome = ?, error_kind = ?, error = ?, "
                        "finished_at = ? WHERE attempt = ? AND outcome = ?",
                        (str(Outcome.ABANDONED), "abandoned", ABANDONED_WHY, _now(), attempt,
                         str(Outcome.IN_PROGRESS)))
                conn.execute("COMMIT")
            return len(gone)
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot update abandoned attempts: {exc}") from None
        finally:
            conn.close()

    def query(self, *, since: str | None = None, endpoint: str | None = None,
              failed: bool = False, limit: int | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        self.sweep_abandoned()
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

    # -- what a flow asks the records ------------------------------------------------------
    def identity_owner(self, digest: str, endpoint: str | None, attempt: str) -> str | None:
        return self.claim_identity(digest, endpoint, attempt)


ABANDONED_WHY = ("the process running this attempt ended without finishing it (killed or "
                 "crashed); the unit's state is unknown: provision it again")


def row_from_result(result: FlowResult, source: str, station: str) -> dict:
    """The database row for a FlowResult. Only names, hashes, outcomes: no secret fields exist."""
    finished = result.outcome != Outcome.IN_PROGRESS
    host, pid, started = process.me()
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
        "host": host, "pid": pid, "pid_started": started, "updated_at": _now(),
        "psk_identity_sha256": result.psk_identity_sha256,
        "stopped_after": result.stopped_after, "test_node": result.test_node,
        "flasher": result.flasher,
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
        self.station = station or process.host()
        self.final_timeout = final_timeout
        self._swept = False

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
        if not self._swept:
            try:  # earlier runs of this station that were killed mid-attempt
                self.store.sweep_abandoned()
                self._swept = True
            except RecordsError as exc:
                log.warning("%s (will retry at the next attempt)", exc)
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
    writer = csv.DictWriter(out, fieldnames=list(SQL_COLUMNS), extrasaction="ignore")
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
