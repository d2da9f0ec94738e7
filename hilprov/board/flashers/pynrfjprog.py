"""Flashing through pynrfjprog's `HighLevel` module (the nrfjprog libraries, in this process).

pynrfjprog is imported only when a probe is used, so `import hilprov` works on machines without
J-Link (CI, laptops building blobs). One `program()` call takes the erase mode, `verify()` takes
VERIFY_HASH (the chip hashes its flash: nothing is read back) or VERIFY_READ, and
`get_probe_info()` reports the probe's virtual COM ports with their VCOM index.

The library's multi-probe model (pynrfjprog 10.24 release notes and highlevelnrfjprogdll.h):
the library is opened once per process — a second `API().open()` fails with INVALID_OPERATION
and leaves it closed for everyone — and one open library serves several probes at once, each
through its own `DebugProbe` handle; two handles to the same probe cannot exist. So:

* `_Library` is the process's one open API, shared by reference count: the first operation opens
  it, the last one to finish closes it, so nothing is held between operations and other tools
  can use the probes in between. Opening, closing and listing probes are serialised.
* each operation makes its own `DebugProbe` under that probe's lock (`probe_lock`), and closes it
  before the lock is released: operations on different probes run at the same time; on one
  probe they take turns.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hilprov.board.flashers.base import (
    DEFAULT_VERIFY,
    ERASE_WORDS,
    VERIFY_WORDS,
    EraseMode,
    Flasher,
    ProbeInfo,
    Progress,
    VerifyMode,
    check_modes,
    find_vcom_ports,
    normalize_serial,
    probe_lock,
    reporter,
)
from hilprov.core.hexfile import HexImage
from hilprov.errors import BoardError, JLinkMissingError

log = logging.getLogger("hilprov.board.flashers.pynrfjprog")

JLINK_DOWNLOAD_URL = "https://www.segger.com/downloads/jlink/"
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


class PynrfjprogFlasher(Flasher):
    """Every J-Link probe of this process through pynrfjprog (see the module docstring).

    `api_factory` returns the `HighLevel` module (tests pass a fake); `comports` replaces
    pyserial's port listing (tests)."""

    name = "pynrfjprog"
    title = "pynrfjprog (nrfjprog libraries)"

    def __init__(self, api_factory: Callable[[], Any] | None = None,
                 comports: Callable[[], Any] | None = None) -> None:
        self._api_factory = api_factory
        self._comports = comports

    def __repr__(self) -> str:
        return "PynrfjprogFlasher()"

    def _highlevel(self) -> Any:
        return (self._api_factory or _load_highlevel)()

    def connected(self) -> list[str]:
        hl = self._highlevel()
        with _library(hl, "listing J-Link probes", None) as api:
            return _connected_serials(hl, api, None)

    def list_probes(self) -> list[ProbeInfo]:
        hl = self._highlevel()
        with _library(hl, "listing J-Link probes", None) as api:
            serials = _connected_serials(hl, api, None)
            return [_describe(hl, api, snr, self._comports) for snr in serials]

    def probe_info(self, serial_number: str) -> ProbeInfo:
        snr = normalize_serial(serial_number)
        with self._probe("reading probe and device information", snr) as (hl, probe):
            return _probe_info(hl, probe, snr, self._comports)

    def program(self, serial_number: str, image: HexImage, *, erase: EraseMode = "chip",
                verify: VerifyMode | bool = DEFAULT_VERIFY, reset: bool = True,
                progress: Progress | None = None) -> None:
        verify = _verify_mode(verify)
        check_modes(erase, verify)
        snr = normalize_serial(serial_number)
        say = reporter(progress, snr)
        name, target = image.path.name, str(image.path.resolve())
        say(f"connecting to J-Link probe {snr}")
        with self._probe(f"programming {name}", snr) as (hl, probe):
            action = {"chip": hl.EraseAction.ERASE_ALL, "sector": hl.EraseAction.ERASE_SECTOR,
                      "none": hl.EraseAction.ERASE_NONE}[erase]
            options = hl.ProgramOptions(erase_action=action, verify=hl.VerifyAction.VERIFY_NONE,
                                        reset=hl.ResetAction.RESET_NONE)
            say(f"programming {name} ({image.data_bytes} bytes at 0x{image.start:08X}-"
                f"0x{image.end - 1:08X}) {ERASE_WORDS[erase]}")
            with _api_errors(hl, f"programming {name}", snr):
                probe.program(target, program_options=options)
            if verify != "none":
                say(f"verifying {name} {VERIFY_WORDS[verify]}")
                how = (hl.VerifyAction.VERIFY_HASH if verify == "hash"
                       else hl.VerifyAction.VERIFY_READ)
                with _api_errors(hl, f"verifying {name}", snr):
                    probe.verify(target, how)
            if reset:
                say("resetting the board")
                with _api_errors(hl, "resetting the board", snr):
                    probe.reset(hl.ResetAction.RESET_SYSTEM)
        say(f"programmed {name}")

    def reset(self, serial_number: str) -> None:
        snr = normalize_serial(serial_number)
        with self._probe("resetting the board", snr) as (hl, probe):
            probe.reset(hl.ResetAction.RESET_SYSTEM)

    @contextmanager
    def _probe(self, operation: str, snr: str) -> Iterator[tuple[Any, Any]]:
        """The shared library and this probe's own handle, for one operation."""
        hl = self._highlevel()
        with _library(hl, operation, snr) as api:
            connected = _connected_serials(hl, api, snr)
            if snr not in connected:
                found = ", ".join(connected) if connected else "none"
                raise BoardError(f"J-Link probe {snr} is not connected ({operation}); "
                                 f"connected probes: {found}")
            with _handle(hl, api, snr, "connecting to the probe") as probe:
                yield hl, probe


