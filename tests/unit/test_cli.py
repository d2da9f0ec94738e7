"""`ptool` and `hilprov`: seed flags, a line per problem, distinct exit codes, nothing half-done."""

import json
import os
import subprocess
import sys

import pytest

from hilprov import errors
from hilprov.cli import main, ptool_main
from hilprov.cli.exits import guarded
from hilprov.core.certs import generate_self_signed
from hilprov.sim.coiote_server import CoioteServer
from tests import CONFIGS
from tests.unit.test_senml import EXAMPLE_A

ENDPOINT = "anjay-zephyr-demo-351234567890123"
SIM_IMEI = "351234567890124"  # pinned, so the virtual board's endpoint is known


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COIOTE_TOKEN", raising=False)
    return tmp_path


def files(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_ptool_console_script_writes_the_192_byte_sample_blob(workdir):
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ptool"),
                           "-c", str(CONFIGS / "endpoint_cfg")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (workdir / "SenMLCBOR").read_bytes() == EXAMPLE_A
    assert "SenML CBOR blob created: SenMLCBOR (192 bytes)" in done.stderr


def test_output_option(workdir):
    assert ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "--output", "out.cbor", "-q"]) == 0
    assert files(workdir) == ["out.cbor"]


def test_invalid_config_exits_4_with_one_line_per_problem_and_writes_nothing(workdir, capsys):
    (workdir / "cfg").write_text("{0: {1: {0: 'coap://x', 2: 1, 10: 1}},\n 5: {0: {1: 'u'}}}")
    assert ptool_main(["-c", "cfg", "-C", str(CONFIGS / "cert_info.json")]) == 4
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ptool: validation failed: cfg: 2 problems the device would reject",
        "ptool: validation failed: cfg:1:25: error: /0/1/2: Raw Public Key mode (1) is not "
        "supported by Anjay; use 0 (PSK), 2 (Certificate), 3 (NoSec) or 4 (EST)",
        "ptool: validation failed: cfg:2:2: error: /5: object /5 (FirmwareUpdate) does not exist "
        "on the device: the initial image has only /0 Security, /1 Server and /2 Access Control",
    ]
    assert files(workdir) == ["cfg"]


def test_config_that_tries_to_run_code_exits_3_and_runs_nothing(workdir, capsys):
    (workdir / "cfg").write_text("{0: {1: {0: __import__('os').system('touch ran')}}}")
    assert ptool_main(["-c", "cfg"]) == 3
    assert "cfg:1:13: found a call to" in capsys.readouterr().err
    assert files(workdir) == ["cfg"]


def test_missing_config_file(workdir, capsys):
    assert ptool_main(["-c", "nope"]) == 3
    assert capsys.readouterr().err.strip() == \
        "ptool: configuration error: nope: cannot read endpoint config: No such file or directory"


def test_cert_mode_with_generated_certificate(workdir, capsys):
    server = generate_self_signed({"commonName": "server"}, None)
    (workdir / "server.der").write_bytes(server.cert_der)
    argv = ["-c", str(CONFIGS / "endpoint_cfg_cert"), "-e", ENDPOINT,
            "-C", str(CONFIGS / "cert_info.json"), "-p", "server.der"]
    assert ptool_main(argv) == 0
    assert files(workdir) == ["SenMLCBOR", "cert/client_cert.crt", "cert/client_cert.der",
                              "cert/client_key.der", "server.der"]
    assert server.cert_der in (workdir / "SenMLCBOR").read_bytes()


def test_cert_mode_without_server_cert_exits_3_before_writing(workdir, capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg_cert"), "-e", ENDPOINT,
            "-C", str(CONFIGS / "cert_info.json")]
    assert ptool_main(argv) == 3
    assert "cert mode needs the server certificate: give -p FILE" in capsys.readouterr().err
    assert files(workdir) == []


def test_bad_cert_info_exits_with_the_certificate_code(workdir, capsys):
    (workdir / "info.json").write_text('{"ellipticCurve": "secp1r1"}')
    (workdir / "s.der").write_bytes(generate_self_signed({"commonName": "s"}, None).cert_der)
    argv = ["-c", str(CONFIGS / "endpoint_cfg_cert"), "-e", ENDPOINT, "-C", "info.json",
            "-p", "s.der"]
    assert ptool_main(argv) == errors.CertificateError.exit_code
    assert "secp1r1" in capsys.readouterr().err
    assert files(workdir) == ["info.json", "s.der"]


