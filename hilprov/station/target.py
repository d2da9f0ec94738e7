"""What `--records` names: a SQLite file (a path or `sqlite:///PATH`) or a PostgreSQL URL, and
how messages show it (never with its password). Light on purpose: every run parses `--records`,
most never open a database."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"


def parse_target(text: str | Path) -> Path | str:
    """`--records` as given: a Path (SQLite) or a PostgreSQL URL; ValueError if neither."""
    if isinstance(text, Path):
        return text
    value = str(text).strip()
    if not value:
        raise ValueError("empty: expected a path, sqlite:///PATH or postgresql://…")
    if value.startswith(SQLITE_PREFIX):
        rest = value[len(SQLITE_PREFIX):]
        if not rest:
            raise ValueError(f"{value!r}: no file after {SQLITE_PREFIX}")
        return Path(rest)
    if value.startswith(POSTGRES_SCHEMES):
        return value
    if "://" in value:
        raise ValueError(f"{display(value)!r}: not a records database; expected a path, "
                         "sqlite:///PATH or postgresql://HOST/DB")
    return Path(value)


def display(target: str | Path) -> str:
    """The target as messages show it: a URL without its password."""
    text = str(target)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("://", 1)[0] + "://" + HIDDEN
    netloc = parts.netloc
    if parts.password is not None:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:{HIDDEN}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, HIDDEN if k == "password" else v) for k, v in pairs], safe="*/")
    # by hand: urlunsplit drops the "//" of a URL without a host (postgresql:///db?host=/run)
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def scrub(text: str, url: str) -> str:
    """`text` without the password of `url`, should a driver message ever quote it (psycopg
    repeats a URL it cannot parse, password and all)."""
    text = text.replace(url, display(url))
    for secret in _passwords(url):
        for form in {secret, unquote(secret)}:
            text = text.replace(form, HIDDEN)
    return text


def _passwords(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:  # not a URL urllib can read: find the password the way a driver would
        found = re.findall(r"://[^:/@]*:([^@]*)@", url) + re.findall(r"password=([^&#]*)", url)
    return [secret for secret in found if secret]
