"""Small file helpers shared by the input readers and the writers: errors name the file, and
writes are atomic so nobody ever sees half a blob, certificate or export."""

from __future__ import annotations

import os
import re
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
    import json

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
        fd, tmp = _temporary_file(directory, f".{path.name}.")
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


def _temporary_file(directory: Path, prefix: str) -> tuple[int, str]:
    """A new file only we can read (0600), like `tempfile.mkstemp` (which would cost every
    start-up the import of tempfile, shutil and the compression modules)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = str(directory / f"{prefix}{os.urandom(6).hex()}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def safe_name(text: str, limit: int = 120) -> str:
    """A file-system-safe name (board names, endpoints, test node ids)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:limit] or "_"
