"""Nordic nRF boards behind a SEGGER J-Link probe, driven through pynrfjprog.

pynrfjprog is imported only when a probe is used, so `import hilprov` works on machines without
J-Link (CI, laptops building blobs). We use its `HighLevel` module: one `program()` call takes the
erase mode, and `get_probe_info()` reports the probe's virtual COM ports with their VCOM index.

Every operation opens the nrfjprog library, connects to the probe, does its job and closes both,
even on error. The library is one per process (a second open fails), so sessions are serialised by
a lock, and nothing is held between steps so other tools can use the probe in between.

Console port: VCOM0. On the nRF9160/9161/9151 DK, VCOM0 is the application core's UART0, where
Zephyr puts the console and the SMP transport (VCOM1 is UART1, VCOM2 the board controller); on the
nRF52/nRF53 DKs VCOM0 is also the application UART. Pass `port=` to override.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from hilprov.board.base import Board
from hilprov.core.hexfile import HexImage, read_intel_hex
from hilprov.errors import BoardError, ConfigError, JLinkMissingError

log = logging.getLogger(__name__)

JLINK_DOWNLOAD_URL = "https://www.segger.com/downloads/jlink/"
SEGGER_USB_VID = 0x1366
EraseMode = Literal["chip", "sector", "none"]
ERASE_MODES: tuple[str, ...] = get_args(EraseMode)
Progress = Callable[[str], None]

_DLL_LOCK = threading.RLock()
# pynrfjprog adds logging handlers to this logger for every API/probe object and never removes them.
_PYNRFJPROG_LOGGER = "pynrfjprog.HighLevel"

_MISSING_JLINK = {"JLINKARM_DLL_NOT_FOUND", "JLINKARM_DLL_COULD_NOT_BE_OPENED",
                  "NRFJPROG_SUB_DLL_COULD_NOT_BE_OPENED"}
_BROKEN_PYNRFJPROG = {"NRFJPROG_SUB_DLL_NOT_FOUND", "NRFJPROG_SUB_DLL_COULD_NOT_LOAD_FUNCTIONS",
                      "NRFJPROG_HOST_EXE_NOT_FOUND"}
_HINTS = {
    "VERIFY_ERROR": "the flash read back differs from the hex file",
    "NOT_AVAILABLE_BECAUSE_PROTECTION": "the device is read-back protected; recover it "
                                        "(nrfjprog --recover) and try again",
    "CANNOT_CONNECT": "the probe cannot reach the nRF chip: check board power and the debug cable",
    "LOW_VOLTAGE": "the board's supply voltage is too low",
    "EMULATOR_NOT_CONNECTED": "the probe disappeared: check its USB cable",
    "JLINKARM_DLL_TIME_OUT_ERROR": "the probe stopped answering",
    "NVMC_ERROR": "the flash controller reported a write/erase failure",
}


class ProbeError(BoardError):
    """A pynrfjprog call failed; carries the step, the probe and nrfjprog's error name."""

    def __init__(self, operation: str, serial_number: str | None, error_name: str) -> None:
        self.operation = operation
        self.serial_number = serial_number
        self.error_name = error_name
        where = f" on J-Link probe {serial_number}" if serial_number else ""
        hint = f" ({_HINTS[error_name]})" if error_name in _HINTS else ""
        super().__init__(f"{operation}{where} failed: {error_name}{hint}")


@dataclass(frozen=True)
class ProbeInfo:
    """A connected J-Link probe: serial as a string, chip family ("nrf91"), VCOM ports in order."""

    serial_number: str
    family: str
    vcom_ports: list[str] = field(default_factory=list)


