"""A stand-in for `pynrfjprog.HighLevel`, for machines without J-Link probes.

Only the J-Link side is fake. The exception (`APIError`), the enums, `ProgramOptions` and the
`ProbeInfo`/`DeviceInfo` wrappers are pynrfjprog's own, and hex files are read with pynrfjprog's
own `Hex` parser, so the driver meets the real types and a second opinion on the hex format.

It covers exactly what `hilprov.board.nordic` calls: `API()` (`open`, `close`,
`get_connected_probes`) and `DebugProbe(api, snr)` (`program`, `verify`, `reset`,
`get_probe_info`, `get_device_info`, `close`). Like the real library it allows one open API per
process, refuses non-int serials, and `close()` of an API that never opened raises.

Flash is modelled as NOR flash in 4 KiB pages: erased bytes read 0xFF and programming can only clear
bits, so programming without an erase over old data fails verification, as on a real chip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pynrfjprog.APIError import APIError, NrfjprogdllErr
from pynrfjprog.Hex import Hex
from pynrfjprog.Parameters import (
    ComPortInfoStruct,
    DeviceFamily,
    DeviceInfo,
    DeviceInfoStruct,
    EraseAction,
    ProbeInfo,
    ProbeInfoStruct,
    ProgramOptions,
    ResetAction,
    VerifyAction,
)

PAGE_SIZE = 4096
LIBUSB_MISSING = ("Got error OSError('libusb-1.0.so.0: cannot open shared object file: No such "
                  "file or directory') for library at /site-packages/pynrfjprog/lib_x64/"
                  "libhighlevelnrfjprog.so")


@dataclass
class FakeProbe:
    """One J-Link probe and the chip behind it."""

    serial_number: int
    family: DeviceFamily = DeviceFamily.NRF91
    com_ports: list[tuple[str, int]] = field(default_factory=list)  # (path, vcom index)
    reachable: bool = True  # False: unpowered board, device info cannot be read
    flash: dict[int, int] = field(default_factory=dict)
    resets: int = 0
    last_program: tuple[str, EraseAction] | None = None  # (hex path, erase) of the last program
    on_reset: Callable[[FakeProbe], None] | None = None  # "the chip boots": e.g. a virtual board


class FakeHighLevel:
    """Module-like object: hand `lambda: fake` to the driver as its `api_factory`."""

    APIError = APIError
    NrfjprogdllErr = NrfjprogdllErr
    EraseAction = EraseAction
    VerifyAction = VerifyAction
    ResetAction = ResetAction
    ProgramOptions = ProgramOptions

    def __init__(self, *probes: FakeProbe, missing: str | None = None,
                 program_seconds: float = 0.0) -> None:
        self.probes = {p.serial_number: p for p in probes}
        self.program_seconds = program_seconds  # lets tests overlap two sessions
        self.missing = missing  # "libusb" fails API(), "jlink" fails open()
        self.failures: dict[str, NrfjprogdllErr] = {}  # method name -> error to raise
        self.calls: list[tuple] = []
        self.dll_open = False
        self.open_probes = 0

    def API(self, log: bool = True) -> _FakeAPI:  # noqa: N802 - pynrfjprog's name
        if self.missing == "libusb":
            raise APIError(NrfjprogdllErr.NRFJPROG_SUB_DLL_COULD_NOT_BE_OPENED, LIBUSB_MISSING)
        return _FakeAPI(self)

    def DebugProbe(self, api: _FakeAPI, snr: int) -> _FakeDebugProbe:  # noqa: N802
        if not api.is_open():
            raise APIError(NrfjprogdllErr.INVALID_OPERATION, "Provided API is not open")
        if not isinstance(snr, int):
            raise TypeError("snr must be an int (ctypes.c_uint32)")
        self._maybe_fail("DebugProbe")
        if snr not in self.probes:
            raise APIError(NrfjprogdllErr.EMULATOR_NOT_CONNECTED)
        self.open_probes += 1
        return _FakeDebugProbe(self, self.probes[snr])

    def _maybe_fail(self, name: str) -> None:
        if name in self.failures:
            raise APIError(self.failures[name])


class _FakeAPI:
    def __init__(self, bench: FakeHighLevel) -> None:
        self.bench = bench
        self.opened = False

    def open(self) -> None:
        if self.bench.missing == "jlink":
            raise APIError(NrfjprogdllErr.JLINKARM_DLL_COULD_NOT_BE_OPENED)
        if self.bench.dll_open:
            raise APIError(NrfjprogdllErr.INVALID_OPERATION, "dll already open")
        self.bench.dll_open = self.opened = True

    def close(self) -> None:
        if not self.opened:
            raise AttributeError("'NoneType' object has no attribute 'detach'")  # as the real one
        self.bench.dll_open = self.opened = False
        self.bench.calls.append(("api.close",))

    def is_open(self) -> bool:
        return self.opened

    def get_connected_probes(self) -> list[int]:
        self.bench._maybe_fail("get_connected_probes")
        return list(self.bench.probes)


class _FakeDebugProbe:
    def __init__(self, bench: FakeHighLevel, probe: FakeProbe) -> None:
        self.bench, self.probe = bench, probe

    def close(self) -> None:
        self.bench.open_probes -= 1
        self.bench.calls.append(("probe.close", self.probe.serial_number))

    def get_probe_info(self) -> ProbeInfo:
        ports = (ComPortInfoStruct * 10)()
        for slot, (path, vcom) in zip(ports, self.probe.com_ports, strict=False):
            slot.path, slot.vcom, slot.serial_number = path.encode(), vcom, self.probe.serial_number
        return ProbeInfo(ProbeInfoStruct(self.probe.serial_number, 2000, b"J-Link OB", len(
            self.probe.com_ports), ports))

    def get_device_info(self) -> DeviceInfo:
        struct = DeviceInfoStruct()
        if not self.probe.reachable:  # the real call logs a warning and returns a zeroed struct
            return DeviceInfo(struct, NrfjprogdllErr.CANNOT_CONNECT)
        struct.device_family = self.probe.family
        return DeviceInfo(struct, NrfjprogdllErr.SUCCESS)

    def program(self, hex_path: str, program_options: ProgramOptions | None = None) -> None:
        if not isinstance(program_options, ProgramOptions):
            raise TypeError("The program_options parameter must be a ProgramOptions.")
        options = program_options
        self.bench.calls.append(("program", self.probe.serial_number, hex_path,
                                 EraseAction(options.erase_action), VerifyAction(options.verify),
                                 ResetAction(options.reset)))
        self.bench._maybe_fail("program")
        time.sleep(self.bench.program_seconds)
        data = _hex_bytes(hex_path)
        flash = self.probe.flash
        if options.erase_action == EraseAction.ERASE_ALL:
            flash.clear()
        elif options.erase_action == EraseAction.ERASE_SECTOR:
            for page in {address // PAGE_SIZE for address in data}:
                for address in range(page * PAGE_SIZE, (page + 1) * PAGE_SIZE):
                    flash.pop(address, None)
        for address, value in data.items():
            flash[address] = flash.get(address, 0xFF) & value
        self.probe.last_program = (hex_path, EraseAction(options.erase_action))
        if options.verify != VerifyAction.VERIFY_NONE:
            self.verify(hex_path, VerifyAction(options.verify))
        if options.reset != ResetAction.RESET_NONE:
            self.reset(ResetAction(options.reset))

    def verify(self, hex_path: str, verify_action: VerifyAction = VerifyAction.VERIFY_READ) -> None:
        if not isinstance(verify_action, VerifyAction):
            raise TypeError("Parameter verify_action must be a VerifyAction.")
        self.bench.calls.append(("verify", self.probe.serial_number, hex_path, verify_action))
        self.bench._maybe_fail("verify")
        flash = self.probe.flash
        if any(flash.get(a, 0xFF) != v for a, v in _hex_bytes(hex_path).items()):
            raise APIError(NrfjprogdllErr.VERIFY_ERROR)

    def reset(self, reset_action: ResetAction = ResetAction.RESET_SYSTEM) -> None:
        if not isinstance(reset_action, ResetAction):
            raise TypeError("Parameter reset_action must be a ResetAction.")
        self.bench.calls.append(("reset", self.probe.serial_number, reset_action))
        self.bench._maybe_fail("reset")
        self.probe.resets += 1
        if self.probe.on_reset is not None:
            self.probe.on_reset(self.probe)


def _hex_bytes(hex_path: str) -> dict[int, int]:
    return {segment.address + i: value for segment in Hex(hex_path)
            for i, value in enumerate(segment.data)}
