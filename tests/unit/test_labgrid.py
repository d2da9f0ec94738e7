"""`--board labgrid:PLACE`: a board reached through a labgrid place, acquired and released again.

The end-to-end tests run a real labgrid coordinator and exporter on 127.0.0.1, and virtual boards
exported through ser2net (`tests/unit/labgrid_lab.py`), once per test session. They are skipped,
saying why, where ser2net or labgrid is not installed; CI installs both.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hilprov.board import labgrid, registry
from hilprov.board.base import Board
from hilprov.cli import ptool_main
from hilprov.errors import BoardError, ConfigError
from hilprov.sim.coiote_server import CoioteServer
from tests import CONFIGS
from tests.unit import labgrid_lab
from tests.unit.labgrid_lab import Lab, Place

RFC2217, RAW = "hil-rfc2217", "hil-raw"
# The raw place also offers a J-Link (as labgrid exports a USBDebugger) at a USB path this
# machine does not have: the place runs like --port, and the test below sees it handed over.
JLINK = {"host": "127.0.0.1", "busnum": 99, "devnum": 98, "path": "9-9.9.9",
         "vendor_id": 0x1366, "model_id": 0x1015}
JLINK_YAML = "  NetworkUSBDebugger:\n" + "".join(f"    {k}: {v!r}\n" for k, v in JLINK.items())
TOKEN = "labgrid-line-token"
PTOOL = Path(sys.executable).parent / "ptool"
RUN_TIMEOUT = 120.0  # generous, never part of what is asserted
# Coiote answers the onboarding this late, so a signal sent once the device took its configuration
# lands mid-flow; the interrupted flow then records itself when the answer comes.
ONBOARD_DELAY = 5.0


# -- without a lab ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "url"), [
    ({"host": "10.1.2.3", "port": 4001, "protocol": "raw"}, "socket://10.1.2.3:4001"),
    ({"host": "bench", "port": 4001, "protocol": "rfc2217"},
     "rfc2217://bench:4001?ign_set_control"),
    ({"host": "bench", "port": 4001}, "rfc2217://bench:4001?ign_set_control"),  # labgrid default
    ({"host": "fd00::7", "port": 20, "protocol": "raw"}, "socket://[fd00::7]:20"),
])
def test_the_console_url_follows_the_resources_protocol(params, url):
    assert labgrid.serial_url(params) == url


@pytest.mark.parametrize(("params", "why"), [
    ({"host": "bench", "port": 4001, "protocol": "telnet"}, "speaks 'telnet'"),
    ({"host": "bench", "port": None}, "no host and port yet"),
])
def test_a_console_hilprov_cannot_open_is_a_board_error(params, why):
    with pytest.raises(BoardError, match=why):
        labgrid.serial_url(params)


def test_the_coordinator_is_the_option_then_lg_coordinator_then_labgrids_default():
    assert labgrid.coordinator_address("c:1", {"LG_COORDINATOR": "e:2"}) == "c:1"
    assert labgrid.coordinator_address(None, {"LG_COORDINATOR": "e:2"}) == "e:2"
    assert labgrid.coordinator_address(None, {}) == "127.0.0.1:20408"


def test_a_spec_without_a_place_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "--board", "labgrid:"])
    assert stop.value.code == 2
    assert "give the labgrid place after 'labgrid:'" in capsys.readouterr().err


def test_the_setting_is_on_the_command_line_and_in_the_plugin():
    from hilprov import settings

    spec = settings.spec("lg_coordinator")
    assert spec.cli == ("--lg-coordinator",) and spec.pytest == "--hil-lg-coordinator"
    assert "labgrid:PLACE" in settings.spec("board").metavar


def test_port_cannot_replace_the_places_console():
    with pytest.raises(ConfigError, match="--port cannot replace it"):
        registry.open_boards(["labgrid:bench"], registry.BoardOptions(port="/dev/ttyACM0"))


def test_the_same_place_twice_is_refused_before_anything_is_acquired():
    with pytest.raises(ConfigError, match="the same board is given twice: labgrid:bench"):
        registry.open_boards(["labgrid:bench", "labgrid:bench"], registry.BoardOptions())


def test_without_labgrid_installed_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "labgrid.remote", None)
    board = labgrid.Coordinator("127.0.0.1:1")
    with pytest.raises(BoardError, match=r"pip install 'hilprov\[labgrid\]'"):
        board.acquire("bench")


@pytest.fixture()
def ctrl_c_raises():
    """SIGINT as in a program of its own: KeyboardInterrupt (a test worker may ignore it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_waits_until_the_labgrid_call_is_done(ctrl_c_raises):
    done = threading.Event()

    def work():
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the main thread, which is waiting
        time.sleep(0.3)
        done.set()
        return "released"

    try:
        value, error, interrupt = labgrid.finish_first("release", work)
    except KeyboardInterrupt:
        pytest.fail("the interrupt cut the call short")
    assert (value, error, done.is_set()) == ("released", None, True)
    assert isinstance(interrupt, KeyboardInterrupt)


def test_signals_wait_for_the_block_then_take_effect(ctrl_c_raises):
    reached = []
    with pytest.raises(KeyboardInterrupt), labgrid.signals_held() as caught:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # twice: still one interrupt, afterwards
        reached.append("end of block")
    assert reached == ["end of block"] and caught == [signal.SIGINT, signal.SIGINT]


def usb_device(root: Path, path: str, busnum: int, devnum: int, serial: str) -> Path:
    device = root / path
    device.mkdir(parents=True)
    for name, value in (("busnum", busnum), ("devnum", devnum), ("serial", serial)):
        (device / name).write_text(f"{value}\n")
    return root


def test_a_jlink_on_this_stations_usb_is_found_by_its_bus_path(tmp_path):
    usb = usb_device(tmp_path, "9-9.9.9", 99, 98, "000960012345")
    here = {"127.0.0.1"}
    assert labgrid.local_jlink((JLINK,), usb_devices=usb, this_host=here) == ("000960012345", "")
    st_link = {**JLINK, "vendor_id": 0x0483}
    assert labgrid.local_jlink((st_link,), usb_devices=usb, this_host=here) == (
        None, "it offers no J-Link")
    elsewhere = labgrid.local_jlink((JLINK,), usb_devices=usb, this_host={"line-pc"})
    assert elsewhere == (None, "its J-Link is on 127.0.0.1, not on this station")
    replugged = labgrid.local_jlink(({**JLINK, "devnum": 3},), usb_devices=usb, this_host=here)
    assert replugged[0] is None and "another one than the place's J-Link" in replugged[1]
    gone = labgrid.local_jlink(({**JLINK, "path": "1-4"},), usb_devices=usb, this_host=here)
    assert gone[0] is None and "not on this station's USB" in gone[1]


class _FakeCoordinator:
    address = "fake:1"

    def __init__(self, acquired):
        self.acquired, self.released = acquired, []

    def acquire(self, place):
        return self.acquired

    def release(self, place, holder):
        self.released.append((place, holder))


def test_a_place_whose_jlink_is_here_is_flashed_through_it(tmp_path, monkeypatch):
    from hilprov.board.nordic import NordicBoard
    from hilprov.sim.images import INITIAL_IMAGE
    from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe

    bench = FakeHighLevel(FakeProbe(960012345))
    monkeypatch.setattr(labgrid, "USB_DEVICES", usb_device(tmp_path / "usb", "9-9.9.9", 99, 98,
                                                           "000960012345"))
    monkeypatch.setattr(labgrid, "_this_host", lambda: {"127.0.0.1"})
    serial = {"host": "127.0.0.1", "port": 4001, "speed": 115200, "protocol": "raw"}
    coordinator = _FakeCoordinator(labgrid.Acquired("bench", "pc/me", serial, (JLINK,)))
    board = labgrid.LabgridBoard.open(
        "labgrid:bench", coordinator,
        probe_factory=lambda snr, port, baud: NordicBoard(snr, port, baud,
                                                          api_factory=lambda: bench))
    assert (board.can_flash, board.port, board.probe.serial_number) == (
        True, "socket://127.0.0.1:4001", "960012345")
    board.flash(INITIAL_IMAGE, erase=True)
    assert [c[:2] for c in bench.calls if c[0] == "program"] == [("program", 960012345)]
    board.close()
    board.close()
    assert coordinator.released == [("bench", "pc/me")]


@pytest.fixture()
def sigterm_default():
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_while_a_place_is_held_sigterm_unwinds_the_program_instead_of_killing_it(
        sigterm_default):
    serial = {"host": "127.0.0.1", "port": 4001, "protocol": "raw"}
    board = labgrid.LabgridBoard.open("labgrid:bench", _FakeCoordinator(
        labgrid.Acquired("bench", "pc/me", serial, ())))
    assert signal.getsignal(signal.SIGTERM) is labgrid._raise_sigterm
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    board.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_programs_own_sigterm_handler_is_left_alone(sigterm_default):
    def own(signum, frame):
        pass

    signal.signal(signal.SIGTERM, own)
    serial = {"host": "127.0.0.1", "port": 4001, "protocol": "raw"}
    board = labgrid.LabgridBoard.open("labgrid:bench", _FakeCoordinator(
        labgrid.Acquired("bench", "pc/me", serial, ())))
    board.close()
    assert signal.getsignal(signal.SIGTERM) is own


def test_a_place_without_a_jlink_here_runs_like_port(monkeypatch):
    monkeypatch.setattr(labgrid, "_this_host", lambda: {"127.0.0.1"})
    serial = {"host": "127.0.0.1", "port": 4001, "protocol": "raw"}
    coordinator = _FakeCoordinator(labgrid.Acquired("bench", "pc/me", serial, ()))
    board = labgrid.LabgridBoard.open("labgrid:bench", coordinator)
    assert not board.can_flash and board.probe is None
    with pytest.raises(BoardError, match="no flashing resource hilprov can drive"):
        board.flash(Path("initial.hex"), erase=True)
    board.close()
    assert coordinator.released == [("bench", "pc/me")]


class _Closing(Board):
    def __init__(self, name, raises=None):
        super().__init__(name)
        self.raises, self.closed = raises, False

    def _flash(self, image, *, erase, progress=None):
        raise AssertionError

    def close(self):
        self.closed = True
        if self.raises:
            raise self.raises


def test_an_interrupt_while_closing_one_board_still_closes_the_others():
    boards = [_Closing("a", KeyboardInterrupt()), _Closing("b", BoardError("stuck")),
              _Closing("c")]
    with pytest.raises(KeyboardInterrupt):
        registry.close_all(boards)
    assert [b.closed for b in boards] == [True, True, True]


# -- a real lab ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    why = labgrid_lab.missing()
    if why:
        pytest.skip(why)
    with Lab(tmp_path_factory.mktemp("labgrid-lab"),
             [Place(RFC2217, "rfc2217"), Place(RAW, "raw", extra_yaml=JLINK_YAML)]) as running:
        yield running


@pytest.fixture()
def station(lab, tmp_path, monkeypatch):
    """A station directory with a Coiote to onboard into; both places' boards unprovisioned."""
    monkeypatch.chdir(tmp_path)
    for place in (RFC2217, RAW):
        lab.fresh(place)
        assert lab.holder(place) is None
    with CoioteServer(token=TOKEN) as coiote:
        (tmp_path / "server.json").write_text(json.dumps(coiote.server_info()))
        (tmp_path / "tok").write_text(TOKEN + "\n")
        yield coiote
    for place in (RFC2217, RAW):  # a test that failed must not leave its place taken
        if lab.holder(place) is not None:
            lab.client("-p", place, "release", "--kick", env=lab.env())


def ptool_argv(place: str, *extra: str) -> list[str]:
    return [str(PTOOL), "-c", str(CONFIGS / "endpoint_cfg_line"), "--board", f"labgrid:{place}",
            "-s", "server.json", "--token-file", "tok", *extra]


def run_ptool(lab, place, *extra, env=None):
    done = subprocess.run(ptool_argv(place, *extra, "--json"), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env={**os.environ, **lab.env(), **(env or {})},
                          stdin=subprocess.DEVNULL)
    results = json.loads(done.stdout)["results"] if done.stdout.strip() else []
    return done.returncode, results, done.stderr


@pytest.mark.parametrize(("place", "scheme"), [(RFC2217, "rfc2217://"), (RAW, "socket://")])
def test_ptool_provisions_the_board_on_a_place_and_frees_the_place(lab, station, place, scheme):
    code, [result], err = run_ptool(lab, place)
    assert code == 0, err
    assert (result["outcome"], result["board_kind"]) == ("provisioned", "labgrid")
    assert result["port"].startswith(f"{scheme}127.0.0.1:")
    assert [s["status"] for s in result["steps"] if s["name"] == "flash-initial"] == ["skipped"]
    onboarded = [d["properties"]["endpointName"] for d in station.devices.values()]
    assert onboarded == [result["endpoint"]]
    assert lab.holder(place) is None
    [(kind, outcome)] = sqlite3.connect("hilprov-records.sqlite").execute(
        "SELECT board_kind, outcome FROM attempts").fetchall()
    assert (kind, outcome) == ("labgrid", "provisioned")


def test_the_place_is_freed_after_a_failure_too(lab, station):
    assert run_ptool(lab, RFC2217)[0] == 0
    code, [result], err = run_ptool(lab, RFC2217)  # the device refuses a second configuration
    assert code == 10 and result["error_kind"] == "already provisioned", err
    assert lab.holder(RFC2217) is None


def start_ptool(lab, place) -> subprocess.Popen:
    return subprocess.Popen(ptool_argv(place), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **lab.env()})


