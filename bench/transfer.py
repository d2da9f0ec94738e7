"""Sections 1 and 2: SMP file transfers, and the provisioning upload against its optimum.

One virtual board runs as a subprocess (``python -m hilprov sim --baud 115200``) so that neither
client shares a GIL with the device. hilprov's SmpFileClient and the independent smpclient take
turns on its pty (both open it exclusively). Wire bytes are the board's own UART counters
(`uart_rx_bytes` + `uart_tx_bytes`, read over the control socket before and after each transfer),
so both directions and both clients are counted the same way.
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


def start_board(work: Path) -> SimProcess:
    """The board process, booted to its shell prompt, so no boot text lands in a measurement.
    (Opening the port drops what arrived before, so the ready line may be gone: a newline gets
    a prompt once the shell runs, and the shell starts after the last boot line.)"""
    sim = spawn_sim(["--baud", str(BAUD)], stderr_path=work / "sim-process.log")
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

HILPROV_VARIANTS = {
    "hilprov": SmpFileClient,  # as shipped: two lines in flight, 2 ms decoding allowance
    "hilprov line_delay=0": lambda port: SmpFileClient(port, line_delay=0.0),  # no allowance
}


class HilprovSide:
    def __init__(self, port_path: str, make_client) -> None:
        self.port = SerialPort(port_path, BAUD)
        self.client = make_client(self.port)
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


CLIENTS = {
    **{name: (lambda port, make=make: HilprovSide(port, make))
       for name, make in HILPROV_VARIANTS.items()},
    "smpclient": SmpclientSide,
}


# --- section 1 ------------------------------------------------------------------------------

def smp_transfers(work: Path, reps: int) -> tuple[list[dict], list[Target], list[str]]:
    rows = []
    sim = start_board(work)
    try:
        for size in SIZES:
            data = os.urandom(size)
            for name, make in CLIENTS.items():
                side = make(sim.port)
                try:
                    rows += _transfer_rows(sim, side, name, data, reps)
                finally:
                    side.close()
    finally:
        sim.stop()
    targets = []
    for size in SIZES:
        for direction in ("upload", "download"):
            ours = _find(rows, "hilprov", size, direction)
            theirs = _find(rows, "smpclient", size, direction)
            ratio = ours["seconds"] / theirs["seconds"]
            theirs["vs_smpclient"] = 1.0
            others = []
            for variant in HILPROV_VARIANTS:
                row = _find(rows, variant, size, direction)
                row["vs_smpclient"] = round(row["seconds"] / theirs["seconds"], 3)
                if variant != "hilprov":
                    others.append(f"{variant}: {row['vs_smpclient']}x")
            targets.append(Target(f"SMP {direction} {size} B: time hilprov / smpclient", ratio,
                                  1.0, "x", note="; ".join(others)))
    notes = [f"line-rate limit of the SMP serial framing: base64 3/4 x {LINE_CHARS}/127 = "
             f"{FRAMING_CEILING:.3f} payload bytes per wire byte; wire bytes count both "
             "directions (the board's UART counters)"]
    return rows, targets, notes


def _transfer_rows(sim: SimProcess, side, name: str, data: bytes, reps: int) -> list[dict]:
    path = f"/lfs1/bench-{len(data)}.bin"
    runs: dict[str, list[tuple[float, int]]] = {"upload": [], "download": []}
    for _ in range(reps):
        seconds, wire, _ = metered(sim, lambda: side.upload(data, path))
        runs["upload"].append((seconds, wire))
        seconds, wire, got = metered(sim, lambda: side.download(path))
        if got != data:
            raise AssertionError(f"{name}: downloaded {path} differs from what was uploaded")
        runs["download"].append((seconds, wire))
    rows = []
    for direction, samples in runs.items():
        wire = median([w for _, w in samples])
        efficiency = len(data) / wire
        rows.append({"client": name, "size": len(data), "direction": direction,
                     "seconds": round(median([s for s, _ in samples]), 4),
                     "seconds_all": [round(s, 4) for s, _ in samples],
                     "wire_bytes": int(wire), "payload_per_wire_byte": round(efficiency, 4),
                     "of_line_rate_limit": round(efficiency / FRAMING_CEILING, 4)})
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
    """hilprov's variants, then smpclient with 512-byte writes as a control: the time an
    independent client needs for the same requests on the same board (the testbed's floor)."""
    sim = start_board(work)
    rows = []
    try:
        endpoint = sim.client.status()["endpoint"]
        blob = build_cert_blob(work, endpoint)
        best = optimum_upload(len(blob))
        with SerialPort(sim.port, BAUD) as port:
            for name, make in HILPROV_VARIANTS.items():
                samples = [_hilprov_provisioning(sim, port, blob, make) for _ in range(reps)]
                rows.append(_provisioning_row(name, samples, blob, best))
        control = SmpclientSide(sim.port)
        try:
            samples = [_smpclient_provisioning(sim, control, blob) for _ in range(reps)]
        finally:
            control.close()
        rows.append(_provisioning_row("smpclient, 512-byte writes (control)", samples, blob,
                                      best))
    finally:
        sim.stop()
    rows.append({"client": "optimum (computed)", "size": len(blob),
                 "seconds": round(best["seconds"], 4), "wire_bytes": best["wire_bytes"],
                 "payload_per_wire_byte": round(best["payload_per_wire_byte"], 4),
                 "vs_optimum_time": 1.0, "vs_optimum_wire": 1.0, "computation": best})
    others = "; ".join(f"{r['client']}: {r['vs_optimum_time']}x" for r in rows[1:-1])
    targets = [Target("provisioning upload: time / achievable optimum",
                      rows[0]["vs_optimum_time"], 1.05, "x", note=others)]
    notes = [f"optimum for a {len(blob)}-byte blob with {PROVISION_LIMIT}-byte writes: "
             f"ceil({len(blob)}/{PROVISION_LIMIT}) = {best['requests']} requests",
             *best["how"],
             f"total {best['wire_bytes']} wire bytes x {BITS_PER_BYTE} bits / {BAUD} baud = "
             f"{best['seconds'] * 1000:.1f} ms, {best['payload_per_wire_byte']:.3f} payload bytes "
             "per wire byte (request framing: 2-byte length + packet + 2-byte CRC in base64, "
             f"{LINE_CHARS} characters per line plus marker and LF)",
             "ms/request over = (time - optimum) / requests: host + device turnaround"]
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


def _hilprov_provisioning(sim: SimProcess, port: SerialPort, blob: bytes,
                          make_client) -> tuple[float, int]:
    """Fresh initial image, then what the flow does: read endpoint.txt (first use of the
    client: flush and parameters), upload the blob (timed), check result.txt is "0"."""
    port.clear()
    sim.flash(INITIAL_IMAGE, erase=True)
    port.expect(re.compile(re.escape(READY)), 15.0)
    port.expect_exact(PROMPT, 5.0)
    client = make_client(port)
    client.download(ENDPOINT_FILE)
    seconds, wire, _ = metered(sim, lambda: client.upload(blob, PROVISION_FILE,
                                                          max_chunk=PROVISION_LIMIT))
    _check_result(client.download(RESULT_FILE, timeout=30.0))
    return seconds, wire


def _smpclient_provisioning(sim: SimProcess, side: SmpclientSide,
                            blob: bytes) -> tuple[float, int]:
    sim.flash(INITIAL_IMAGE, erase=True)
    time.sleep(0.5)  # the boot takes ~0.1 s; a request sent while it reboots would be lost
    side.download(ENDPOINT_FILE)
    seconds, wire, _ = metered(
        sim, lambda: side.upload_limited(blob, PROVISION_FILE, PROVISION_LIMIT))
    _check_result(side.download(RESULT_FILE))
    return seconds, wire
