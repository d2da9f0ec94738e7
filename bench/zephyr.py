"""Sections on the real Zephyr 4.4 MCUmgr servers (native_sim builds on a pty, at full speed):

* ``zephyr``: hilprov vs smpclient as whole commands. ``hilprov fs upload|download`` against a
  one-shot smpclient script (bench/smpclient_oneshot.py), each a fresh process, so start-up
  counts for both; the two take turns, and who goes first alternates from one repetition to the
  next. Both clients' start-up is measured alone too, to show how much of a ratio it is.
* ``zephyr-default``: Zephyr's default MCUmgr UART settings (384-byte buffers, two 128-byte RX
  lines), where bursts drop lines: hilprov learns the link, then uploads 192 B, 1.5 KiB and
  4 KiB and reads each back; smpclient is tried once as a reference.
* ``zephyr-shell``: the shell transport (SMP frames among the prompt and the log, as on the
  Anjay Zephyr client): echo and MCUmgr-parameter round trips through hilprov's one-port
  console/SMP splitter, with a shell command in between.

The servers are found at ``../shared/zephyr-smp`` from the repository root or where
``HILPROV_ZEPHYR_SMP`` says; without them these sections report that and measure nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, Target, median, timed
from hilprov.board.serial import SerialPort
from hilprov.board.smp import SmpFileClient
from hilprov.sim.native_sim import NativeSimServer, server_path

ZEPHYR_SMP = Path(os.environ.get("HILPROV_ZEPHYR_SMP") or REPO.parent / "shared" / "zephyr-smp")
ONESHOT = REPO / "bench" / "smpclient_oneshot.py"
SIZES = (512, 4096)
DEFAULT_SIZES = (192, 1536, 4096)
REMOTE = "/lfs1/bench.bin"  # one file, overwritten: the LittleFS holds one 4 KiB file
PROCESS_TIMEOUT = 60.0


class Missing(Exception):
    """The real servers are not on this machine."""


def _server(kind: str) -> NativeSimServer:
    path = server_path(ZEPHYR_SMP, kind)
    if path is None:
        raise Missing(f"the real Zephyr servers are not at {ZEPHYR_SMP} (HILPROV_ZEPHYR_SMP)")
    return NativeSimServer(path)


def _skipped(exc: Missing) -> tuple[list[dict], list[Target], list[str]]:
    return [], [], [f"skipped: {exc}"]


def hilprov_command() -> list[str]:
    """The `hilprov` console script of this interpreter (as a bench engineer runs it)."""
    script = Path(sys.executable).with_name("hilprov")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hilprov"]


def _run(argv: list[str]) -> float:
    """Seconds one command takes as a process; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
                          cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-600:]}")
    return seconds


def _commands(port: str, direction: str, local: Path) -> dict[str, list[str]]:
    if direction == "upload":
        ours = [*hilprov_command(), "fs", "upload", "-q", "--port", port, str(local), REMOTE]
        theirs = [sys.executable, str(ONESHOT), "upload", port, str(local), REMOTE]
    else:
        ours = [*hilprov_command(), "fs", "download", "-q", "--port", port, REMOTE, str(local)]
        theirs = [sys.executable, str(ONESHOT), "download", port, str(local), REMOTE]
    return {"hilprov": ours, "smpclient": theirs}


# --- zephyr: full speed, whole commands -------------------------------------------------------

