"""The device-records schema: one definition, versioned migrations, for every back end.

Each migration is a list of statements in portable SQL; the few words that differ between back
ends are placeholders (`{serial}` for the auto-numbered key, `{real}` for floating point). A
database records the version it is at in `schema_version`; a file made before versions existed
(the first release's `attempts` table alone) is version 1 and is migrated, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "one row per provisioning attempt", (
        """CREATE TABLE IF NOT EXISTS attempts (
            id {serial},
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
            seconds {real},
            hilprov_version TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS attempts_endpoint ON attempts (endpoint)",
        "CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at)",
    )),
    Migration(2, "who runs an attempt (host, process), PSK identities, the test behind it", (
        "ALTER TABLE attempts ADD COLUMN host TEXT",
        "ALTER TABLE attempts ADD COLUMN pid INTEGER",
        "ALTER TABLE attempts ADD COLUMN pid_started TEXT",
        "ALTER TABLE attempts ADD COLUMN updated_at TEXT",
        "ALTER TABLE attempts ADD COLUMN psk_identity_sha256 TEXT",
        "ALTER TABLE attempts ADD COLUMN stopped_after TEXT",
        "ALTER TABLE attempts ADD COLUMN test_node TEXT",
        "CREATE INDEX IF NOT EXISTS attempts_outcome ON attempts (outcome)",
        """CREATE TABLE IF NOT EXISTS identities (
            digest TEXT PRIMARY KEY,
            endpoint TEXT NOT NULL,
            attempt TEXT NOT NULL,
            claimed_at TEXT NOT NULL
        )""",
    )),
    Migration(3, "the tool that flashed the board (nrfutil, pynrfjprog)", (
        "ALTER TABLE attempts ADD COLUMN flasher TEXT",
    )),
)

VERSION = MIGRATIONS[-1].version

COLUMNS = ("id", "attempt", "started_at", "finished_at", "station", "source", "board",
           "board_kind", "port", "endpoint", "security_mode", "cert_fingerprint",
           "initial_image_sha256", "final_image_sha256", "coiote", "current_step", "steps",
           "outcome", "error_kind", "error", "exit_code", "seconds", "hilprov_version",
           "host", "pid", "pid_started", "updated_at", "psk_identity_sha256", "stopped_after",
           "test_node", "flasher")
"""Every column of `attempts`, in the order exports list them."""

SQLITE = {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"}


def statements(migration: Migration, dialect: dict[str, str]) -> list[str]:
    return [statement.format(**dialect) for statement in migration.statements]
