"""One row per provisioning attempt: what happened to each device, never a secret.

The row is inserted when the attempt starts ("in progress") and rewritten in its own short
transaction after every step, so a crash leaves a row that says how far it got; during a long
step a heartbeat rewrites its `updated_at`. The records live in SQLite (one station; WAL mode and a
busy timeout let several processes write at once) or in PostgreSQL (a line of stations), the same
schema on both (`schema.py`, `database.py`). A write that fails is retried at the next step; the
last one is retried while the server comes back (bounded), and if it still fails the attempt ends
with a RecordsError that says what happened to the unit: the tool never claims a record it did not
write.

The line's rules are claimed in the database, in one write transaction each, never read and then
written: a PSK identity belongs to one endpoint (`claim_identity`), and an endpoint is provisioned
once unless re-provisioning is asked for (`endpoint_holder`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hilprov.errors import RecordsError, UsageError
from hilprov.station import database, journal, process, schema
from hilprov.station.flow import EndpointHolder, FlowObserver, FlowResult, StepRecord
from hilprov.station.states import PROVISIONS, Outcome, StepStatus, sql_list
from hilprov.version import __version__

log = logging.getLogger("hilprov.station.records")

DEFAULT_PATH = Path("hilprov-records.sqlite")
LEASE = 300.0  # seconds without a heartbeat after which another host's attempt is abandoned
HEARTBEAT = 30.0  # seconds between heartbeats of a running attempt
CLAIM_TIMEOUT = 15.0  # seconds a claim may wait for a server that went away

SQL_COLUMNS = schema.COLUMNS
COLUMNS = SQL_COLUMNS  # kept for exports and callers of the first release


def _now() -> str:
    return _stamp(time.time())


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class RecordStore:
    """The records database, SQLite or PostgreSQL (`target`: a path, sqlite:///path or a
    postgresql:// URL). Connections are short-lived, one per read or write, so threads and
    processes never share one."""

    def __init__(self, target: str | Path = DEFAULT_PATH, *, busy_timeout: float = 10.0,
                 lease: float = LEASE, station: str | None = None) -> None:
        self.db = database.open_database(target, busy_timeout=busy_timeout)
        self.station = station or process.host()  # who claims endpoints through this store
        self.path: Path | None = getattr(self.db, "path", None)  # the SQLite file, if one
        self.busy_timeout = busy_timeout
        self.lease = lease
        self.journal = journal.Journal(self.db.identity)
        self._ready = False
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The database as messages name it (a URL without its password)."""
        return self.db.where

    def __repr__(self) -> str:
        return f"RecordStore({self.where!r})"

    def _said(self, exc: BaseException) -> str:
        """The driver's error in one line, without any password."""
        return self.db.scrub(_line(exc))

    # -- the schema ---------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Connect, and create the schema or migrate an older one (never losing a row); an
        unreachable database is a RecordsError here, before any board is touched."""
        with self._lock:
            if self._ready:
                return
            try:
                with self.db.reading() as session:  # reading needs no write lock
                    current = self._version(session) >= schema.VERSION
                if not current:
                    with self.db.transaction(schema=True) as session:
                        self._migrate(session)
            except self.db.errors as exc:
                raise RecordsError(f"{self.where}: cannot create or migrate the records "
                                   f"tables: {self._said(exc)}") from None
            self._ready = True

    def _version(self, session: database.Session) -> int:
        """The schema version: 0 for a new database, 1 for the first release's file."""
        tables = self.db.tables(session)
        if "schema_version" in tables:
            [row] = session.execute("SELECT MAX(version) AS version FROM schema_version")
            if row["version"]:
                return row["version"]
        return 1 if "attempts" in tables else 0

    def _migrate(self, session: database.Session) -> None:
        version = self._version(session)  # again, now that this transaction migrates alone
        if version >= schema.VERSION:
            return
        session.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for migration in schema.MIGRATIONS:
            if migration.version > version:
                for statement in schema.statements(migration, self.db.dialect):
                    session.execute(statement)
        session.execute("DELETE FROM schema_version")
        session.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.VERSION,))

    # -- writing ------------------------------------------------------------------------------
    def write(self, row: dict, timeout: float | None = None) -> None:
        """Insert or replace one attempt's row in a single transaction; on a server, retried
        while it comes back within `timeout` seconds."""
        self.ensure_schema()
        names = [c for c in SQL_COLUMNS if c != "id"]
        values = [row.get(n) for n in names]
        update = (f"UPDATE attempts SET {', '.join(f'{n} = ?' for n in names)} "
                  "WHERE attempt = ?")
        insert = (f"INSERT INTO attempts ({', '.join(names)}) VALUES "
                  f"({', '.join('?' for _ in names)}) ON CONFLICT(attempt) DO UPDATE SET "
                  + ", ".join(f"{n} = excluded.{n}" for n in names if n != "attempt"))

        def save(session: database.Session) -> None:
            # An update first: the row exists after the first step (and a PostgreSQL identity
            # is not used up by every rewrite).
            if not session.rowcount(update, [*values, row.get("attempt")]):
                session.execute(insert, values)

        self._transact(save, timeout, f"cannot write the record of attempt {row.get('attempt')}")

    def _transact(self, work: Callable[[database.Session], object], timeout: float | None,
                  what: str):
        """`work` in one write transaction. On a server that went away (or is not there), the
        transaction is tried again until `timeout` has passed; every write here can be
        repeated without harm (the row's key is its attempt)."""
        deadline = time.monotonic() + (timeout or 0.0)
        pause = 0.2
        while True:
            try:
                with self.db.transaction(timeout) as session:
                    return work(session)
            except (RecordsError, *self.db.errors) as exc:
                left = deadline - time.monotonic()
                if not (self.db.retries_writes and self.db.transient(exc)) or left <= 0:
                    detail = str(exc) if isinstance(exc, RecordsError) else self._said(exc)
                    raise RecordsError(f"{self.where}: {what}: "
                                       f"{detail.removeprefix(self.where + ': ')}") from None
                log.debug("%s: %s; retrying", what, self._said(exc))
                time.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)

    def touch(self, attempts: list[str]) -> None:
        """The heartbeat: these running attempts are alive (their `updated_at` is now)."""
        if not attempts:
            return
        marks = ", ".join("?" for _ in attempts)
        self._transact(lambda session: session.execute(
            f"UPDATE attempts SET updated_at = ? WHERE outcome = ? AND attempt IN ({marks})",
            [_now(), str(Outcome.IN_PROGRESS), *attempts]), None, "cannot refresh attempts")

    # -- the line's rules ---------------------------------------------------------------------
    def claim_identity(self, digest: str, endpoint: str | None, attempt: str) -> str | None:
        """Give the PSK identity with this digest to `endpoint`; returns the other endpoint it
        already belongs to, if any. Atomic: two stations cannot both claim it."""
        self.ensure_schema()

        def claim(session: database.Session) -> str:
            session.execute("INSERT INTO identities (digest, endpoint, attempt, claimed_at) "
                            "VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING",
                            (digest, endpoint or "", attempt, _now()))
            [row] = session.execute("SELECT endpoint FROM identities WHERE digest = ?",
                                    (digest,))
            return row["endpoint"]

        owner = self._transact(claim, CLAIM_TIMEOUT, "cannot check the PSK identity")
        return owner if owner != (endpoint or "") else None

    def endpoint_holder(self, endpoint: str, attempt: str, *, reprovision: bool = False,
                        station: str | None = None) -> EndpointHolder | None:
        """Give `endpoint` to `attempt`, or say which attempt keeps it: one that provisioned it
        (unless `reprovision`), or one running on it now. A failed, interrupted or abandoned
        holder gives it up. One transaction: of two stations racing, one wins."""
        self.ensure_schema()
        station = station or self.station

        def claim(session: database.Session) -> EndpointHolder | None:
            now = _now()
            session.execute("INSERT INTO endpoints (endpoint, attempt, station, claimed_at) "
                            "VALUES (?, ?, ?, ?) ON CONFLICT(endpoint) DO NOTHING",
                            (endpoint, attempt, station, now))
            [held] = session.execute("SELECT attempt, station, claimed_at FROM endpoints "
                                     "WHERE endpoint = ?" + self.db.for_update, (endpoint,))
            if held["attempt"] == attempt:
                return None
            holder = self._holder(session, held)
            if holder is not None and (holder.running or not reprovision):
                return holder
            session.execute("UPDATE endpoints SET attempt = ?, station = ?, claimed_at = ? "
                            "WHERE endpoint = ? AND attempt = ?",
                            (attempt, station, now, endpoint, held["attempt"]))
            return None

        return self._transact(claim, CLAIM_TIMEOUT, f"cannot claim endpoint {endpoint}")

    def _holder(self, session: database.Session, held: dict) -> EndpointHolder | None:
        """The holding attempt if it keeps the endpoint (provisioned it, or runs), else None."""
        rows = session.execute("SELECT outcome, started_at, station, host, pid, pid_started, "
                               "updated_at FROM attempts WHERE attempt = ?", (held["attempt"],))
        if not rows:  # its row was never written: it keeps the endpoint while the lease runs
            row = {"outcome": str(Outcome.IN_PROGRESS), "started_at": held["claimed_at"],
                   "station": held["station"],
                   "host": None, "pid": None, "pid_started": None,
                   "updated_at": held["claimed_at"]}
        else:
            row = rows[0]
        outcome = row["outcome"]
        if outcome == Outcome.IN_PROGRESS and self._gone(row) is not None:
            return None
        if outcome != Outcome.IN_PROGRESS and outcome not in PROVISIONS:
            return None
        return EndpointHolder(held["attempt"], row["station"], outcome, row["started_at"])

    def _gone(self, row: dict) -> str | None:
        """Why a row "in progress" is abandoned, or None while its process runs: on this host
        its process is gone; on another host it missed its heartbeat for longer than the
        lease."""
        if row.get("host") == process.host():
            return None if process.alive(row.get("pid"), row.get("pid_started")) else \
                ABANDONED_WHY
        last = row.get("updated_at") or row.get("started_at") or ""
        if last >= _stamp(time.time() - self.lease):
            return None
        return (f"no heartbeat from host {row.get('host') or 'unknown'} for more than "
                f"{timedelta(seconds=round(self.lease))} (h:mm:ss): the station stopped or lost "
                "the database mid-attempt; the unit's state is unknown: provision it again")

    def identity_owner(self, digest: str, endpoint: str | None, attempt: str) -> str | None:
        return self.claim_identity(digest, endpoint, attempt)

    def write_kept(self) -> int:
        """Write the rows this host kept because an earlier run could not (`journal`); how
        many. A row that still cannot be written stays kept."""
        kept = self.journal.pending()
        for row in kept:
            self.write(row)
            self.journal.done(row["attempt"])
            log.info("%s: wrote the kept record of attempt %s (%s)", self.where,
                     row["attempt"], row.get("outcome"))
        return len(kept)

    # -- reading ------------------------------------------------------------------------------
    def require_existing(self) -> None:
        """For commands that only read: a SQLite file that is not there is a mistyped path (or a
        station that never recorded), not an empty shift."""
        if not self.db.exists():
            raise RecordsError(f"{self.where}: no records database there; give the file the "
                               "station writes (--records PATH|URL)")

    def sweep_abandoned(self) -> int:
        """Mark as abandoned the "in progress" rows nobody runs any more: this host's whose
        process is gone, other hosts' whose heartbeat stopped for longer than the lease; how
        many."""
        self.write_kept()  # first: a kept row is the truth about an attempt left running
        if not self.db.exists():
            return 0
        self.ensure_schema()
        try:
            with self.db.reading() as session:
                rows = session.execute(
                    "SELECT attempt, host, pid, pid_started, started_at, updated_at "
                    "FROM attempts WHERE outcome = ?", (str(Outcome.IN_PROGRESS),))
        except self.db.errors as exc:
            raise RecordsError(f"{self.where}: cannot read records: {self._said(exc)}") from None
        gone = [(row["attempt"], why) for row in rows if (why := self._gone(row)) is not None]
        if not gone:
            return 0

        def mark(session: database.Session) -> None:
            for attempt, why in gone:
                session.execute(
                    "UPDATE attempts SET outcome = ?, error_kind = ?, error = ?, "
                    "finished_at = ? WHERE attempt = ? AND outcome = ?",
                    (str(Outcome.ABANDONED), "abandoned", why, _now(), attempt,
                     str(Outcome.IN_PROGRESS)))

        self._transact(mark, None, "cannot update abandoned attempts")
        return len(gone)

    def query(self, *, since: str | None = None, endpoint: str | None = None,
              failed: bool = False, test: str | None = None, limit: int | None = None,
              stations: list[str] | None = None) -> list[dict]:
        if not self.db.exists():
            return []
        self.sweep_abandoned()
        where, args = [], []
        if since:
            where.append("started_at >= ?")
            args.append(since)
        if endpoint:
            where.append("endpoint = ?")
            args.append(endpoint)
        if test:  # a node id, or the start of one (a file, a test without its parameters)
            where.append("(test_node = ? OR test_node LIKE ? ESCAPE '\\')")
            args += [test, _like_prefix(test)]
        if stations:
            where.append(f"station IN ({', '.join('?' for _ in stations)})")
            args.extend(stations)
        if failed:
            where.append(f"outcome NOT IN ({sql_list(Outcome.successes())})")
        sql = "SELECT * FROM attempts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        try:
            with self.db.reading() as session:
                return session.execute(sql, args)
        except self.db.errors as exc:
            raise RecordsError(f"{self.where}: cannot read records: {self._said(exc)}") from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ("%" if text.endswith(("::", "[", ".py")) else "[%")


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
        "log_path": str(Path(result.log_path).absolute()) if result.log_path else None,
        "flasher": result.flasher,
    }


