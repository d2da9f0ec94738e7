"""The virtual board: Zephyr SMP framing and fs_mgmt, /factory, boot logs, flasher, process."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import re
import signal
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cbor2
import pytest
from smp import packet as smppacket
from smp.file_management import FileDownloadRequest, FileStatusRequest, FileUploadRequest
from smp.header import Version
from smp.os_management import EchoWriteRequest, MCUMgrParametersReadRequest

from hilprov.board.serial import SerialPort
from hilprov.board.smp import RemoteFileNotFound, RemoteNotMounted, SmpFileClient
from hilprov.errors import BoardError, ConfigError, ExpectTimeout
from hilprov.sim.board import Faults, VirtualBoard
from hilprov.sim.factory_fs import FactoryFs, MountTable, RamFs
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE, make_hex
from hilprov.sim.runner import spawn_sim
from hilprov.sim.smp_server import FrameAssembler, FsError, SmpServer, zephyr_tx_lines
from hilprov.station.app import PROVISION_WRITE_LIMIT

LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\.\d{3},\d{3}\] <(inf|wrn|err)> ([\w]+): (.*)$")


class StubModel:
    """Stand-in for hilprov.sim.anjay: any blob starting with 0x81 provisions."""

    def __init__(self, registers: bool = True) -> None:
        self.blobs: list[bytes] = []
        self.registers = registers

    def factory_provision(self, blob: bytes):
        self.blobs.append(blob)
        ok = blob[:1] == b"\x81"
        return SimpleNamespace(ok=ok, result_text="0" if ok else "-1", errno_name=None, log=[],
                               objects={0: {1: {0: "coap://127.0.0.1:5683", 2: 3, 3: b"\x01"}},
                                        1: {1: {0: 1, 1: 86400}}, 2: {}} if ok else {})

    def registration_outcome(self, objects, endpoint_name):
        reason = "registers" if self.registers else "never registers: no Server instance"
        return SimpleNamespace(registers=self.registers, reason=reason,
                               server_uri="coap://127.0.0.1:5683", security_mode=3)


@pytest.fixture
def boards():
    """Make boards that are stopped (and ports closed) at the end of the test."""
    made = []

    def make(*args, power_on: bool = True, **kwargs):
        kwargs.setdefault("model", StubModel())
        board = VirtualBoard(*args, **kwargs)
        board.start(power_on=power_on)
        made.append(board)
        return board

    yield make
    for board in made:
        board.stop()


@pytest.fixture
def ports():
    opened = []

    def open_port(board):
        port = SerialPort(board.port, 2_000_000)
        opened.append(port)
        return port

    yield open_port
    for port in opened:
        port.close()


def _boot(board, port):
    """Reset with the port open, so the whole boot log is seen. A board made for it is made
    off (`power_on=False`): a boot begun before the port opened would print its tail first."""
    port.clear()
    board.reset()


def _messages(port, since: int = 0) -> list[str]:
    """Console log lines (from line `since` on) as '<lvl> module: text', without timestamps."""
    out = []
    for line in port.console_lines[since:]:
        match = LOG_LINE.match(line)
        if match:
            out.append(f"<{match[1]}> {match[2]}: {match[3]}")
    return out


def _ready(boards, ports, *args, **kwargs):
    """A started board whose boot log, seen on an open port, reached "Device ready"."""
    board = boards(*args, power_on=False, **kwargs)
    port = ports(board)
    _boot(board, port)
    port.expect_exact("Device ready", 5)
    return board, port


def _provision(port, blob=b"\x81\xa1\x00\x01"):
    client = SmpFileClient(port, timeout=2.0)
    client.upload(blob, "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)
    return client.download("/factory/result.txt", timeout=5)


def _provision_then_flash_final(board, port, blob=b"\x81\xa1\x00\x01"):
    assert _provision(port, blob) == b"0"
    board.flash(FINAL_IMAGE, erase=False)


# --- Zephyr framing and reassembly ----------------------------------------------------------


def test_response_lines_match_the_params_vector():
    body = cbor2.dumps({"buf_size": 2048, "buf_count": 4})
    packet = bytes.fromhex("0900001800000106") + body
    expected = b"\x06\x09ACIJAAAYAAABBqJoYnVmX3NpemUZCABpYnVmX2NvdW50BMPk\n"
    assert zephyr_tx_lines(packet) == [expected]


def test_response_lines_never_split_the_crc():
    assert [len(line) for line in zephyr_tx_lines(bytes(90))] == [123, 11]
    for size in range(8, 3000, 7):
        packet = os.urandom(size)
        lines = zephyr_tx_lines(packet)
        assert all(len(line) <= 127 for line in lines)
        assert len(base64.b64decode(lines[-1][2:-1])) >= 2  # the whole CRC is on the last line
        decoder = smppacket.decode()
        next(decoder)
        with pytest.raises(StopIteration) as done:
            for line in lines:
                decoder.send(line)
        assert bytes(done.value.value) == packet


def test_assembler_reassembles_host_frames_up_to_the_netbuf_limit():
    assembler = FrameAssembler(buf_size=2048)
    for size in (8, 93, 256, 1000, 2044):
        packet = os.urandom(size)
        results = [assembler.feed(line) for line in smppacket.encode(packet, 128)]
        assert results[-1] == packet and all(r is None for r in results[:-1])
    too_big = [assembler.feed(line) for line in smppacket.encode(os.urandom(2045), 128)]
    assert all(r is None for r in too_big)
    assert assembler.dropped["frame larger than the 2048-byte netbuf"] == 1


def test_assembler_drops_bad_base64_bad_crc_and_orphan_continuations():
    assembler = FrameAssembler(buf_size=2048)
    (line,) = smppacket.encode(bytes(range(40)), 128)
    assert assembler.feed(line[:10] + b"*" + line[11:]) is None
    flipped = bytearray(line)
    flipped[20] = ord("A") if flipped[20] != ord("A") else ord("B")
    assert assembler.feed(bytes(flipped)) is None
    assert assembler.feed(b"\x04\x14QUJD\n") is None
    assert assembler.dropped == {"line is not valid base64": 1, "bad CRC": 1,
                                 "continuation without a start line": 1}
    assert assembler.feed(line) == bytes(range(40))


# --- SmpServer (fs_mgmt and os groups) ------------------------------------------------------


def _ask(server, request) -> tuple[int, dict]:
    reply = server.handle(bytes(request))
    return reply[0], cbor2.loads(reply[8:])


def _server(**kwargs) -> SmpServer:
    mounts = MountTable()
    mounts.mount("/lfs1", RamFs())
    return SmpServer(mounts, **kwargs)


def test_server_errors_v2_and_v1():
    server = _server()
    head, body = _ask(server, FileStatusRequest(name="/lfs1/none", sequence=1))
    assert head == 0x09 and body == {"err": {"group": 8, "rc": 3}}
    head, body = _ask(server, FileStatusRequest(name="/lfs1/none", sequence=2,
                                                version=Version.V1))
    assert head == 0x01 and body == {"rc": 5}  # v1: NOT_FOUND becomes ENOENT
    _, body = _ask(server, FileUploadRequest(off=0, data=b"x", name="/nowhere/x", len=1,
                                             sequence=3))
    assert body == {"err": {"group": 8, "rc": 14}}  # open -ENOENT: MOUNT_POINT_NOT_FOUND
    _, body = _ask(server, FileUploadRequest(off=0, data=b"x", name="/lfs1/x", sequence=4))
    assert body == {"rc": 3}  # off 0 without len
    _, body = _ask(server, FileStatusRequest(name="/lfs1/" + "n" * 60, sequence=5))
    assert body == {"rc": 3}  # path longer than 64 bytes


def test_server_os_group_and_versions():
    server = _server(params_supported=False)
    assert _ask(server, EchoWriteRequest(d="hi", sequence=1))[1] == {"r": "hi"}
    assert _ask(server, MCUMgrParametersReadRequest(sequence=2))[1] == {"rc": 8}
    too_new = bytearray(bytes(EchoWriteRequest(d="hi", sequence=3)))
    too_new[0] = (2 << 3) | 2
    assert cbor2.loads(server.handle(bytes(too_new))[8:]) == {"rc": 13}
    unknown_group = bytearray(bytes(EchoWriteRequest(d="hi", sequence=4)))
    unknown_group[4:6] = (99).to_bytes(2, "big")
    assert cbor2.loads(server.handle(bytes(unknown_group))[8:]) == {"rc": 8}


def test_server_offset_mismatch_reports_the_expected_offset():
    server = _server()
    _, body = _ask(server, FileUploadRequest(off=0, data=b"abcd", name="/lfs1/f", len=10,
                                             sequence=1))
    assert body == {"off": 4}
    _, body = _ask(server, FileUploadRequest(off=8, data=b"ijkl", name="/lfs1/f", sequence=2))
    assert body == {"err": {"group": 8, "rc": 11}, "len": 4}
    _, body = _ask(server, FileUploadRequest(off=4, data=b"efgh", name="/lfs1/f", sequence=3))
    assert body == {"off": 8}  # context lost after the mismatch: resumes from the file size


def test_server_download_chunk_is_netbuf_minus_44():
    server = _server(buf_size=2048)
    data = os.urandom(5000)
    for off in range(0, 5000, 1000):
        server.handle(bytes(FileUploadRequest(off=off, data=data[off:off + 1000],
                                              name="/lfs1/big", len=5000 if off == 0 else None,
                                              sequence=1)))
    _, body = _ask(server, FileDownloadRequest(off=0, name="/lfs1/big", sequence=2))
    assert body["off"] == 0 and body["len"] == 5000 and body["data"] == data[:2004]


# --- /factory ---------------------------------------------------------------------------------


def _factory(**kwargs):
    blobs = []

    def provision(blob):
        blobs.append(blob)
        return True, "0"

    return FactoryFs("anjay-zephyr-demo-1", provision, **kwargs), blobs


def test_factory_ring_buffer_back_pressure_and_enospc():
    fs, blobs = _factory()
    handle = fs.open("provision.cbor", write=True)
    with pytest.raises(FsError) as info:
        handle.write(0, bytes(513))
    assert info.value.errno == errno.ENOSPC
    handle.write(0, bytes(512))
    second = threading.Thread(target=handle.write, args=(512, b"\x01" * 100), daemon=True)
    second.start()
    second.join(0.2)
    assert second.is_alive()  # blocked: the ring is full and nobody reads yet
    anjay = threading.Thread(target=fs.run_provisioning, daemon=True)
    anjay.start()
    second.join(2)
    assert not second.is_alive()
    assert fs.stat("result.txt") == (True, 1)  # marks EOF, waits for the result
    anjay.join(2)
    assert blobs == [bytes(512) + b"\x01" * 100]
    with pytest.raises(FsError) as info:
        fs.open("provision.cbor", write=True)
    assert info.value.errno == errno.ENOENT
    with pytest.raises(FsError):
        fs.stat("provision.cbor")


def test_factory_idle_timeout_is_eof():
    fs, blobs = _factory(eof_idle=0.2)
    fs.open("provision.cbor", write=True).write(0, b"\x81")
    started = time.monotonic()
    attempt = fs.run_provisioning()
    assert 0.15 < time.monotonic() - started < 2
    assert attempt is not None and attempt.blob == b"\x81" and blobs == [b"\x81"]


def test_factory_reboot_wakes_blocked_callers():
    fs, _ = _factory()
    waiter = threading.Thread(target=lambda: pytest.raises(FsError, fs.stat, "result.txt"),
                              daemon=True)
    waiter.start()
    time.sleep(0.1)
    fs.cancel()
    waiter.join(2)
    assert not waiter.is_alive()
    assert fs.run_provisioning() is None


# --- boot logs and the flow ---------------------------------------------------------------


def test_initial_image_boot_log(boards, ports):
    board = boards(power_on=False)
    port = ports(board)
    _boot(board, port)
    port.expect_exact("Device ready for provisioning.", 5)
    port.expect(r"uart:~\$ $", 5)
    assert _messages(port) == [
        "<inf> anjay: [anjay] Initializing Anjay 3.11.0",
        "<inf> anjay: [anjay_dm] successfully registered object /0",
        "<inf> anjay: [anjay_dm] successfully registered object /1",
        "<inf> anjay: [anjay_dm] successfully registered object /2",
        "<wrn> provisioning_app: NOTE: No more log messages will be displayed. Please use "
        "mcumgr to check provisioning results",
        "<inf> provisioning_app: Device ready for provisioning.",
    ]
    client = SmpFileClient(port, timeout=2)
    assert client.download("/factory/endpoint.txt") == b"anjay-zephyr-demo-351234567890123"
    assert _provision(port) == b"0"
    assert client.download("/factory/result.txt") == b"0"  # re-readable, no newline
    time.sleep(0.2)
    assert len(_messages(port)) == 6  # the log backend stays off after the ready line


def test_already_present_after_provisioning_and_on_a_fresh_board(tmp_path, boards, ports):
    board = boards(tmp_path, power_on=False)
    port = ports(board)
    _boot(board, port)
    port.expect_exact("Device ready for provisioning.", 5)
    assert _provision(port) == b"0"
    assert stat.S_IMODE((tmp_path / "anjay_factory.cbor").stat().st_mode) == 0o600
    _boot(board, port)
    port.expect_exact("Factory provisioning information already present. Please flash "
                      "production firmware. Halting.", 5)
    client = SmpFileClient(port, timeout=2)
    with pytest.raises(RemoteNotMounted):
        client.upload(b"\x81", "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)
    with pytest.raises(RemoteFileNotFound):
        client.download("/factory/endpoint.txt")
    port.close()
    board.stop()

    again = boards(tmp_path, power_on=False)
    port2 = ports(again)
    _boot(again, port2)
    port2.expect_exact("already present", 5)
    assert again.provisioned


def test_failed_provisioning_persists_nothing(tmp_path, boards, ports):
    board, port = _ready(boards, ports, tmp_path)
    assert _provision(port, blob=b"\x00junk") == b"-1"
    assert not board.provisioned and not (tmp_path / "anjay_factory.cbor").exists()
    _boot(board, port)
    port.expect_exact("Device ready for provisioning.", 5)  # another attempt next boot


def onboarded(endpoint, objects):
    """A Coiote that knows every device (the registrar the virtual board asks)."""
    return True


def test_final_image_restores_registers_and_later_uses_persistence(tmp_path, boards, ports):
    board, port = _ready(boards, ports, tmp_path, registrar=onboarded)
    assert _provision(port) == b"0"
    start = len(port.console_lines)
    board.flash(FINAL_IMAGE, erase=False)
    port.expect_exact("persistence: Anjay restored from anjay_factory", 5)
    port.expect(r"registration successful, location = /rd/\w+", 5)
    final = _messages(port, start)
    assert final == [
        "<inf> main_app: Initializing Anjay-zephyr-client demo 3.11.0",
        "<inf> anjay_zephyr_lwm2m: Starting Anjay",
        "<inf> anjay_zephyr_lwm2m: Connecting to the network...",
        "<inf> anjay_zephyr_lwm2m: Connected to network",
        "<inf> anjay: [anjay] Initializing Anjay 3.11.0",
        "<err> anjay_zephyr_persistence: Couldn't restore Anjay from anjay_persistence",
        "<inf> anjay_zephyr_persistence: deleted anjay_persistence/security_object from storage",
        "<inf> anjay_zephyr_persistence: deleted anjay_persistence/server_object from storage",
        "<inf> anjay_zephyr_persistence: deleted anjay_persistence/access_control from storage",
        "<inf> anjay: [security_persistence] Security Object state restored",
        "<inf> anjay_zephyr_persistence: Successfully loaded security_object from persistence",
        "<inf> anjay: [server_persistence] Server Object state restored",
        "<inf> anjay_zephyr_persistence: Successfully loaded server_object from persistence",
        "<inf> anjay: [access_control] Access Control state restored",
        "<inf> anjay_zephyr_persistence: Anjay restored from anjay_factory",
        *[m for m in final if re.search(r" persisted, len: \d+$", m)],
        "<inf> anjay_zephyr_persistence: All targets successfully persisted",
        "<inf> anjay: [anjay] Attempting to register with LwM2M version 1.1",
        "<inf> anjay: [anjay] Register sent",
        *[m for m in final if "registration successful" in m],
    ]
    persisted = [m for m in final if "persisted, len:" in m]
    assert [m.split(": ", 1)[1].split(" persisted")[0] for m in persisted] == [
        "security_object", "server_object", "access_control"]
    assert board.registrations == ["anjay-zephyr-demo-351234567890123"]
    start = len(port.console_lines)
    _boot(board, port)
    port.expect_exact("Anjay restored from anjay_persistence", 5)
    port.expect_exact("registration successful", 5)
    assert not any("anjay_factory" in m for m in _messages(port, start))


def test_final_image_without_data_retries_forever(boards, ports):
    board = boards(faults=Faults(retry_interval=0.1), image="final", power_on=False)
    port = ports(board)
    _boot(board, port)
    for _ in range(3):
        port.expect_exact("Connecting to the network...", 5)
        port.expect_exact("Couldn't restore Anjay from anjay_factory", 5)
        port.expect_exact("Failed to initialize anjay zephyr", 5)
    assert not any("Anjay restored" in m or "register" in m for m in _messages(port))


def test_registration_rejected_by_the_cloud_check(boards, ports):
    seen = []

    def registrar(endpoint, objects):
        seen.append(endpoint)
        return "device not added in Coiote"

    board, port = _ready(boards, ports, registrar=registrar)
    _provision_then_flash_final(board, port)
    port.expect_exact("Register sent", 5)
    port.expect_exact("server responded with 4.03 Forbidden (expected 2.01 Created)", 5)
    assert seen == ["anjay-zephyr-demo-351234567890123"] and board.registrations == []


def test_configuration_that_cannot_register_sends_no_register(boards, ports):
    board, port = _ready(boards, ports, model=StubModel(registers=False))
    _provision_then_flash_final(board, port)
    port.expect_exact("No LwM2M server to register with: never registers", 5)
    time.sleep(0.2)
    assert not any("Register sent" in m or "Attempting to register" in m
                   for m in _messages(port))


def test_final_image_that_never_registers(boards, ports):
    board, port = _ready(boards, ports, faults=Faults(never_register=True))
    _provision_then_flash_final(board, port)
    port.expect_exact("Register sent", 5)
    with pytest.raises(ExpectTimeout):
        port.expect_exact("registration successful", 0.5)


def test_missing_ready_line(boards, ports):
    board = boards(faults=Faults(no_ready_line=True), power_on=False)
    port = ports(board)
    _boot(board, port)
    port.expect_exact("NOTE: No more log messages", 5)
    with pytest.raises(ExpectTimeout, match="Device ready for provisioning"):
        port.expect_exact("Device ready for provisioning.", 0.3)


def test_eof_after_idle_without_result_stat(boards, ports):
    model = StubModel()
    board, port = _ready(boards, ports, model=model, faults=Faults(eof_idle=0.3))
    SmpFileClient(port, timeout=2).upload(b"\x81\xa0", "/factory/provision.cbor",
                  max_chunk=PROVISION_WRITE_LIMIT)
    deadline = time.monotonic() + 3
    while not model.blobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model.blobs == [b"\x81\xa0"]
    assert SmpFileClient(port, timeout=1).download("/factory/result.txt") == b"0"


# --- flasher ----------------------------------------------------------------------------------


def test_flasher_refuses_unknown_and_corrupt_images(tmp_path, boards):
    board = boards(tmp_path / "state")
    other = tmp_path / "zephyr.hex"
    other.write_text(make_hex(b"some other firmware"))
    with pytest.raises(BoardError, match="unknown image"):
        board.flash(other, erase=True)
    broken = tmp_path / "broken.hex"
    broken.write_text(INITIAL_IMAGE.read_text().replace(":10000000", ":10000001", 1))
    with pytest.raises(ConfigError, match="line 2: checksum mismatch"):
        board.flash(broken, erase=True)
    assert board.image == "initial"


def test_flash_with_erase_wipes_factory_data(tmp_path, boards, ports):
    board, port = _ready(boards, ports, tmp_path)
    assert _provision(port) == b"0"
    board.flash(INITIAL_IMAGE, erase=False)
    port.expect_exact("already present", 5)
    board.flash(INITIAL_IMAGE, erase=True)
    port.expect_exact("Device ready for provisioning.", 5)
    assert not board.provisioned


def test_shell_echoes_and_answers(boards, ports):
    board = boards(power_on=False)
    port = ports(board)
    _boot(board, port)
    port.expect(r"uart:~\$ $", 5)
    port.write(b"hello\r\n")
    port.expect_exact("hello: command not found", 5)
    port.expect(r"uart:~\$ $", 5)


def test_lines_longer_than_127_bytes_are_dropped_silently(boards, ports):
    board = boards()
    port = ports(board)
    request = bytes(EchoWriteRequest(d="x" * 150, sequence=7))
    for line in smppacket.encode(request, 132):  # 131-byte lines
        port.write_smp_line(line)
    assert port.read_smp_line(0.4) is None
    assert board.stats["lines dropped (longer than 127 bytes)"] >= 1
    for line in smppacket.encode(request, 128):  # 127-byte lines
        port.write_smp_line(line)
    assert port.read_smp_line(2) is not None


def test_emulated_baud_rate_costs_wire_time(boards, ports):
    board = boards(baud=9600, power_on=False)
    port = ports(board)
    _boot(board, port)
    port.expect_exact("Device ready", 10)
    client = SmpFileClient(port, timeout=3)
    client.params()
    started = time.monotonic()
    client.download("/factory/endpoint.txt")
    # Request (63 B) and response (~83 B) both cross a 9600-baud wire: at least 0.15 s.
    assert time.monotonic() - started >= 0.15


# --- other clients, other processes, the real model --------------------------------------------


def test_smpclient_uploads_and_downloads(boards):
    from smpclient import SMPClient
    from smpclient.generics import error
    from smpclient.requests.file_management import FileStatus
    from smpclient.transport.serial import SMPSerialTransport

    board = boards()
    data = os.urandom(3000)

    async def session():
        client = SMPClient(SMPSerialTransport(), board.port, timeout_s=2.0)
        await client.connect(connect_timeout_s=5.0)
        try:
            async for _ in client.upload_file(data, "/lfs1/smpclient.bin"):
                pass
            got = await client.download_file("/lfs1/smpclient.bin")
            missing = await client.request(FileStatus(name="/lfs1/none"))
            endpoint = await client.download_file("/factory/endpoint.txt")
        finally:
            await client.disconnect()
        return got, missing, endpoint

    got, missing, endpoint = asyncio.run(asyncio.wait_for(session(), 20))
    assert got == data and endpoint == b"anjay-zephyr-demo-351234567890123"
    assert error(missing) and missing.err.rc == 3


def test_board_in_a_subprocess_is_driven_through_its_control_socket(tmp_path):
    state = tmp_path / "s"
    with spawn_sim(["--state-dir", str(state), "--imei", "490154203237518"],
                   stderr_path=tmp_path / "sim.log") as sim:
        assert sim.port.startswith("/dev/pts/")
        with SerialPort(sim.port, 2_000_000) as port:
            sim.flash(INITIAL_IMAGE, erase=True)
            port.expect_exact("Device ready for provisioning.", 5)
            client = SmpFileClient(port, timeout=2)
            assert client.download("/factory/endpoint.txt") == b"anjay-zephyr-demo-490154203237518"
            assert sim.client.status()["image"] == "initial"
            foreign = tmp_path / "zephyr.hex"
            foreign.write_text(make_hex(b"another firmware"))
            with pytest.raises(BoardError, match="unknown image"):
                sim.flash(foreign, erase=True)
            sim.reset()
            port.expect_exact("Device ready for provisioning.", 5)
        sim.proc.send_signal(signal.SIGTERM)
        assert sim.proc.wait(5) == 0
    assert not sim.client.control_path.exists()
    assert (state / "board.json").exists()


def test_real_anjay_model_provisions_and_registers(tmp_path, boards, ports):
    anjay = pytest.importorskip("hilprov.sim.anjay")
    from hilprov.core import senml
    from hilprov.core.config import load_config

    config = Path(__file__).parents[2] / "configs" / "endpoint_cfg_nosec"
    blob = senml.encode_config(load_config(config))
    board, port = _ready(boards, ports, tmp_path, model=anjay, registrar=onboarded)
    _provision_then_flash_final(board, port, blob)
    port.expect_exact("Anjay restored from anjay_factory", 5)
    port.expect_exact("registration successful", 5)