def test_registration_with_token_from_the_environment(workdir, monkeypatch, capsys):
    with CoioteServer(token="env-token-42") as server:
        (workdir / "server.json").write_text(json.dumps(server.server_info()))
        monkeypatch.setenv("COIOTE_TOKEN", "env-token-42")
        argv = ["-c", str(CONFIGS / "endpoint_cfg"), "-e", ENDPOINT, "-s", "server.json"]
        assert ptool_main(argv) == 0
        assert [d["properties"]["endpointName"] for d in server.devices.values()] == [ENDPOINT]
        assert ptool_main(argv) == 0  # second run: already registered
    err = capsys.readouterr().err
    assert f'Device "{ENDPOINT}" created' in err
    assert f'Device "{ENDPOINT}" already registered' in err
    assert "env-token-42" not in err


def test_registration_errors_exit_6_without_the_token(workdir, capsys):
    with CoioteServer(token="right") as server:
        (workdir / "server.json").write_text(json.dumps(server.server_info()))
        (workdir / "tok").write_text("wrong-token-xyz\n")
        argv = ["-c", str(CONFIGS / "endpoint_cfg"), "-e", ENDPOINT, "-s", "server.json",
                "--token-file", "tok"]
        assert ptool_main(argv) == 6
    err = capsys.readouterr().err
    assert "401" in err and ENDPOINT in err
    assert "wrong-token-xyz" not in err


def test_incomplete_registration_options_warn(workdir, capsys):
    (workdir / "server.json").write_text('{"domain": "/embedded/"}')
    assert ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "-s", "server.json"]) == 0
    assert "not registering in Coiote: missing a token" in capsys.readouterr().err


def test_hilprov_provision_is_ptool(workdir):
    assert main(["provision", "-c", str(CONFIGS / "endpoint_cfg"), "-q"]) == 0
    assert (workdir / "SenMLCBOR").read_bytes() == EXAMPLE_A


def test_validate(workdir, capsys):
    assert main(["validate", str(CONFIGS / "endpoint_cfg_cert")]) == 0
    (workdir / "bad").write_text((CONFIGS / "endpoint_cfg").read_text().replace("'U'", "'x'"))
    assert main(["validate", "bad"]) == 4
    out = capsys.readouterr()
    assert out.out.strip() == "bad:21:13: error: /1/1/7: incorrect binding mode 'x'; expected " \
                              "LwM2M 1.1 letters U, S, T, N (upper case, each at most once, " \
                              "e.g. 'U') or a 1.0 mode (U, UQ, S, SQ, US, UQS)"
    assert "bad: 1 error(s), 0 warning(s) [profile anjay-zephyr]" in out.err


def test_validate_warnings_do_not_fail(workdir, capsys):
    (workdir / "cfg").write_text((CONFIGS / "endpoint_cfg").read_text()
                                 .replace("ShortServerID      : 1", "ShortServerID      : 2"))
    assert main(["validate", "cfg"]) == 0
    assert "warning: /0/1/10: Security /0/1 has Short Server ID 2" in capsys.readouterr().out


def test_validate_profile_lwm2m(workdir, capsys):
    (workdir / "cfg").write_text("{3: {0: {0: 'ACME'}}}")
    assert main(["validate", "cfg", "--profile", "lwm2m"]) == 0
    assert main(["validate", "cfg"]) == 4


def test_decode_table_hides_keys_unless_asked(workdir, capsys):
    (workdir / "b").write_bytes(EXAMPLE_A)
    assert main(["decode", "b"]) == 0
    out = capsys.readouterr().out
    assert "/0/1/3   vd     b'reg-test-psk-identity'" in out
    assert "<19 bytes, hidden; --show-secrets to print>" in out
    assert "3x@mpl3" not in out
    assert main(["decode", "b", "--show-secrets"]) == 0
    assert "b'3x@mpl3P5K53cr3tK3y'" in capsys.readouterr().out


