"""`hilprov flash`, `hilprov probes` and `ptool --board SNR` with either flasher: nRF Util (the fake
`nrfutil` executable) and pynrfjprog (the fake J-Link library)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from pynrfjprog.Parameters import EraseAction, VerifyAction

from hilprov.board.flashers import pynrfjprog
from hilprov.board.flashers.base import FlashStep
from hilprov.cli import main, ptool_main
from hilprov.cli.flash import FlashLines
from hilprov.sim.cloud import CloudView
from hilprov.sim.coiote_server import CoioteServer
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station.records import RecordStore
from tests import CONFIGS
from tests.unit.fake_nrfutil import device
from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe
from tests.unit.test_nordic import APP, write_hex

SERIALS = ("960012345", "960012346", "960012347", "960012348")
TOKEN = "flash-cli-token"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_hex(tmp_path / "app.hex", {0x0: APP})
    return tmp_path


@pytest.fixture
def jlink(monkeypatch):
    """The fake J-Link library with four probes, as the station's pynrfjprog."""
    bench = FakeHighLevel(*(FakeProbe(int(s)) for s in SERIALS), program_barrier=4)
    monkeypatch.setattr(pynrfjprog, "_load_highlevel", lambda: bench)
    return bench


def board_args(serials=SERIALS) -> list[str]:
    return [arg for snr in serials for arg in ("--board", snr)]


def test_flash_programs_four_boards_at_once_with_pynrfjprog(workdir, jlink, capsys):
    assert main(["flash", "app.hex", *board_args(), "--flasher", "pynrfjprog"]) == 0
    err = capsys.readouterr().err
    assert jlink.max_parallel_programs == 4  # the barrier: all four programmed together
    for snr in SERIALS:
        probe = jlink.probes[int(snr)]
        assert bytes(probe.flash[a] for a in range(len(APP))) == APP and probe.resets == 1
        assert f"[{snr}] verifying app.hex by hash" in err
        assert f"[{snr}] done in " in err
    assert "4 of 4 board(s) programmed" in err
    verifies = {c[3] for c in jlink.calls if c[0] == "verify"}
    assert verifies == {VerifyAction.VERIFY_HASH}


def test_flash_options_choose_erase_and_verification(workdir, jlink, capsys):
    jlink.program_seconds, jlink._barrier = 0.0, None
    assert main(["flash", "app.hex", "--board", SERIALS[0], "--erase", "sector",
                 "--verify", "read", "--flasher", "pynrfjprog", "-q"]) == 0
    assert capsys.readouterr().err == ""
    [program] = [c for c in jlink.calls if c[0] == "program"]
    assert program[3] == EraseAction.ERASE_SECTOR
    assert [c[3] for c in jlink.calls if c[0] == "verify"] == [VerifyAction.VERIFY_READ]


def test_flash_with_nrfutil_one_line_per_board_and_a_failure_does_not_stop_the_others(
        workdir, fake_nrfutil, capsys):
    fake_nrfutil.configure(devices=[device(s) for s in SERIALS[:3]], barrier=2, fail={
        "program": {"serials": [SERIALS[1]], "code": 33, "description": "Unable to halt core"}})
    argv = ["flash", "app.hex", *board_args(SERIALS[:3]), "--flasher", "nrfutil"]
    assert main(argv) == 7
    err = capsys.readouterr().err.splitlines()
    for snr in (SERIALS[0], SERIALS[2]):
        assert fake_nrfutil.flash(snr, 0, len(APP)) == APP and fake_nrfutil.resets(snr) == 1
        assert f"[{snr}] app.hex: Programming 30%" in err  # as given, one name per board
    assert fake_nrfutil.resets(SERIALS[1]) == 0
    assert (f"hilprov: board error: [{SERIALS[1]}] programming app.hex on J-Link probe "
            f"{SERIALS[1]} failed: nRF Util: Unable to halt core (nRF Util error 33)") in err
    assert "2 of 3 board(s) programmed" in err[-1]


def test_flash_refuses_before_flashing_when_a_probe_is_absent(workdir, fake_nrfutil, capsys):
    fake_nrfutil.configure(devices=[device(SERIALS[0])])
    assert main(["flash", "app.hex", *board_args(SERIALS[:2]), "--flasher", "auto"]) == 7
    assert capsys.readouterr().err.splitlines() == [
        f"hilprov: board error: J-Link probe(s) {SERIALS[1]} not connected (nRF Util sees: "
        f"{SERIALS[0]}); nothing was flashed"]
    assert fake_nrfutil.events() == []


@pytest.mark.parametrize("argv", [
    ["flash", "app.hex", "--board", SERIALS[0]],
    ["flash", "app.hex", "--board", SERIALS[0], "--flasher", "nrfutil"],
    ["probes", "--flasher", "nrfutil"],
    ["probes", "--flasher", "pynrfjprog"],
])
def test_a_missing_jlink_or_nrfutil_is_one_line_and_exit_7(workdir, argv, capsys):
    assert main(argv) == 7  # conftest: neither the J-Link software nor nRF Util is installed
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("segger.com" in err) != ("nrfutil install device" in err)


