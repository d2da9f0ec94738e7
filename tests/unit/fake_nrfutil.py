"""A stand-in for the `nrfutil` executable (nRF Util with its `device` command), for the tests.

Written from /work/shared/nrfutil-notes.md (what public sources show of nRF Util's JSON output);
it is a separate process, as the real tool is, and uses only the standard library. Test code
installs it with `install(directory, state)`: an executable `nrfutil` in `directory` that runs
this file with the state directory in its environment.

The state directory holds `config.json` (written by the test):

    {"devices": [{"serialNumber": "000960012345", "family": "NRF91_FAMILY",
                  "boardVersion": "PCA10090", "ports": ["/dev/ttyACM0", "/dev/ttyACM1"],
                  "devkit": true, "reachable": true}],
     "program_seconds": 0.0,            # time one program takes
     "barrier": 0,                      # every program waits until this many have started
     "device_command": true,            # false: `nrfutil device` is not installed
     "list_in_task_end": false,         # true: the device list as older versions gave it
     "fail": {"program": {"code": 25, "description": "...", "message": "..."}}}

and what the fake keeps: `flash-<serial>.json` (the chip's flash, 4 KiB NOR pages: erased bytes
read 0xFF, programming clears bits, so programming over old data without an erase fails
verification), `resets-<serial>` and `events.jsonl` (one line per program/reset, for tests that
make a virtual board boot what was flashed). A failure in "fail" applies to every device unless
it names "serials".

Messages are JSON Lines on stdout (`--json`): task_begin / task_progress / task_end per device,
`info` for lists and versions. An unknown serial number is nRF Util's "No devices with requested
serial number(s) or trait(s) found" on stderr, exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

PAGE = 4096
VERSION = "2.12.3"


def install(directory: Path, state: Path, python: str = sys.executable) -> Path:
    """Write the `nrfutil` launcher into `directory` (put it on PATH); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    launcher = directory / "nrfutil"
    launcher.write_text(f"#!/bin/sh\nFAKE_NRFUTIL_STATE='{state}' exec '{python}' "
                        f"'{Path(__file__).resolve()}' \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


class FakeNrfutil:
    """The test's side: install the fake, configure it, read what it did."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.state = root / "state"
        self.executable = install(self.bin, self.state)
        self.configure()

    def configure(self, **config) -> None:
        config.setdefault("devices", [])
        (self.state / "config.json").write_text(json.dumps(config))

    def events(self) -> list[dict]:
        path = self.state / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def resets(self, serial: int | str) -> int:
        path = self.state / f"resets-{int(serial)}"
        return int(path.read_text()) if path.exists() else 0

    def flash(self, serial: int | str, address: int, length: int) -> bytes:
        path = self.state / f"flash-{int(serial)}.json"
        pages = {int(k): bytes.fromhex(v) for k, v in json.loads(path.read_text()).items()} \
            if path.exists() else {}
        return bytes(pages.get(a // PAGE, b"\xff" * PAGE)[a % PAGE]
                     for a in range(address, address + length))


def device(serial: int | str, ports: list[str] | None = None, **fields) -> dict:
    """One J-Link for `configure(devices=[...])`; the serial as USB reports it (zero-padded)."""
    return {"serialNumber": f"{int(serial):012d}", "ports": ports or [], **fields}


# -- output --------------------------------------------------------------------------------------

def emit(kind: str, data: dict) -> None:
    sys.stdout.write(json.dumps({"type": kind, "data": data}) + "\n")
    sys.stdout.flush()


def fail_usage(text: str) -> None:
    sys.stderr.write(f"error: {text}\n")
    sys.exit(2)


# -- state ---------------------------------------------------------------------------------------

class State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = json.loads((root / "config.json").read_text())

    def devices(self) -> list[dict]:
        return self.config.get("devices", [])

    def find(self, serial: str) -> dict | None:
        for device in self.devices():
            if serial.isdigit() and int(device["serialNumber"]) == int(serial):
                return device
        return None

    def failure(self, operation: str, device: dict) -> dict | None:
        fail = (self.config.get("fail") or {}).get(operation)
        if fail and (not fail.get("serials") or any(
                int(s) == int(device["serialNumber"]) for s in fail["serials"])):
            return fail
        return None

    def flash(self, device: dict) -> dict[int, bytearray]:
        path = self.root / f"flash-{int(device['serialNumber'])}.json"
        if not path.exists():
            return {}
        return {int(k): bytearray.fromhex(v) for k, v in json.loads(path.read_text()).items()}

    def save_flash(self, device: dict, pages: dict[int, bytearray]) -> None:
        path = self.root / f"flash-{int(device['serialNumber'])}.json"
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps({str(k): v.hex() for k, v in pages.items()}))
        os.replace(temp, path)

    def event(self, **fields) -> None:
        with open(self.root / "events.jsonl", "a") as log:
            log.write(json.dumps(fields) + "\n")

    def count_reset(self, device: dict) -> None:
        path = self.root / f"resets-{int(device['serialNumber'])}"
        count = int(path.read_text()) if path.exists() else 0
        path.write_text(str(count + 1))

    def wait_for_barrier(self, serial: str) -> bool:
        parties = int(self.config.get("barrier") or 0)
        if parties <= 1:
            return True
        arrived = self.root / "arrived"
        arrived.mkdir(exist_ok=True)
        (arrived / f"{serial}-{os.getpid()}").touch()
        deadline = time.monotonic() + 30
        while len(list(arrived.iterdir())) < parties:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def read_hex(path: str) -> dict[int, int]:
    """Intel HEX data records (types 00, 02, 04); a bad file raises ValueError."""
    data: dict[int, int] = {}
    base = 0
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.startswith(":"):
            raise ValueError("not an Intel HEX file")
        raw = bytes.fromhex(line[1:])
        count, address, kind = raw[0], int.from_bytes(raw[1:3], "big"), raw[3]
        payload = raw[4:4 + count]
        if kind == 0:
            for i, value in enumerate(payload):
                data[base + address + i] = value
        elif kind == 2:
            base = int.from_bytes(payload, "big") << 4
        elif kind == 4:
            base = int.from_bytes(payload, "big") << 16
        elif kind == 1:
            break
    return data


# -- commands ------------------------------------------------------------------------------------

def device_record(device: dict, index: int) -> dict:
    serial = device["serialNumber"]
    record = {
        "id": index + 1, "serialNumber": serial,
        "traits": {"jlink": True, "seggerUsb": True, "serialPorts": True, "usb": True,
                   "devkit": bool(device.get("devkit", True))},
        "usb": {"serialNumber": serial, "manufacturer": "SEGGER", "product": "J-Link",
                "osDevicePath": f"/dev/bus/usb/001/{index + 2:03d}"},
        "serialPorts": [{"serialNumber": serial, "comName": port, "path": port, "vcom": vcom,
                         "manufacturer": "SEGGER", "vendorId": "1366", "productId": "1055"}
                        for vcom, port in enumerate(device.get("ports", []))],
        "broken": None,
    }
    if device.get("devkit", True):
        record["devkit"] = {"boardVersion": device.get("boardVersion", "PCA10090"),
                            "deviceFamily": device.get("family", "NRF91_FAMILY")}
    return record


def cmd_list(state: State, args: list[str]) -> int:
    devices = [device_record(d, i) for i, d in enumerate(state.devices())]
    devices.append({"id": 99, "serialNumber": None, "traits": {"serialPorts": True},
                    "serialPorts": [{"comName": "/dev/ttyUSB0", "vcom": None}]})
    if "--traits" in args:
        wanted = args[args.index("--traits") + 1].split(",")
        devices = [d for d in devices if all(d["traits"].get(t) for t in wanted)]
    if state.config.get("list_in_task_end"):
        task = {"id": uuid.uuid4().hex, "description": "List devices", "name": "list",
                "data": None}
        emit("task_begin", {"task": task})
        emit("task_end", {"task": task, "result": "success", "data": {"devices": devices}})
    else:
        emit("info", {"devices": devices})
    return 0


def selected(state: State, args: list[str]) -> list[dict] | None:
    if "--serial-number" not in args:
        fail_usage("the following required arguments were not provided: --serial-number")
    wanted = args[args.index("--serial-number") + 1].split(",")
    found = [state.find(s) for s in wanted]
    if not wanted or any(d is None for d in found):
        sys.stderr.write("Error: No devices with requested serial number(s) or trait(s) "
                         "found\n")
        return None
    return found


def task_end(task: dict, failure: dict | None, success: str) -> bool:
    if failure is None:
        emit("task_end", {"task": task, "message": success, "result": "success"})
        return True
    error = {"code": failure.get("code", 1), "description": failure.get("description",
                                                                         "Operation failed")}
    emit("task_end", {"task": task, "message": failure.get("message", f"Failed, {error}"),
                      "result": "fail", "error": error})
    return False


def progress(task: dict, step: int, text: str, percent: int) -> None:
    emit("task_progress", {"task": task, "progress": {
        "progressPercentage": percent, "name": task["name"], "description": text,
        "step": step, "amountOfSteps": 5, "state": "progress", "duration": 0,
        "error_code": None, "message": None, "result": "success"}})


def parse_options(text: str) -> dict:
    options = {"chip_erase_mode": "ERASE_ALL", "verify": "VERIFY_NONE", "reset": "RESET_NONE"}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        allowed = {"chip_erase_mode": ("ERASE_NONE", "ERASE_ALL",
                                       "ERASE_RANGES_TOUCHED_BY_FIRMWARE", "ERASE_CTRL_AP"),
                   "verify": ("VERIFY_NONE", "VERIFY_READ", "VERIFY_HASH"),
                   "reset": ("RESET_NONE", "RESET_SYSTEM", "RESET_HARD", "RESET_DEBUG",
                             "RESET_PIN")}
        if key not in allowed or value not in allowed[key]:
            sys.stderr.write(f"Error: invalid value {item!r} for '--options'\n")
            sys.exit(1)
        options[key] = value
    return options


def program_one(state: State, device: dict, firmware: str, options: dict) -> bool:
    serial = device["serialNumber"]
    task = {"id": uuid.uuid4().hex, "description": serial, "name": "program", "data": None}
    emit("task_begin", {"task": task})
    progress(task, 1, "Connecting to probe", 0)
    if not device.get("reachable", True):
        return task_end(task, {"code": 3, "description": "Unable to connect to the device "
                                                         "(CANNOT_CONNECT)"}, "")
    failure = state.failure("program", device)
    if failure is not None:
        return task_end(task, failure, "")
    if not state.wait_for_barrier(serial):
        return task_end(task, {"code": 1, "description": "barrier not reached: programs did "
                                                         "not run at the same time"}, "")
    data = read_hex(firmware)
    pages = state.flash(device)
    mode = options["chip_erase_mode"]
    progress(task, 2, "Erasing", 20)
    if mode in ("ERASE_ALL", "ERASE_CTRL_AP"):
        pages = {}
    elif mode == "ERASE_RANGES_TOUCHED_BY_FIRMWARE":
        for page in {address // PAGE for address in data}:
            pages.pop(page, None)
    seconds = float(state.config.get("program_seconds") or 0)
    for tenth in range(10):
        progress(task, 3, "Programming", 30 + tenth * 5)
        time.sleep(seconds / 10)
    for address, value in data.items():
        page = pages.setdefault(address // PAGE, bytearray(b"\xff" * PAGE))
        page[address % PAGE] &= value
    state.save_flash(device, pages)
    state.event(op="program", serial=serial, firmware=firmware, erase=mode,
                verify=options["verify"], reset=options["reset"])
    if options["verify"] != "VERIFY_NONE":
        progress(task, 4, "Verifying", 85)
        if any(pages.get(a // PAGE, b"\xff" * PAGE)[a % PAGE] != v for a, v in data.items()):
            return task_end(task, {"code": 25, "description": "Verification failed: the "
                                                              "content differs"}, "")
    if options["reset"] != "RESET_NONE":
        progress(task, 5, "Resetting", 95)
        state.count_reset(device)
        state.event(op="reset", serial=serial, kind=options["reset"])
    progress(task, 5, "Done", 100)
    return task_end(task, None, "Programmed")


def cmd_program(state: State, args: list[str]) -> int:
    if "--firmware" not in args:
        fail_usage("the following required arguments were not provided: --firmware")
    firmware = args[args.index("--firmware") + 1]
    devices = selected(state, args)
    if devices is None:
        return 1
    options = parse_options(args[args.index("--options") + 1] if "--options" in args else "")
    try:
        read_hex(firmware)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"Error: Failed to read firmware file {firmware}: {exc}\n")
        return 1
    results = [program_one(state, device, firmware, options) for device in devices]
    if not all(results):
        sys.stderr.write("Error: One or more program tasks failed:\n")
        return 1
    return 0


def cmd_reset(state: State, args: list[str]) -> int:
    devices = selected(state, args)
    if devices is None:
        return 1
    kind = args[args.index("--reset-kind") + 1] if "--reset-kind" in args else "RESET_SYSTEM"
    ok = True
    for device in devices:
        task = {"id": uuid.uuid4().hex, "description": device["serialNumber"], "name": "reset",
                "data": None}
        emit("task_begin", {"task": task})
        failure = state.failure("reset", device)
        if failure is None and device.get("reachable", True):
            state.count_reset(device)
            state.event(op="reset", serial=device["serialNumber"], kind=kind)
        elif failure is None:
            failure = {"code": 3, "description": "Unable to connect to the device"}
        ok = task_end(task, failure, "Reset") and ok
    return 0 if ok else 1


def cmd_device_info(state: State, args: list[str]) -> int:
    devices = selected(state, args)
    if devices is None:
        return 1
    device = devices[0]
    if not device.get("reachable", True):
        sys.stderr.write("Error: Unable to connect to the device (CANNOT_CONNECT)\n")
        return 1
    emit("info", {"devices": [{"serialNumber": device["serialNumber"], "deviceInfo": {
        "jlink": {"serialNumber": device["serialNumber"],
                  "boardVersion": device.get("boardVersion"),
                  "deviceFamily": device.get("family", "NRF91_FAMILY"),
                  "deviceVersion": "NRF9160_xxAA_REV2",
                  "protectionStatus": "NRFDL_PROTECTION_STATUS_NONE"}}}]})
    return 0


COMMANDS = {"list": cmd_list, "program": cmd_program, "reset": cmd_reset,
            "device-info": cmd_device_info}
GLOBAL_FLAGS = ("--json", "--json-pretty", "--skip-overhead")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a not in GLOBAL_FLAGS and not a.startswith("--log-")]
    state = State(Path(os.environ["FAKE_NRFUTIL_STATE"]))
    if args[:1] == ["--version"]:
        emit("info", {"name": "nrfutil", "version": "8.1.0", "dependencies": []})
        return 0
    if args[:1] != ["device"]:
        fail_usage(f"unrecognized subcommand {args[:1]}")
    if not state.config.get("device_command", True):
        sys.stderr.write("Error: nrfutil command `device` not found. See `nrfutil list` for "
                         "installed commands and `nrfutil search` for installable commands.\n")
        return 1
    if args[1:2] == ["--version"]:
        emit("info", {"name": "nrfutil-device", "version": VERSION, "dependencies": [
            {"name": "JlinkARM", "expectedVersion": {"version": "JLink_V7.94e"}}]})
        return 0
    command = COMMANDS.get(args[1] if len(args) > 1 else "")
    if command is None:
        fail_usage(f"unrecognized subcommand {args[1:2]}")
    return command(state, args[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
