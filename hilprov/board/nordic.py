"""Nordic nRF boards behind a SEGGER J-Link probe, flashed by a `Flasher` (pynrfjprog or nRF Util,
see `hilprov.board.flashers`).

A `NordicBoard` is one probe's serial number plus the console port; every operation goes through
its flasher, which holds nothing between operations, so other tools can use the probe in
between, and boards on different probes are flashed at the same time.

Console port: VCOM0. On the nRF9160/9161/9151 DK, VCOM0 is the application core's UART0, where
Zephyr puts the console and the SMP transport (VCOM1 is UART1, VCOM2 the board controller); on the
nRF52/nRF53 DKs VCOM0 is also the application UART. Pass `port=` to override.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hilprov.board.base import Board
from hilprov.board.flashers.base import (
    DEFAULT_VERIFY,
    ERASE_MODES,
    SEGGER_USB_VID,
    EraseMode,
    Flasher,
    FlashStep,
    ProbeInfo,
    VerifyMode,
    find_vcom_ports,
    normalize_serial,
)
from hilprov.board.flashers.pynrfjprog import (
    JLINK_DOWNLOAD_URL,
    ProbeError,
    PynrfjprogFlasher,
    _verify_mode,
)
from hilprov.core.hexfile import HexImage, read_intel_hex
from hilprov.errors import BoardError

Progress = Callable[[str], None]

__all__ = ["ERASE_MODES", "JLINK_DOWNLOAD_URL", "SEGGER_USB_VID", "NordicBoard", "ProbeError",
           "ProbeInfo", "find_vcom_ports", "list_probes", "normalize_serial", "read_intel_hex"]


def list_probes(*, api_factory: Callable[[], Any] | None = None,
                comports: Callable[[], Any] | None = None,
                flasher: Flasher | None = None) -> list[ProbeInfo]:
    """Every connected J-Link probe with its chip family and VCOM ports (through `flasher`,
    default pynrfjprog).

    A probe whose chip cannot be reached (unpowered board) is still listed, with family "unknown".
    """
    return (flasher or PynrfjprogFlasher(api_factory, comports)).list_probes()


class NordicBoard(Board):
    """One nRF board on one J-Link probe: program, reset, find its console port.

    `flasher` does the work (default: pynrfjprog, through `api_factory`, which returns the
    pynrfjprog `HighLevel` module — tests pass a fake); `verify` is how the flow's flashes are
    checked ("hash", "read" or "none"); `port` overrides the console port; `comports` replaces
    pyserial's port listing (tests).
    """

    kind = "nordic"

    def __init__(self, serial_number: str | int, port: str | None = None,
                 baudrate: int = 115200, *, flasher: Flasher | None = None,
                 verify: VerifyMode = DEFAULT_VERIFY,
                 api_factory: Callable[[], Any] | None = None,
                 comports: Callable[[], Any] | None = None) -> None:
        self.serial_number = normalize_serial(serial_number)
        super().__init__(self.serial_number, port, baudrate)
        self.flasher = flasher or PynrfjprogFlasher(api_factory, comports)
        self.verify = verify
        self._info: ProbeInfo | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"NordicBoard(serial_number={self.serial_number!r}, flasher={self.flasher.name!r})"

    @property
    def flasher_name(self) -> str:
        return self.flasher.name

    @property
    def port(self) -> str:
        if self._port is None:
            self._port = self.console_port()
        return self._port

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        self.program(image, erase="chip" if erase else "sector", verify=self.verify, reset=True,
                     progress=progress)

    def close(self) -> None:
        """Nothing is held between operations; closing only refuses further use."""
        self._closed = True

    @property
    def family(self) -> str:
        """Chip family in lower case ("nrf91", "nrf52", ...), or "unknown"."""
        return self._describe().family

    def console_port(self) -> str:
        """The serial port carrying the Zephyr console and SMP: `port=` if given, else VCOM0."""
        if self._port:
            return self._port
        ports = self._describe().vcom_ports
        if not ports:
            raise BoardError(
                f"no virtual COM port found for J-Link probe {self.serial_number} (asked "
                f"{self.flasher.title} and USB serial ports with VID 0x{SEGGER_USB_VID:04X}); "
                f"give the port explicitly")
        return ports[0]

    def reset(self) -> None:
        """System reset, so the firmware boots again (open the console first to see the boot)."""
        self._check_open()
        self.flasher.reset(self.serial_number)

    def program(self, hex_path: str | Path, erase: EraseMode = "chip",
                verify: VerifyMode | bool = True, reset: bool = True,
                progress: Progress | None = None) -> HexImage:
        """Flash an Intel HEX file; `erase` is "chip" (all flash and UICR), "sector" (only the
        pages the file covers) or "none"; `verify` is "hash" (the chip hashes its flash),
        "read" (read it all back and compare) or "none" — True and False, as this method first
        took them, mean "read" and "none". `progress` gets one line per step.
        """
        verify = _verify_mode(verify)
        if erase not in ERASE_MODES:
            from hilprov.errors import ConfigError

            raise ConfigError(f"erase mode {erase!r} is not one of {', '.join(ERASE_MODES)}")
        self._check_open()
        image = read_intel_hex(hex_path)  # before touching the probe

        def forward(step: FlashStep) -> None:
            if progress is not None:
                progress(str(step))

        self.flasher.program(self.serial_number, image, erase=erase, verify=verify, reset=reset,
                             progress=forward)
        return image

    def _check_open(self) -> None:
        if self._closed:
            raise BoardError(f"board on J-Link probe {self.serial_number} is already closed")

    def _describe(self) -> ProbeInfo:
        self._check_open()
        if self._info is None:
            self._info = self.flasher.probe_info(self.serial_number)
        return self._info
