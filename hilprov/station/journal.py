"""The station's own copy of an attempt's last row until the database has it.

The copy is written before the attempt's last write to the records and removed once that write
went through. A run that could not record its outcome — the database away for longer than the
retries, Ctrl-C or a kill while they ran — leaves the row here, and the next run on this host (or
`hilprov records` / `hilprov report`) writes it: a unit that registered is never left "in
progress" and then read as abandoned. Rows hold no secret; the files are private anyway.

Where: `$XDG_STATE_HOME/hilprov/unrecorded/` (default `~/.local/state/hilprov/unrecorded/`), one
JSON file per attempt naming the database it belongs to (as messages show it: no password).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("hilprov.station.journal")


def journal_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "hilprov" / "unrecorded"


class Journal:
    """The rows kept for one records database (`database`: its identity, see database.py)."""

    def __init__(self, database: str, directory: Path | None = None) -> None:
        self.database = database
        self.directory = directory or journal_dir()

    def keep(self, row: dict) -> Path | None:
        """Keep `row` until `done`; None (and a warning) if this host cannot keep it."""
        path = self._path(row["attempt"])
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"database": self.database, "row": row}, out)
                out.flush()
                os.fsync(out.fileno())  # a power cut must not leave half a row
            os.replace(partial, path)
        except OSError as exc:
            log.warning("cannot keep a copy of attempt %s's record in %s: %s", row["attempt"],
                        self.directory, exc.strerror or exc)
            return None
        return path

    def done(self, attempt: str) -> None:
        self._path(attempt).unlink(missing_ok=True)

    def pending(self) -> list[dict]:
        """The rows kept for this database; unreadable files are left alone."""
        rows = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("%s: not a kept record; left alone", path)
                continue
            if kept.get("database") == self.database and isinstance(kept.get("row"), dict):
                rows.append(kept["row"])
        return rows

    def _path(self, attempt: str) -> Path:
        if not attempt or not all(c.isalnum() or c in "-_" for c in attempt):
            raise ValueError(f"attempt id {attempt!r} cannot name a file")
        return self.directory / f"{attempt}.json"
