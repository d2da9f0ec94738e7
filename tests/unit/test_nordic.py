"""The Nordic board driver, against a fake J-Link bench and against the real pynrfjprog here."""

from __future__ import annotations

import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pynrfjprog
import pytest
from pynrfjprog.APIError import NrfjprogdllErr
from pynrfjprog.Hex import Hex
from pynrfjprog.Parameters import DeviceFamily, EraseAction, ResetAction, VerifyAction
from serial.tools.list_ports_common import ListPortInfo

from hilprov.board.nordic import (
    JLINK_DOWNLOAD_URL,
    NordicBoard,
    ProbeError,
    find_vcom_ports,
    list_probes,
    read_intel_hex,
)
from hilprov.errors import BoardError, ConfigError, JLinkMissingError
from tests.unit.fake_pynrfjprog import PAGE_SIZE, FakeHighLevel, FakeProbe

NRF91_BLINKY = Path(pynrfjprog.__file__).parent / "examples" / "hex_files" / "nrf91_dk_blinky.hex"
SNR = 960012345
OTHER = 960054321


def write_hex(path: Path, chunks: dict[int, bytes]) -> Path:
    """Intel HEX with 16-byte data records and extended linear address records."""
    def record(kind: int, address: int, data: bytes) -> str:
        body = bytes([len(data), address >> 8 & 0xFF, address & 0xFF, kind]) + data
        return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()

    lines, upper = [], None
    for start, data in chunks.items():
        for offset in range(0, len(data), 16):
            address = start + offset
            if address >> 16 != upper:
                upper = address >> 16
                lines.append(record(0x04, 0, upper.to_bytes(2, "big")))
            lines.append(record(0x00, address & 0xFFFF, data[offset:offset + 16]))
    lines.append(record(0x01, 0, b""))
    path.write_text("\n".join(lines) + "\n")
    return path


APP = bytes(range(256)) * 2  # 512 bytes at 0x0, inside page 0


@pytest.fixture
def app_hex(tmp_path: Path) -> Path:
    return write_hex(tmp_path / "app.hex", {0x0: APP})


@pytest.fixture
def bench() -> FakeHighLevel:
    return FakeHighLevel(
        FakeProbe(SNR, DeviceFamily.NRF91, [("/dev/ttyACM2", 2), ("/dev/ttyACM0", 0),
                                            ("/dev/ttyACM1", 1)]),
        FakeProbe(OTHER, DeviceFamily.NRF52, [("/dev/ttyACM3", 0)]),
    )


def board(bench: FakeHighLevel, serial: str | int = str(SNR), **kwargs) -> NordicBoard:
    return NordicBoard(serial, api_factory=lambda: bench, **kwargs)


def assert_all_closed(bench: FakeHighLevel) -> None:
    assert not bench.dll_open and bench.open_probes == 0


def usb_port(device: str, vid: int, serial: str | None, location: str | None = None):
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.serial_number, port.location = vid, serial, location
    return port


def never_touch_the_probe():
    pytest.fail("the J-Link library was loaded")


# --- import and listing --------------------------------------------------------------------------

def test_importing_the_driver_does_not_import_pynrfjprog():
    code = ("import sys, hilprov, hilprov.board.nordic; "
            "assert 'pynrfjprog' not in sys.modules, 'pynrfjprog imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_list_probes_gives_string_serials_families_and_ordered_vcom_ports(bench):
    probes = list_probes(api_factory=lambda: bench)
    assert [(p.serial_number, p.family, p.vcom_ports) for p in probes] == [
        ("960012345", "nrf91", ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyACM2"]),
        ("960054321", "nrf52", ["/dev/ttyACM3"]),
    ]
    assert_all_closed(bench)


def test_list_probes_keeps_a_probe_whose_chip_cannot_be_reached():
    ports = [usb_port("/dev/ttyACM7", 0x1366, "000960012345", "1-2:1.0")]
    bench = FakeHighLevel(FakeProbe(SNR, reachable=False))
    [probe] = list_probes(api_factory=lambda: bench, comports=lambda: ports)
    assert (probe.family, probe.vcom_ports) == ("unknown", ["/dev/ttyACM7"])

    bench.failures["DebugProbe"] = NrfjprogdllErr.CANNOT_CONNECT
    [probe] = list_probes(api_factory=lambda: bench, comports=lambda: ports)
    assert (probe.serial_number, probe.family) == ("960012345", "unknown")
    assert_all_closed(bench)


def test_vcom_fallback_matches_segger_ports_by_usb_serial_in_interface_order():
    ports = [
        usb_port("/dev/ttyACM5", 0x1366, "000960012345", "1-1.2:1.4"),
        usb_port("/dev/ttyACM4", 0x1366, "000960012345", "1-1.2:1.0"),
        usb_port("/dev/ttyACM9", 0x1366, "000960012345", "1-1.2:1.2"),
        usb_port("/dev/ttyACM6", 0x1366, "000960054321", "1-1.3:1.0"),  # another probe
        usb_port("/dev/ttyUSB0", 0x0403, "000960012345", "1-4:1.0"),  # not a J-Link
        usb_port("/dev/ttyS0", None, None),
    ]
    assert find_vcom_ports("960012345", lambda: ports) == [
        "/dev/ttyACM4", "/dev/ttyACM9", "/dev/ttyACM5"]
    no_location = [usb_port("/dev/ttyACM10", 0x1366, "960012345"),
                   usb_port("/dev/ttyACM9", 0x1366, "960012345")]
    assert find_vcom_ports(SNR, lambda: no_location) == ["/dev/ttyACM9", "/dev/ttyACM10"]


# --- programming ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("erase", "action"), [("chip", EraseAction.ERASE_ALL),
                                               ("sector", EraseAction.ERASE_SECTOR),
                                               ("none", EraseAction.ERASE_NONE)])
