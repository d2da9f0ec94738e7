"""Where the device records live: a SQLite file on one station, or PostgreSQL shared by a line.

A back end gives the records four things and nothing more: short-lived connections, a read, a
write transaction (that may serialise schema migrations), and a word on which failures are worth
retrying. The records' SQL is written once, with `?` placeholders, and runs on both; the schema's
few differences are the dialect placeholders of `schema.py`.

`open_database(target)` picks the back end by what the user gave `--records`: a path or
`sqlite:///path` (SQLAlchemy's spelling: three slashes and a relative path, four for an absolute
one), or a `postgresql://` URL (libpq's: host, port, database, user; the password better in
PGPASSWORD or ~/.pgpass than in the URL, which is never shown with it anyway).
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hilprov.errors import RecordsError
from hilprov.station import schema
from hilprov.station.target import display, parse_target, scrub

SCHEMA_LOCK = 0x68696C70  # the advisory lock id that serialises migrations ("hilp")
class Session:
    """One connection's statements: `execute(sql, args)` returns the rows as dicts (none for a
    statement without a result)."""

    def __init__(self, database: Database, conn: Any) -> None:
        self.database = database
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[dict]:
        return self.database.run(self.conn, sql, args)

    def rowcount(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.database.run_count(self.conn, sql, args)


class Database(ABC):
    """A records back end."""

    kind: str  # "sqlite" / "postgresql"
    dialect: dict[str, str]  # the schema's placeholders
    for_update: str = ""  # what a SELECT appends to lock the rows it reads in a transaction
    retries_writes: bool = False  # whether a failed write is worth trying again (a server)
    errors: tuple[type[BaseException], ...] = ()  # the driver's own errors

    @property
    @abstractmethod
    def where(self) -> str:
        """The database as messages name it (never with a password)."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """The database as this host's kept rows name it (no password; a file's full path)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether there may be records to read (a SQLite file is not created by reading)."""

    @abstractmethod
    def connect(self, timeout: float | None = None) -> Any: ...

    @abstractmethod
    def begin(self, conn: Any, *, schema: bool = False) -> None:
        """Start a write transaction; `schema`: one that may migrate (one at a time)."""

    @abstractmethod
    def tables(self, session: Session) -> set[str]: ...

    @abstractmethod
    def run(self, conn: Any, sql: str, args: Sequence[Any]) -> list[dict]: ...

    @abstractmethod
    def run_count(self, conn: Any, sql: str, args: Sequence[Any]) -> int: ...

    @abstractmethod
    def transient(self, exc: BaseException) -> bool:
        """Whether `exc` is the server or the network going away (worth a retry)."""

    def scrub(self, text: str) -> str:
        """A driver's message as it may be shown (without any password)."""
        return text

    @contextlib.contextmanager
    def reading(self, timeout: float | None = None) -> Iterator[Session]:
        conn = self.connect(timeout)
        try:
            yield Session(self, conn)
        finally:
            _close(conn)

    @contextlib.contextmanager
    def transaction(self, timeout: float | None = None, *, schema: bool = False
                    ) -> Iterator[Session]:
        """A write transaction: committed at the end, rolled back on any error."""
        conn = self.connect(timeout)
        try:
            self.begin(conn, schema=schema)
            try:
                yield Session(self, conn)
            except BaseException:
                with contextlib.suppress(*self.errors):
                    conn.rollback()
                raise
            conn.commit()
        finally:
            _close(conn)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class SqliteDatabase(Database):
    """One file; WAL mode and a busy timeout let several processes write at once."""

    kind = "sqlite"
    dialect = schema.SQLITE
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def identity(self) -> str:
        """The same file from any directory."""
        return str(self.path.resolve())

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self, timeout: float | None = None) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=timeout or self.busy_timeout,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise RecordsError(f"{self.path}: cannot open the records database: {exc}") from None
        conn.row_factory = sqlite3.Row
        return conn

    def begin(self, conn: sqlite3.Connection, *, schema: bool = False) -> None:
        if schema:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")  # the write lock now: no read-then-write race

    def tables(self, session: Session) -> set[str]:
        rows = session.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row["name"] for row in rows}

    def run(self, conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[dict]:
        return [dict(row) for row in conn.execute(sql, tuple(args)).fetchall()]

    def run_count(self, conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
        return conn.execute(sql, tuple(args)).rowcount

    def transient(self, exc: BaseException) -> bool:
        return False  # a lock is waited for by the busy timeout; nothing else passes by itself


class PostgresDatabase(Database):
    """A PostgreSQL server (psycopg 3), shared by every station of a line. Connections are
    short-lived, one per read or write, so a server restart costs at most one retried write."""

    kind = "postgresql"
    dialect = schema.POSTGRES
    for_update = " FOR UPDATE"
    retries_writes = True

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._psycopg = _import_psycopg(url)
        self.errors = (self._psycopg.Error,)

    @property
    def where(self) -> str:
        return display(self.url)

    @property
    def identity(self) -> str:
        return display(self.url)

    def exists(self) -> bool:
        return True

    def connect(self, timeout: float | None = None) -> Any:
        psycopg = self._psycopg
        seconds = max(2, round(min(timeout or self.connect_timeout, self.connect_timeout)))
        try:
            return psycopg.connect(self.url, connect_timeout=seconds,
                                   application_name="hilprov",
                                   row_factory=psycopg.rows.dict_row)
        except psycopg.Error as exc:
            raise RecordsError(f"{self.where}: cannot connect to the records database: "
                               f"{self.scrub(_first_line(exc))}") from None
        except ValueError as exc:  # an unparsable URL
            raise RecordsError(f"{self.where}: not a PostgreSQL URL: "
                               f"{self.scrub(str(exc))}") from None

    def scrub(self, text: str) -> str:
        """`text` without the URL's password, should a driver message ever quote it."""
        return scrub(text, self.url)

    def begin(self, conn: Any, *, schema: bool = False) -> None:
        # psycopg opened a transaction (autocommit off); a migration waits for any other one.
        if schema:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))

    def tables(self, session: Session) -> set[str]:
        rows = session.execute("SELECT table_name FROM information_schema.tables "
                               "WHERE table_schema = current_schema()")
        return {row["table_name"] for row in rows}

    def run(self, conn: Any, sql: str, args: Sequence[Any]) -> list[dict]:
        cursor = conn.execute(sql.replace("?", "%s"), tuple(args))
        return list(cursor.fetchall()) if cursor.description is not None else []

    def run_count(self, conn: Any, sql: str, args: Sequence[Any]) -> int:
        return conn.execute(sql.replace("?", "%s"), tuple(args)).rowcount

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, RecordsError):  # raised by connect(): the server is not there
            return True
        return isinstance(exc, self._psycopg.OperationalError)

    @contextlib.contextmanager
    def reading(self, timeout: float | None = None) -> Iterator[Session]:
        conn = self.connect(timeout)
        conn.autocommit = True  # a read needs no transaction left open
        try:
            yield Session(self, conn)
        finally:
            _close(conn)


def _import_psycopg(url: str):
    try:
        import psycopg
        import psycopg.rows
    except ImportError:
        raise RecordsError(f"{display(url)}: the PostgreSQL back end needs psycopg 3: "
                           "pip install 'hilprov[postgres]'") from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_database(target: str | Path, *, busy_timeout: float = 10.0) -> Database:
    """The back end for `--records`: a path / sqlite:///path, or a postgresql:// URL."""
    try:
        parsed = parse_target(target)
    except ValueError as exc:
        raise RecordsError(f"--records {exc}") from None
    if isinstance(parsed, Path):
        return SqliteDatabase(parsed, busy_timeout)
    return PostgresDatabase(parsed)
