"""The flashers: pynrfjprog's multi-probe model (one shared library, a handle per probe) against a
fake that keeps the real library's rules, and nRF Util through a fake `nrfutil` executable."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from pynrfjprog.APIError import APIError, NrfjprogdllErr
from pynrfjprog.Parameters import DeviceFamily, EraseAction, VerifyAction

from hilprov.board import flashers
from hilprov.board.flashers.batch import program_many
from hilprov.board.flashers.nrfutil import NrfutilError, NrfutilFlasher
from hilprov.board.flashers.pynrfjprog import PynrfjprogFlasher
from hilprov.board.nordic import NordicBoard
from hilprov.core.hexfile import read_intel_hex
from hilprov.errors import BoardError, NrfutilMissingError
from hilprov.station.flow import FlowResult
from hilprov.station.records import RecordStore, row_from_result
from hilprov.station.schema import MIGRATIONS, SQLITE, statements
from tests.unit.fake_nrfutil import device
from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe
from tests.unit.test_nordic import APP, write_hex

SERIALS = (960012345, 960012346, 960012347, 960012348)


@pytest.fixture
def app_hex(tmp_path: Path) -> Path:
    return write_hex(tmp_path / "app.hex", {0x0: APP})


def four_probes(**kwargs) -> FakeHighLevel:
    return FakeHighLevel(*(FakeProbe(snr, com_ports=[(f"/dev/ttyACM{i}", 0)])
                           for i, snr in enumerate(SERIALS)), **kwargs)


def assert_all_closed(bench: FakeHighLevel) -> None:
    assert not bench.dll_open and bench.open_probes == 0 and not bench.handles


# --- the fake keeps the real library's rules ------------------------------------------------

def test_the_fake_library_is_one_per_process_as_the_real_one():
    bench = four_probes()
    first, second = bench.API(), bench.API()
    first.open()
    with pytest.raises(APIError) as caught:
        second.open()
    assert caught.value.error_enum == NrfjprogdllErr.INVALID_OPERATION
    assert not first.is_open()  # the failed second open closed it for everyone
    with pytest.raises(APIError):
        first.get_connected_probes()

    first.open()
    probe = bench.DebugProbe(first, SERIALS[0])
    with pytest.raises(APIError, match="already exists"):
        bench.DebugProbe(first, SERIALS[0])  # never two handles to one probe
    with pytest.raises(AttributeError):
        second.close()  # it never opened, yet its close closed the library
    with pytest.raises(APIError, match="not open"):
        probe.reset()


def test_the_fake_catches_one_probe_handle_used_by_two_threads(app_hex):
    bench = four_probes(program_seconds=0.5)
    api = bench.API()
    api.open()
    probe = bench.DebugProbe(api, SERIALS[0])
    options = bench.ProgramOptions(erase_action=EraseAction.ERASE_ALL)
    started = threading.Event()
    errors: list[Exception] = []

    def program():
        started.set()
        try:
            probe.program(str(app_hex), program_options=options)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    worker = threading.Thread(target=program)
    worker.start()
    started.wait(5)
    while bench.programs_running == 0 and worker.is_alive():
        threading.Event().wait(0.01)
    with pytest.raises(RuntimeError, match="two threads"):
        probe.reset()
    worker.join(10)
    assert errors == []


# --- pynrfjprog: many probes at once --------------------------------------------------------

def test_four_boards_program_at_the_same_time_on_one_shared_library(app_hex):
    bench = four_probes(program_barrier=4)  # every program waits until four run together
    boards = [NordicBoard(snr, api_factory=lambda: bench) for snr in SERIALS]
    errors: list[Exception] = []

    def flash(board: NordicBoard) -> None:
        try:
            board.flash(app_hex, erase=True)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=flash, args=(b,)) for b in boards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and bench.max_parallel_programs == 4
    assert bench.opens == 1  # one open library served all four probes
    for snr in SERIALS:
        assert bytes(bench.probes[snr].flash[a] for a in range(len(APP))) == APP
        assert bench.probes[snr].resets == 1
    assert_all_closed(bench)


def test_program_many_runs_every_probe_and_keeps_each_outcome(app_hex):
    bench = four_probes(program_barrier=3)
    bench.probes[SERIALS[1]].flash.update({1: 0x00})  # old data: verification fails
    flasher = PynrfjprogFlasher(lambda: bench)
    outcomes = program_many(flasher, [str(s) for s in SERIALS[:3]], read_intel_hex(app_hex),
                            erase="none")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "VERIFY_ERROR" in str(outcomes[1].error)
    assert bench.max_parallel_programs == 3
    assert_all_closed(bench)


def test_operations_on_one_probe_take_turns(app_hex):
    bench = four_probes(program_seconds=0.3)
    flasher = PynrfjprogFlasher(lambda: bench)
    board = NordicBoard(SERIALS[0], flasher=flasher)
    errors: list[Exception] = []

    def run(action) -> None:
        try:
            action()
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(lambda: board.program(app_hex),)),
               threading.Thread(target=run, args=(lambda: flasher.reset(str(SERIALS[0])),)),
               threading.Thread(target=run, args=(flasher.list_probes,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert_all_closed(bench)


@pytest.mark.parametrize(("verify", "calls"), [
    ("hash", [("verify", VerifyAction.VERIFY_HASH)]),
    ("read", [("verify", VerifyAction.VERIFY_READ)]),
    ("none", []),
])
def test_the_flow_verifies_by_hash_unless_told_otherwise(app_hex, verify, calls):
    bench = four_probes()
    NordicBoard(SERIALS[0], api_factory=lambda: bench, verify=verify).flash(app_hex, erase=False)
    assert [(c[0], c[3]) for c in bench.calls if c[0] == "verify"] == calls
    assert [c[3] for c in bench.calls if c[0] == "program"] == [EraseAction.ERASE_SECTOR]
    assert NordicBoard(SERIALS[0], api_factory=lambda: bench).verify == "hash"


# --- nRF Util --------------------------------------------------------------------------------

@pytest.fixture
def nrfutil(fake_nrfutil):
    fake_nrfutil.configure(devices=[
        device(960012345, ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyACM2"]),
        device(960054321, ["/dev/ttyACM3"], family="NRF52_FAMILY", boardVersion="PCA10056"),
    ])
    return fake_nrfutil


def test_nrfutil_lists_probes_with_serials_families_and_vcom_ports(nrfutil):
    probes = NrfutilFlasher().list_probes()
    assert [(p.serial_number, p.family, p.vcom_ports) for p in probes] == [
        ("960012345", "nrf91", ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyACM2"]),
        ("960054321", "nrf52", ["/dev/ttyACM3"]),
    ]


def test_nrfutil_list_from_older_versions_and_without_a_devkit(nrfutil):
    nrfutil.configure(list_in_task_end=True, devices=[
        device(960012345, ["/dev/ttyACM0"], devkit=False, family="NRF53_FAMILY"),
        device(960054321, devkit=False, reachable=False)])
    probes = NrfutilFlasher().list_probes()
    assert [(p.serial_number, p.family) for p in probes] == [("960012345", "nrf53"),
                                                              ("960054321", "unknown")]


@pytest.mark.parametrize(("erase", "verify", "options"), [
    ("chip", "hash", ("ERASE_ALL", "VERIFY_HASH")),
    ("sector", "read", ("ERASE_RANGES_TOUCHED_BY_FIRMWARE", "VERIFY_READ")),
    ("none", "none", ("ERASE_NONE", "VERIFY_NONE")),
])
def test_nrfutil_programs_verifies_and_resets(nrfutil, app_hex, erase, verify, options):
    steps = []
    board = NordicBoard(960012345, flasher=NrfutilFlasher())
    board.program(app_hex, erase=erase, verify=verify, progress=steps.append)
    assert nrfutil.flash(960012345, 0, len(APP)) == APP
    assert nrfutil.resets(960012345) == 1
    [program] = [e for e in nrfutil.events() if e["op"] == "program"]
    assert (program["erase"], program["verify"], program["reset"]) == (*options, "RESET_SYSTEM")
    assert program["firmware"] == str(app_hex.resolve())
    assert "app.hex: Programming 30%" in steps and "app.hex: Done 100%" in steps
    assert steps[-1].startswith("programmed app.hex")


def test_nrfutil_progress_names_the_probe_as_nrfutil_reports_it(nrfutil, app_hex):
    reported = []
    NrfutilFlasher().program("960012345", read_intel_hex(app_hex),
                             progress=lambda step: reported.append(step.serial_number))
    assert reported[0] == "960012345" and reported[-1] == "000960012345"


def test_nrfutil_failures_carry_nrfutils_message(nrfutil, app_hex):
    flasher = NrfutilFlasher()
    nrfutil.configure(devices=[device(960012345)], fail={"program": {
        "code": 24, "description": "Access protection is enabled"}})
    with pytest.raises(NrfutilError) as caught:
        flasher.program("960012345", read_intel_hex(app_hex))
    assert str(caught.value) == (
        "programming app.hex on J-Link probe 960012345 failed: nRF Util: Access protection is "
        "enabled (nRF Util error 24); the device is read-back protected; recover it (nrfutil "
        "device recover) and try again")
    nrfutil.configure(devices=[device(960012345)], fail={"program": {
        "code": 1, "description": "Generic",
        "message": "Timed out waiting for response from worker."}})
    with pytest.raises(NrfutilError, match=r"nRF Util: Generic: Timed out waiting for response "
                                           r"from worker\. \(nRF Util error 1\)"):
        flasher.program("960012345", read_intel_hex(app_hex))
    nrfutil.configure(devices=[device(960012345)])
    with pytest.raises(NrfutilError, match=r"on J-Link probe 960099999 failed: nRF Util: No "
                                           r"devices with requested serial number\(s\)"):
        flasher.reset("960099999")
    with pytest.raises(BoardError, match="J-Link probe 960099999 is not connected .*lists: "
                                         "960012345"):
        NordicBoard("960099999", flasher=flasher).console_port()


def test_nrfutil_verification_failure_over_old_data(nrfutil, app_hex):
    flasher = NrfutilFlasher()
    NordicBoard(960012345, flasher=flasher).program(app_hex, erase="chip")
    other = write_hex(app_hex.with_name("other.hex"), {0x0: bytes(reversed(APP))})
    with pytest.raises(NrfutilError, match=r"Verification failed.*\(nRF Util error 25\); the "
                                           r"flash read back differs"):
        NordicBoard(960012345, flasher=flasher).program(other, erase="none", verify="hash")


def test_nrfutil_boards_are_parallel_processes(fake_nrfutil, app_hex):
    fake_nrfutil.configure(devices=[device(snr) for snr in SERIALS], barrier=4,
                           program_seconds=0.2)
    outcomes = program_many(NrfutilFlasher(), [str(s) for s in SERIALS],
                            read_intel_hex(app_hex))
    assert [o.error for o in outcomes] == [None] * 4
    assert [o.reported for o in outcomes] == [f"{s:012d}" for s in SERIALS]


def test_a_hung_nrfutil_is_killed_after_its_timeout(nrfutil, app_hex):
    nrfutil.configure(devices=[device(960012345)], program_seconds=60)
    flasher = NrfutilFlasher(timeout=1.0)
    with pytest.raises(NrfutilError, match=r"no result within 1 s \(process killed\)"):
        flasher.program("960012345", read_intel_hex(app_hex))


def test_cancel_stops_running_nrfutil_processes(nrfutil, app_hex):
    nrfutil.configure(devices=[device(960012345)], program_seconds=60)
    flasher = NrfutilFlasher()
    steps = threading.Event()
    errors: list[Exception] = []

    def program():
        try:
            flasher.program("960012345", read_intel_hex(app_hex),
                            progress=lambda step: steps.set() if step.percent else None)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    worker = threading.Thread(target=program)
    worker.start()
    assert steps.wait(30)
    flasher.cancel()
    worker.join(30)
    assert [str(e) for e in errors] == ["programming app.hex on J-Link probe 960012345 failed: "
                                        "nRF Util: cancelled (the run was interrupted)"]


def test_missing_nrfutil_or_its_device_command_is_one_line(fake_nrfutil, monkeypatch):
    fake_nrfutil.configure(device_command=False)
    with pytest.raises(NrfutilMissingError, match=r"has no `device` command: run `.*nrfutil "
                                                  r"install device`"):
        NrfutilFlasher()
    monkeypatch.setattr(flashers.nrfutil, "find_nrfutil", lambda: None)
    with pytest.raises(NrfutilMissingError) as caught:
        flashers.choose("nrfutil")
    assert "\n" not in str(caught.value) and caught.value.exit_code == 7
    assert str(caught.value).startswith("nRF Util is not installed: no `nrfutil` on PATH")


def test_auto_takes_nrfutil_with_its_device_command_else_pynrfjprog(fake_nrfutil, monkeypatch):
    assert flashers.choose("auto").name == "nrfutil"
    assert flashers.choose("auto") is flashers.choose("auto")  # chosen once per process
    flashers.forget()
    fake_nrfutil.configure(device_command=False)
    assert flashers.choose("auto").name == "pynrfjprog"
    flashers.forget()
    monkeypatch.setattr(flashers.nrfutil, "find_nrfutil", lambda: None)
    assert flashers.choose("auto").name == "pynrfjprog"


# --- records ---------------------------------------------------------------------------------

def test_records_keep_the_flasher_and_an_older_database_gains_the_column(tmp_path):
    path = tmp_path / "r.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:3]:  # a database made before the flasher column (version 4)
        for statement in statements(migration, SQLITE):
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (3)")
    old = row_from_result(FlowResult(board="sim", board_kind="sim", outcome="built"), "cli", "x")
    del old["flasher"]
    conn.execute(f"INSERT INTO attempts ({', '.join(old)}) VALUES "
                 f"({', '.join('?' for _ in old)})", list(old.values()))
    conn.close()
    store = RecordStore(path)
    store.write(row_from_result(FlowResult(board="960012345", board_kind="nordic",
                                           flasher="nrfutil", outcome="registered"), "cli", "x"))
    assert [row["flasher"] for row in store.query()] == [None, "nrfutil"]


def test_the_family_of_an_unreachable_chip_is_unknown_with_pynrfjprog():
    bench = FakeHighLevel(FakeProbe(SERIALS[0], DeviceFamily.NRF53, reachable=False))
    assert NordicBoard(SERIALS[0], api_factory=lambda: bench).family == "unknown"
