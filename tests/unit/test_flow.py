"""The station flow on the virtual board: the happy path, realism knobs, and every error path."""

import json
import signal
import time

import pytest

from hilprov.board.nordic import NordicBoard
from hilprov.board.port import PortBoard
from hilprov.board.sim import SimBoard
from hilprov.cloud.coiote import CoioteClient
from hilprov.core.certs import generate_self_signed
from hilprov.errors import Interrupted, JLinkMissingError
from hilprov.sim.board import Faults
from hilprov.sim.cloud import CloudView
from hilprov.sim.coiote_server import CoioteServer
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station.flow import STEP_NAMES as STEPS
from hilprov.station.flow import Timeouts
from hilprov.station.records import RecordStore, RecordWriter
from tests import CONFIGS
from tests.unit.flowkit import make_flow

ENDPOINT = "anjay-zephyr-demo-351234567890123"
TOKEN = "flow-test-token"
FAST = Timeouts(ready=5, prompt=1, smp=1.0, result=10, restored=5, registered=5)


@pytest.fixture
def coiote():
    """The Coiote the flows onboard into and the virtual boards check at registration."""
    with CoioteServer(token=TOKEN) as server, \
            CoioteClient(server.url, TOKEN, timeout=5.0) as client:
        yield server, client


@pytest.fixture
def sim(tmp_path, coiote):
    made = []

    def make(**kwargs):
        kwargs.setdefault("cloud", CloudView(coiote[0].url, TOKEN))
        board = SimBoard("sim", state_dir=tmp_path / f"state{len(made)}", **kwargs)
        made.append(board)
        return board

    yield make
    for board in made:
        board.close()


def options(**kwargs) -> dict:
    base = {"endpoint_cfg": CONFIGS / "endpoint_cfg", "initial_hex": INITIAL_IMAGE,
            "final_hex": FINAL_IMAGE, "timeouts": FAST}
    base.update(kwargs)
    return base


@pytest.fixture
def cert_options(tmp_path):
    server = tmp_path / "server.der"
    server.write_bytes(generate_self_signed({"commonName": "server"}, None).cert_der)

    def make(**kwargs):
        return options(endpoint_cfg=CONFIGS / "endpoint_cfg_cert",
                       cert_info=CONFIGS / "cert_info.json", server_cert=server,
                       cert_dir=tmp_path / "cert", **kwargs)
    return make


@pytest.fixture
def run(coiote):
    """Run a flow that onboards into the test's Coiote (`client=None`: no onboarding)."""
    def flow(board, opts, tmp_path=None, **kwargs):
        kwargs.setdefault("client", coiote[1])
        return make_flow(board, log_dir=tmp_path, token=TOKEN, **opts, **kwargs).run()
    return flow


def test_full_flow_registers_and_records_every_step(sim, run, tmp_path):
    store = RecordStore(tmp_path / "rec.sqlite")
    board = sim()
    result = run(board, options(), tmp_path, observers=[RecordWriter(store)])
    assert result.outcome == "registered", result.error
    assert board.flashed == FINAL_IMAGE  # the board knows what it runs now
    assert [s.name for s in result.steps] == list(STEPS)
    assert all(s.status == "ok" for s in result.steps)
    assert result.step("onboard").detail == "created"
    assert result.endpoint == ENDPOINT and result.blob_size == 192
    log = (tmp_path / "sim.log").read_text()
    assert "Device ready for provisioning." in log
    assert log.index("Anjay restored from anjay_factory") < log.index("registration successful")
    [row] = store.query()
    assert (row["outcome"], row["endpoint"], row["exit_code"]) == ("registered", ENDPOINT, 0)


class InterruptAfter:
    """A signal that lands between two steps: right after `step` has been recorded."""

    def __init__(self, step: str) -> None:
        self.step = step

    def step_finished(self, result, record) -> None:
        if record.name == self.step:
            raise Interrupted(signal.SIGTERM)


@pytest.mark.parametrize("after, begins", [("read-endpoint", "build-blob"),
                                           ("onboard", "flash-final")])
def test_an_interrupt_between_two_steps_names_the_step_that_was_to_begin(sim, run, tmp_path,
                                                                         after, begins):
    store = RecordStore(tmp_path / "rec.sqlite")
    with pytest.raises(Interrupted):
        run(sim(), options(), tmp_path, observers=[RecordWriter(store), InterruptAfter(after)])
    [row] = store.query()
    assert (row["outcome"], row["current_step"]) == ("interrupted", begins)
    assert row["error"] == f"interrupted by SIGTERM during {begins}"
    steps = {s["name"]: s for s in json.loads(row["steps"])}
    assert steps[after]["status"] == "ok"
    assert steps[begins]["status"] == "failed"
    assert steps[begins]["detail"] == "interrupted by SIGTERM before it began"