def full_speed(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    try:
        server = _server("serial_fs")
    except Missing as exc:
        return _skipped(exc)
    rows: list[dict] = []
    targets: list[Target] = []
    try:
        for size in SIZES:
            data = os.urandom(size)
            source = work / f"data-{size}.bin"
            source.write_bytes(data)
            for direction in ("upload", "download"):
                samples = _alternated(server.port, direction, source, data, work, reps)
                pair = _ratio_rows(size, direction, samples)
                rows += pair
                targets.append(Target(f"real Zephyr (full speed) {direction} {size} B: hilprov "
                                      "/ smpclient, whole commands", pair[0]["vs_smpclient"],
                                      1.0, "x", note=_noise_note(pair, reps)))
    finally:
        server.stop()
    startup = _startup_rows(reps)
    rows += startup
    notes = [f"server: {server_path(ZEPHYR_SMP, 'serial_fs').name} (1024 x 4 buffers) on a pty; "
             "each row is a whole process (start-up, connect and MCUmgr parameters, transfer)",
             "clients alternate: odd repetitions run hilprov first, even ones smpclient first",
             "start-up rows: the same processes doing nothing but start (`hilprov fs upload "
             "--help`, smpclient's imports); the rest of each command is its SMP work"]
    return rows, targets, notes


def _alternated(port: str, direction: str, source: Path, data: bytes, work: Path,
                reps: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"hilprov": [], "smpclient": []}
    if direction == "download":  # something to download
        _run(_commands(port, "upload", source)["hilprov"])
    for rep in range(reps):
        order = ["hilprov", "smpclient"] if rep % 2 == 0 else ["smpclient", "hilprov"]
        for client in order:
            target = work / f"got-{client}.bin"
            argv = _commands(port, direction, source if direction == "upload" else target)
            samples[client].append(_run(argv[client]))
            if direction == "download" and target.read_bytes() != data:
                raise AssertionError(f"{client}: {REMOTE} came back different")
    return samples


def _ratio_rows(size: int, direction: str, samples: dict[str, list[float]]) -> list[dict]:
    theirs = median(samples["smpclient"])
    rows = []
    for client in ("hilprov", "smpclient"):
        seconds = median(samples[client])
        rows.append({"client": client, "size": size, "direction": direction,
                     "seconds": round(seconds, 4),
                     "seconds_all": [round(s, 4) for s in samples[client]],
                     "spread": round(max(samples[client]) - min(samples[client]), 4),
                     "vs_smpclient": round(seconds / theirs, 3)})
    return rows


def _noise_note(pair: list[dict], reps: int) -> str:
    """How the difference of the medians compares with the spread of the runs."""
    ours, theirs = pair
    difference = ours["seconds"] - theirs["seconds"]
    spread = max(ours["spread"], theirs["spread"])
    verdict = ("too few runs to judge the noise" if reps < 3 else
               "within the noise" if abs(difference) < spread / 2 else "beyond the noise")
    return (f"medians of {reps}, alternated; difference {difference * 1000:+.0f} ms, runs "
            f"spread up to {spread * 1000:.0f} ms: {verdict}")


def _startup_rows(reps: int) -> list[dict]:
    ours = [*hilprov_command(), "fs", "upload", "--help"]
    theirs = [sys.executable, "-c",
              "import asyncio, smpclient, smpclient.transport.serial"]
    samples: dict[str, list[float]] = {"hilprov": [], "smpclient": []}
    for rep in range(reps):
        for client, argv in ((("hilprov", ours), ("smpclient", theirs)) if rep % 2 == 0
                             else (("smpclient", theirs), ("hilprov", ours))):
            samples[client].append(_run(argv))
    return [{"client": f"{client} start-up only", "size": None, "direction": "-",
             "seconds": round(median(values), 4), "seconds_all": [round(v, 4) for v in values],
             "spread": round(max(values) - min(values), 4)}
            for client, values in samples.items()]


# --- zephyr-default: Zephyr's default buffers ----------------------------------------------------

def default_config(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    try:
        server = _server("serial")
    except Missing as exc:
        return _skipped(exc)
    rows: list[dict] = []
    try:
        with SerialPort(server.port) as port:
            client = SmpFileClient(port)
            seconds, state = timed(client.learn)
            learned = {"level": state.current.name, "how": state.current.describe(),
                       "tried": state.tried(), "learn_seconds": round(seconds, 3)}
            losses = client.losses
            for size in DEFAULT_SIZES:
                rows.append(_default_row(client, size, reps, losses))
        smpclient = _smpclient_reference(server.port, DEFAULT_SIZES[0])
    finally:
        drops = server.log_text().count("fragment dropped")
        server.stop()
    failures = sum(not row["ok"] for row in rows)
    targets = [Target("real Zephyr default config: sizes that fail after learning", failures,
                      0, "sizes", note="192 B, 1.5 KiB, 4 KiB, each read back byte-identical")]
    notes = [f"server: {server_path(ZEPHYR_SMP, 'serial').name} (384 x 4 buffers, two 128-byte RX "
             "lines) on a pty",
             f"learned in {learned['learn_seconds']} s: {learned['level']} ({learned['how']}); "
             f"tried: {learned['tried']}",
             f"the device logged 'Insufficient buffers, fragment dropped' {drops} time(s), all "
             "while learning" if rows and all(r["ok"] for r in rows) else
             f"the device logged 'fragment dropped' {drops} time(s)",
             f"smpclient 7.3 (Auto), {DEFAULT_SIZES[0]} B upload: {smpclient}"]
    for row in rows:
        row["learned"] = learned
    return rows, targets, notes


def _default_row(client: SmpFileClient, size: int, reps: int, losses: int) -> dict:
    data = os.urandom(size)
    samples, ok, problem = [], True, ""
    for _ in range(reps):
        try:
            seconds, _ = timed(lambda: client.upload(data, REMOTE))
            samples.append(seconds)
            if client.download(REMOTE) != data:
                ok, problem = False, "read back different"
        except Exception as exc:  # report it in the table, go on with the next size
            ok, problem = False, f"{type(exc).__name__}: {str(exc)[:200]}"
            break
    lost_after = client.losses - losses
    ok = ok and lost_after == 0
    return {"client": "hilprov", "size": size,
            "seconds": round(median(samples), 4) if samples else None,
            "seconds_all": [round(s, 4) for s in samples], "ok": ok,
            "result": "ok, first try" if ok else (problem or f"{lost_after} request(s) lost"),
            "bytes_per_second": round(size / median(samples)) if samples else None}


def _smpclient_reference(port: str, size: int) -> str:
    """One smpclient upload with its defaults, for comparison (it has no fallback)."""
    from smpclient import SMPClient
    from smpclient.transport.serial import SMPSerialTransport

    async def upload() -> None:
        client = SMPClient(SMPSerialTransport(), port, timeout_s=2.0)
        await client.connect(connect_timeout_s=5.0)
        try:
            async for _ in client.upload_file(os.urandom(size), REMOTE):
                pass
        finally:
            await client.disconnect()

    quiet = logging.getLogger("smpclient")
    quiet.disabled = True  # it logs every timeout with the whole request
    started = time.perf_counter()
    try:
        asyncio.run(upload())
    except Exception as exc:
        return (f"failed after {time.perf_counter() - started:.1f} s ({type(exc).__name__}: "
                "no answer; the device dropped lines of the burst)")
    finally:
        quiet.disabled = False
    return f"ok in {time.perf_counter() - started:.3f} s"


# --- zephyr-shell: the shell transport ---------------------------------------------------------

def shell_transport(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    try:
        server = _server("shell")
    except Missing as exc:
        return _skipped(exc)
    rows = []
    try:
        with SerialPort(server.port) as port:
            client = SmpFileClient(port)
            connect, params = timed(client.params)
            short = [client.echo(f"ping {n}")[1] for n in range(max(reps, 5))]
            port.write(b"kernel version\n")
            console, _ = timed(lambda: port.expect(r"Zephyr version \d+\.\d+", 10))
            state = client.learn()
            long_text = "z" * 150
            long = [client.echo(long_text)[1] for _ in range(max(reps, 5))]
            rows = [
                _rt_row("first use: newline flush + MCUmgr parameters (os group)", [connect]),
                _rt_row("echo, 6 characters (one line each way)", short),
                _rt_row("shell command 'kernel version' answered on the console", [console]),
                _rt_row("echo, 150 characters (two lines each way)", long),
            ]
    finally:
        server.stop()
    notes = [f"server: {server_path(ZEPHYR_SMP, 'shell').name}: SMP over the Zephyr shell "
             f"(buffers {params.buf_size} x {params.buf_count}); prompts and log lines share "
             "the port and go to the console side of hilprov's splitter",
             f"link: {state.current.name} ({state.current.describe()}); tried: {state.tried()}"]
    return rows, [], notes


def _rt_row(what: str, samples: list[float]) -> dict:
    return {"what": what, "median_ms": round(median(samples) * 1000, 2),
            "min_ms": round(min(samples) * 1000, 2), "max_ms": round(max(samples) * 1000, 2),
            "runs": len(samples)}