def _step(step: StepRecord) -> dict:
    return {"name": step.name, "status": str(step.status), "seconds": round(step.seconds, 3),
            "detail": step.detail}


class RecordWriter(FlowObserver):
    """A flow observer that keeps the attempt's row truthful after every step, and alive (a
    heartbeat every `heartbeat` seconds) while a long step runs."""

    def __init__(self, store: RecordStore, *, source: str = "cli",
                 station: str | None = None, final_timeout: float = 30.0,
                 heartbeat: float = HEARTBEAT) -> None:
        self.store = store
        self.source = source
        self.station = station or store.station
        self.final_timeout = final_timeout
        self.heartbeat = heartbeat
        self._swept = False
        self.recorded: set[str] = set()  # attempts whose last row is in the database
        self._failing = False  # the last write failed (an outage is warned about once)
        self._running: set[str] = set()
        self._beat_lock = threading.Condition()
        self._beating: threading.Thread | None = None

    def _save(self, result: FlowResult, *, final: bool = False) -> None:
        self.store.ensure_schema()  # an unusable database stops the run before the board
        row = row_from_result(result, self.source, self.station)
        kept = self.store.journal.keep(row) if final else None
        try:
            self.store.write(row, timeout=self.final_timeout if final else None)
        except RecordsError as exc:
            if final:
                later = (f"; the row is kept in {kept} and written by this station's next run "
                         "(or `hilprov records`)" if kept else "")
                raise RecordsError(f"{exc}; the attempt on board {result.board} ended "
                                   f"{str(result.outcome)!r} but is not recorded: "
                                   f"{unit_state(result)}{later}") from None
            if not self._failing:  # once per outage, not at every step's start and end
                log.warning("%s (will retry at the next step)", exc)
            else:
                log.debug("%s (will retry at the next step)", exc)
            self._failing = True
            return
        if self._failing:
            self._failing = False
            log.warning("%s: records written again", self.store.where)
        if final:
            self.store.journal.done(result.attempt)
            self.recorded.add(result.attempt)

    def run_started(self, result: FlowResult) -> None:
        if not self._swept:
            try:  # earlier runs of this station that were killed mid-attempt
                self.store.sweep_abandoned()
                self._swept = True
            except RecordsError as exc:
                log.warning("%s (will retry at the next attempt)", exc)
        self._save(result)
        self._beat_for(result.attempt)

    def step_started(self, result: FlowResult, step: StepRecord) -> None:
        self._save(result)  # so a crash mid-step shows which step was running

    def step_finished(self, result: FlowResult, step: StepRecord) -> None:
        self._save(result)

    def run_finished(self, result: FlowResult) -> None:
        with self._beat_lock:
            self._running.discard(result.attempt)
            self._beat_lock.notify_all()  # nothing runs: the heartbeat ends now, not later
        self._save(result, final=True)

    # -- the heartbeat ---------------------------------------------------------------------------
    def _beat_for(self, attempt: str) -> None:
        with self._beat_lock:
            self._running.add(attempt)
            if self._beating is None or not self._beating.is_alive():
                self._beating = threading.Thread(target=self._beat, daemon=True,
                                                 name="records-heartbeat")
                self._beating.start()

    def _beat(self) -> None:
        """Refresh the running attempts' rows until none runs (then the thread ends)."""
        while True:
            with self._beat_lock:
                self._beat_lock.wait_for(lambda: not self._running, self.heartbeat)
                attempts = sorted(self._running)
                if not attempts:
                    self._beating = None
                    return
            try:
                self.store.touch(attempts)
            except RecordsError as exc:  # the next step's write, or the next beat, catches up
                log.debug("heartbeat: %s", exc)


