"""The adaptive SMP transport against the real Zephyr 4.4 MCUmgr servers (native_sim builds on a
pty, ``shared/zephyr-smp``): the default-config build that drops bursts, the full-speed fs build,
and the shell transport that mixes SMP with shell and log output on one port.

The servers are found at ``../shared/zephyr-smp`` from the project root, or where
``HILPROV_ZEPHYR_SMP`` says; every test here skips with the reason when they are absent.
"""

from __future__ import annotations

import json
import logging
import os

import pytest

from hilprov.board import smp_link
from hilprov.board.serial import SerialPort
from hilprov.board.smp import RemoteFileNotFound, SmpFileClient
from hilprov.cli import main
from hilprov.sim.native_sim import NativeSimServer, server_path
from tests import ZEPHYR_SMP


def _server(kind: str):
    path = server_path(ZEPHYR_SMP, kind)
    if path is None:
        pytest.skip(f"the real Zephyr MCUmgr servers are not at {ZEPHYR_SMP} "
                    "(set HILPROV_ZEPHYR_SMP to their folder)")
    with NativeSimServer(path) as server:
        yield server


@pytest.fixture
def default_server():
    """native_sim_serial.exe: Zephyr's default MCUmgr UART buffers (384 x 4, 2 RX lines)."""
    yield from _server("serial")


@pytest.fixture
def fs_server():
    """native_sim_serial_fs.exe: 1024-byte buffers, LittleFS at /lfs1, takes full bursts."""
    yield from _server("serial_fs")


@pytest.fixture
def shell_server():
    """native_sim_shell.exe: SMP over the Zephyr shell, with the prompt and the log."""
    yield from _server("shell")


def _client(port: SerialPort, **kwargs) -> SmpFileClient:
    kwargs.setdefault("timeout", 5.0)
    return SmpFileClient(port, **kwargs)


def test_default_config_is_learned_and_every_size_arrives_byte_identical(default_server):
    with SerialPort(default_server.port) as port:
        client = _client(port)
        params = client.params()
        assert (params.buf_size, params.buf_count) == (384, 4)
        state = client.learn()
        assert state.level > 0 and state.losses, "a burst into two RX line buffers must drop"
        assert "Insufficient buffers, fragment dropped" in default_server.log_text()
        learned, losses = state.level, client.losses
        for size in (192, 1536, 4096):  # the file system holds one 4 KiB file: overwrite
            data = os.urandom(size)
            client.upload(data, "/lfs1/f.bin")
            assert client.download("/lfs1/f.bin") == data
            assert client.status("/lfs1/f.bin") == size
        assert (state.level, client.losses) == (learned, losses), "first try after learning"


def test_learning_during_a_transfer_then_the_port_remembers(default_server):
    data = os.urandom(1536)
    with SerialPort(default_server.port) as port:
        first = _client(port)
        first.upload(data, "/lfs1/a.bin")  # no learn(): the upload itself finds the level
        assert first.losses >= 1 and first.link.level > 0
    remembered = smp_link.remembered(default_server.port)
    assert remembered is not None and remembered.level == first.link.level
    with SerialPort(default_server.port) as port:  # a new port object, a new client
        second = _client(port)
        assert second.level == remembered.current
        second.upload(data, "/lfs1/a.bin")
        assert second.download("/lfs1/a.bin") == data
        assert second.losses == 0 and second.timeouts == 0


@pytest.mark.parametrize("size", [512, 4096])
def test_full_speed_server_takes_whole_requests_in_bursts(fs_server, size):
    data = os.urandom(size)
    with SerialPort(fs_server.port) as port:
        client = _client(port)
        assert client.params().buf_size == 1024
        client.upload(data, "/lfs1/burst.bin")
        assert client.download("/lfs1/burst.bin") == data
        assert client.level.name == "burst" and client.losses == 0 and client.timeouts == 0
        with pytest.raises(RemoteFileNotFound, match="/lfs1/missing.bin"):
            client.download("/lfs1/missing.bin")


def test_shell_transport_echo_and_os_round_trip_beside_the_console(shell_server, caplog):
    caplog.set_level(logging.INFO, logger="hilprov.board.smp")
    with SerialPort(shell_server.port) as port:
        client = _client(port)
        params = client.params()  # an os-group round trip (MCUmgr parameters)
        assert (params.buf_size, params.buf_count) == (384, 4)
        echoed, seconds = client.echo("hello from hilprov")
        assert echoed == "hello from hilprov" and seconds > 0
        port.write(b"kernel version\n")  # the shell shares the port
        port.expect(r"Zephyr version \d+\.\d+", 10)
        state = client.learn()  # larger echoes: SMP frames among prompts and log lines
        long_text = "z" * 150  # two lines each way
        assert client.echo(long_text)[0] == long_text
        # A burst of 5-line echoes overflows the two RX lines; the device says so on the
        # console it shares with SMP, and the client takes that as the sign of a loss.
        assert state.losses and state.current.name != "burst"
        assert any("smp_shell: Failed to alloc SMP buf" in line for line in port.console_lines)
        assert "the device reports a dropped line" in caplog.text


def test_smp_params_command_prints_buffers_and_the_learned_link(default_server, capsys):
    assert main(["smp", "params", "--port", default_server.port]) == 0
    out = capsys.readouterr().out
    assert "buf_size    384 bytes (largest request 380 B)" in out
    assert "buf_count   4" in out
    assert "link        2-line requests" in out
    assert "tried       burst (1 request(s) lost)" in out

    assert main(["smp", "params", "--port", default_server.port, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["buf_size"], report["buf_count"], report["max_request"]) == (384, 4, 380)
    assert report["link"]["level_index"] >= 1  # remembered for the port from the first run
    assert report["tried"].startswith("burst (1 request(s) lost)")


def test_smp_echo_command_prints_the_echo_and_the_round_trip(shell_server, capsys):
    assert main(["smp", "echo", "--port", shell_server.port, "ping 1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ping 1" and out[1].startswith("round trip ") and out[1].endswith(" ms")

    assert main(["smp", "echo", "--port", shell_server.port, "--json", "ping 2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["echo"] == report["sent"] == "ping 2" and report["round_trip_ms"] > 0