def _verify_mode(verify: VerifyMode | bool) -> str:
    """True/False as the first release's `program(verify=...)` took them: read back, or not."""
    if verify is True:
        return "read"
    if verify is False:
        return "none"
    return verify


# --- the process's one open library ----------------------------------------------------------

class _Library:
    """One open `API` of one HighLevel module, and how many operations use it."""

    def __init__(self, api: Any, handlers_before: list[logging.Handler]) -> None:
        self.api = api
        self.users = 0
        self.handlers_before = handlers_before


_LIBRARIES: dict[int, _Library] = {}  # by id() of the HighLevel module (tests bring fakes)
_LIBRARY_LOCK = threading.Lock()  # opening, closing, listing probes: one at a time


@contextmanager
def _library(hl: Any, operation: str, snr: str | None) -> Iterator[Any]:
    """The open library for one operation: opened by the first user, closed by the last."""
    with _LIBRARY_LOCK:
        shared = _LIBRARIES.get(id(hl))
        if shared is None:
            before = list(logging.getLogger(_PYNRFJPROG_LOGGER).handlers)
            with _api_errors(hl, operation, snr):
                api = hl.API()
                api.open()  # a failed open leaves nothing to close (close() would fail)
            shared = _LIBRARIES[id(hl)] = _Library(api, before)
        shared.users += 1
    try:
        with _api_errors(hl, operation, snr):
            yield shared.api
    finally:
        with _LIBRARY_LOCK:
            shared.users -= 1
            if shared.users == 0:
                del _LIBRARIES[id(hl)]
                _close_quietly(shared.api.close, "the nrfjprog library")
                logger = logging.getLogger(_PYNRFJPROG_LOGGER)
                for handler in logger.handlers[:]:
                    if handler not in shared.handlers_before:
                        logger.removeHandler(handler)


@contextmanager
def _handle(hl: Any, api: Any, snr: str, operation: str) -> Iterator[Any]:
    """This probe's one `DebugProbe`, held only under its lock."""
    with probe_lock(snr):
        with _api_errors(hl, operation, snr):
            probe = hl.DebugProbe(api, int(snr))
        try:
            yield probe
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
    with _LIBRARY_LOCK, _api_errors(hl, "listing J-Link probes", snr):
        serials = [str(s) for s in sorted(api.get_connected_probes())]
        if not serials:
            _require_jlink(api)
        return serials


def _require_jlink(api: Any) -> None:
    """Without the J-Link software pynrfjprog opens and lists no probe, with no error (only a
    probe's connection fails, JLINKARM_DLL_COULD_NOT_BE_OPENED). So when none is listed, ask
    whether the library it would load can be loaded: "missing" then, not "not connected"."""
    path = api.find_jlink_path()  # a file, or a name for dlopen when no file was found
    try:
        ctypes.CDLL(path)
    except OSError as err:
        raise JLinkMissingError(_missing_library_message(
            "JLINKARM_DLL_COULD_NOT_BE_OPENED", f"OSError({str(err)!r})")) from None


def _describe(hl: Any, api: Any, snr: str, comports: Callable[[], Any] | None) -> ProbeInfo:
    """Like `_probe_info`, but a probe we cannot connect to is listed rather than fatal."""
    try:
        with _handle(hl, api, snr, "reading probe and device information") as probe:
            return _probe_info(hl, probe, snr, comports)
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


def _close_quietly(close: Callable[[], object], what: str) -> None:
    try:
        close()
    except Exception as err:  # a failed close must not hide the step's own result
        log.warning("closing %s failed: %s", what, err)