def test_ptool_with_a_missing_nrfutil_is_one_line_and_exit_7(workdir, capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "--board", SERIALS[0], "--flasher", "nrfutil"]
    assert ptool_main(argv) == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ptool: board error: nRF Util is not "
                                                   "installed")


def test_flash_refuses_a_serial_given_twice_or_not_a_number(workdir, jlink, capsys):
    assert main(["flash", "app.hex", "--board", SERIALS[0], "--board", "0" + SERIALS[0]]) == 3
    assert "given twice" in capsys.readouterr().err
    assert main(["flash", "app.hex", "--board", "sim"]) == 3


def test_probes_with_nrfutil(workdir, fake_nrfutil, capsys):
    fake_nrfutil.configure(devices=[device(SERIALS[0], ["/dev/ttyACM4", "/dev/ttyACM5"])])
    assert main(["probes", "--json", "--flasher", "nrfutil"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"serial_number": SERIALS[0], "family": "nrf91",
         "vcom_ports": ["/dev/ttyACM4", "/dev/ttyACM5"]}]


def test_flash_lines_redraw_one_line_per_board_on_a_terminal():
    stream = io.StringIO()
    lines = FlashLines(["1", "2"], stream, redraw=True)
    lines.update("2", FlashStep("0002", "app.hex: Programming", 40))
    assert stream.getvalue() == ("[1] waiting\n[2] waiting\n"
                                 "\x1b[1A\r[2] app.hex: Programming 40%\x1b[K\x1b[1B\r")


# --- ptool --board SNR with either flasher: the chip behind the probe is a virtual board ----

@pytest.fixture
def station(workdir, monkeypatch):
    """A local Coiote and a virtual board as the chip behind the probe."""
    from hilprov.board.sim import SimBoard

    with CoioteServer(token=TOKEN) as server:
        (workdir / "server.json").write_text(json.dumps(server.server_info()))
        monkeypatch.setenv("COIOTE_TOKEN", TOKEN)
        board = SimBoard("chip", state_dir=workdir / "chip", cloud=CloudView(server.url, TOKEN))
        try:
            yield board
        finally:
            board.close()


def ptool_argv(serial: str, flasher: str) -> list[str]:
    return ["-c", str(CONFIGS / "endpoint_cfg"), "-s", "server.json", "--board", serial,
            "--initial-hex", str(INITIAL_IMAGE), "--final-hex", str(FINAL_IMAGE),
            "--flasher", flasher, "-v"]


def boot_on_reset(fake, chip) -> threading.Event:
    """Follow the fake nrfutil's events: a reset boots what was last programmed."""
    stop = threading.Event()

    def follow() -> None:
        seen, last = 0, None
        while not stop.wait(0.02):
            events = fake.events()
            for event in events[seen:]:
                if event["op"] == "program":
                    last = event
                elif event["op"] == "reset" and last is not None:
                    chip.device.flash(Path(last["firmware"]), erase=last["erase"] == "ERASE_ALL")
            seen = len(events)

    threading.Thread(target=follow, daemon=True).start()
    return stop


def test_ptool_board_with_nrfutil_provisions_and_records_the_flasher(station, fake_nrfutil,
                                                                     capsys):
    fake_nrfutil.configure(devices=[device(SERIALS[0], [station.port])])
    stop = boot_on_reset(fake_nrfutil, station)
    try:
        code = ptool_main(ptool_argv(SERIALS[0], "auto"))
    finally:
        stop.set()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "flasher: nRF Util at" in err  # -v shows the choice
    programs = [(e["firmware"], e["erase"], e["verify"]) for e in fake_nrfutil.events()
                if e["op"] == "program"]
    assert programs == [(str(INITIAL_IMAGE), "ERASE_ALL", "VERIFY_HASH"),
                        (str(FINAL_IMAGE), "ERASE_RANGES_TOUCHED_BY_FIRMWARE", "VERIFY_HASH")]
    [row] = RecordStore("hilprov-records.sqlite").query()
    assert (row["outcome"], row["flasher"], row["board"]) == ("registered", "nrfutil",
                                                              SERIALS[0])


def test_ptool_board_with_pynrfjprog_provisions_and_records_the_flasher(station, monkeypatch,
                                                                        capsys):
    def boot(probe: FakeProbe) -> None:
        hex_path, erase = probe.last_program
        station.device.flash(Path(hex_path), erase=erase == EraseAction.ERASE_ALL)

    bench = FakeHighLevel(FakeProbe(int(SERIALS[0]), com_ports=[(station.port, 0)],
                                    on_reset=boot))
    monkeypatch.setattr(pynrfjprog, "_load_highlevel", lambda: bench)
    code = ptool_main(ptool_argv(SERIALS[0], "pynrfjprog"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "flasher: pynrfjprog (--flasher pynrfjprog)" in err
    assert {c[3] for c in bench.calls if c[0] == "verify"} == {VerifyAction.VERIFY_HASH}
    [row] = RecordStore("hilprov-records.sqlite").query()
    assert (row["outcome"], row["flasher"]) == ("registered", "pynrfjprog")
