"""SmpFileClient: framing vectors, and transfers against the virtual board through a real pty."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from types import SimpleNamespace

import pytest
from smp import packet as smppacket
from smp.file_management import FileDownloadRequest, FileUploadRequest
from smp.os_management import EchoWriteRequest, MCUMgrParametersReadRequest

from hilprov.board import smp_link
from hilprov.board import smp_messages as msg
from hilprov.board.serial import SerialPort
from hilprov.board.smp import (
    FALLBACK_MAX_REQUEST,
    NoSpaceError,
    RemoteFileNotFound,
    RemoteNotMounted,
    SmpFileClient,
    SmpTimeout,
)
from hilprov.board.smp_link import LADDER
from hilprov.cli import main
from hilprov.errors import TransferError
from hilprov.sim.board import Faults, VirtualBoard
from hilprov.sim.smp_server import FsError
from hilprov.station.app import PROVISION_WRITE_LIMIT

# --- framing vectors (smp-notes §2) --------------------------------------------------------


def test_echo_vector():
    request = EchoWriteRequest(d="hi", sequence=0)
    assert bytes(request) == bytes.fromhex("0a00000600000000a16164626869")
    assert list(smppacket.encode(bytes(request), 128)) == [b"\x06\x09ABAKAAAGAAAAAKFhZGJoaeJ8\n"]


def test_params_request_and_response_vectors():
    request = MCUMgrParametersReadRequest(sequence=1)
    assert bytes(request) == bytes.fromhex("0800000100000106a0")
    assert list(smppacket.encode(bytes(request), 128)) == [b"\x06\x09AAsIAAABAAABBqBEIw==\n"]
    decoder = smppacket.decode()
    next(decoder)
    with pytest.raises(StopIteration) as done:
        decoder.send(b"\x06\x09ACIJAAAYAAABBqJoYnVmX3NpemUZCABpYnVmX2NvdW50BMPk\n")
    frame = bytes(done.value.value)
    assert frame[:8] == bytes.fromhex("0900001800000106")  # read-rsp, v2, len 24, OS, seq 1, cmd 6


def test_download_request_vector():
    request = FileDownloadRequest(off=0, name="/factory/endpoint.txt", sequence=2)
    lines = list(smppacket.encode(bytes(request), 128))
    assert lines == [b"\x06\x09ACsIAAAhAAgCAKJjb2ZmAGRuYW1ldS9mYWN0b3J5L2VuZHBvaW50LnR4dJUQ\n"]
    assert len(lines[0]) == 63


def test_256_byte_request_takes_three_lines_of_127_127_103():
    request = FileUploadRequest(off=0, data=bytes(200), name="/factory/provision.cbor", len=200,
                                sequence=3)
    assert len(bytes(request)) == 256
    assert [len(line) for line in smppacket.encode(bytes(request), 128)] == [127, 127, 103]


def test_requests_are_byte_identical_to_the_smp_package_models():
    from smp.file_management import FileStatusRequest

    pairs = [
        (msg.echo(7, "hi"), EchoWriteRequest(d="hi", sequence=7)),
        (msg.params_read(255), MCUMgrParametersReadRequest(sequence=255)),
        (msg.file_download(3, off=0, name="/factory/endpoint.txt"),
         FileDownloadRequest(off=0, name="/factory/endpoint.txt", sequence=3)),
        (msg.file_upload(4, off=0, data=b"abc", name="/lfs1/x", total=10),
         FileUploadRequest(off=0, data=b"abc", name="/lfs1/x", len=10, sequence=4)),
        (msg.file_upload(5, off=3, data=bytes(300), name="/lfs1/x"),
         FileUploadRequest(off=3, data=bytes(300), name="/lfs1/x", sequence=5)),
        (msg.file_status(6, name="/lfs1/x"), FileStatusRequest(name="/lfs1/x", sequence=6)),
    ]
    for ours, theirs in pairs:
        assert ours.packet == bytes(theirs), ours.kind
        head = msg.Header.unpack(ours.packet)
        assert (head.op, head.version, head.group, head.sequence, head.command, head.length) == (
            int(theirs.header.op), int(theirs.header.version), int(theirs.header.group_id),
            theirs.header.sequence, int(theirs.header.command_id), theirs.header.length)


# --- against the virtual board ----------------------------------------------------------------


class StubModel:
    """Stand-in for hilprov.sim.anjay: records blobs, accepts any non-empty one."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def factory_provision(self, blob: bytes):
        self.blobs.append(blob)
        ok = bool(blob)
        return SimpleNamespace(ok=ok, result_text="0" if ok else "-1", errno_name=None,
                               log=[], objects={0: {1: {0: "coap://127.0.0.1:5683"}}})

    def registration_outcome(self, objects, endpoint_name):
        return SimpleNamespace(registers=True, reason="", server_uri="coap://127.0.0.1:5683",
                               security_mode=3)