def wait_for_line(proc: subprocess.Popen, start: str, seen: list[str]) -> None:
    """Read ptool's stderr until a line starts with `start` (the reader gives up at EOF)."""
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(start):
            return
    raise AssertionError(f"ptool ended before {start!r}: {''.join(seen)}")


def mid_onboarding(lab, station, place) -> tuple[subprocess.Popen, list[str]]:
    """ptool started and now waiting for Coiote, which answers late."""
    station.inject(delay=ONBOARD_DELAY, method="POST")  # the onboarding's creation of the device
    proc = start_ptool(lab, place)
    seen: list[str] = []
    wait_for_line(proc, "read-result", seen)  # the device took the configuration
    assert lab.holder(place) == "line-pc/station"
    return proc, seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_flow_frees_the_place(lab, station, sig):
    proc, seen = mid_onboarding(lab, station, RAW)
    proc.send_signal(sig)
    err = "".join(seen) + proc.stderr.read()
    assert proc.wait(RUN_TIMEOUT) == 128 + sig, err
    assert f"interrupted ({sig.name})" in err
    assert "labgrid place hil-raw released" in err
    assert lab.holder(RAW) is None
    [outcome] = sqlite3.connect("hilprov-records.sqlite").execute(
        "SELECT outcome FROM attempts").fetchone()
    assert outcome == "interrupted", err


