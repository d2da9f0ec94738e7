"""Echoing a user's input in a message, bounded: a value or name is shown up to about 80
characters, so a 50 MB string in a config makes a one-line error, not 50 MB of text."""

from __future__ import annotations

LIMIT = 80
PROBLEMS_SHOWN = 50  # a long list of problems is cut to the first ones and a count


def elide(text: str, limit: int = LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit - 1]}… ({len(text)} characters)"


def shown(value: object, limit: int = LIMIT) -> str:
    """`repr(value)`, cut after `limit` characters; only a prefix of a long str/bytes is ever
    turned into text."""
    if isinstance(value, str | bytes) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{repr(value[:limit])[:limit - 1]}… ({len(value)} {unit})"
    return elide(repr(value), limit)
