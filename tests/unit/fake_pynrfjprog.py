"""A stand-in for `pynrfjprog.HighLevel`, for machines without J-Link probes.

Only the J-Link side is fake. The exception (`APIError`), the enums, `ProgramOptions` and the
`ProbeInfo`/`DeviceInfo` wrappers are pynrfjprog's own, and hex files are read with pynrfjprog's
own `Hex` parser, so the driver meets the real types and a second opinion on the hex format.

It covers exactly what `hilprov.board.flashers.pynrfjprog` calls: `API()` (`open`, `close`,
`is_open`, `get_connected_probes`) and `DebugProbe(api, snr)` (`program`, `verify`, `reset`,
`get_probe_info`, `get_device_info`, `close`). One `FakeHighLevel` is one process's library, with
the real library's rules (pynrfjprog 10.24.2 as observed, its release notes and
highlevelnrfjprogdll.h), so a design that breaks them fails here as it would on a station:

* the open/closed state is process-wide: a second `API().open()` raises INVALID_OPERATION and
  leaves the library closed for every instance; `close()` on any instance closes it for all (the
  real `close()` calls `NRFJPROG_dll_close()` first) and then raises AttributeError if that
  instance never opened;
* a probe handle works only while the library that made it is open (INVALID_OPERATION after a
  close or reopen, even in the middle of a `program`);
* two handles to the same probe cannot exist ("can no longer be created", release notes; the
  error code is our guess: INVALID_OPERATION);
* one handle used by two threads at once is a bug in the caller: RuntimeError;
* several probes of one open library work at the same time (`max_parallel_programs` counts it;
  `program_barrier=N` makes every `program` wait until N run together, so a test proves the
  overlap instead of timing it).

Flash is modelled as NOR flash in 4 KiB pages: erased bytes read 0xFF and programming can only clear
bits, so programming without an erase over old data fails verification, as on a real chip.
"""

from __future__ import annotations

import ctypes.util
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
                 program_seconds: float = 0.0, program_barrier: int = 0) -> None:
        self.probes = {p.serial_number: p for p in probes}
        self.program_seconds = program_seconds  # lets tests overlap two sessions
        # "libusb" fails API(); "jlink" is what pynrfjprog 10.24 does without the J-Link
        # software: open() works, no probe is listed, a probe's connection fails with -101,
        # and find_jlink_path() names a library that cannot be loaded
        self.missing = missing
        self.failures: dict[str, NrfjprogdllErr] = {}  # method name -> error to raise
        self.calls: list[tuple] = []
        self.dll_open = False
        self.generation = 0  # counts opens: a handle belongs to the open that made it
        self.open_probes = 0
        self.handles: set[int] = set()  # serial numbers with a live handle
        self.opens = 0
        self.programs_running = 0
        self.max_parallel_programs = 0
        self._barrier = (threading.Barrier(program_barrier, timeout=30)
                         if program_barrier > 1 else None)
        self._lock = threading.Lock()

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
        if self.missing == "jlink":
            raise APIError(NrfjprogdllErr.JLINKARM_DLL_COULD_NOT_BE_OPENED)
        if snr not in self.probes:
            raise APIError(NrfjprogdllErr.EMULATOR_NOT_CONNECTED)
        with self._lock:
            if snr in self.handles:
                raise APIError(NrfjprogdllErr.INVALID_OPERATION,
                               f"a probe handle for {snr} already exists")
            self.handles.add(snr)
            self.open_probes += 1
        return _FakeDebugProbe(self, self.probes[snr], self.generation)

    def _maybe_fail(self, name: str) -> None:
        if name in self.failures:
            raise APIError(self.failures[name])

    def _check_open(self, generation: int | None = None) -> None:
        if not self.dll_open or (generation is not None and generation != self.generation):
            raise APIError(NrfjprogdllErr.INVALID_OPERATION, "The dll is not open.")

    def _program_started(self) -> None:
        with self._lock:
            self.programs_running += 1
            self.max_parallel_programs = max(self.max_parallel_programs, self.programs_running)
        if self._barrier is not None:
            try:
                self._barrier.wait()
            except threading.BrokenBarrierError:
                raise RuntimeError("programs did not run at the same time (program_barrier "
                                   f"{self._barrier.parties} not reached)") from None

    def _program_ended(self) -> None:
        with self._lock:
            self.programs_running -= 1