def test_a_second_ctrl_c_while_releasing_waits_for_the_release(lab, station):
    proc, seen = mid_onboarding(lab, station, RFC2217)
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, "labgrid place hil-rfc2217: releasing", seen)
    proc.send_signal(signal.SIGINT)  # impatient operator (a release takes about a second)
    err = "".join(seen) + proc.stderr.read()
    assert proc.wait(RUN_TIMEOUT) == 130, err
    assert "Traceback" not in err
    assert lab.holder(RFC2217) is None


def test_a_killed_run_leaves_the_place_to_the_operator(lab, station):
    proc, _seen = mid_onboarding(lab, station, RFC2217)
    proc.kill()
    proc.wait(RUN_TIMEOUT)
    proc.stderr.close()
    assert lab.holder(RFC2217) == "line-pc/station"  # SIGKILL: nobody could release it
    code, _, err = run_ptool(lab, RFC2217)
    assert code == 7
    assert "acquired by line-pc/station (this host and user" in err
    assert "labgrid-client -p hil-rfc2217 release" in err
    lab.client("-p", RFC2217, "release", env=lab.env())  # what the README tells the operator
    lab.fresh(RFC2217)
    assert run_ptool(lab, RFC2217)[0] == 0


def test_a_place_someone_else_holds_is_a_board_error_and_stays_theirs(lab, station):
    other = {**lab.env(), "LG_USERNAME": "night-shift"}
    lab.client("-p", RAW, "acquire", env=other)
    try:
        code, _, err = run_ptool(lab, RAW)
        assert code == 7
        assert "labgrid place hil-raw is acquired by line-pc/night-shift" in err
        assert lab.holder(RAW) == "line-pc/night-shift"
    finally:
        lab.client("-p", RAW, "release", env=other)


