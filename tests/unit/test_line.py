"""A factory line, not a bench: every unit gets its own credentials, and no outcome lies.

Each test here is one of the ways a line of many units went wrong before: units sharing one
PSK, a forgotten token ending "registered", Ctrl-C leaving a false record, unbounded output,
secrets in artifacts, options silently ignored.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from hilprov.cli import main, ptool_main
from hilprov.core.senml import decode
from hilprov.sim import imei
from hilprov.sim.coiote_server import CoioteServer
from tests import CONFIGS, REPO_ROOT

TOKEN = "line-test-token"
FOUR = ["--board", "sim"] * 4
PER_UNIT = ["--psk-identity", "{endpoint}", "--psk-key", "random"]


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def coiote(workdir):
    """A Coiote-compatible server the CLI onboards into (`-s server.json --token-file tok`)."""
    with CoioteServer(token=TOKEN) as server:
        (workdir / "server.json").write_text(json.dumps(server.server_info()))
        (workdir / "tok").write_text(TOKEN + "\n")
        yield server


def run_json(entry, argv, capsys) -> tuple[int, list[dict], str]:
    code = entry([*argv, "--json"])
    out = capsys.readouterr()
    results = json.loads(out.out)["results"] if out.out.strip() else []
    return code, results, out.err


def psk_of(device: dict) -> str:
    return device["dtlsPsk"]["HexadecimalPsk"].lower()


def everything_written(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


# -- every unit its own credentials ----------------------------------------------------------------
def test_four_units_get_four_identities_and_keys_that_appear_nowhere_else(workdir, coiote,
                                                                          capsys):
    argv = ["-c", CONFIGS / "endpoint_cfg", *FOUR, *PER_UNIT, "-s", "server.json",
            "--token-file", "tok", "-v"]
    code, results, err = run_json(ptool_main, [str(a) for a in argv], capsys)
    assert code == 0, err
    assert [r["outcome"] for r in results] == ["registered"] * 4
    devices = list(coiote.devices.values())
    endpoints = {r["endpoint"] for r in results}
    assert {d["properties"]["endpointName"] for d in devices} == endpoints and len(endpoints) == 4
    assert {d["dtlsIdentity"] for d in devices} == endpoints  # the identity is the endpoint
    keys = {psk_of(d) for d in devices}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)  # 16 random bytes each
    written = everything_written(workdir)
    for key in keys:  # not in stdout/stderr (with -v), logs, records or any file
        for form in (key, key.upper(), bytes.fromhex(key).decode("latin-1")):
            assert form not in err and form.encode("latin-1") not in written


def test_the_same_four_units_without_per_unit_credentials_are_refused_before_any_board(
        workdir, coiote, capsys):
    argv = ["-c", CONFIGS / "endpoint_cfg", *FOUR, "-s", "server.json", "--token-file", "tok"]
    code, results, err = run_json(ptool_main, [str(a) for a in argv], capsys)
    assert code == 3
    assert "--psk-identity" in err and "--psk-key" in err
    for result in results:
        steps = {s["name"]: s["status"] for s in result["steps"]}
        assert steps["check-config"] == "failed"
        assert steps["flash-initial"] == "pending" and steps["upload"] == "pending"
    assert coiote.devices == {}
    assert not any(r.method == "POST" for r in coiote.requests)
    said = [line for line in err.splitlines() if line.startswith("ptool: configuration error")]
    assert len(said) == 1, err  # one reason shared by four boards is said once, naming them
    assert "[sim-1, sim-2, sim-3, sim-4]" in said[0]


def test_a_fixed_certificate_and_key_for_several_units_is_refused(workdir, capsys):
    from hilprov.core.certs import generate_self_signed

    made = generate_self_signed({"commonName": "shared"}, None)
    (workdir / "s.der").write_bytes(made.cert_der)
    (workdir / "c.der").write_bytes(made.cert_der)
    (workdir / "k.der").write_bytes(made.key_der)
    argv = ["-c", str(CONFIGS / "endpoint_cfg_cert"), "-p", "s.der", "-r", "c.der", "-k",
            "k.der", "--board", "sim", "--board", "sim"]
    assert ptool_main(argv) == 3
    assert "the endpoint certificate and key" in capsys.readouterr().err


def test_certificate_mode_gives_each_unit_its_own_key_and_its_endpoint_as_cn(workdir, capsys):
    from hilprov.core.certs import generate_self_signed

    (workdir / "s.der").write_bytes(generate_self_signed({"commonName": "s"}, None).cert_der)
    argv = ["-c", str(CONFIGS / "endpoint_cfg_cert"), "-C", str(CONFIGS / "cert_info.json"),
            "-p", "s.der", "--board", "sim", "--board", "sim", "--board", "sim"]
    code, results, err = run_json(ptool_main, argv, capsys)
    assert code == 0, err
    keys, names = set(), set()
    for result in results:
        folder = workdir / "cert" / result["endpoint"]
        cert = x509.load_der_x509_certificate((folder / "client_cert.der").read_bytes())
        names.add(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        keys.add((folder / "client_key.der").read_bytes())
        assert result["outcome"] == "registered"
    assert names == {r["endpoint"] for r in results} and len(keys) == 3


def test_the_config_itself_can_ask_for_per_unit_credentials(workdir, capsys):
    code, results, err = run_json(ptool_main, ["-c", str(CONFIGS / "endpoint_cfg_line"),
                                               "--board", "sim", "--board", "sim"], capsys)
    assert code == 0, err
    assert all(r["outcome"] == "registered" for r in results)
    assert len({r["psk_identity_sha256"] for r in results}) == 2


def test_without_a_board_the_per_unit_values_are_made_from_the_endpoint_name(workdir):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "-e", "anjay-zephyr-demo-351234567890124",
            "--psk-identity", "line-{imei}", "--psk-key", "random:24", "--secrets-out", "keys"]
    assert ptool_main(argv) == 0
    values = {r.name: r.value for r in decode((workdir / "SenMLCBOR").read_bytes())}
    assert values["/0/1/3"] == b"line-351234567890124" and len(values["/0/1/5"]) == 24
    saved = json.loads((workdir / "keys" / "anjay-zephyr-demo-351234567890124.psk.json")
                       .read_text())
    assert saved["psk_key_hex"] == values["/0/1/5"].hex()
    assert stat.S_IMODE(os.stat(workdir / "keys").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(next((workdir / "keys").iterdir())).st_mode) == 0o600


def test_a_random_key_that_is_neither_onboarded_nor_saved_is_refused(workdir, capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "-e", "ep", "--psk-key", "random"]
    assert ptool_main(argv) == 3
    err = capsys.readouterr().err
    assert "--secrets-out" in err and "scrap" in err
    assert not (workdir / "SenMLCBOR").exists()


@pytest.mark.parametrize("argv, says", [
    (["--psk-key", "randomly"], "not random or random:N"),
    (["--psk-key", "random:0"], "a key of 1 to 64 bytes"),
    (["--psk-identity", ""], "empty PSK identity"),
])
def test_bad_per_unit_options_are_usage_errors(workdir, argv, says, capsys):
    with pytest.raises(SystemExit) as info:
        ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), *argv])
    assert info.value.code == 2 and says in capsys.readouterr().err


def test_an_identity_the_records_show_on_another_endpoint_is_refused_before_upload(workdir,
                                                                                   capsys):
    # The sample config's fixed identity, on two different units one after the other.
    first = ["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim:351234567890124"]
    assert ptool_main(first) == 0
    second = ["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim:490154203237518", "--json"]
    code, [result], err = (ptool_main(second), *_last_json(capsys))
    assert code == 3
    assert "already belongs to endpoint anjay-zephyr-demo-351234567890124" in err
    assert "--psk-identity '{endpoint}'" in err
    assert {s["name"]: s["status"] for s in result["steps"]}["upload"] == "pending"
    assert ptool_main([*first, "--reprovision"]) == 0  # the same unit again is fine


def _last_json(capsys):
    out = capsys.readouterr()
    return json.loads(out.out)["results"], out.err


# -- virtual boards are distinct devices ----------------------------------------------------------
def test_every_virtual_board_gets_its_own_valid_imei_across_runs(workdir, capsys):
    seen = []
    for _ in range(2):
        code, results, err = run_json(ptool_main, ["-c", str(CONFIGS / "endpoint_cfg_line"),
                                                   "--board", "sim", "--board", "sim"], capsys)
        assert code == 0, err
        seen += [r["endpoint"].removeprefix("anjay-zephyr-demo-") for r in results]
    assert len(set(seen)) == 4 and all(imei.valid(i) for i in seen)


def test_a_pinned_imei_must_be_one_and_is_used(workdir, capsys):
    with pytest.raises(SystemExit) as info:
        ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim:351234567890123"])
    assert info.value.code == 2 and "Luhn" in capsys.readouterr().err
    code, [result], err = run_json(ptool_main, ["-c", str(CONFIGS / "endpoint_cfg"),
                                                "--board", "sim:490154203237518"], capsys)
    assert code == 0 and result["endpoint"] == "anjay-zephyr-demo-490154203237518"


# -- outcomes that tell the truth -----------------------------------------------------------------
def test_a_server_without_a_token_is_a_usage_error_before_any_board(workdir, coiote, capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim", "-s", "server.json"]
    assert ptool_main(argv) == 2
    err = capsys.readouterr().err
    assert "onboarding needs a token" in err and "without being onboarded" in err
    assert not (workdir / "hilprov-records.sqlite").exists()  # no board was touched


def test_without_a_board_a_missing_token_is_one_warning_with_the_true_reason(workdir, coiote,
                                                                             capsys):
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "-e", "ep", "-s", "server.json"]
    assert ptool_main(argv) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "Coiote" in line]
    assert warnings == ["not registering in Coiote: missing a token (COIOTE_TOKEN, "
                        "--token-file or -t)"]


@pytest.fixture()
def coiote_process(workdir):
    """`hilprov coiote-sim` started separately, as a bench would; yields its URL."""
    (workdir / "sim-token").write_text(TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "hilprov", "coiote-sim", "--token-file",
                             str(workdir / "sim-token")], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        host, port = url.rsplit(":", 1)
        (workdir / "server.json").write_text(json.dumps({"url": host, "port": int(port),
                                                         "domain": "/embedded/"}))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_four_units_against_a_separately_started_coiote_sim(workdir, coiote_process, capsys):
    (workdir / "bad").write_text("a-token-the-server-rejects")
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), *FOUR, *PER_UNIT, "-s", "server.json",
            "--token-file", "bad"]
    code = ptool_main([*argv, "--json"])
    out = capsys.readouterr()
    err, document = out.err, json.loads(out.out)  # --json still gets its document
    assert code == 6 and "401" in err and "before any unit is touched" in err, err
    assert document["results"] == []  # the token was tried first: nothing flashed or written
    assert (document["error"]["kind"], document["error"]["exit_code"]) == ("cloud error", 6)
    assert "flash-initial" not in err and "upload" not in err
    assert not (workdir / "hilprov-records.sqlite").exists() or not sqlite3.connect(
        workdir / "hilprov-records.sqlite").execute("SELECT * FROM attempts").fetchall()
    (workdir / "tok").write_text(TOKEN)
    argv[-1] = "tok"
    code, results, err = run_json(ptool_main, argv, capsys)
    assert code == 0, err
    assert [r["outcome"] for r in results] == ["registered"] * 4


def _flow_process(workdir: Path, *extra: str) -> subprocess.Popen:
    """`ptool` on two virtual boards whose production image never registers (it waits)."""
    script = ("import sys; from hilprov.board import registry; "
              "from hilprov.sim.faults import Faults; import hilprov.board.sim as sim; "
              "orig = sim.SimBoard.__init__\n"
              "def slow(self, *a, **k):\n"
              "    k.setdefault('faults', Faults(never_register=True)); orig(self, *a, **k)\n"
              "sim.SimBoard.__init__ = slow\n"
              "from hilprov.cli import ptool_main; sys.exit(ptool_main(sys.argv[1:]))")
    argv = ["-c", str(CONFIGS / "endpoint_cfg_line"), "--board", "sim", "--board", "sim",
            "--records", str(workdir / "rec.sqlite"), *extra]
    return subprocess.Popen([sys.executable, "-c", script, *argv], cwd=workdir,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _wait_for_step(db: Path, step: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                rows = sqlite3.connect(db).execute("SELECT current_step FROM attempts").fetchall()
            except sqlite3.Error:
                rows = []
            if len(rows) == 2 and all(r[0] == step for r in rows):
                return
        time.sleep(0.05)
    raise AssertionError(f"the flows never reached {step}")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_mid_flow_is_one_line_and_an_interrupted_record(workdir, sig, code):
    proc = _flow_process(workdir)
    _wait_for_step(workdir / "rec.sqlite", "wait-registered")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("ptool:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "at wait-registered" in lines[0] and signal.Signals(sig).name in lines[0]
    rows = sqlite3.connect(workdir / "rec.sqlite").execute(
        "SELECT outcome, current_step, exit_code FROM attempts").fetchall()
    assert rows == [("interrupted", "wait-registered", code)] * 2
    again = _flow_process(workdir)  # the boards work again
    _wait_for_step(workdir / "rec.sqlite", "wait-registered")
    again.kill()
    again.wait(10)


def test_a_second_ctrl_c_while_stopping_still_records_where_each_board_was(workdir):
    proc = _flow_process(workdir)
    _wait_for_step(workdir / "rec.sqlite", "wait-registered")
    blocker = sqlite3.connect(workdir / "rec.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the records are slow to take the interrupted rows
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # an impatient operator, while the boards record themselves
    time.sleep(1.0)
    blocker.execute("ROLLBACK")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("ptool: interrupted")]
    assert line.count("at wait-registered") == 2 and "each attempt is recorded" in line, err
    rows = sqlite3.connect(workdir / "rec.sqlite").execute(
        "SELECT outcome, current_step FROM attempts").fetchall()
    assert rows == [("interrupted", "wait-registered")] * 2  # not "in progress" / abandoned


def test_an_interrupt_while_the_records_are_locked_says_what_is_not_recorded_yet(workdir):
    """The boards finish while the records cannot be written; Ctrl-C then. The line says which
    outcome is not recorded yet, and the next read of the records writes the kept rows."""
    db = workdir / "rec.sqlite"
    argv = ["-c", str(CONFIGS / "endpoint_cfg_line"), "--board", "sim", "--board", "sim",
            "--records", str(db)]
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from hilprov.cli import "
                             "ptool_main; sys.exit(ptool_main(sys.argv[1:]))", *argv],
                            cwd=workdir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    _wait_for_step(db, "wait-registered")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    time.sleep(1.0)  # the virtual boards register at once; their last writes wait for the lock
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    blocker.execute("ROLLBACK")
    assert proc.returncode == 130 and "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("ptool: interrupted")]
    assert line.count("(not recorded yet: ") == 2 and "each attempt is recorded" not in line, err
    assert "kept in" in line and "written by this station's next run" in line
    assert main(["records", "--records", str(db), "--format", "json"]) == 0  # writes them
    rows = sqlite3.connect(db).execute("SELECT board, outcome FROM attempts").fetchall()
    for board, outcome in rows:  # what the line said, now in the records
        assert f"[{board}] {outcome}" in line or f"[{board}] at " in line, (rows, line)
    assert {outcome for _, outcome in rows} <= {"registered", "interrupted"}, rows


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler (hilprov's entry point installs it first)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_an_interrupt_while_starting_is_one_line_without_a_traceback(workdir):
    """From the moment the entry point runs (its handlers are the first thing it installs, so
    before the heavy imports), an interrupt ends with one line and 130, never a traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        proc = subprocess.Popen([sys.executable, "-m", "hilprov", "provision", "-c",
                                 str(CONFIGS / "endpoint_cfg"), "--board", "sim"],
                                cwd=workdir, env=env, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid) and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        if proc.returncode == 0:
            continue  # it finished first
        assert proc.returncode == 130, err
        assert "Traceback" not in err and err.count("interrupted") == 1, err


