"""`hilprov flash HEX --board SNR …`: one image onto every probe at once, one line per board.

On a terminal each board has one line, redrawn in place as its flasher reports progress; into a
file or pipe (and with -v) each new step is its own line. Every line starts with the probe's
serial number as the flasher reports it. The run ends with each board's outcome; a failure is
its error line (exit code of the first failure), the other boards still finish.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import TextIO

from hilprov.board.flashers.base import FlashStep
from hilprov.board.flashers.batch import ProbeOutcome
from hilprov.cli.exits import print_error
from hilprov.errors import BoardError, ConfigError, HilprovError

log = logging.getLogger("hilprov")


class FlashLines:
    """One progress line per board on `stream` (see the module docstring)."""

    def __init__(self, serial_numbers: list[str], stream: TextIO | None = None, *,
                 redraw: bool | None = None, steps: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.serials = list(serial_numbers)
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.redraw = tty if redraw is None else redraw
        self.steps = steps  # False: only each board's last line (with -v the log has the steps)
        self._shown: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.redraw:
            self.stream.write("".join(f"[{snr}] waiting\n" for snr in self.serials))
            self.stream.flush()

    def update(self, serial_number: str, step: FlashStep) -> None:
        with self._lock:
            if self.redraw:
                self._rewrite(serial_number, str(step))
            elif self.steps and self._shown.get(serial_number) != step.text:
                self._shown[serial_number] = step.text
                self._append(serial_number, str(step))

    def finish(self, outcome: ProbeOutcome, text: str) -> None:
        with self._lock:
            if self.redraw:
                self._rewrite(outcome.serial_number, text)
            else:
                self._append(outcome.serial_number, text)

    def _rewrite(self, serial_number: str, text: str) -> None:
        up = len(self.serials) - self.serials.index(serial_number)
        self.stream.write(f"\x1b[{up}A\r[{serial_number}] {text}\x1b[K"
                          f"\x1b[{up}B\r")
        self.stream.flush()

    def _append(self, serial_number: str, text: str) -> None:
        self.stream.write(f"[{serial_number}] {text}\n")
        self.stream.flush()


def cmd_flash(args: argparse.Namespace) -> int:
    from hilprov.board import flashers
    from hilprov.board.flashers.base import normalize_serial
    from hilprov.board.flashers.batch import program_many
    from hilprov.core.hexfile import read_intel_hex

    serials = [normalize_serial(snr) for snr in args.board]
    twice = sorted({snr for snr in serials if serials.count(snr) > 1})
    if twice:
        raise ConfigError(f"--board {', '.join(twice)} is given twice: a probe is flashed once")
    image = read_intel_hex(args.hex)  # before any probe is touched
    flasher = flashers.choose(args.flasher)
    connected = flasher.connected()  # a missing tool or probe stops the batch before it starts
    absent = [snr for snr in serials if snr not in connected]
    if absent:
        raise BoardError(f"J-Link probe(s) {', '.join(absent)} not connected ({flasher.title} "
                         f"sees: {', '.join(connected) or 'none'}); nothing was flashed")
    log.info("flashing %s (%d bytes) on %d board(s) with %s, %s erase, verify %s", image.path.name,
             image.data_bytes, len(serials), flasher.title, args.erase, args.verify)
    lines = FlashLines(serials, redraw=None if not args.verbose else False,
                       steps=not args.verbose) if not args.quiet else None
    start = time.monotonic()
    outcomes = program_many(flasher, serials, image, erase=args.erase, verify=args.verify,
                            progress=lines.update if lines else None)
    for outcome in outcomes:
        if lines is not None:
            lines.finish(outcome, _outcome_text(outcome, image.path.name, lines.redraw))
    for outcome in outcomes:
        if not outcome.ok:
            _print_failure(args.prog, outcome)
    done = sum(1 for outcome in outcomes if outcome.ok)
    log.info("%d of %d board(s) programmed in %.2f s", done, len(outcomes),
             time.monotonic() - start)
    failed = [outcome.error for outcome in outcomes if not outcome.ok]
    if not failed:
        return 0
    first = failed[0]
    return first.exit_code if isinstance(first, HilprovError) else 1


def _outcome_text(outcome: ProbeOutcome, name: str, whole: bool) -> str:
    """The board's last line: all of it when it replaces the progress line, else what the
    steps above have not said."""
    if outcome.ok:
        return f"programmed {name} in {outcome.seconds:.2f} s" if whole else \
            f"done in {outcome.seconds:.2f} s"
    kind = outcome.error.kind if isinstance(outcome.error, HilprovError) else "internal error"
    return f"FAILED ({kind}) after {outcome.seconds:.2f} s"


def _print_failure(prog: str, outcome: ProbeOutcome) -> None:
    """Named by the serial number as given (nRF Util's zero-padded form would be a second name
    for the same board)."""
    error = outcome.error
    if isinstance(error, HilprovError):
        print_error(prog, error, outcome.serial_number)
    elif isinstance(error, KeyboardInterrupt):
        print(f"{prog}: [{outcome.serial_number}] interrupted", file=sys.stderr)
    else:
        log.debug("internal error on %s", outcome.serial_number, exc_info=error)
        print(f"{prog}: internal error: [{outcome.serial_number}] {type(error).__name__}: {error} "
              "(this is a bug; run with -v and report it)", file=sys.stderr)