def test_an_unknown_place_names_the_known_ones(lab, station):
    code, _, err = run_ptool(lab, "hil-nowhere")
    assert code == 7
    assert "knows no such place (places: hil-raw, hil-rfc2217)" in err


def test_a_substring_of_a_place_name_is_not_that_place(lab, station):
    code, _, err = run_ptool(lab, "hil-r")  # labgrid-client would take a unique substring
    assert code == 7 and "knows no such place" in err


def test_no_coordinator_is_one_line_and_exit_7(tmp_path):
    if labgrid_lab.missing():
        pytest.skip(labgrid_lab.missing())
    address = f"127.0.0.1:{labgrid_lab.free_port()}"
    done = subprocess.run([str(PTOOL), "-c", str(CONFIGS / "endpoint_cfg_line"), "--board",
                           "labgrid:bench", "--lg-coordinator", address, "--secrets-out",
                           "secrets"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 7
    assert done.stderr.splitlines() == [
        f"ptool: board error: labgrid coordinator {address}: cannot connect (is "
        "labgrid-coordinator running? --lg-coordinator or $LG_COORDINATOR names it)"]


def test_the_plugin_provisions_a_board_on_a_place(lab, station, pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_provisioned(board, provisioned_endpoint):
            assert board.kind == "labgrid"
            assert provisioned_endpoint.result.outcome == "provisioned"
    """)
    result = pytester.runpytest("--board", f"labgrid:{RAW}", "--hil-lg-coordinator",
                                lab.address, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert lab.holder(RAW) is None


def test_the_coordinator_hands_over_the_places_serial_port_and_jlink(lab, station, tmp_path):
    coordinator = labgrid.Coordinator(lab.address)
    acquired = coordinator.acquire(RAW)
    try:
        assert lab.holder(RAW) == acquired.holder
        assert acquired.serial["protocol"] == "raw"
        assert acquired.debuggers == (JLINK,)
        usb = usb_device(tmp_path / "usb", "9-9.9.9", 99, 98, "000960012345")
        assert labgrid.local_jlink(acquired.debuggers, usb_devices=usb,
                                   this_host={"127.0.0.1"})[0] == "000960012345"
    finally:
        coordinator.release(acquired.place, acquired.holder)
    assert lab.holder(RAW) is None and coordinator.holder(RAW) is None


def test_a_pytest_session_stopped_with_sigterm_frees_its_place(lab, station, pytester):
    started = pytester.path / "started"
    pytester.makepyfile(f"""
        import pathlib, time

        def test_long(board, dut):
            pathlib.Path({str(started)!r}).write_text(board.port)
            time.sleep(120)
    """)
    # labgrid's own plugin skips every test without --lg-env once pytest-embedded is also
    # installed (both are in the test extra), so the inner session leaves it out.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--board", f"labgrid:{RAW}", "--hil-lg-coordinator",
         lab.address, "-p", "no:cacheprovider", "-p", "no:labgrid", "-q"], cwd=pytester.path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        labgrid_lab.wait_for(lambda: started.exists() or proc.poll() is not None, RUN_TIMEOUT,
                             "the inner test starts")
        assert proc.poll() is None, proc.communicate()[0]
        assert lab.holder(RAW) is not None
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=RUN_TIMEOUT)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2 and "Interrupted" in out, out  # pytest: interrupted
    assert lab.holder(RAW) is None