def test_program_erases_writes_verifies_and_resets(bench, app_hex, erase, action):
    steps: list[str] = []
    image = board(bench).program(app_hex, erase=erase, progress=steps.append)

    probe = bench.probes[SNR]
    assert bytes(probe.flash[a] for a in range(len(APP))) == APP
    assert probe.resets == 1
    target = str(app_hex.resolve())
    assert bench.calls[:3] == [
        ("program", SNR, target, action, VerifyAction.VERIFY_NONE, ResetAction.RESET_NONE),
        ("verify", SNR, target, VerifyAction.VERIFY_READ),
        ("reset", SNR, ResetAction.RESET_SYSTEM),
    ]
    assert (image.data_bytes, image.start, image.end) == (512, 0, 512)
    assert [s.split()[0] for s in steps] == ["connecting", "programming", "verifying",
                                             "resetting", "programmed"]
    assert "app.hex (512 bytes at 0x00000000-0x000001FF)" in steps[1]
    assert_all_closed(bench)


def test_chip_erase_wipes_other_data_but_sector_erase_keeps_untouched_pages(bench, app_hex):
    probe = bench.probes[SNR]
    elsewhere = 4 * PAGE_SIZE
    probe.flash.update({0: 0x00, 100: 0x00, elsewhere: 0x42})  # old firmware bits

    board(bench).program(app_hex, erase="sector")
    assert probe.flash[elsewhere] == 0x42
    assert bytes(probe.flash[a] for a in range(len(APP))) == APP

    board(bench).program(app_hex, erase="chip")
    assert elsewhere not in probe.flash


def test_programming_over_old_data_without_erase_fails_verification(bench, app_hex):
    bench.probes[SNR].flash.update({a: 0x00 for a in range(16)})
    with pytest.raises(ProbeError) as caught:
        board(bench).program(app_hex, erase="none")
    message = str(caught.value)
    assert message.startswith("verifying app.hex on J-Link probe 960012345 failed: VERIFY_ERROR")
    assert caught.value.error_name == "VERIFY_ERROR"
    assert bench.probes[SNR].resets == 0  # stopped at the failed step
    assert_all_closed(bench)


def test_verify_and_reset_can_be_skipped(bench, app_hex):
    board(bench).program(app_hex, verify=False, reset=False)
    assert [c[0] for c in bench.calls] == ["program", "probe.close", "api.close"]
    assert bench.probes[SNR].resets == 0


def test_other_pynrfjprog_errors_name_the_step_probe_and_error(bench, app_hex):
    bench.failures["program"] = NrfjprogdllErr.NOT_AVAILABLE_BECAUSE_PROTECTION
    with pytest.raises(ProbeError, match=r"^programming app\.hex on J-Link probe 960012345 "
                                         r"failed: NOT_AVAILABLE_BECAUSE_PROTECTION \(.*recover"):
        board(bench).program(app_hex)
    assert_all_closed(bench)

    bench.failures["reset"] = NrfjprogdllErr.CANNOT_CONNECT
    with pytest.raises(ProbeError) as caught:
        board(bench).reset()
    assert str(caught.value).startswith(
        "resetting the board on J-Link probe 960012345 failed: CANNOT_CONNECT (")
    assert caught.value.__suppress_context__  # shown without the APIError traceback
    assert_all_closed(bench)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "No such file or directory"),
    ("dir", "Is a directory"),
    (bytes(range(256)), "not an Intel HEX file (binary"),
    (b"hello world\n", "line 1: not an Intel HEX record"),
    (b":0400000500000401F3\n:00000001FF\n", "line 1: checksum mismatch"),
    (b":10000000082000201504\n", "line 1: record length"),
    (b":0400000500000401F2\n", "no end-of-file record"),
    (b":00000001FF\n", "contains no data"),
])
def test_bad_firmware_files_are_refused_before_the_probe_is_touched(tmp_path, content, problem):
    path = tmp_path / "fw.hex"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        NordicBoard(SNR, api_factory=never_touch_the_probe).program(path)
    assert str(caught.value).startswith(str(path))
    assert problem in str(caught.value)


