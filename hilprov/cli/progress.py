"""What the user sees while boards are provisioned: one line per step and board on stderr, and a
transfer bar when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from hilprov.station.flow import FlowObserver, FlowResult, StepRecord
from hilprov.station.states import StepStatus

BAR_WIDTH = 30


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#####.....] done/total B`"""
    filled = int(width * done / total) if total > 0 else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} B"


class TransferBar:
    """A progress callback `(done, total)` that redraws one bar line on a terminal."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        self.stream.write(f"\r{self.prefix}{bar(done, total)}\x1b[K")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("\n")


class ProgressPrinter(FlowObserver):
    """One line per step and board on stderr (`[board] step  ok  1.23 s  detail`); a transfer
    progress bar when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, prefix: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._bars: dict[str, TransferBar] = {}

    def _line(self, result: FlowResult, text: str) -> None:
        head = f"[{result.board}] " if self.prefix else ""
        with self._lock:
            end = "\x1b[K\n" if self.tty else "\n"
            self.stream.write(("\r" if self.tty else "") + head + text + end)
            self.stream.flush()

    def status(self, result: FlowResult, step: str, text: str) -> None:
        if self.tty:
            with self._lock:
                self.stream.write(f"\r[{result.board}] {step:<16} {text} ...\x1b[K")
                self.stream.flush()

    def step_finished(self, result: FlowResult, step: StepRecord) -> None:
        seconds = f"{step.seconds:6.2f} s" if step.status != StepStatus.SKIPPED else "      -"
        detail = step.detail if len(step.detail) < 160 else step.detail[:157] + "..."
        self._line(result, f"{step.name:<16} {step.status:<7} {seconds}  {detail}".rstrip())

    def run_finished(self, result: FlowResult) -> None:
        what = result.outcome if result.ok else f"FAILED ({result.error_kind})"
        endpoint = f" {result.endpoint}" if result.endpoint else ""
        self._line(result, f"{'result':<16} {what}{endpoint} in {result.seconds:.2f} s")

    def transfer(self, result: FlowResult, step: str, done: int, total: int) -> None:
        if not self.tty or total <= 0:
            return
        key = f"{result.board}/{step}"
        progress = self._bars.get(key) or self._bars.setdefault(
            key, TransferBar(self.stream, f"[{result.board}] {step:<16} "))
        with self._lock:
            progress(done, total)