def _connect(board: VirtualBoard, baud: int = 2_000_000, **client_kwargs):
    path = board.start(power_on=False)  # off until the console is open: no half-seen boot
    port = SerialPort(path, baud)
    board.reset()
    port.expect_exact("uart:~$ ", 5)
    client_kwargs.setdefault("timeout", 1.0)
    return port, SmpFileClient(port, **client_kwargs)


@pytest.fixture
def rig(tmp_path):
    """A factory-fresh virtual board, its port and a client; extra faults via rig.make()."""
    opened = []

    def make(faults=None, **kwargs):
        model = StubModel()
        board = VirtualBoard(tmp_path / f"state{len(opened)}", model=model, faults=faults,
                             **kwargs.pop("board", {}))
        port, client = _connect(board, **kwargs)
        opened.append((board, port))
        return SimpleNamespace(board=board, port=port, client=client, model=model)

    yield make
    for board, port in opened:
        port.close()
        board.stop()


SIZES = [0, 1, 511, 512, 513, 4096]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_on_the_scratch_file_system(rig, size):
    r = rig()
    data = os.urandom(size)
    seen = []
    r.client.upload(data, f"/lfs1/file{size}.bin", progress=lambda done, total: seen.append(done))
    assert r.client.download(f"/lfs1/file{size}.bin") == data
    assert r.client.status(f"/lfs1/file{size}.bin") == size
    assert seen[-1] == size and seen == sorted(seen)


