"""Small file helpers shared by the input readers and the writers: errors name the file, and
writes are atomic so nobody ever sees half a blob, certificate or export."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hilprov.errors import ConfigError, HilprovError


def read_input(path: str | Path, what: str, error: type[HilprovError] = ConfigError) -> bytes:
    """The bytes of an input file; `error` says "<path>: cannot read <what>: <reason>"."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def read_text(path: str | Path, what: str, error: type[HilprovError] = ConfigError) -> str:
    """An input file as UTF-8 text; the error names the file and the first bad byte."""
    raw = read_input(path, what, error)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON input file; ConfigError says which file, which line and what is wrong."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: {what} is not valid JSON: "
                          f"{exc.msg}") from None


def write_atomic(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temporary file (created with `mode`) and rename over `path`."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


def safe_name(text: str, limit: int = 120) -> str:
    """A file-system-safe name (board names, endpoints, test node ids)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:limit] or "_"
