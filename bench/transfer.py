"""Sections 1 and 2: SMP file transfers, and the provisioning upload against its optimum.

One virtual board runs as a subprocess (``python -m hilprov sim --baud 115200``) so that neither
client shares a GIL with the device. hilprov's SmpFileClient and the independent smpclient take
turns on its pty (both open it exclusively), and who goes first alternates from one repetition
to the next. Wire bytes are the board's own UART counters (`uart_rx_bytes` + `uart_tx_bytes`,
read over the control socket before and after each transfer), so both directions and both
clients are counted the same way; time is reported against the line rate, the time those wire
bytes take at 115200 baud 8N1.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from pathlib import Path

import cbor2

from bench.common import BAUD, CERT_CFG, CERT_INFO, Target, median, server_cert, timed
from hilprov.board.serial import SerialPort
from hilprov.board.smp import LINE_LENGTH, SmpFileClient
from hilprov.provisioning import FactoryProvisioning
from hilprov.sim.images import INITIAL_IMAGE
from hilprov.sim.runner import SimProcess, spawn_sim
from hilprov.station.app import (
    ENDPOINT_FILE,
    PROMPT,
    PROVISION_FILE,
    PROVISION_WRITE_LIMIT,
    READY,
    RESULT_FILE,
)

SIZES = (512, 4096, 16384)
LINE_CHARS = LINE_LENGTH - 3  # base64 characters per SMP line: minus the 2-byte marker and LF
FRAMING_CEILING = 0.75 * LINE_CHARS / LINE_LENGTH  # payload bytes per wire byte, no overhead
SMP_HEADER = 8
PROVISION_LIMIT = PROVISION_WRITE_LIMIT  # data bytes one provision.cbor write takes
BITS_PER_BYTE = 10  # 8N1


def start_board(work: Path, *extra: str) -> SimProcess:
    """The board process, booted to its shell prompt, so no boot text lands in a measurement.
    (Opening the port drops what arrived before, so the ready line may be gone: a newline gets
    a prompt once the shell runs, and the shell starts after the last boot line.)"""
    sim = spawn_sim(["--baud", str(BAUD), *extra], stderr_path=work / "sim-process.log")
    try:
        with SerialPort(sim.port, BAUD) as port:
            port.write(b"\n")
            port.expect_exact(PROMPT, 15.0)
            time.sleep(0.05)
    except BaseException:
        sim.stop()
        raise
    return sim


def wire_total(sim: SimProcess) -> int:
    stats = sim.client.status()["stats"]
    return int(stats["uart_rx_bytes"]) + int(stats["uart_tx_bytes"])


def metered(sim: SimProcess, action):
    """(seconds, wire bytes both ways, result) of one transfer."""
    before = wire_total(sim)
    seconds, out = timed(action)
    return seconds, wire_total(sim) - before, out


# --- the clients behind one interface ----------------------------------------------------------

class HilprovSide:
    def __init__(self, port_path: str) -> None:
        self.port = SerialPort(port_path, BAUD)
        self.client = SmpFileClient(self.port)
        self.client.params()  # newline flush + MCUmgr parameters, as smpclient's connect()

    def upload(self, data: bytes, path: str) -> None:
        self.client.upload(data, path)

    def download(self, path: str) -> bytes:
        return self.client.download(path)

    def close(self) -> None:
        self.port.close()


class SmpclientSide:
    """smpclient 7.3 driven from synchronous code with one event loop (smp-notes §4)."""

    def __init__(self, port_path: str) -> None:
        from smpclient import SMPClient
        from smpclient.transport.serial import SMPSerialTransport

        self.runner = asyncio.Runner()
        self.client = SMPClient(SMPSerialTransport(baudrate=BAUD), port_path, timeout_s=5.0)
        self.runner.run(self.client.connect(connect_timeout_s=5.0))

    def upload(self, data: bytes, path: str) -> None:
        async def drain() -> None:
            async for _ in self.client.upload_file(data, path):
                pass
        self.runner.run(drain())

    def download(self, path: str) -> bytes:
        return self.runner.run(self.client.download_file(path))

    def upload_limited(self, data: bytes, path: str, limit: int) -> None:
        """upload_file always fills the device buffer; this loop caps each write at `limit`."""
        from smpclient.generics import error
        from smpclient.requests.file_management import FileUpload

        async def upload() -> None:
            off = 0
            while off < len(data):
                chunk = data[off:off + limit]
                request = (FileUpload(off=0, data=chunk, name=path, len=len(data)) if off == 0
                           else FileUpload(off=off, data=chunk, name=path))
                response = await self.client.request(request)
                if error(response):
                    raise AssertionError(f"smpclient upload to {path}: {response}")
                off = response.off
        self.runner.run(upload())

    def close(self) -> None:
        try:
            self.runner.run(self.client.disconnect())
        finally:
            self.runner.close()


CLIENTS = {"hilprov": HilprovSide, "smpclient": SmpclientSide}


def line_rate_seconds(wire_bytes: float) -> float:
    """Seconds `wire_bytes` take at the emulated baud rate, 10 bits per byte, no gaps."""
    return wire_bytes * BITS_PER_BYTE / BAUD


def alternating(reps: int, names: list[str]):
    """(repetition, name) pairs in which the first name alternates from one repetition to
    the next, so neither client always runs on a warmed-up (or a tired) board."""
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else list(reversed(names))):
            yield rep, name


# --- section 1 ------------------------------------------------------------------------------

def smp_transfers(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    rows = []
    sim = start_board(work)
    try:
        for size in SIZES:
            data = os.urandom(size)
            runs: dict[str, dict[str, list[tuple[float, int]]]] = {
                name: {"upload": [], "download": []} for name in CLIENTS}
            for _, name in alternating(reps, list(CLIENTS)):
                side = CLIENTS[name](sim.port)
                try:
                    _transfer_once(sim, side, name, data, runs[name])
                finally:
                    side.close()
            for name in CLIENTS:
                rows += _transfer_rows(name, len(data), runs[name])
    finally:
        sim.stop()
    for size in SIZES:
        for direction in ("upload", "download"):
            theirs = _find(rows, "smpclient", size, direction)
            for name in CLIENTS:
                row = _find(rows, name, size, direction)
                row["vs_smpclient"] = round(row["seconds"] / theirs["seconds"], 3)
    notes = ["line-rate s: the wire bytes of the transfer (both directions, the board's UART "
             f"counters) at {BAUD} baud, 10 bits per byte, no gaps; vs line rate = time / that",
             f"framing ceiling: base64 3/4 x {LINE_CHARS}/127 = {FRAMING_CEILING:.3f} payload "
             "bytes per wire byte",
             "no targets here: both clients are held to the emulated line rate, and their "
             "ratio is within the noise; the real-Zephyr section compares them at full speed"]
    return rows, [], notes


def _transfer_once(sim: SimProcess, side, name: str, data: bytes,
                   runs: dict[str, list[tuple[float, int]]]) -> None:
    path = f"/lfs1/bench-{len(data)}.bin"
    seconds, wire, _ = metered(sim, lambda: side.upload(data, path))
    runs["upload"].append((seconds, wire))
    seconds, wire, got = metered(sim, lambda: side.download(path))
    if got != data:
        raise AssertionError(f"{name}: downloaded {path} differs from what was uploaded")
    runs["download"].append((seconds, wire))


def _transfer_rows(name: str, size: int, runs: dict[str, list[tuple[float, int]]]) -> list[dict]:
    rows = []
    for direction, samples in runs.items():
        wire = median([w for _, w in samples])
        seconds = median([s for s, _ in samples])
        line_rate = line_rate_seconds(wire)
        rows.append({"client": name, "size": size, "direction": direction,
                     "seconds": round(seconds, 4),
                     "seconds_all": [round(s, 4) for s, _ in samples],
                     "wire_bytes": int(wire), "payload_per_wire_byte": round(size / wire, 4),
                     "line_rate_seconds": round(line_rate, 4),
                     "vs_line_rate": round(seconds / line_rate, 4)})
    return rows


def _find(rows: list[dict], client: str, size: int, direction: str) -> dict:
    return next(r for r in rows
                if (r["client"], r["size"], r["direction"]) == (client, size, direction))


# --- section 2 ------------------------------------------------------------------------------

def serial_wire_bytes(packet_len: int) -> tuple[int, int]:
    """(wire bytes, lines) of one SMP packet on the shell UART: 2-byte length + packet + 2-byte
    CRC, base64 in lines of at most 124 characters, each with a 2-byte marker and a LF."""
    chars = 4 * math.ceil((packet_len + 4) / 3)
    lines = math.ceil(chars / LINE_CHARS)
    return chars + 3 * lines, lines


def optimum_upload(size: int, path: str = PROVISION_FILE, limit: int = PROVISION_LIMIT,
                   baud: int = BAUD) -> dict:
    """The cheapest upload of `size` bytes when one write carries at most `limit` bytes:
    ceil(size / limit) requests, each with the fs_mgmt fields it must carry (off, data, name;
    len on the first) in minimal CBOR, and the device's minimal answer ({off}), on the wire at
    `baud` with 10 bits per byte and no time between bytes."""
    requests, total_wire, how = [], 0, []
    for off in range(0, size, limit):
        chunk = min(limit, size - off)
        fields = {"off": off, "data": bytes(chunk), "name": path}
        if off == 0:
            fields["len"] = size
        req_packet = SMP_HEADER + len(cbor2.dumps(fields))
        req_wire, req_lines = serial_wire_bytes(req_packet)
        rsp_packet = SMP_HEADER + len(cbor2.dumps({"off": off + chunk}))
        rsp_wire, _ = serial_wire_bytes(rsp_packet)
        requests.append({"off": off, "data": chunk, "request_packet": req_packet,
                         "request_wire": req_wire, "request_lines": req_lines,
                         "response_packet": rsp_packet, "response_wire": rsp_wire})
        total_wire += req_wire + rsp_wire
        how.append(f"off {off}: {chunk} B data -> {req_packet} B packet -> {req_wire} wire B in "
                   f"{req_lines} lines; answer {rsp_packet} B -> {rsp_wire} wire B")
    seconds = total_wire * BITS_PER_BYTE / baud
    return {"size": size, "limit": limit, "requests": len(requests), "detail": requests,
            "wire_bytes": total_wire, "seconds": seconds,
            "payload_per_wire_byte": size / total_wire, "how": how}


def build_cert_blob(work: Path, endpoint: str) -> bytes:
    """The Certificate-mode blob the flow's build step makes (configs/endpoint_cfg_cert,
    configs/cert_info.json, a generated server certificate)."""
    fp = FactoryProvisioning(CERT_CFG, endpoint, cert_info=CERT_INFO)
    fp.set_server_cert(server_cert(work))
    fp.generate_self_signed_cert(work / "cert" / endpoint)
    return fp.serialize()


def provisioning_upload(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    """hilprov, and smpclient with 512-byte writes as a control (the time an independent client
    needs for the same requests on the same board: the testbed's floor), taking turns. The board
    drops a line that arrives while both of its RX line buffers are busy (--rx-buffer-drop)."""
    sim = start_board(work, "--rx-buffer-drop")
    samples: dict[str, list[tuple[float, int]]] = {"hilprov": [], "smpclient": []}
    try:
        endpoint = sim.client.status()["endpoint"]
        blob = build_cert_blob(work, endpoint)
        best = optimum_upload(len(blob))
        for _, name in alternating(reps, list(samples)):
            run = _hilprov_provisioning if name == "hilprov" else _smpclient_provisioning
            samples[name].append(run(sim, blob))
        dropped = int(sim.client.status()["stats"].get("lines dropped (RX buffers full)", 0))
    finally:
        sim.stop()
    rows = [_provisioning_row("hilprov", samples["hilprov"], blob, best),
            _provisioning_row("smpclient, 512-byte writes (control)", samples["smpclient"], blob,
                              best)]
    rows.append({"client": "optimum (computed)", "size": len(blob),
                 "seconds": round(best["seconds"], 4), "wire_bytes": best["wire_bytes"],
                 "payload_per_wire_byte": round(best["payload_per_wire_byte"], 4),
                 "vs_optimum_time": 1.0, "vs_optimum_wire": 1.0, "computation": best})
    targets = [Target("provisioning upload (115200, RX-buffer drop on): time / achievable "
                      "optimum", rows[0]["vs_optimum_time"], 1.05, "x",
                      note=f"smpclient control: {rows[1]['vs_optimum_time']}x")]
    notes = [f"optimum for a {len(blob)}-byte blob with {PROVISION_LIMIT}-byte writes: "
             f"ceil({len(blob)}/{PROVISION_LIMIT}) = {best['requests']} requests",
             *best["how"],
             f"total {best['wire_bytes']} wire bytes x {BITS_PER_BYTE} bits / {BAUD} baud = "
             f"{best['seconds'] * 1000:.1f} ms, {best['payload_per_wire_byte']:.3f} payload bytes "
             "per wire byte (request framing: 2-byte length + packet + 2-byte CRC in base64, "
             f"{LINE_CHARS} characters per line plus marker and LF)",
             "ms/request over = (time - optimum) / requests: host + device turnaround",
             f"the board ran with two RX line buffers that drop a line arriving while both are "
             f"busy; lines it dropped: {dropped}"]
    return rows, targets, notes


def _provisioning_row(name: str, samples: list[tuple[float, int]], blob: bytes,
                      best: dict) -> dict:
    seconds = median([s for s, _ in samples])
    wire = median([w for _, w in samples])
    return {"client": name, "size": len(blob), "seconds": round(seconds, 4),
            "seconds_all": [round(s, 4) for s, _ in samples], "wire_bytes": int(wire),
            "payload_per_wire_byte": round(len(blob) / wire, 4),
            "vs_optimum_time": round(seconds / best["seconds"], 4),
            "vs_optimum_wire": round(wire / best["wire_bytes"], 4),
            "overhead_ms_per_request": round((seconds - best["seconds"]) * 1000
                                             / best["requests"], 2)}


def _check_result(result: bytes) -> None:
    if result.strip() != b"0":
        raise AssertionError(f"the virtual board rejected the benchmark blob: result {result!r}")


def _hilprov_provisioning(sim: SimProcess, blob: bytes) -> tuple[float, int]:
    """Fresh initial image, then what the flow does: read endpoint.txt (first use of the
    client: flush and parameters), upload the blob (timed), check result.txt is "0"."""
    with SerialPort(sim.port, BAUD) as port:
        sim.flash(INITIAL_IMAGE, erase=True)
        port.expect(re.compile(re.escape(READY)), 15.0)
        port.expect_exact(PROMPT, 5.0)
        client = SmpFileClient(port)
        client.download(ENDPOINT_FILE)
        seconds, wire, _ = metered(sim, lambda: client.upload(blob, PROVISION_FILE,
                                                              max_chunk=PROVISION_LIMIT))
        _check_result(client.download(RESULT_FILE, timeout=30.0))
    return seconds, wire


def _smpclient_provisioning(sim: SimProcess, blob: bytes) -> tuple[float, int]:
    side = SmpclientSide(sim.port)
    try:
        sim.flash(INITIAL_IMAGE, erase=True)
        time.sleep(0.5)  # the boot takes ~0.1 s; a request sent while it reboots would be lost
        side.download(ENDPOINT_FILE)
        seconds, wire, _ = metered(
            sim, lambda: side.upload_limited(blob, PROVISION_FILE, PROVISION_LIMIT))
        _check_result(side.download(RESULT_FILE))
    finally:
        side.close()
    return seconds, wire