@pytest.mark.parametrize("size", SIZES)
def test_provision_upload_reaches_the_device_intact(rig, size):
    r = rig()
    blob = os.urandom(size)
    r.client.params()
    before = r.board.stats["requests"]
    r.client.upload(blob, "/factory/provision.cbor",
                    max_chunk=PROVISION_WRITE_LIMIT)  # chunks over 512 B would fail: ENOSPC
    assert r.board.stats["requests"] - before == max(1, -(-size // 512))  # full 512-byte chunks
    assert r.client.download("/factory/result.txt", timeout=5) == (b"0" if size else b"-1")
    assert r.model.blobs == [blob]


def test_params_are_negotiated_and_size_the_requests(rig):
    r = rig(board={"buf_size": 1024})
    params = r.client.params()
    assert (params.buf_size, params.buf_count, params.max_request) == (1024, 4, 1020)
    r.client.upload(os.urandom(3000), "/lfs1/a.bin")
    # params + four uploads of ~980 data bytes; a request over 1020 bytes would have been
    # dropped silently by the device and shown up as a timeout.
    assert r.board.stats["requests"] == 1 + 4
    assert r.client.timeouts == 0


def test_without_params_support_small_requests_still_work(rig):
    r = rig(Faults(params_supported=False))
    assert not r.client.params().from_device
    assert r.client.params().max_request == FALLBACK_MAX_REQUEST
    data = os.urandom(700)
    r.client.upload(data, "/lfs1/small.bin")
    assert r.client.download("/lfs1/small.bin") == data


def test_oversized_write_to_provision_cbor_is_no_space(rig):
    r = rig()
    with pytest.raises(NoSpaceError) as info:
        r.client.upload(os.urandom(600), "/factory/provision.cbor", max_chunk=600)
    assert "/factory/provision.cbor" in str(info.value) and "upload" in str(info.value)
    assert info.value.rc == 10  # FS_MGMT_ERR_FILE_WRITE_FAILED


def test_full_file_system_is_no_space(rig):
    r = rig()
    r.board.mount("/tiny", _TinyFs())
    with pytest.raises(NoSpaceError, match="/tiny/x"):
        r.client.upload(b"0123456789", "/tiny/x")


def test_missing_file_is_remote_file_not_found(rig):
    r = rig()
    with pytest.raises(RemoteFileNotFound, match="download of /lfs1/missing.bin"):
        r.client.download("/lfs1/missing.bin")
    with pytest.raises(RemoteFileNotFound, match="status of /lfs1/missing.bin"):
        r.client.status("/lfs1/missing.bin")


def test_second_provisioning_attempt_in_one_boot_is_refused(rig):
    r = rig()
    r.client.upload(b"\x81\xa0", "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)
    assert r.client.download("/factory/result.txt", timeout=5) == b"0"
    with pytest.raises(RemoteNotMounted, match="/factory/provision.cbor"):
        r.client.upload(b"\x81\xa0", "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)


def test_a_lost_answer_to_the_last_provisioning_write_is_not_a_failure(rig):
    # Responses: 1 parameters, 2-4 the three writes. The answer to the last write is lost:
    # the echo probe comes back, the write is sent again, and the device, which closed the
    # upload after the first copy, cannot stat provision.cbor ("not found"). The client takes
    # that as done; the device's result confirms the blob arrived whole, once.
    r = rig(Faults(drop_responses=frozenset({4}), eof_idle=1.0), timeout=0.3)
    blob = b"\x81" + os.urandom(1199)
    r.client.upload(blob, "/factory/provision.cbor", max_chunk=PROVISION_WRITE_LIMIT)
    assert r.board.stats["responses lost (fault injection)"] == 1
    assert r.client.download("/factory/result.txt", timeout=5) == b"0"
    assert r.model.blobs == [blob]


def test_lost_line_is_recovered_by_a_retry(rig):
    r = rig(Faults(drop_lines=frozenset({3})), timeout=0.4)  # 1: params, 2..: first upload
    data = os.urandom(2000)
    r.client.upload(data, "/lfs1/d.bin")
    assert r.client.download("/lfs1/d.bin") == data
    assert r.client.timeouts == 1


@pytest.mark.parametrize("kind", ["base64", "crc"])
def test_corrupted_line_is_recovered_by_a_retry(rig, kind):
    r = rig(Faults(corrupt_lines={4: kind}), timeout=0.4)
    data = os.urandom(2000)
    r.client.upload(data, "/lfs1/c.bin")
    assert r.client.download("/lfs1/c.bin") == data
    assert r.client.timeouts == 1
    reason = "line is not valid base64" if kind == "base64" else "bad CRC"
    assert r.board.stats[f"frames dropped ({reason})"] == 1


def test_a_late_answer_is_accepted_instead_of_resending(rig):
    # Request 3 (the second chunk) is answered after the timeout: the echo sent behind it is
    # answered after it, so the client knows the device took the chunk and does not resend it.
    r = rig(Faults(stall_requests={3: 0.45}), timeout=0.3)
    data = os.urandom(5000)
    r.client.upload(data, "/lfs1/s.bin")
    assert r.client.timeouts == 0 and r.client.resumes == 0
    assert r.board.stats["requests stalled"] == 1
    assert r.client.download("/lfs1/s.bin") == data


def test_a_silent_device_is_waited_for_not_sent_copies(rig):
    # Request 3 is stalled past the timeout and the echo sent behind it: the device is silent,
    # so the chunk is not sent again (on a stream file a second copy would be appended); the
    # late answer is accepted when it comes.
    r = rig(Faults(stall_requests={3: 1.0}), timeout=0.3)
    data = os.urandom(5000)
    r.client.upload(data, "/lfs1/s.bin")
    assert r.client.timeouts >= 1 and r.client.resumes == 0
    assert r.client.download("/lfs1/s.bin") == data


def test_reset_in_the_middle_of_provisioning_ends_clearly(rig):
    r = rig(Faults(reset_after_provision_bytes=1000), timeout=0.5, retries=2)
    started = time.monotonic()
    with pytest.raises(TransferError) as info:
        r.client.upload(os.urandom(3000), "/factory/provision.cbor",
                        max_chunk=PROVISION_WRITE_LIMIT)
    assert time.monotonic() - started < 5
    assert "/factory/provision.cbor" in str(info.value)
    r.port.expect_exact("Device ready for provisioning.", 5)  # the device rebooted
    assert r.model.blobs == []  # the attempt was lost, nothing provisioned


def test_dead_device_times_out_with_what_was_sent(rig):
    r = rig()
    r.client.params()  # negotiated before the device goes deaf
    r.board.faults.drop_lines = frozenset(range(1, 10_000))
    r.client.timeout, r.client.retries = 0.2, 2
    started = time.monotonic()
    with pytest.raises(SmpTimeout) as info:
        r.client.download("/factory/endpoint.txt")
    assert time.monotonic() - started < 3
    text = str(info.value)
    assert "download /factory/endpoint.txt" in text and "2 attempt(s)" in text
    assert "name='/factory/endpoint.txt'" in text and "0.2 s" in text


def test_legacy_rc_zero_is_tolerated(rig):
    r = rig(Faults(legacy_rc=True))
    data = os.urandom(3000)
    r.client.upload(data, "/lfs1/legacy.bin")
    assert r.client.download("/lfs1/legacy.bin") == data


def test_empty_chunks_before_eof_are_detected(rig):
    r = rig()
    r.board.mount("/liar", _LyingFs())
    with pytest.raises(TransferError, match="empty chunk at offset 0 of 10"):
        r.client.download("/liar/file")


def test_a_burst_into_a_slow_device_is_learned_down_and_remembered(rig):
    # Two RX line buffers that take 20 ms each to decode: a burst loses lines, so does a pair
    # every 2 ms; a request of two lines fits the buffers whole.
    slow = dict(rx_buffer_drop=True, line_process_time=0.02)
    pinned = rig(Faults(**slow), link=LADDER[0], timeout=0.3, retries=2)
    with pytest.raises(SmpTimeout, match="link pinned to 'burst'"):
        pinned.client.upload(os.urandom(1000), "/lfs1/u.bin")
    assert pinned.board.stats["lines dropped (RX buffers full)"] > 0

    learning = rig(Faults(**slow), timeout=2.0)
    data = os.urandom(1000)
    learning.client.upload(data, "/lfs1/p.bin")
    assert learning.client.download("/lfs1/p.bin") == data
    state = smp_link.remembered(learning.port.url)
    assert state is learning.client.link
    assert state.current.name == "2-line requests" and learning.client.losses == 2
    assert [LADDER[level].name for level, _ in state.losses] == ["burst", "2 lines in flight"]

    again = SmpFileClient(learning.port, timeout=2.0)  # a later client on the same port
    again.upload(data, "/lfs1/q.bin")
    assert again.level.name == "2-line requests" and again.losses == 0


def test_a_real_uart_paces_bursts_itself(rig):
    # Two RX line buffers at an emulated 115200 baud: lines arrive 11 ms apart and are decoded
    # in 0.5 ms, so bursts pass and no pacing is added.
    r = rig(Faults(rx_buffer_drop=True), board={"baud": 115200}, baud=115200)
    r.client.upload(os.urandom(300), "/lfs1/b.bin")  # one request of five lines
    assert r.client.level.name == "burst" and r.client.losses == 0


def test_one_lost_line_is_forgiven_after_a_run_of_whole_requests(rig):
    # Line 3 (the first upload's second line) is lost once, as noise on a line would lose it:
    # the port steps down, and after PROMOTE_AFTER whole requests it tries bursts again.
    r = rig(Faults(drop_lines=frozenset({3})), timeout=2.0)
    r.client.upload(os.urandom(300), "/lfs1/noise.bin")
    assert r.client.level.name == "2 lines in flight" and r.client.losses == 1
    for n in range(smp_link.PROMOTE_AFTER - 1):
        r.client.upload(os.urandom(300), f"/lfs1/run{n % 4}.bin")
    assert r.client.level.name == "burst"
    assert r.client.link.lost_at(0) == 1 and r.client.losses == 1


def test_levels_that_lost_a_learning_probe_are_never_tried_again(rig):
    r = rig(Faults(rx_buffer_drop=True, line_process_time=0.005), timeout=2.0)
    state = r.client.learn()
    assert state.current.name == "2-line requests" and state.too_fast == {0, 1}
    losses = r.client.losses
    data = os.urandom(6000)  # ~45 two-line requests: past PROMOTE_AFTER with the probes
    r.client.upload(data, "/lfs1/long.bin")
    r.client.upload(data, "/lfs1/long.bin")
    assert r.client.download("/lfs1/long.bin") == data
    assert state.confirmed > smp_link.PROMOTE_AFTER
    assert (state.current.name, r.client.losses) == ("2-line requests", losses)


def test_when_nothing_works_the_error_says_what_was_tried(rig):
    # One RX line buffer that takes 0.2 s to decode: every request of two lines or more is
    # lost at every level, while the one-line echo behind it is answered.
    r = rig(Faults(rx_buffer_drop=True, rx_line_buffers=1, line_process_time=0.2),
            timeout=0.5, retries=2)
    r.client.params()
    with pytest.raises(SmpTimeout) as info:
        r.client.upload(os.urandom(1000), "/lfs1/n.bin")
    text = str(info.value)
    assert "upload /lfs1/n.bin" in text and "answers an echo but not this request" in text
    assert "tried: burst (1 request(s) lost), then 2 lines in flight (1 request(s) lost)" in text
    assert f"then {LADDER[-1].name} (2 request(s) lost); nothing slower is left" in text
    assert r.client.link.at_bottom


class _TinyFs:
    def stat(self, path):
        raise FsError(errno.ENOENT)

    def open(self, path, write):
        return self

    def write(self, off, data):
        raise FsError(errno.ENOSPC)

    def read(self, off, size):
        return b""

    def truncate(self):
        pass

    def close(self):
        pass


class _LyingFs(_TinyFs):
    def stat(self, path):
        return True, 10  # claims 10 bytes, reads nothing


def test_the_virtual_transport_reports_a_line_that_found_no_rx_buffer():
    # Zephyr's smp_shell logs "Failed to alloc SMP buf" when a line finds no free buffer; the
    # virtual transport tells its board the same way (which prints it while its log is on).
    from hilprov.sim.smp_server import SmpServer, SmpShellTransport

    drops = threading.Event()
    transport = SmpShellTransport(SmpServer(None), lambda lines: None, rx_line_buffers=1,
                                  line_process_time=0.2, on_drop=drops.set)
    transport.start()
    try:
        transport.rx_line(b"\x06\x09AAsIAAABAAABBqBEIw==\n")
        transport.rx_line(b"\x06\x09AAsIAAABAAABBqBEIw==\n")  # the one buffer is still busy
        assert drops.wait(5)
        assert transport.stats["lines dropped (RX buffers full)"] == 1
    finally:
        transport.stop()


@pytest.fixture
def sim_port(tmp_path):
    """A booted virtual board whose two RX line buffers drop the lines of a burst; its pty."""
    board = VirtualBoard(tmp_path / "state", faults=Faults(rx_buffer_drop=True))
    path = board.start(power_on=False)
    with SerialPort(path) as port:
        board.reset()
        port.expect_exact("uart:~$ ", 5)
    yield path
    board.stop()


def test_smp_echo_prints_the_echo_and_the_round_trip(sim_port, capsys):
    assert main(["smp", "echo", "--port", sim_port, "hello bench"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "hello bench"
    assert out[1].startswith("round trip ") and out[1].endswith(" ms")
    assert main(["smp", "echo", "--port", sim_port, "--json", "x\ty"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["echo"] == report["sent"] == "x\ty" and report["round_trip_ms"] > 0


def test_smp_params_prints_the_buffers_and_what_the_link_learned(sim_port, capsys):
    assert main(["smp", "params", "--port", sim_port]) == 0
    out = capsys.readouterr().out
    assert "buf_size    2048 bytes (largest request 2044 B)\nbuf_count   4\n" in out
    # A burst of 23 lines overflows the two buffers; what comes next depends on how fast this
    # (loaded) machine lets the board decode, so the level is one of those below a burst.
    [link] = [line for line in out.splitlines() if line.startswith("link ")]
    assert any(link == f"link        {level.name}: {level.describe()}" for level in LADDER[1:])
    assert "tried       burst (1 request(s) lost), then " in out
    smp_link.forget()
    assert main(["smp", "params", "--port", sim_port, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["buf_size"], report["buf_count"], report["max_request"]) == (2048, 4, 2044)
    level = LADDER[report["link"]["level_index"]]
    assert report["link"]["level_index"] >= 1 and report["link"]["level"] == level.name
    assert report["link"]["window"] == level.window and report["tried"].startswith("burst")


def test_smp_command_on_a_missing_port_is_one_line_and_exit_7(capsys):
    assert main(["smp", "echo", "--port", "/dev/hilprov-no-such-port", "hi"]) == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/dev/hilprov-no-such-port" in err[0]