def test_certificate_mode_uploads_in_512_byte_writes_at_emulated_115200_baud(sim, run,
        cert_options, tmp_path):
    board = sim(emulate_baud=True)
    result = run(board, cert_options(), tmp_path)
    assert result.outcome == "registered", result.error
    assert result.blob_size > 1024
    assert result.cert_fingerprint and len(result.cert_fingerprint) == 64
    assert (tmp_path / "cert" / ENDPOINT / "client_key.der").exists()


def test_flow_survives_a_dropped_line_a_corrupted_line_and_a_stall_at_115200(sim, run,
        cert_options, tmp_path):
    faults = Faults(drop_lines=frozenset({3}), corrupt_lines={8: "crc", 12: "base64"},
                    stall_requests={5: 1.5})
    board = sim(emulate_baud=True, faults=faults)
    start = time.monotonic()
    result = run(board, cert_options(), tmp_path)
    assert result.outcome == "registered", result.error
    assert time.monotonic() - start < 30
    assert board.device.attempts[-1].ok  # one attempt, with the whole blob
    stats = board.device.stats
    assert stats["lines dropped (fault injection)"] == 1
    assert stats["requests stalled"] == 1
    assert stats["frames dropped (line is not valid base64)"] >= 1


def test_reset_in_the_middle_of_the_upload_ends_as_rejected_or_transfer_error(sim, run,
        cert_options, tmp_path):
    board = sim(faults=Faults(reset_after_provision_bytes=600, eof_idle=1.0))
    start = time.monotonic()
    result = run(board, cert_options(), tmp_path)
    assert time.monotonic() - start < 30, "must not hang"
    assert result.outcome == "failed"
    assert result.error_kind in ("device rejected", "transfer error"), result.error
    assert "re-run" in result.error
    assert result.step("onboard").status == "pending"  # never onboarded a broken device


def test_already_provisioned_device_is_refused_before_any_upload(sim, run, tmp_path):
    board = sim()
    assert run(board, options(), tmp_path).outcome == "registered"
    again = run(board, options(erase=False), tmp_path)
    assert again.error_kind == "already provisioned"
    assert again.exit_code == 10
    assert "erase the chip" in again.error
    assert again.step("read-endpoint").status == "pending"


def test_device_rejection_gives_the_host_validators_best_guess(sim, run, tmp_path):
    cfg = tmp_path / "cfg"
    cfg.write_text("{0: {1: {0: 'coap://x:5683', 2: 3, 10: 1}}, 1: {1: {0: 1, 1: 60, 6: False, "
                   "7: 'U'}}, 3: {0: {0: 'ACME'}}}")
    result = run(sim(), options(endpoint_cfg=cfg, profile="lwm2m"), tmp_path)
    assert result.error_kind == "device rejected" and result.exit_code == 9
    assert "object /3 (Device) does not exist on the device" in result.error
    assert result.step("flash-final").status == "pending"


def test_endpoint_mismatch_stops_before_anything_is_uploaded(sim, run, tmp_path):
    board = sim()
    result = run(board, options(endpoint_name="other-name"), tmp_path)
    assert result.error_kind == "endpoint mismatch" and result.exit_code == 3
    assert result.step("upload").status == "pending"
    assert board.device.attempts == []
    forced = run(board, options(endpoint_name="other-name", force_endpoint=True), tmp_path)
    assert forced.endpoint == "other-name" and forced.coiote == "created"
    # The production image registers under the device's own name, which Coiote does not know:
    # the outcome says so rather than "registered".
    assert forced.error_kind == "not registered" and board.device.registrations == []


def test_a_virtual_board_that_was_not_onboarded_never_registers(sim, run, tmp_path):
    board = sim()
    result = run(board, options(), tmp_path, client=None)
    assert result.step("onboard").status == "skipped"
    assert result.outcome == "failed" and result.error_kind == "not registered"
    assert result.exit_code == 11 and board.device.registrations == []


