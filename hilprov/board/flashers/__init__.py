"""The tools that flash J-Link boards, chosen by name (`--flasher`).

`auto` takes nRF Util when an `nrfutil` with its `device` command is on PATH (Nordic's current
tool; the nRF Command Line Tools are archived), else pynrfjprog. The choice is made once per
process and logged (shown with -v). Importing this package imports neither tool.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hilprov.board.flashers.base import Flasher

log = logging.getLogger("hilprov.board.flashers")

FLASHERS = ("auto", "nrfutil", "pynrfjprog")
DEFAULT_FLASHER = "auto"
ERASE_MODES = ("chip", "sector", "none")
VERIFY_MODES = ("hash", "read", "none")
DEFAULT_VERIFY = "hash"
_CHOSEN: dict[str, Flasher] = {}
_CHOOSING = threading.Lock()


def choose(name: str = DEFAULT_FLASHER) -> Flasher:
    """The flasher `name` stands for, shared by every board of this process. A named tool that
    is missing is a one-line BoardError (exit 7)."""
    if name not in FLASHERS:
        from hilprov.errors import ConfigError

        raise ConfigError(f"flasher {name!r} is not one of {', '.join(FLASHERS)}")
    with _CHOOSING:
        if name not in _CHOSEN:
            _CHOSEN[name] = _make(name)
        return _CHOSEN[name]


def _make(name: str) -> Flasher:
    from hilprov.board.flashers import nrfutil
    from hilprov.board.flashers.pynrfjprog import PynrfjprogFlasher

    if name == "pynrfjprog":
        log.debug("flasher: pynrfjprog (--flasher pynrfjprog)")
        return PynrfjprogFlasher()
    if name == "nrfutil":
        flasher = nrfutil.NrfutilFlasher()
        log.debug("flasher: nRF Util at %s (--flasher nrfutil)", flasher.executable)
        return flasher
    found = nrfutil.find_nrfutil()
    if found is not None and nrfutil.has_device_command(found):
        log.debug("flasher: nRF Util at %s (auto: nrfutil with its device command is on PATH)",
                  found)
        return nrfutil.NrfutilFlasher(found)
    why = "no nrfutil on PATH" if found is None else f"{found} has no device command"
    log.debug("flasher: pynrfjprog (auto: %s)", why)
    return PynrfjprogFlasher()


def forget() -> None:
    """Choose again next time (tests change what is installed)."""
    import sys

    with _CHOOSING:
        _CHOSEN.clear()
        nrfutil = sys.modules.get("hilprov.board.flashers.nrfutil")
        if nrfutil is not None:
            nrfutil.forget()


__all__ = ["DEFAULT_FLASHER", "DEFAULT_VERIFY", "ERASE_MODES", "FLASHERS", "VERIFY_MODES",
           "choose", "forget"]
