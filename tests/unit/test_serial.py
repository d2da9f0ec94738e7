"""SerialPort: one port, console text for expect() and SMP lines for the SMP client."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import tty

import pytest

from hilprov.board.serial import SerialPort
from hilprov.errors import BoardError, ExpectTimeout


@pytest.fixture
def loop(tmp_path):
    """A loop:// port: what we write is what the reader receives."""
    port = SerialPort("loop://", log_path=tmp_path / "logs" / "dut.log", name="dut")
    yield port
    port.close()


@pytest.fixture
def pty_pair():
    """A real pty: the test writes the 'device' side, SerialPort opens the slave path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_console_lines_and_smp_lines_are_split(loop):
    loop.write(b"[00:00:00.001,000] <inf> anjay: hello\r\n\x06\x09ABCD\n\x04\x14EFGH\r\nbye\n")
    assert loop.read_smp_line(2) == b"\x06\x09ABCD\n"
    assert loop.read_smp_line(2) == b"\x04\x14EFGH\n"
    loop.expect_exact("bye", 2)
    assert loop.console_lines == ["[00:00:00.001,000] <inf> anjay: hello", "bye"]
    assert loop.read_smp_line(0.05) is None


def test_prompt_without_newline_is_matchable(loop):
    loop.write(b"Device ready for provisioning.\r\nuart:~$ ")
    loop.expect_exact("Device ready for provisioning.", 2)
    match = loop.expect(r"uart:~\$ $", 2)
    assert match.group(0) == "uart:~$ "
    assert loop.tail(1) == ["uart:~$ "]


def test_smp_reply_right_after_the_prompt_is_still_an_smp_line(loop):
    loop.write(b"\r\nuart:~$ \x06\x09AAsIAAABAAABBqBEIw==\n")
    assert loop.read_smp_line(2) == b"\x06\x09AAsIAAABAAABBqBEIw==\n"
    loop.expect(r"^uart:~\$ $", 2)


def test_marker_split_across_reads(pty_pair):
    master, path = pty_pair
    with SerialPort(path) as port:
        os.write(master, b"log line\n\x06")
        time.sleep(0.15)
        os.write(master, b"\x09QUJD\n")
        assert port.read_smp_line(2) == b"\x06\x09QUJD\n"
        port.expect_exact("log line", 1)
        assert all("\x06" not in line for line in port.console_lines)


def test_expect_consumes_so_the_same_line_does_not_match_twice(loop):
    loop.write(b"registration successful, location = /rd/5a3f\n")
    match = loop.expect(r"location = (/rd/\w+)", 2)
    assert match.group(1) == "/rd/5a3f"
    with pytest.raises(ExpectTimeout):
        loop.expect("registration successful", 0.2)


def test_expect_timeout_message_names_pattern_tail_and_log(loop):
    loop.write(b"".join(f"line {i}\n".encode() for i in range(30)))
    loop.expect_exact("line 29", 2)
    started = time.monotonic()
    with pytest.raises(ExpectTimeout) as info:
        loop.expect(r"Device ready", 0.3)
    assert time.monotonic() - started < 2
    text = str(info.value)
    assert "'Device ready'" in text and "0.3 s" in text
    assert "line 29" in text and "line 10" in text and "line 9\n" not in text  # last 20 lines
    assert str(loop.log_path) in text


def test_non_utf8_cr_and_ansi_are_normalised(loop):
    loop.write(b"caf\xe9 \x1b[1;32mgreen\x1b[m\rnext\r\n\xff\xfeend\n")
    loop.expect_exact("end", 2)
    assert loop.console_lines == ["caf\ufffd green", "next", "\ufffd\ufffdend"]


def test_ansi_kept_when_asked():
    with SerialPort("loop://", strip_ansi=False) as port:
        port.write(b"\x1b[1;32muart:~$ \x1b[m\n")
        port.expect_exact("\x1b[1;32muart", 2)


def test_clear_drops_unconsumed_output(loop):
    loop.write(b"Anjay restored from anjay_factory\nuart:~$ ")
    loop.expect_exact("uart:~$ ", 2)
    loop.write(b"old boot line\n")
    time.sleep(0.2)
    loop.clear()
    with pytest.raises(ExpectTimeout):
        loop.expect_exact("old boot line", 0.2)
    loop.write(b"new boot line\n")
    loop.expect_exact("new boot line", 2)


def test_log_file_has_timestamped_console_lines_only(loop):
    loop.write(b"first\r\n\x06\x09SMPSMP\nsecond\n")
    loop.expect_exact("second", 2)
    assert loop.read_smp_line(1) is not None
    loop.close()
    lines = loop.log_path.read_text().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["first", "second"]
    stamp = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] ")
    assert all(stamp.match(line) for line in lines)


def test_partial_line_reaches_the_log_when_idle(loop):
    loop.write(b"uart:~$ ")
    loop.expect_exact("uart:~$", 2)
    time.sleep(0.6)
    assert loop.log_path.read_text().rstrip().endswith("] uart:~$")


def test_lines_are_mirrored_to_the_logger(loop, caplog):
    with caplog.at_level(logging.INFO, logger="hilprov.serial"):
        loop.write(b"Anjay restored from anjay_persistence\n")
        loop.expect_exact("restored", 2)
        time.sleep(0.05)
    assert any(r.name == "hilprov.serial" and r.getMessage() ==
               "[dut] Anjay restored from anjay_persistence" for r in caplog.records)


def test_drain_smp_drops_stale_frames(loop):
    loop.write(b"\x06\x09AAAA\n\x06\x09BBBB\n")
    loop.write(b"done\n")
    loop.expect_exact("done", 2)
    assert loop.drain_smp() == 2
    assert loop.read_smp_line(0.05) is None


def test_write_smp_line_checks_framing(loop):
    with pytest.raises(ValueError):
        loop.write_smp_line(b"not smp\n")


def test_missing_port_is_a_board_error_naming_it():
    with pytest.raises(BoardError, match="/dev/hilprov-no-such-tty"):
        SerialPort("/dev/hilprov-no-such-tty")


def test_port_opened_twice_is_refused(pty_pair):
    _, path = pty_pair
    with SerialPort(path), pytest.raises(BoardError, match=path):
        SerialPort(path)


def test_disconnect_ends_waits_with_a_board_error(pty_pair):
    master, path = pty_pair
    port = SerialPort(path)
    try:
        os.write(master, b"booting\n")
        port.expect_exact("booting", 2)
        os.close(master)
        started = time.monotonic()
        with pytest.raises(BoardError, match=path):
            port.expect_exact("never", 5)
        with pytest.raises(BoardError, match=path):
            port.read_smp_line(5)
        assert time.monotonic() - started < 3
        with pytest.raises(BoardError, match="cannot write"):
            port.write(b"\n")
    finally:
        port.close()
