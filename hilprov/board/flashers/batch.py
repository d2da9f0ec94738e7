"""One image onto many probes at once (`hilprov flash`): a thread per probe, every outcome kept.

The flasher decides what "at once" means for its tool (pynrfjprog: one shared library, a handle
per probe; nRF Util: a process per probe); this only starts them together and waits for all, so a
failing board never stops the others. An interrupt cancels what the tool can cancel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hilprov.board.flashers.base import EraseMode, Flasher, FlashStep, VerifyMode
from hilprov.core.hexfile import HexImage

BatchProgress = Callable[[str, FlashStep], None]  # (serial number as given, step)


@dataclass
class ProbeOutcome:
    """How one probe's programming ended."""

    serial_number: str  # as given
    reported: str  # as the flasher last reported it
    seconds: float = 0.0
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def program_many(flasher: Flasher, serial_numbers: Sequence[str], image: HexImage, *,
                 erase: EraseMode = "chip", verify: VerifyMode = "hash", reset: bool = True,
                 progress: BatchProgress | None = None,
                 poll: float = 0.2) -> list[ProbeOutcome]:
    """Program `image` on every probe at the same time; outcomes in the order given."""
    outcomes = [ProbeOutcome(snr, snr) for snr in serial_numbers]

    def work(outcome: ProbeOutcome) -> None:
        def report(step: FlashStep) -> None:
            outcome.reported = step.serial_number
            if progress is not None:
                progress(outcome.serial_number, step)

        start = time.monotonic()
        try:
            flasher.program(outcome.serial_number, image, erase=erase, verify=verify,
                            reset=reset, progress=report)
        except BaseException as exc:  # kept and reported with the others
            outcome.error = exc
        finally:
            outcome.seconds = time.monotonic() - start

    threads = [threading.Thread(target=work, args=(outcome,), daemon=True,
                                name=f"flash-{outcome.serial_number}") for outcome in outcomes]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(poll)  # short waits, so the main thread sees SIGINT/SIGTERM
    except BaseException:
        flasher.cancel()
        for thread in threads:
            thread.join(timeout=30)
        raise
    return outcomes