class _FakeAPI:
    def __init__(self, bench: FakeHighLevel) -> None:
        self.bench = bench
        self.opened = False

    def open(self) -> None:
        bench = self.bench
        with bench._lock:
            if bench.dll_open:  # observed: the failed second open leaves it closed for all
                bench.dll_open = False
                raise APIError(NrfjprogdllErr.INVALID_OPERATION, "dll already open")
            bench.dll_open = self.opened = True
            bench.generation += 1
            bench.opens += 1

    def close(self) -> None:
        with self.bench._lock:
            self.bench.dll_open = False  # NRFJPROG_dll_close() closes it for every instance
            self.bench.handles.clear()
        if not self.opened:
            raise AttributeError("'NoneType' object has no attribute 'detach'")  # as the real one
        self.opened = False
        self.bench.calls.append(("api.close",))

    def is_open(self) -> bool:
        return self.bench.dll_open  # NRFJPROG_is_dll_open(): the process's state

    def get_connected_probes(self) -> list[int]:
        self.bench._check_open()
        self.bench._maybe_fail("get_connected_probes")
        return [] if self.bench.missing == "jlink" else list(self.bench.probes)

    def find_jlink_path(self) -> str:
        """A name for dlopen, as the real one gives when no J-Link file is found: one that
        cannot load here; or a library every host has."""
        self.bench._check_open()
        if self.bench.missing == "jlink":
            return "libjlinkarm-absent-in-this-test.so"
        return ctypes.util.find_library("c") or "libc.so.6"


class _FakeDebugProbe:
    def __init__(self, bench: FakeHighLevel, probe: FakeProbe, generation: int) -> None:
        self.bench, self.probe, self.generation = bench, probe, generation
        self._in_use = threading.Lock()
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self.bench._lock:
            self.bench.open_probes -= 1
            if self.generation == self.bench.generation:
                self.bench.handles.discard(self.probe.serial_number)
        self.bench.calls.append(("probe.close", self.probe.serial_number))

    def _enter(self) -> None:
        """Every call: the handle is alive and nobody else is using it."""
        if self.closed:
            raise APIError(NrfjprogdllErr.INVALID_OPERATION, "probe handle is closed")
        self.bench._check_open(self.generation)
        if not self._in_use.acquire(blocking=False):
            raise RuntimeError(f"probe handle {self.probe.serial_number} used by two threads "
                               "at once")

    def _leave(self) -> None:
        self._in_use.release()

    def get_probe_info(self) -> ProbeInfo:
        self._enter()
        self._leave()
        return self._probe_info()

    def _probe_info(self) -> ProbeInfo:
        ports = (ComPortInfoStruct * 10)()
        for slot, (path, vcom) in zip(ports, self.probe.com_ports, strict=False):
            slot.path, slot.vcom, slot.serial_number = path.encode(), vcom, self.probe.serial_number
        return ProbeInfo(ProbeInfoStruct(self.probe.serial_number, 2000, b"J-Link OB", len(
            self.probe.com_ports), ports))

    def get_device_info(self) -> DeviceInfo:
        self._enter()
        self._leave()
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
        self._enter()
        try:
            self.bench._maybe_fail("program")
            self.bench._program_started()
            try:
                time.sleep(self.bench.program_seconds)
            finally:
                self.bench._program_ended()
            self.bench._check_open(self.generation)  # closed under our feet: the write failed
            self._write(hex_path, options)
        finally:
            self._leave()
        if options.verify != VerifyAction.VERIFY_NONE:
            self.verify(hex_path, VerifyAction(options.verify))
        if options.reset != ResetAction.RESET_NONE:
            self.reset(ResetAction(options.reset))

    def _write(self, hex_path: str, options: ProgramOptions) -> None:
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

    def verify(self, hex_path: str, verify_action: VerifyAction = VerifyAction.VERIFY_READ) -> None:
        if not isinstance(verify_action, VerifyAction):
            raise TypeError("Parameter verify_action must be a VerifyAction.")
        self.bench.calls.append(("verify", self.probe.serial_number, hex_path, verify_action))
        self._enter()
        try:
            self.bench._maybe_fail("verify")
            flash = self.probe.flash  # VERIFY_HASH and VERIFY_READ find the same differences
            if any(flash.get(a, 0xFF) != v for a, v in _hex_bytes(hex_path).items()):
                raise APIError(NrfjprogdllErr.VERIFY_ERROR)
        finally:
            self._leave()

    def reset(self, reset_action: ResetAction = ResetAction.RESET_SYSTEM) -> None:
        if not isinstance(reset_action, ResetAction):
            raise TypeError("Parameter reset_action must be a ResetAction.")
        self.bench.calls.append(("reset", self.probe.serial_number, reset_action))
        self._enter()
        try:
            self.bench._maybe_fail("reset")
            self.probe.resets += 1
        finally:
            self._leave()
        if self.probe.on_reset is not None:
            self.probe.on_reset(self.probe)


def _hex_bytes(hex_path: str) -> dict[int, int]:
    if not Path(hex_path).is_file():  # as the library answers a missing file
        raise APIError(NrfjprogdllErr.INVALID_PARAMETER, f"cannot read {hex_path}")
    return {segment.address + i: value for segment in Hex(hex_path)
            for i, value in enumerate(segment.data)}