def test_decode_json(workdir, capsys):
    (workdir / "b").write_bytes(EXAMPLE_A)
    assert main(["decode", "b", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[1] == {"name": "/0/1/1", "label": "vb", "value": False}
    assert len(rows) == 10


def test_decode_malformed_blob(workdir, capsys):
    (workdir / "b").write_bytes(EXAMPLE_A + b"\x00")
    assert main(["decode", "b"]) == 3
    assert capsys.readouterr().err.strip() == \
        "hilprov: configuration error: b: 1 extraneous bytes after the SenML array"


def test_exit_codes_are_distinct_and_documented(capsys):
    classes = [errors.ConfigError, errors.ValidationError, errors.CertificateError,
               errors.CloudError, errors.BoardError, errors.TransferError,
               errors.DeviceRejectedError, errors.AlreadyProvisionedError,
               errors.NotRegisteredError, errors.RecordsError]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes)
    assert set(codes) | {0, 1, 2} == set(errors.EXIT_CODES)
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    for code, text in errors.EXIT_CODES.items():
        assert f"{code:>3}  {text}" in help_text


def test_a_bug_is_one_line_and_exit_1(capsys):
    def broken(args):
        return {}["missing"]
    assert guarded(broken, None, "hilprov") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "internal error: KeyError" in err and "Traceback" not in err


@pytest.fixture()
def sim_process(tmp_path):
    """`hilprov sim` as a separate process, as a bench would run it; yields its pty path."""
    proc = subprocess.Popen([sys.executable, "-m", "hilprov", "sim", "--imei", SIM_IMEI,
                             "--state-dir", str(tmp_path / "state")], stdout=subprocess.PIPE,
                            text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fs_upload_and_download_through_a_virtual_board_process(workdir, sim_process, capsys):
    payload = bytes(range(256)) * 12 + b"tail"
    (workdir / "f.bin").write_bytes(payload)
    assert main(["fs", "upload", "--port", sim_process, "f.bin", "/lfs1/f.bin"]) == 0
    assert main(["fs", "download", "--port", sim_process, "/lfs1/f.bin", "g.bin"]) == 0
    assert (workdir / "g.bin").read_bytes() == payload
    assert main(["fs", "download", "--port", sim_process, "/factory/endpoint.txt", "ep"]) == 0
    assert (workdir / "ep").read_text() == f"anjay-zephyr-demo-{SIM_IMEI}"
    assert main(["fs", "download", "--port", sim_process, "/lfs1/nope", "x"]) == 8
    assert "FILE_NOT_FOUND" in capsys.readouterr().err
    assert not (workdir / "x").exists()


def test_provision_over_a_port_only_then_records_list_and_export(workdir, sim_process, capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "--port", sim_process, "-q"]
    assert ptool_main(argv) == 0
    # The records refuse the endpoint a second time; asked to, the device itself refuses.
    assert ptool_main(argv) == errors.AlreadyProvisionedError.exit_code
    assert "--reprovision" in capsys.readouterr().err
    assert ptool_main([*argv, "--reprovision"]) == errors.AlreadyProvisionedError.exit_code
    capsys.readouterr()
    assert main(["records"]) == 0
    table = capsys.readouterr().out
    assert "provisioned" in table and "already provisioned at read-endpoint" in table
    assert "already provisioned at upload" in table  # one attempt per boot
    assert main(["records", "--failed", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["error_kind"] for r in rows] == ["already provisioned"] * 2
    assert {r["board_kind"] for r in rows} == {"port"}
    assert main(["records", "--format", "csv", "--output", "r.csv"]) == 0
    assert (workdir / "r.csv").read_text().count("\n") == 4


def test_probes_without_the_jlink_software_is_one_line_and_exit_7(capsys):
    assert main(["probes"]) == 7  # conftest: a station without the J-Link software
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "https://www.segger.com/downloads/jlink/" in err


def test_probes_lists_every_connected_probe_with_its_family_and_ports(monkeypatch, capsys):
    from hilprov.board.flashers import pynrfjprog
    from tests.unit.fake_pynrfjprog import FakeHighLevel, FakeProbe

    bench = FakeHighLevel(FakeProbe(960012345, com_ports=[("/dev/ttyACM1", 1),
                                                          ("/dev/ttyACM0", 0)]))
    monkeypatch.setattr(pynrfjprog, "_load_highlevel", lambda: bench)
    assert main(["probes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"serial_number": "960012345", "family": "nrf91",
         "vcom_ports": ["/dev/ttyACM0", "/dev/ttyACM1"]}]