def unit_state(result: FlowResult) -> str:
    """What happened to the unit, in words, for an attempt whose record could not be written."""
    unit = f"unit {result.endpoint}" if result.endpoint else "the unit (endpoint not read)"
    accepted = _status(result, "read-result") == StepStatus.OK
    onboarded = _status(result, "onboard") == StepStatus.OK
    if result.outcome == Outcome.REGISTERED:
        return f"{unit} is provisioned, onboarded and registered"
    if result.outcome == Outcome.PROVISIONED:
        return f"{unit} accepted its configuration{' and is onboarded' if onboarded else ''}"
    step = result.current_step or "start"
    if accepted:
        return (f"{unit} accepted its configuration but the attempt then stopped at {step} "
                f"({result.error_kind or result.outcome}): provision it again")
    if _status(result, "upload") in (StepStatus.OK, StepStatus.FAILED, StepStatus.RUNNING):
        return (f"{unit} was sent a configuration that it did not accept (stopped at {step}): "
                "provision it again")
    return f"{unit} was not provisioned (stopped at {step}, before the upload)"


def _status(result: FlowResult, name: str) -> str | None:
    return next((s.status for s in result.steps if s.name == name), None)


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
        raise UsageError(f"--since {text!r}: expected an ISO date (2026-11-26, "
                          "2026-11-26T08:00) or a duration (30m, 12h, 7d)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")
