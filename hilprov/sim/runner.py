"""Run a virtual board as a process: ``hilprov sim`` (or ``python -m hilprov sim``).

`sim_main` starts a board (freshly flashed with the initial image unless its state directory
says otherwise), prints the pty path as the first line of stdout and ``control <socket>`` as the
second, then serves the control socket until SIGTERM/SIGINT or a "stop" request. `spawn_sim`
starts such a process and hands back the port and a :class:`SimBoardClient`.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from hilprov.errors import BoardError
from hilprov.sim import imei
from hilprov.sim.board import VirtualBoard
from hilprov.sim.cloud import CloudView, rest_registrar
from hilprov.sim.control import ControlServer, SimBoardClient
from hilprov.sim.faults import Faults

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def _pair(text: str, what: str) -> tuple[int, str]:
    number, sep, value = text.partition(":")
    if not sep or not number.isdigit() or not value:
        raise argparse.ArgumentTypeError(f"{what} must look like N:VALUE, got {text!r}")
    return int(number), value


def _imei(text: str) -> str:
    if not imei.valid(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IMEI (15 digits, the last a Luhn "
                                         "check digit)")
    return text


def _registrar(args: argparse.Namespace):
    if args.coiote_url is None:
        return None
    if args.coiote_token_file is None:
        raise BoardError("--coiote-url needs --coiote-token-file FILE (a token that may read "
                         "devices)")
    try:
        token = args.coiote_token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise BoardError(f"{args.coiote_token_file}: cannot read the token: {err}") from None
    return rest_registrar(CloudView(args.coiote_url, token))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilprov sim", description="Run a virtual nRF91 board (Zephyr + Anjay demo images) "
        "on a pseudo-terminal. Prints the pty path, then 'control <socket>'.")
    parser.add_argument("--imei", type=_imei, default=None,
                        help="IMEI in the endpoint name (15 digits, Luhn check digit; default: "
                             "a fresh random test IMEI)")
    parser.add_argument("--coiote-url", metavar="URL",
                        help="the Coiote-compatible REST API the final image's LwM2M server "
                             "asks before it accepts a Register (default: none, so it refuses)")
    parser.add_argument("--coiote-token-file", type=Path, metavar="FILE",
                        help="a token that may read devices there")
    parser.add_argument("--state-dir", type=Path, help="where flashed image and factory data "
                        "persist (default: a temporary directory, removed on exit)")
    parser.add_argument("--image", choices=("initial", "final"), default="initial",
                        help="image of a board without saved state (default: initial)")
    parser.add_argument("--baud", type=int, help="emulate UART wire time at this baud rate")
    parser.add_argument("--buf-size", type=int, default=2048, help="MCUmgr netbuf size")
    parser.add_argument("--control", type=Path, help="control socket path")
    parser.add_argument("--no-params", action="store_true",
                        help="MCUmgr parameters command unsupported (rc 8)")
    parser.add_argument("--legacy-rc", action="store_true", help='successes carry "rc": 0')
    parser.add_argument("--rx-buffer-drop", action="store_true",
                        help="two RX line buffers: drop lines of unpaced bursts")
    parser.add_argument("--line-process-time", type=float, default=0.0005,
                        help="seconds to decode one SMP line")
    parser.add_argument("--drop-line", type=int, action="append", default=[], metavar="N",
                        help="lose the Nth SMP line received (repeatable)")
    parser.add_argument("--corrupt-line", action="append", default=[], metavar="N:KIND",
                        type=lambda t: _pair(t, "--corrupt-line"),
                        help="corrupt the Nth SMP line; KIND is base64 or crc")
    parser.add_argument("--stall", action="append", default=[], metavar="N:SECONDS",
                        type=lambda t: _pair(t, "--stall"),
                        help="wait SECONDS before answering the Nth SMP request")
    parser.add_argument("--reset-after-bytes", type=int, metavar="N",
                        help="reboot once provision.cbor received N bytes")
    parser.add_argument("--no-ready-line", action="store_true",
                        help='never print "Device ready for provisioning."')
    parser.add_argument("--never-register", action="store_true",
                        help="final image restores but never completes registration")
    parser.add_argument("--eof-idle", type=float, default=15.0,
                        help="seconds without provision.cbor data that count as EOF")
    parser.add_argument("--retry-interval", type=float, default=3.0,
                        help="seconds between the final image's retries without data")
    return parser


def faults_from_args(args: argparse.Namespace) -> Faults:
    corrupt = {}
    for number, kind in args.corrupt_line:
        if kind not in ("base64", "crc"):
            raise BoardError(f"--corrupt-line {number}:{kind}: KIND must be base64 or crc")
        corrupt[number] = kind
    stalls = {}
    for number, seconds in args.stall:
        try:
            stalls[number] = float(seconds)
        except ValueError:
            raise BoardError(f"--stall {number}:{seconds}: SECONDS must be a number") from None
    return Faults(drop_lines=frozenset(args.drop_line), corrupt_lines=corrupt,
                  stall_requests=stalls, reset_after_provision_bytes=args.reset_after_bytes,
                  rx_buffer_drop=args.rx_buffer_drop, line_process_time=args.line_process_time,
                  no_ready_line=args.no_ready_line, never_register=args.never_register,
                  params_supported=not args.no_params, legacy_rc=args.legacy_rc,
                  eof_idle=args.eof_idle, retry_interval=args.retry_interval)


def sim_main(argv: list[str] | None = None) -> int:
    """``hilprov sim``: run a board until told to stop; returns 0.

    Problems are raised as HilprovErrors for the CLI to report (``hilprov.cli.exits``); the
    temporary state directory is removed either way.
    """
    args = build_parser().parse_args(argv)
    faults = faults_from_args(args)
    temp_dir = None
    try:
        state_dir = args.state_dir
        if state_dir is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="hilprov-sim-"))
            state_dir = temp_dir
        control = args.control or state_dir / "control.sock"
        if len(str(control)) > _SOCKET_PATH_MAX:
            if temp_dir is None:
                temp_dir = Path(tempfile.mkdtemp(prefix="hilprov-sim-"))
            control = temp_dir / "control.sock"
        board = VirtualBoard(state_dir, imei=args.imei or imei.random_imei(), baud=args.baud,
                             buf_size=args.buf_size, faults=faults, image=args.image,
                             registrar=_registrar(args))
        _serve(board, control)
    finally:
        _remove(temp_dir)
    return 0


def _serve(board: VirtualBoard, control: Path) -> None:
    """Start `board` and its control socket, print both, wait for SIGTERM/SIGINT or "stop"."""
    done = threading.Event()
    server = ControlServer(board, control, on_stop=done.set)
    previous = {}
    try:
        port = board.start()
        server.start()
        print(port, flush=True)
        print(f"control {control}", flush=True)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: done.set())
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        board.stop()


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class SimProcess:
    """A virtual board in a child process: `port`, `client` (flash/reset), `stop()`."""

    def __init__(self, proc: subprocess.Popen[bytes], port: str, control: Path) -> None:
        self.proc = proc
        self.port = port
        self.client = SimBoardClient(control)

    def flash(self, image: Path, erase: bool = True) -> None:
        self.client.flash(image, erase)

    def reset(self) -> None:
        self.client.reset()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return int(self.proc.returncode)

    close = stop

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _popen(argv: list[str], stderr: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr,
                            stdin=subprocess.DEVNULL)


def spawn_sim(args: list[str] | None = None, *, timeout: float = 15.0,
              stderr_path: Path | None = None) -> SimProcess:
    """Start ``python -m hilprov sim ARGS`` and wait for its pty path and control socket."""
    argv = [sys.executable, "-m", "hilprov", "sim", *(args or [])]
    if stderr_path is None:
        proc = _popen(argv, subprocess.DEVNULL)
    else:
        with open(stderr_path, "ab") as err_out:  # the child keeps its own copy
            proc = _popen(argv, err_out)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < 2:
        remaining = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, remaining))[0] if remaining > 0 else []
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            proc.kill()
            proc.wait(5)
            why = "exited" if ready else f"printed no pty path within {timeout:g} s"
            raise BoardError(f"virtual board process {why} (exit status {proc.returncode}); "
                             f"output so far: {buf.decode(errors='replace')!r}")
        buf += chunk
    first, second = buf.decode().splitlines()[:2]
    if not second.startswith("control "):
        proc.kill()
        proc.wait(5)
        raise BoardError(f"virtual board process printed {second!r} instead of its control "
                         "socket")
    return SimProcess(proc, first.strip(), Path(second[len("control "):].strip()))