# -- bounded output -------------------------------------------------------------------------------
def test_a_huge_value_gives_a_short_error(workdir, capsys):
    huge = "x" * 5_000_000
    (workdir / "cfg").write_text((CONFIGS / "endpoint_cfg").read_text()
                                 .replace("'coaps://eu.iot.avsystem.cloud:5684'", repr(huge)))
    assert ptool_main(["-c", "cfg"]) == 4
    err = capsys.readouterr().err
    assert len(err) < 2000 and "(5000000 characters)" in err


def test_a_long_list_of_problems_is_cut_with_a_count(workdir, capsys):
    entries = ", ".join(f"{n}: foo{n}" for n in range(500))
    (workdir / "cfg").write_text(f"{{3: {{0: {{{entries}}}}}}}")
    assert ptool_main(["-c", "cfg"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 51 and "450 more problems" in err[-1]  # 50 problems and the count


def test_the_parser_and_the_validator_grow_linearly_with_the_config():
    """The first parser re-encoded the source line for every node: ten times the entries took
    about a hundred times as long. A complexity check on CPU time with a wide margin (linear is
    10x, quadratic 100x), not a speed target: those are in bench/config_scaling.py."""
    from hilprov.core import profile
    from hilprov.core.config import parse_config

    def cpu_seconds(entries: int) -> float:
        acl = ", ".join(f"{short_id}: 15" for short_id in range(1, 101))
        text = "{2: {" + ", ".join(f"{n}: {{0: 3, 1: {n}, 2: {{{acl}}}, 3: 1}}"
                                   for n in range(entries // 100)) + "}}"
        start = time.process_time()
        assert profile.validate(parse_config(text, "cfg"), "lwm2m") == []
        return time.process_time() - start

    small = min(cpu_seconds(10_000) for _ in range(3))
    assert cpu_seconds(100_000) / small < 30


def test_a_long_line_reports_character_columns(workdir, capsys):
    (workdir / "cfg").write_text("{3: {0: {0: 'zażółć', 1: 'ü', 2: nope}}}")
    assert ptool_main(["-c", "cfg"]) == 3
    assert "cfg:1:34: found the name 'nope'" in capsys.readouterr().err


def test_decode_shows_control_characters_escaped(workdir, capsys):
    from hilprov.core.senml import Record, encode_records

    (workdir / "b").write_bytes(encode_records([Record("/0/1/0", 3, "coap://\x1b[2Jx\x07")]))
    assert main(["decode", "b"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2Jx\\x07" in out


def test_decode_into_a_closed_pipe_ends_quietly(workdir):
    from hilprov.core.senml import Record, encode_records

    records = [Record(f"/3/0/{n % 60000}", 3, "v" * 40) for n in range(20000)]
    (workdir / "b").write_bytes(encode_records(records))
    proc = subprocess.Popen([sys.executable, "-m", "hilprov", "decode", "b"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(30)
    assert proc.returncode in (0, 141), err
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err


# -- options that contradict each other --------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["-c", "endpoint_cfg_cert", "-C", "cert_info.json", "-k", "k.der", "-p", "s.der"],
     "cannot be combined with -r FILE or -k FILE"),
    (["-c", "endpoint_cfg", "-C", "cert_info.json"], "uses psk mode, which uses none"),
    (["-c", "endpoint_cfg_cert", "-C", "cert_info.json", "-p", "s.der", "--psk-key",
      "random"], "--psk-key random[:N] set the PSK credentials"),
])
def test_contradicting_options_are_usage_errors(workdir, argv, says, capsys):
    for name in ("endpoint_cfg_cert", "endpoint_cfg", "cert_info.json"):
        (workdir / name).write_bytes((CONFIGS / name).read_bytes())
    assert ptool_main(argv) == 2
    assert says in capsys.readouterr().err
    assert not (workdir / "SenMLCBOR").exists()


def test_a_generated_file_never_overwrites_an_input(workdir, capsys):
    (workdir / "cfg").write_bytes((CONFIGS / "endpoint_cfg").read_bytes())
    assert ptool_main(["-c", "cfg", "--output", "cfg"]) == 3
    assert "overwrite one of its own inputs" in capsys.readouterr().err
    assert (workdir / "cfg").read_bytes() == (CONFIGS / "endpoint_cfg").read_bytes()


def test_the_pytest_run_keeps_key_files_out_of_its_logs_unless_asked(pytester):
    from hilprov.core.certs import generate_self_signed

    (pytester.path / "s.der").write_bytes(generate_self_signed({"commonName": "s"}, None)
                                          .cert_der)
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.hil
        def test_cert(provision):
            endpoint = provision(endpoint_cfg={str(CONFIGS / "endpoint_cfg_cert")!r},
                                 cert_info={str(CONFIGS / "cert_info.json")!r},
                                 server_cert="s.der")
            assert endpoint.ok, endpoint.result.error
            print("written:", endpoint.result.written)
    """)
    result = pytester.runpytest("--board", "sim", "-s")
    result.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("client_key.der"))
    assert not list(pytester.path.rglob("anjay_factory.cbor"))
    kept = pytester.path / "kept"
    result = pytester.runpytest("--board", "sim", "-s", "--hil-keep-secrets", str(kept))
    result.assert_outcomes(passed=1)
    [key] = kept.rglob("client_key.der")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o700
    assert re.search(r"written: .*kept", result.stdout.str())
