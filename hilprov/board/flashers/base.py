"""What hilprov asks of a tool that flashes nRF chips behind a SEGGER J-Link probe.

Two tools do it: pynrfjprog (Nordic's archived nrfjprog libraries, in this process) and nRF Util
(`nrfutil device`, Nordic's current tool, one process per operation). Both are a `Flasher`: list
the probes, describe one, program a HEX file with an erase mode and a verification, reset. Each
operation names its probe by serial number, so one flasher serves every board of a run, and boards
on different probes are flashed at the same time; two operations on one probe never overlap
(`probe_lock`), since neither library allows two connections to the same probe.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hilprov.board.flashers import DEFAULT_VERIFY, ERASE_MODES, VERIFY_MODES
from hilprov.errors import ConfigError

if TYPE_CHECKING:
    from hilprov.core.hexfile import HexImage

log = logging.getLogger("hilprov.board.flashers")

SEGGER_USB_VID = 0x1366
EraseMode = Literal["chip", "sector", "none"]  # ERASE_MODES
VerifyMode = Literal["hash", "read", "none"]  # VERIFY_MODES
ERASE_WORDS = {"chip": "after a chip erase", "sector": "after erasing the sectors it covers",
               "none": "without erasing"}
VERIFY_WORDS = {"hash": "by hash", "read": "by reading it back", "none": ""}


@dataclass(frozen=True)
class ProbeInfo:
    """A connected J-Link probe: serial as a string, chip family ("nrf91"), VCOM ports in order."""

    serial_number: str
    family: str
    vcom_ports: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FlashStep:
    """One progress report: the probe's serial number as the flasher reports it, what is being
    done, and how far (0-100) when the flasher says."""

    serial_number: str
    text: str
    percent: float | None = None

    def __str__(self) -> str:
        return self.text if self.percent is None else f"{self.text} {self.percent:.0f}%"


Progress = Callable[[FlashStep], None]


class Flasher(ABC):
    """One flashing tool for every probe of a run (see the module docstring)."""

    name: str = "flasher"  # as --flasher spells it and records keep it
    title: str = "flasher"  # for people

    @abstractmethod
    def connected(self) -> list[str]:
        """Serial numbers of the connected probes (normalized); a missing tool is a
        one-line BoardError."""

    @abstractmethod
    def list_probes(self) -> list[ProbeInfo]:
        """Every connected J-Link probe; a probe whose chip cannot be reached has family
        "unknown"."""

    @abstractmethod
    def probe_info(self, serial_number: str) -> ProbeInfo:
        """The probe's family and VCOM ports; BoardError if it is not connected."""

    @abstractmethod
    def program(self, serial_number: str, image: HexImage, *, erase: EraseMode = "chip",
                verify: VerifyMode = DEFAULT_VERIFY, reset: bool = True,
                progress: Progress | None = None) -> None:
        """Write `image` (already read and checked), verify it and start it."""

    @abstractmethod
    def reset(self, serial_number: str) -> None:
        """System reset: the firmware boots again."""

    def cancel(self) -> None:  # noqa: B027 - only flashers that run processes can stop them
        """Stop running operations where the tool allows it (an interrupted run)."""


__all__ = ["DEFAULT_VERIFY", "ERASE_MODES", "SEGGER_USB_VID", "VERIFY_MODES", "EraseMode",
           "FlashStep", "Flasher", "ProbeInfo", "Progress", "VerifyMode", "check_modes",
           "find_vcom_ports", "normalize_serial", "probe_lock", "reporter", "same_serial"]


def check_modes(erase: str, verify: str) -> None:
    if erase not in ERASE_MODES:
        raise ConfigError(f"erase mode {erase!r} is not one of {', '.join(ERASE_MODES)}")
    if verify not in VERIFY_MODES:
        raise ConfigError(f"verify mode {verify!r} is not one of {', '.join(VERIFY_MODES)}")


_PROBE_LOCKS: dict[str, threading.Lock] = {}
_PROBE_LOCKS_GUARD = threading.Lock()


def probe_lock(serial_number: str) -> threading.Lock:
    """The lock of one probe in this process: whoever holds it is the probe's only user."""
    with _PROBE_LOCKS_GUARD:
        return _PROBE_LOCKS.setdefault(serial_number, threading.Lock())


def normalize_serial(value: str | int) -> str:
    """J-Link serials are u32; USB reports them zero-padded ("000960012345"). Return "960012345"."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 0xFFFFFFFF:
        raise ConfigError(f"J-Link probe serial number {text!r} is not a number between 1 and "
                          f"4294967295 (e.g. 960012345)")
    return str(int(text))


def same_serial(reported: str | int | None, wanted: str) -> bool:
    text = str(reported if reported is not None else "").strip()
    return text.isdigit() and str(int(text)) == wanted


def find_vcom_ports(serial_number: str | int, comports: Callable[[], Any] | None = None,
                    ) -> list[str]:
    """Serial ports of a J-Link (SEGGER VID, matching USB serial), VCOM0 first.

    Order follows the USB interface number in the port's location ("1-1.2:1.0" → 0), then the
    device name, because VCOM n is the n-th CDC interface of the probe.
    """
    if comports is None:
        from serial.tools.list_ports import comports
    wanted = normalize_serial(serial_number)
    matches = [p for p in comports() if p.vid == SEGGER_USB_VID
               and same_serial(p.serial_number, wanted)]
    return [p.device for p in sorted(matches, key=_port_order)]


def _port_order(port: Any) -> tuple[int, list[Any]]:
    found = re.search(r":\d+\.(\d+)$", port.location or "")
    interface = int(found.group(1)) if found else 1 << 16
    return interface, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", port.device)]


def reporter(progress: Progress | None, serial_number: str) -> Callable[..., None]:
    """`say(text, percent=None, reported=None)`: log the step (with -v) and hand it to
    `progress`; `reported` is the serial number as the tool printed it."""
    def say(text: str, percent: float | None = None, reported: str | None = None) -> None:
        step = FlashStep(reported or serial_number, text, percent)
        if percent is None:
            log.debug("[%s] %s", step.serial_number, text)
        if progress is not None:
            progress(step)
    return say