def normalize_serial(value: str | int) -> str:
    """J-Link serials are u32; USB reports them zero-padded ("000960012345"). Return "960012345"."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 0xFFFFFFFF:
        raise ConfigError(f"J-Link probe serial number {text!r} is not a number between 1 and "
                          f"4294967295 (e.g. 960012345)")
    return str(int(text))


def find_vcom_ports(serial_number: str | int, comports: Callable[[], Any] | None = None,
                    ) -> list[str]:
    """Serial ports of a J-Link (SEGGER VID, matching USB serial), VCOM0 first.

    Order follows the USB interface number in the port's location ("1-1.2:1.0" → 0), then the
    device name, because VCOM n is the n-th CDC interface of the probe.
    """
    if comports is None:
        from serial.tools.list_ports import comports
    wanted = normalize_serial(serial_number)
    matches = [p for p in comports() if p.vid == SEGGER_USB_VID and _same_serial(p.serial_number,
                                                                                   wanted)]
    return [p.device for p in sorted(matches, key=_port_order)]


def list_probes(*, api_factory: Callable[[], Any] | None = None,
                comports: Callable[[], Any] | None = None) -> list[ProbeInfo]:
    """Every connected J-Link probe with its chip family and VCOM ports.

    A probe whose chip cannot be reached (unpowered board) is still listed, with family "unknown".
    """
    hl = (api_factory or _load_highlevel)()
    with _api_session(hl, "listing J-Link probes", None) as api:
        serials = _connected_serials(hl, api, None)
        return [_describe(hl, api, snr, comports) for snr in serials]


class NordicBoard(Board):
    """One nRF board on one J-Link probe: program, reset, find its console port.

    `api_factory` returns the pynrfjprog `HighLevel` module (tests pass a fake); `port` overrides
    the console port; `comports` replaces pyserial's port listing (tests).
    """

    kind = "nordic"

    def __init__(self, serial_number: str | int, port: str | None = None,
                 baudrate: int = 115200, *, api_factory: Callable[[], Any] | None = None,
                 comports: Callable[[], Any] | None = None) -> None:
        self.serial_number = normalize_serial(serial_number)
        super().__init__(self.serial_number, port, baudrate)
        self._load = api_factory or _load_highlevel
        self._comports = comports
        self._info: ProbeInfo | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"NordicBoard(serial_number={self.serial_number!r})"

    @property
    def port(self) -> str:
        if self._port is None:
            self._port = self.console_port()
        return self._port

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        self.program(image, erase="chip" if erase else "sector", verify=True, reset=True,
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
                f"pynrfjprog and USB serial ports with VID 0x{SEGGER_USB_VID:04X}); "
                f"give the port explicitly")
        return ports[0]

    def reset(self) -> None:
        """System reset, so the firmware boots again (open the console first to see the boot)."""
        with self._probe("resetting the board") as (hl, probe):
            probe.reset(hl.ResetAction.RESET_SYSTEM)

    def program(self, hex_path: str | Path, erase: EraseMode = "chip", verify: bool = True,
                reset: bool = True, progress: Progress | None = None) -> HexImage:
        """Flash an Intel HEX file; `erase` is "chip" (all flash and UICR), "sector" (only the
        pages the file covers) or "none"; `verify` reads the flash back and compares.

        pynrfjprog has no progress callback, so `progress` gets one line per step we take.
        """
        if erase not in ERASE_MODES:
            raise ConfigError(f"erase mode {erase!r} is not one of {', '.join(ERASE_MODES)}")
        self._check_open()
        image = read_intel_hex(hex_path)  # before touching the probe
        say = _reporter(progress)
        how = {"chip": "after a chip erase", "sector": "after erasing the sectors it covers",
               "none": "without erasing"}[erase]
        name, target = image.path.name, str(image.path.resolve())
        say(f"connecting to J-Link probe {self.serial_number}")
        with self._probe(f"programming {name}") as (hl, probe):
            action = {"chip": hl.EraseAction.ERASE_ALL, "sector": hl.EraseAction.ERASE_SECTOR,
                      "none": hl.EraseAction.ERASE_NONE}[erase]
            options = hl.ProgramOptions(erase_action=action, verify=hl.VerifyAction.VERIFY_NONE,
                                        reset=hl.ResetAction.RESET_NONE)
            say(f"programming {name} ({image.data_bytes} bytes at 0x{image.start:08X}-"
                f"0x{image.end - 1:08X}) {how}")
            with _api_errors(hl, f"programming {name}", self.serial_number):
                probe.program(target, program_options=options)
            if verify:
                say(f"verifying {name}")
                with _api_errors(hl, f"verifying {name}", self.serial_number):
                    probe.verify(target, hl.VerifyAction.VERIFY_READ)
            if reset:
                say("resetting the board")
                with _api_errors(hl, "resetting the board", self.serial_number):
                    probe.reset(hl.ResetAction.RESET_SYSTEM)
        say(f"programmed {name}")
        return image

    def _check_open(self) -> None:
        if self._closed:
            raise BoardError(f"board on J-Link probe {self.serial_number} is already closed")

    def _describe(self) -> ProbeInfo:
        self._check_open()
        if self._info is None:
            with self._probe("reading probe and device information") as (hl, probe):
                self._info = _probe_info(hl, probe, self.serial_number, self._comports)
        return self._info

    @contextmanager
    def _probe(self, operation: str) -> Iterator[tuple[Any, Any]]:
        self._check_open()
        hl = self._load()
        snr = self.serial_number
        with _api_session(hl, operation, snr) as api:
            connected = _connected_serials(hl, api, snr)
            if snr not in connected:
                found = ", ".join(connected) if connected else "none"
                raise BoardError(f"J-Link probe {snr} is not connected ({operation}); "
                                 f"connected probes: {found}")
            with _api_errors(hl, "connecting to the probe", snr):
                probe = hl.DebugProbe(api, int(snr))
            try:
                yield hl, probe
            finally:
                _close_quietly(probe.close, f"probe {snr}")


# --- helpers -------------------------------------------------------------------------------------

def _load_highlevel() -> Any:
    try:
        with warnings.catch_warnings():  # HighLevel warns it "will be deprecated in version 11"
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return importlib.import_module("pynrfjprog.HighLevel")
    except ImportError as err:
        raise JLinkMissingError(f"pynrfjprog cannot be imported ({err}); install it: "
                                f"pip install 'pynrfjprog>=10.24'") from None


@contextmanager
def _api_session(hl: Any, operation: str, snr: str | None) -> Iterator[Any]:
    """Open the nrfjprog library for one operation and close it whatever happens."""
    logger = logging.getLogger(_PYNRFJPROG_LOGGER)
    with _DLL_LOCK:
        handlers_before = list(logger.handlers)
        try:
            with _api_errors(hl, operation, snr):
                api = hl.API()
                api.open()  # a failed open leaves nothing to close (close() would fail)
            try:
                with _api_errors(hl, operation, snr):
                    yield api
            finally:
                _close_quietly(api.close, "the nrfjprog library")
        finally:
            for handler in logger.handlers[:]:
                if handler not in handlers_before:
                    logger.removeHandler(handler)


@contextmanager
def _api_errors(hl: Any, operation: str, snr: str | None) -> Iterator[None]:
    """Turn pynrfjprog's APIError into JLinkMissingError or ProbeError: one line, no traceback."""
    try:
        yield
    except hl.APIError as err:
        name = getattr(getattr(err, "error_enum", None), "name", None) or f"error {err.err_code}"
        if name in _MISSING_JLINK or name in _BROKEN_PYNRFJPROG or name == "JLINKARM_DLL_TOO_OLD":
            raise JLinkMissingError(_missing_library_message(name, err.err_msg)) from None
        raise ProbeError(operation, snr, name) from None


