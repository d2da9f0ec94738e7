"""Flashing through nRF Util (`nrfutil device …`), Nordic's current tool, by its JSON output.

Every operation is one `nrfutil --json device …` process; its stdout is JSON Lines, one message
per line: `task_begin` (whose `task.description` is the probe's serial number), `task_progress`
(`progress.progressPercentage`, `progress.description`), `task_end` (`result` "success" or
"fail", `message`, `error {code, description}`), and `info` (command data, e.g. the device
list). A failure is a `task_end` with result "fail" or a non-zero exit status (both are checked:
Zephyr's runner once trusted the status alone and missed failures); its text becomes the
BoardError's. Boards on different probes are separate processes at the same time; operations on
one probe take turns (`probe_lock`). Sources: /work/shared/nrfutil-notes.md.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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
    normalize_serial,
    probe_lock,
    reporter,
    same_serial,
)
from hilprov.core.hexfile import HexImage
from hilprov.errors import BoardError, NrfutilMissingError

log = logging.getLogger("hilprov.board.flashers.nrfutil")

NRFUTIL = "nrfutil"
DOWNLOAD_URL = "https://www.nordicsemi.com/Products/Development-tools/nRF-Util"
DEVICE_COMMAND = "nrfutil-device"  # the name `nrfutil device --version` reports
CHIP_ERASE = {"chip": "ERASE_ALL", "sector": "ERASE_RANGES_TOUCHED_BY_FIRMWARE",
              "none": "ERASE_NONE"}
VERIFY = {"hash": "VERIFY_HASH", "read": "VERIFY_READ", "none": "VERIFY_NONE"}
_HINTS = {  # nrfutil-device error codes, as Zephyr's runner knows them
    24: "the device is read-back protected; recover it (nrfutil device recover) and try again",
    25: "the flash read back differs from the hex file",
}
_DEVICE_COMMAND_FOUND: dict[str, bool] = {}  # per executable, for this process


def find_nrfutil() -> str | None:
    """The `nrfutil` executable on PATH (tests replace this to keep a station's own out)."""
    return shutil.which(NRFUTIL)


def has_device_command(executable: str, timeout: float = 60.0) -> bool:
    """Whether nRF Util's `device` command is installed (asked once per process)."""
    if executable not in _DEVICE_COMMAND_FOUND:
        try:
            done = subprocess.run([executable, "--json", "device", "--version"],
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("%s device --version: %s", executable, exc)
            found = False
        else:
            found = done.returncode == 0 and any(
                (m.get("data") or {}).get("name") == DEVICE_COMMAND
                for m in _messages(done.stdout.splitlines()) if m.get("type") == "info")
        _DEVICE_COMMAND_FOUND[executable] = found
    return _DEVICE_COMMAND_FOUND[executable]


def forget() -> None:
    """Ask `device --version` again (tests change what is installed)."""
    _DEVICE_COMMAND_FOUND.clear()


class NrfutilError(BoardError):
    """nRF Util reported a failure; carries the step, the probe and nRF Util's own message."""

    def __init__(self, operation: str, serial_number: str | None, message: str,
                 code: int | None = None) -> None:
        self.operation = operation
        self.serial_number = serial_number
        self.nrfutil_message = message
        self.code = code
        where = f" on J-Link probe {serial_number}" if serial_number else ""
        number = f" (nRF Util error {code})" if code is not None else ""
        hint = f"; {_HINTS[code]}" if code in _HINTS else ""
        super().__init__(f"{operation}{where} failed: nRF Util: {message}{number}{hint}")


class NrfutilFlasher(Flasher):
    """Every J-Link probe through the `nrfutil` executable (see the module docstring).

    `executable`: the nrfutil to run (default: the one on PATH); `timeout`: seconds one
    operation may take before its process is killed."""

    name = "nrfutil"
    title = "nRF Util"

    def __init__(self, executable: str | None = None, *, timeout: float = 600.0) -> None:
        found = executable or find_nrfutil()
        if found is None:
            raise NrfutilMissingError(
                f"nRF Util is not installed: no `{NRFUTIL}` on PATH; install it from "
                f"{DOWNLOAD_URL}, then `nrfutil install device` (or use --flasher pynrfjprog)")
        if not has_device_command(found):
            raise NrfutilMissingError(
                f"nRF Util ({found}) has no `device` command: run `{found} install device` "
                "(or use --flasher pynrfjprog)")
        self.executable = found
        self.timeout = timeout
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def __repr__(self) -> str:
        return f"NrfutilFlasher({self.executable!r})"

    # -- the operations ------------------------------------------------------------------------
    def connected(self) -> list[str]:
        messages = self._run(["list", "--traits", "jlink"], "listing J-Link probes", None)
        return [_serial_text(d) for d in _devices(messages) if _is_jlink(d)]

    def list_probes(self) -> list[ProbeInfo]:
        messages = self._run(["list", "--traits", "jlink"], "listing J-Link probes", None)
        records = [d for d in _devices(messages) if _is_jlink(d)]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(records)))) as pool:
            return list(pool.map(self._info_from_record, records))

    def probe_info(self, serial_number: str) -> ProbeInfo:
        snr = normalize_serial(serial_number)
        messages = self._run(["list", "--traits", "jlink"], "reading probe information", snr)
        records = [d for d in _devices(messages) if _is_jlink(d)]
        for record in records:
            if same_serial(record.get("serialNumber"), snr):
                return self._info_from_record(record)
        found = ", ".join(_serial_text(r) for r in records) or "none"
        raise BoardError(f"J-Link probe {snr} is not connected (nRF Util lists: {found})")

    def program(self, serial_number: str, image: HexImage, *, erase: EraseMode = "chip",
                verify: VerifyMode = DEFAULT_VERIFY, reset: bool = True,
                progress: Progress | None = None) -> None:
        check_modes(erase, verify)
        snr = normalize_serial(serial_number)
        say = reporter(progress, snr)
        name = image.path.name
        options = (f"chip_erase_mode={CHIP_ERASE[erase]},verify={VERIFY[verify]},"
                   f"reset={'RESET_SYSTEM' if reset else 'RESET_NONE'}")
        say(f"programming {name} ({image.data_bytes} bytes) {ERASE_WORDS[erase]} with nRF Util")
        reported = [snr]

        def on_message(message: dict) -> None:
            kind, data = message.get("type"), message.get("data") or {}
            task = data.get("task") or {}
            if kind == "task_begin" and task.get("description"):
                reported[0] = str(task["description"])
            elif kind == "task_progress":
                step = data.get("progress") or {}
                percent = step.get("progressPercentage")
                text = step.get("description") or step.get("name") or "working"
                say(f"{name}: {text}", float(percent) if isinstance(percent, int | float)
                    else None, reported[0])

        self._run(["program", "--firmware", str(image.path.resolve()), "--serial-number", snr,
                   "--options", options], f"programming {name}", snr, on_message)
        checked = f", verified {VERIFY_WORDS[verify]}" if verify != "none" else ""
        say(f"programmed {name}{checked}", None, reported[0])

    def reset(self, serial_number: str) -> None:
        snr = normalize_serial(serial_number)
        self._run(["reset", "--serial-number", snr, "--reset-kind", "RESET_SYSTEM"],
                  "resetting the board", snr)

    def cancel(self) -> None:
        """Kill the running nrfutil processes (an interrupted run); later calls fail."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for proc in running:
            proc.kill()

    # -- running nrfutil -----------------------------------------------------------------------
    def _info_from_record(self, record: dict) -> ProbeInfo:
        snr = normalize_serial(str(record.get("serialNumber")))
        family = _family((record.get("devkit") or {}).get("deviceFamily"))
        if family == "unknown":
            family = self._family_from_device_info(snr)
        ports = sorted(record.get("serialPorts") or [], key=_vcom_order)
        return ProbeInfo(snr, family, [p.get("comName") or p.get("path") for p in ports
                                       if p.get("comName") or p.get("path")])

    def _family_from_device_info(self, snr: str) -> str:
        """`device-info` knows the chip when the list has no devkit; an unreachable chip is
        "unknown", as with pynrfjprog."""
        try:
            messages = self._run(["device-info", "--serial-number", snr],
                                 "reading device information", snr)
        except NrfutilError as exc:
            log.warning("%s", exc)
            return "unknown"
        for record in _devices(messages):
            jlink = (record.get("deviceInfo") or {}).get("jlink") or {}
            hw = (record.get("deviceInfo") or {}).get("hwInfo") or {}
            family = _family(jlink.get("deviceFamily") or hw.get("deviceFamily"))
            if family != "unknown":
                return family
        return "unknown"

    def _run(self, args: list[str], operation: str, snr: str | None,
             on_message: Callable[[dict], None] | None = None) -> list[dict]:
        """Run `nrfutil --json device ARGS` (on `snr`'s probe alone), hand each message to
        `on_message`; NrfutilError for a failed task or a non-zero exit status."""
        lock = probe_lock(snr) if snr else None
        if lock is not None:
            lock.acquire()
        try:
            return self._run_process([self.executable, "--json", "device", *args], operation,
                                     snr, on_message)
        finally:
            if lock is not None:
                lock.release()

    def _run_process(self, command: list[str], operation: str, snr: str | None,
                     on_message: Callable[[dict], None] | None) -> list[dict]:
        log.debug("running %s", " ".join(command))
        with self._lock:
            if self._cancelled:
                raise NrfutilError(operation, snr, "cancelled (the run was interrupted)")
            try:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, errors="replace")
            except OSError as exc:
                raise NrfutilMissingError(f"nRF Util ({command[0]}) cannot be run: "
                                          f"{exc.strerror or exc}") from None
            self._running.add(proc)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def kill_late() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(self.timeout, kill_late)
        timer.start()
        messages: list[dict] = []
        try:
            for message in _messages(proc.stdout):
                messages.append(message)
                if on_message is not None:
                    on_message(message)
            status = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # an exception in on_message, or an interrupt
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
            with self._lock:
                self._running.discard(proc)
        if status != 0 and self._cancelled:
            raise NrfutilError(operation, snr, "cancelled (the run was interrupted)")
        if status != 0 and timed_out.is_set():
            raise NrfutilError(operation, snr,
                               f"no result within {self.timeout:.0f} s (process killed)")
        _raise_for_failure(messages, status, stderr, operation, snr)
        return messages


def _raise_for_failure(messages: list[dict], status: int, stderr: list[str], operation: str,
                       snr: str | None) -> None:
    for message in messages:
        data = message.get("data") or {}
        if message.get("type") == "task_end" and data.get("result") == "fail":
            error = data.get("error") or {}
            # both when both say something ("Generic" alone hides "Timed out waiting for …"),
            # but not a message that only repeats the description
            said = [str(t).strip() for t in (error.get("description"), data.get("message"))
                    if t and str(t).strip()]
            said = [t for t in said if not any(o != t and o in t for o in said)]
            text = ": ".join(dict.fromkeys(said)) or "the task failed"
            code = error.get("code") if isinstance(error.get("code"), int) else None
            raise NrfutilError(operation, snr, str(text).strip(), code)
    if status == 0:
        return
    logged = [str((m.get("data") or {}).get("message", "")).strip() for m in messages
              if m.get("type") == "log" and (m.get("data") or {}).get("level") in
              ("ERROR", "CRITICAL")]
    lines = [line.strip() for line in stderr if line.strip()] or [m for m in logged if m]
    text = _last_error_line(lines) or f"exit status {status}"
    raise NrfutilError(operation, snr, text)


def _last_error_line(lines: list[str]) -> str:
    """The line that says what went wrong: the first `Error: …` line (with what follows on the
    next line, as nrfutil prints task lists), else the last line."""
    for index, line in enumerate(lines):
        if line.lower().startswith("error"):
            text = line.split(":", 1)[1].strip() if ":" in line else line
            more = lines[index + 1].lstrip("* ").strip() if index + 1 < len(lines) else ""
            return f"{text} {more}".strip() if text.endswith(":") else text
    return lines[-1] if lines else ""


def _messages(lines: Iterable[str]) -> Iterable[dict]:
    """The JSON objects among `lines` (anything else, e.g. a stray warning, is logged)."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            message = json.loads(text)
        except ValueError:
            log.debug("nrfutil: %s", text)
            continue
        if isinstance(message, dict):
            yield message


def _devices(messages: list[dict]) -> list[dict]:
    """The device records of a list or device-info answer: in an `info` message (current
    nrfutil-device) or in the `task_end`'s data (older versions)."""
    for message in messages:
        data = message.get("data") or {}
        if message.get("type") == "info" and isinstance(data.get("devices"), list):
            return [d for d in data["devices"] if isinstance(d, dict)]
    for message in messages:
        inner = (message.get("data") or {}).get("data") or {}
        if message.get("type") == "task_end" and isinstance(inner.get("devices"), list):
            return [d for d in inner["devices"] if isinstance(d, dict)]
    return []


def _is_jlink(record: dict) -> bool:
    """A J-Link with a serial number (the list also shows other USB serial devices)."""
    traits = record.get("traits") or {}
    serial = str(record.get("serialNumber") or "")
    return bool(traits.get("jlink")) and serial.isdigit() and 0 < int(serial) <= 0xFFFFFFFF


def _serial_text(record: dict) -> str:
    serial = str(record.get("serialNumber") or "?")
    return str(int(serial)) if serial.isdigit() else serial


def _family(value: Any) -> str:
    """"NRF91_FAMILY" / "nrf91" → "nrf91"; anything else "unknown"."""
    text = str(value or "").strip().lower().removesuffix("_family")
    return text if text.startswith("nrf") else "unknown"


def _vcom_order(port: dict) -> tuple[int, str]:
    vcom = port.get("vcom")
    return (vcom if isinstance(vcom, int) else 1 << 16, str(port.get("comName") or ""))