def test_hex_reader_agrees_with_pynrfjprogs_parser_on_a_real_nordic_hex():
    segments = list(Hex(str(NRF91_BLINKY)))
    image = read_intel_hex(NRF91_BLINKY)
    assert image.data_bytes == sum(s.length for s in segments)
    assert image.start == min(s.address for s in segments)
    assert image.end == max(s.address + s.length for s in segments)


# --- probes, ports, lifecycle --------------------------------------------------------------------

def test_unknown_serial_lists_the_connected_probes(bench, app_hex):
    with pytest.raises(BoardError, match=r"J-Link probe 960099999 is not connected .*"
                                         r"connected probes: 960012345, 960054321$"):
        board(bench, "960099999").program(app_hex)
    assert_all_closed(bench)
    with pytest.raises(BoardError, match=r"connected probes: none$"):
        board(FakeHighLevel(), SNR).reset()


def test_serial_numbers_are_strings_and_zero_padding_is_ignored(bench):
    assert board(bench, "000960012345").serial_number == "960012345"
    assert board(bench, SNR).family == "nrf91"
    for bad in ("abc", "", "0", "4294967296", "96001234x"):
        with pytest.raises(ConfigError, match="serial number"):
            NordicBoard(bad, api_factory=never_touch_the_probe)


def test_console_port_is_vcom0_unless_given_and_is_looked_up_once(bench):
    nrf91 = board(bench)
    assert nrf91.console_port() == "/dev/ttyACM0"
    assert (nrf91.console_port(), nrf91.family) == ("/dev/ttyACM0", "nrf91")
    assert bench.calls.count(("api.close",)) == 1

    explicit = NordicBoard(SNR, port="/dev/serial/by-id/usb-SEGGER_J-Link_000960012345-if00",
                           api_factory=never_touch_the_probe)
    assert explicit.console_port().endswith("-if00")


def test_console_port_falls_back_to_pyserial_and_says_when_nothing_is_found():
    bench = FakeHighLevel(FakeProbe(SNR, com_ports=[]))
    ports = [usb_port("/dev/ttyACM1", 0x1366, "000960012345", "3-1:1.2"),
             usb_port("/dev/ttyACM0", 0x1366, "000960012345", "3-1:1.0")]
    assert board(bench, comports=lambda: ports).console_port() == "/dev/ttyACM0"
    with pytest.raises(BoardError, match=r"no virtual COM port found for J-Link probe 960012345"):
        board(bench, comports=lambda: []).console_port()


def test_closed_board_refuses_work(bench, app_hex):
    with board(bench) as nrf91:
        pass
    with pytest.raises(BoardError, match="closed"):
        nrf91.program(app_hex)
    with pytest.raises(ConfigError, match="erase mode 'all'"):
        board(bench).program(app_hex, erase="all")


def test_two_boards_in_one_process_take_turns_with_the_library(bench, app_hex):
    bench.program_seconds = 0.1  # the library allows one open session per process
    errors: list[Exception] = []

    def flash(serial: int) -> None:
        try:
            board(bench, serial).program(app_hex)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=flash, args=(s,)) for s in (SNR, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert bench.probes[SNR].resets == bench.probes[OTHER].resets == 1


# --- missing J-Link software ---------------------------------------------------------------------

def assert_one_line_without_traceback(err: JLinkMissingError) -> str:
    message = str(err)
    assert "\n" not in message and JLINK_DOWNLOAD_URL in message
    assert "APIError" not in "".join(traceback.format_exception(err))
    return message


def test_missing_libraries_give_one_actionable_line(app_hex):
    with pytest.raises(JLinkMissingError) as caught:
        list_probes(api_factory=lambda: FakeHighLevel(missing="libusb"))
    message = assert_one_line_without_traceback(caught.value)
    assert message.startswith("SEGGER J-Link software is missing (NRFJPROG_SUB_DLL_COULD_NOT_BE_"
                              "OPENED: libusb-1.0.so.0: cannot open shared object file")
    assert "apt install libusb-1.0-0" in message

    bench = FakeHighLevel(FakeProbe(SNR), missing="jlink")
    with pytest.raises(JLinkMissingError) as caught:
        board(bench).program(app_hex)
    message = assert_one_line_without_traceback(caught.value)
    assert "JLINKARM_DLL_COULD_NOT_BE_OPENED" in message and "libusb" not in message
    assert_all_closed(bench)


def test_a_station_without_jlink_gets_one_line_from_every_entry_point(app_hex):
    """The default situation of every unit test (tests/unit/conftest.py): pynrfjprog installed,
    its J-Link library missing. The real library's behaviour is checked on a bench PC by
    tests/hardware (hil_real)."""
    with pytest.raises(JLinkMissingError) as caught:
        list_probes()
    assert_one_line_without_traceback(caught.value)
    with pytest.raises(JLinkMissingError) as caught:
        NordicBoard("960012345").program(app_hex)
    assert_one_line_without_traceback(caught.value)