def test_missing_ready_line_times_out_with_the_tail_and_the_log_path(sim, run, tmp_path):
    board = sim(faults=Faults(no_ready_line=True))
    result = run(board, options(timeouts=Timeouts(ready=0.5)), tmp_path)
    assert result.error_kind == "board error" and result.exit_code == 7
    assert "pattern 'Device ready for provisioning" in result.error
    assert "did not appear within 0.5 s" in result.error
    assert "registered object /2" in result.error  # the tail
    assert str(tmp_path / "sim.log") in result.error


def test_restored_but_never_registered(sim, run, tmp_path):
    board = sim(faults=Faults(never_register=True))
    result = run(board, options(timeouts=Timeouts(registered=1.0)), tmp_path)
    assert result.error_kind == "not registered" and result.exit_code == 11
    assert "restored the configuration but did not register within 1 s" in result.error
    assert result.step("wait-restored").status == "ok"


def test_cloud_refusal_is_reported_as_not_registered(sim, run, tmp_path):
    board = sim(registrar=lambda endpoint, objects: "not onboarded")
    result = run(board, options(), tmp_path)
    assert result.error_kind == "not registered"
    assert "refused the registration (4.03 Forbidden)" in result.error


def test_bad_config_never_touches_the_board(sim, run, tmp_path):
    cfg = tmp_path / "cfg"
    cfg.write_text("{0: {1: {0: 'coap://x', 2: 1, 10: 1}}}")
    board = sim()
    boots = board.device.stats["boots"]
    result = run(board, options(endpoint_cfg=cfg), tmp_path)
    assert result.error_kind == "validation failed"
    assert board.device.stats["boots"] == boots
    assert result.step("flash-initial").status == "pending"


def test_port_only_board_provisions_a_device_already_running_the_initial_image(sim, run, tmp_path):
    device = sim()
    board = PortBoard("port", device.port)
    result = run(board, options(), tmp_path)
    assert result.outcome == "provisioned", result.error
    assert result.step("flash-initial").status == "skipped"
    assert result.step("flash-final").status == "skipped"
    assert device.device.provisioned


def test_real_board_path_with_a_faked_probe_driving_the_virtual_board(sim, run, tmp_path):
    """NordicBoard end to end: pynrfjprog faked, the chip behind it is a virtual board."""
    from pynrfjprog.Parameters import EraseAction

    from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe

    device = sim()

    def boot(probe: FakeProbe) -> None:
        hex_path, erase = probe.last_program
        device.device.flash(hex_path, erase=erase == EraseAction.ERASE_ALL)

    probe = FakeProbe(960012345, com_ports=[(device.port, 0)], on_reset=boot)
    bench = FakeHighLevel(probe)
    board = NordicBoard("960012345", api_factory=lambda: bench)
    assert board.port == device.port  # found from the probe's VCOM0
    result = run(board, options(), tmp_path)
    assert result.outcome == "registered", result.error
    programs = [call for call in bench.calls if call[0] == "program"]
    assert [(c[2], c[3]) for c in programs] == [(str(INITIAL_IMAGE), EraseAction.ERASE_ALL),
                                                (str(FINAL_IMAGE), EraseAction.ERASE_SECTOR)]


def test_missing_jlink_library_is_one_clear_line(tmp_path):
    """A station without the J-Link libraries (tests/unit/conftest.py puts every test there)."""
    with pytest.raises(JLinkMissingError) as info:
        NordicBoard("960012345").flash(INITIAL_IMAGE, erase=True)
    message = str(info.value)
    assert "\n" not in message and "APIError" not in message
    assert "segger.com" in message


@pytest.fixture
def tcp_bridge():
    """A ser2net-like bridge: one TCP client <-> a serial device (the virtual board's pty)."""
    import socket
    import threading

    import serial

    stops = []

    def start(device_path: str) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        ser = serial.Serial(device_path, timeout=0.05)
        stop = threading.Event()

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(0.05)

            def uplink() -> None:
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    ser.write(data)

            threading.Thread(target=uplink, daemon=True).start()
            while not stop.is_set():
                data = ser.read(4096)
                if data:
                    conn.sendall(data)
            conn.close()

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        stops.append((stop, listener, ser, server))
        return f"socket://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for stop, listener, ser, server in stops:
        stop.set()
        server.join(5)
        listener.close()
        ser.close()



def test_a_board_behind_a_socket_url_is_provisioned(sim, run, tcp_bridge, tmp_path):
    """Any pyserial URL is a port: here socket:// through a ser2net-like bridge."""
    device = sim()
    url = tcp_bridge(device.port)
    result = run(PortBoard("remote", url), options(), tmp_path)
    assert result.outcome == "provisioned", result.error
    assert result.port == url and device.device.provisioned
