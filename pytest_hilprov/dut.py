"""The board's console as a test uses it (`hil_dut`): pytest-embedded's `expect` and twister's
`shell`, on hilprov's one-owner serial port (console text and SMP share it).

`expect` takes one pattern or a list (regexes, or exact texts with `exact=True`), waits for the
first to appear and returns what matched and the console text before it; `not_matching`
patterns (e.g. `<err>`, `Hard fault`) fail it at once when they show up first. Without a
timeout it waits `--hil-expect-timeout` seconds. On a timeout the error shows the tail of the
console and the log path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hilprov.board.serial import SerialPort
from hilprov.errors import BoardError
from hilprov.station.app import PROMPT

Pattern = str | re.Pattern[str]


class UnwantedOutput(BoardError):
    """A `not_matching` pattern appeared on the console."""


@dataclass(frozen=True)
class Expected:
    """What an `expect` found: the match, the text before it, which pattern it was."""

    match: re.Match[str]
    before: str
    pattern: Pattern
    index: int

    @property
    def text(self) -> str:
        return self.match.group(0)

    def group(self, *names):
        return self.match.group(*names)


class Dut:
    """One test's view of the board's console."""

    def __init__(self, port: SerialPort, *, timeout: float = 30.0, board=None) -> None:
        self.port = port
        self.timeout = timeout
        self.board = board

    def __repr__(self) -> str:
        return f"Dut({self.port.url!r})"

    # -- pass-through --------------------------------------------------------------------------
    @property
    def log_path(self):
        return self.port.log_path

    def write(self, data: bytes | str) -> None:
        self.port.write(data.encode() if isinstance(data, str) else data)

    def tail(self, n: int = 20) -> list[str]:
        return self.port.tail(n)

    # -- expect ----------------------------------------------------------------------------------
    def expect(self, patterns: Pattern | Sequence[Pattern], timeout: float | None = None, *,
               not_matching: Pattern | Iterable[Pattern] = (), exact: bool = False) -> Expected:
        """Wait for the first of `patterns`; consume the console up to its end."""
        wanted = _compile(patterns, exact)
        unwanted = _compile(not_matching, exact=False) if not_matching else []
        found: list[Expected] = []

        def search(haystack: str) -> re.Match[str] | None:
            hits = [(m.start(), i, m) for i, (_, rx) in enumerate(wanted)
                    if (m := rx.search(haystack)) is not None]
            end = min(hits)[2].end() if hits else len(haystack)
            for original, rx in unwanted:
                bad = rx.search(haystack, 0, end)
                if bad is not None:
                    line = haystack[haystack.rfind("\n", 0, bad.start()) + 1:].split("\n")[0]
                    raise UnwantedOutput(f"{self.port.url}: unwanted output "
                                         f"{_shown(original)} on the console: {line!r}")
            if not hits:
                return None
            _, index, match = min(hits)
            found.append(Expected(match, haystack[:match.start()], wanted[index][0], index))
            return match

        kind = "text" if exact else "pattern"
        what = f"{kind}{'s' if len(wanted) > 1 else ''} " + " or ".join(_shown(p)
                                                                         for p, _ in wanted)
        self.port.expect_with(search, what, self.timeout if timeout is None else timeout)
        return found[-1]

    def expect_exact(self, texts: str | Sequence[str], timeout: float | None = None, *,
                     not_matching: Pattern | Iterable[Pattern] = ()) -> Expected:
        return self.expect(texts, timeout, not_matching=not_matching, exact=True)

    def expect_all(self, patterns: Sequence[Pattern], timeout: float | None = None, *,
                   not_matching: Pattern | Iterable[Pattern] = (),
                   exact: bool = False) -> list[Expected]:
        """Wait until every pattern has appeared, in any order; results in pattern order."""
        remaining = list(patterns)
        results: dict[int, Expected] = {}
        while remaining:
            got = self.expect(remaining, timeout, not_matching=not_matching, exact=exact)
            original = remaining.pop(got.index)
            results[list(patterns).index(original)] = got
        return [results[i] for i in range(len(patterns))]

    # -- shell -----------------------------------------------------------------------------------
    def shell(self, command: str, timeout: float | None = None) -> str:
        """Run a Zephyr shell command and return its output (without the echo and prompt)."""
        wait = self.timeout if timeout is None else timeout
        self.port.clear()
        self.write(b"\r\n")
        self.expect_exact(PROMPT.rstrip(), wait)
        self.port.clear()
        self.write(command.encode() + b"\r\n")
        got = self.expect_exact(PROMPT.rstrip(), wait)
        lines = got.before.replace("\r", "").split("\n")
        if lines and lines[0].strip().endswith(command):
            lines = lines[1:]  # the shell's echo of what was typed
        return "\n".join(lines).strip("\n")


def _compile(patterns, exact: bool) -> list[tuple[Pattern, re.Pattern[str]]]:
    items = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
    if not items:
        raise ValueError("expect needs at least one pattern")
    out = []
    for item in items:
        if isinstance(item, re.Pattern):
            out.append((item, item))
        elif exact:
            out.append((item, re.compile(re.escape(item))))
        else:
            out.append((item, re.compile(item, re.MULTILINE)))
    return out


def _shown(pattern: Pattern) -> str:
    return repr(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
