"""A real labgrid lab on 127.0.0.1 for the labgrid board tests: a coordinator, an exporter and
virtual boards (`hilprov sim` processes) whose ptys are exported through ser2net.

Two ways a place's serial port reaches the network, the two a bench uses:
* `rfc2217`: the exporter declares a `RawSerialPort` (the pty) and, while the place is
  acquired, runs ser2net itself with a telnet/RFC 2217 accepter (labgrid's own export);
* `raw`: we run ser2net with a plain TCP accepter, and the exporter declares that port as a
  `NetworkSerialPort` with `protocol: raw`.

Each place has its own virtual board; `fresh(place)` flashes it with the initial image again
(chip erase), so every test starts from an unprovisioned device without a new process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hilprov.sim.images import INITIAL_IMAGE
from hilprov.sim.runner import SimProcess, spawn_sim

BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0  # generous: a loaded 2-core machine starts Python processes slowly


def missing() -> str | None:
    """Why the lab cannot run here, or None."""
    if shutil.which("ser2net") is None and not Path("/usr/sbin/ser2net").exists():
        return "ser2net is not installed (Debian: apt-get install ser2net)"
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return "labgrid is not installed (pip install 'hilprov[labgrid]')"
    for tool in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client"):
        if not (BIN / tool).exists():
            return f"{tool} is not installed next to {sys.executable}"
    return None


def ser2net_bin() -> str:
    return shutil.which("ser2net") or "/usr/sbin/ser2net"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"lab: {what} within {timeout:g} s")
        time.sleep(0.1)


@dataclass
class Place:
    name: str
    protocol: str  # "rfc2217" or "raw"
    sim_args: list[str] = field(default_factory=list)
    extra_yaml: str = ""  # more resources of the place, as exporter YAML under its group
    sim: SimProcess | None = None
    ser2net: subprocess.Popen | None = None  # ours, for protocol raw


class Lab:
    """Start with `with Lab(root, places) as lab:`; `lab.address` is the coordinator."""

    exporter_name = "hil-exporter"

    def __init__(self, root: Path, places: list[Place]) -> None:
        self.root = Path(root)
        self.places = {place.name: place for place in places}
        self.address = f"127.0.0.1:{free_port()}"
        self._procs: list[subprocess.Popen] = []

    # -- what tests use ---------------------------------------------------------------------------
    def client(self, *args: str, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        """labgrid-client against this lab's coordinator."""
        done = subprocess.run([str(BIN / "labgrid-client"), "-x", self.address, *args],
                              capture_output=True, text=True, timeout=START_TIMEOUT,
                              env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"labgrid-client {' '.join(args)}: {done.stderr}")
        return done

    def holder(self, place: str) -> str | None:
        """Who holds `place`, as labgrid-client shows it (None: free)."""
        out = self.client("-p", place, "show").stdout
        line = next(line for line in out.splitlines() if line.strip().startswith("acquired:"))
        value = line.split(":", 1)[1].strip()
        return None if value == "None" else value

    def fresh(self, place: str) -> None:
        """The place's board unprovisioned again: initial image, chip erase."""
        sim = self.places[place].sim
        sim.flash(INITIAL_IMAGE, erase=True)

    def env(self) -> dict[str, str]:
        """The environment a station process runs in (LG_* set explicitly: hermetic)."""
        return {"LG_COORDINATOR": self.address, "LG_USERNAME": "station",
                "LG_HOSTNAME": "line-pc"}

    # -- start and stop ---------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        (self.root / "coordinator").mkdir(parents=True, exist_ok=True)  # its places.yaml
        self._spawn("coordinator", [str(BIN / "labgrid-coordinator"), "-l", self.address])
        wait_for(lambda: self.client("places", check=False).returncode == 0, START_TIMEOUT,
                 "the coordinator answers")
        for place in self.places.values():
            place.sim = spawn_sim(place.sim_args, timeout=START_TIMEOUT,
                                  stderr_path=self.root / f"sim-{place.name}.log")
            if place.protocol == "raw":
                place.ser2net = self._raw_ser2net(place)
        config = self.root / "exporter.yaml"
        config.write_text(self._exporter_yaml())
        self._spawn("exporter", [str(BIN / "labgrid-exporter"), "-c", self.address,
                                 "-n", self.exporter_name, "--hostname", "127.0.0.1",
                                 str(config)])
        for place in self.places.values():
            self.client("-p", place.name, "create")
            self.client("-p", place.name, "add-match", f"{self.exporter_name}/{place.name}/*")
        exported = {f"{self.exporter_name}/{name}/NetworkSerialPort" for name in self.places}
        wait_for(lambda: exported <= set(self.client("resources").stdout.split()),
                 START_TIMEOUT, "the exporter publishes every serial port")

    def _exporter_yaml(self) -> str:
        groups = []
        for place in self.places.values():
            if place.protocol == "raw":
                groups.append(f"{place.name}:\n  NetworkSerialPort:\n    host: 127.0.0.1\n"
                              f"    port: {place.raw_port}\n    speed: 115200\n"
                              "    protocol: raw\n")
            else:
                groups.append(f"{place.name}:\n  RawSerialPort:\n    port: {place.sim.port}\n"
                              "    speed: 115200\n")
            groups.append(place.extra_yaml)
        return "".join(groups)

    def _raw_ser2net(self, place: Place) -> subprocess.Popen:
        place.raw_port = free_port()
        proc = self._spawn(f"ser2net-{place.name}", [
            ser2net_bin(), "-d", "-n",
            "-Y", f"connection: &{place.name}#  accepter: tcp,127.0.0.1,{place.raw_port}",
            "-Y", f"  connector: serialdev(nouucplock=true),{place.sim.port},115200n81,local",
        ])
        wait_for(lambda: _accepts(place.raw_port), START_TIMEOUT, "ser2net listens")
        return proc

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.root / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.root / "coordinator")
        self._procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self._procs):  # exporter before coordinator; they stop on SIGINT
            _end(proc)
        self._procs.clear()
        for place in self.places.values():
            if place.sim is not None:
                with contextlib.suppress(Exception):
                    place.sim.stop()

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: labgrid's coordinator and exporter ignore SIGTERM a while
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