def _missing_library_message(name: str, err_msg: str) -> str:
    err_msg = (err_msg or "").strip()
    found = re.search(r"OSError\((['\"])(.+?)\1\)", err_msg)  # the loader's reason, if any
    detail = found.group(2) if found else err_msg.splitlines()[0][:200] if err_msg else ""
    why = f"{name}: {detail}" if detail else name
    if name in _BROKEN_PYNRFJPROG:
        return (f"pynrfjprog's bundled nrfjprog libraries are incomplete ({why}); reinstall it: "
                f"pip install --force-reinstall 'pynrfjprog>=10.24'")
    if name == "JLINKARM_DLL_TOO_OLD":
        return (f"SEGGER J-Link software is too old for pynrfjprog ({why}); install the current "
                f"J-Link Software and Documentation Pack from {JLINK_DOWNLOAD_URL}")
    libusb = (" and the libusb-1.0 system library (Debian/Ubuntu: apt install libusb-1.0-0)"
              if "libusb" in detail else "")
    return (f"SEGGER J-Link software is missing ({why}): install the J-Link Software and "
            f"Documentation Pack from {JLINK_DOWNLOAD_URL}{libusb}; the nrfjprog libraries come "
            f"with pynrfjprog, the nRF Command Line Tools are not needed")


def _connected_serials(hl: Any, api: Any, snr: str | None) -> list[str]:
    with _api_errors(hl, "listing J-Link probes", snr):
        return [str(s) for s in sorted(api.get_connected_probes())]


def _describe(hl: Any, api: Any, snr: str, comports: Callable[[], Any] | None) -> ProbeInfo:
    """Like `_probe_info`, but a probe we cannot connect to is listed rather than fatal."""
    try:
        with _api_errors(hl, "reading probe and device information", snr):
            probe = hl.DebugProbe(api, int(snr))
        try:
            return _probe_info(hl, probe, snr, comports)
        finally:
            _close_quietly(probe.close, f"probe {snr}")
    except ProbeError as err:
        log.warning("%s", err)
        return ProbeInfo(snr, "unknown", find_vcom_ports(snr, comports))


def _probe_info(hl: Any, probe: Any, snr: str, comports: Callable[[], Any] | None) -> ProbeInfo:
    with _api_errors(hl, "reading probe and device information", snr):
        com_ports = probe.get_probe_info().com_ports
        device = probe.get_device_info()
    family = device.device_family.name.lower() if not device.dll_ret_code else "unknown"
    ports = [p.path for p in sorted(com_ports, key=lambda p: p.vcom)]
    return ProbeInfo(snr, family, ports or find_vcom_ports(snr, comports))


def _same_serial(usb_serial: str | None, wanted: str) -> bool:
    text = (usb_serial or "").strip()
    return text.isdigit() and str(int(text)) == wanted


def _port_order(port: Any) -> tuple[int, list[Any]]:
    found = re.search(r":\d+\.(\d+)$", port.location or "")
    interface = int(found.group(1)) if found else 1 << 16
    return interface, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", port.device)]


def _reporter(progress: Progress | None) -> Progress:
    def say(step: str) -> None:
        log.info("%s", step)
        if progress is not None:
            progress(step)
    return say


def _close_quietly(close: Callable[[], object], what: str) -> None:
    try:
        close()
    except Exception as err:  # a failed close must not hide the step's own result
        log.warning("closing %s failed: %s", what, err)
