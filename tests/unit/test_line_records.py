"""A line of stations sharing one PostgreSQL records database, from the command line: three
station processes with two virtual boards each at once, the line's rules holding under the race,
`hilprov records` reading them, and no key anywhere in a dump of the database."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hilprov.errors import AlreadyProvisionedError
from hilprov.station.records import RecordStore
from tests import CONFIGS, REPO_ROOT

PTOOL = "import sys; from hilprov.cli import ptool_main; sys.exit(ptool_main(sys.argv[1:]))"
HILPROV = "import sys; from hilprov.cli import main; sys.exit(main(sys.argv[1:]))"
PER_UNIT = ["--psk-identity", "{endpoint}", "--psk-key", "random"]


def station(workdir: Path, url: str, name: str, *boards: str) -> subprocess.Popen:
    """`ptool` as one station of the line runs it, in its own directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    board_args = [arg for board in boards for arg in ("--board", board)]
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), *board_args, *PER_UNIT, "--records", url,
            "--station", name, "--secrets-out", str(workdir / "secrets"), "--json"]
    return subprocess.Popen([sys.executable, "-c", PTOOL, *argv], cwd=workdir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env())


def _env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HILPROV_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def finish(proc: subprocess.Popen) -> tuple[int, list[dict], str]:
    out, err = proc.communicate(timeout=300)
    results = json.loads(out)["results"] if out.strip() else []
    return proc.returncode, results, err


def test_three_stations_with_two_boards_each_share_one_database(tmp_path, postgres_server,
                                                               postgres_url):
    procs = {name: station(tmp_path / name, postgres_url, name, "sim", "sim")
             for name in ("S1", "S2", "S3")}
    done = {name: finish(proc) for name, proc in procs.items()}
    for name, (code, results, err) in done.items():
        assert code == 0, f"{name}: {err}"
        assert [r["outcome"] for r in results] == ["registered"] * 2
    rows = RecordStore(postgres_url).query()
    assert len(rows) == 6
    assert {r["outcome"] for r in rows} == {"registered"}
    assert sorted(r["station"] for r in rows) == ["S1", "S1", "S2", "S2", "S3", "S3"]
    assert len({r["endpoint"] for r in rows}) == 6
    assert len({r["psk_identity_sha256"] for r in rows}) == 6
    assert all(r["exit_code"] == 0 and r["finished_at"] for r in rows)

    # Another station with one of those units on its board: refused before the upload.
    taken = done["S1"][1][0]["endpoint"]
    imei = taken.removeprefix("anjay-zephyr-demo-")
    code, [again], err = finish(station(tmp_path / "S2b", postgres_url, "S2", f"sim:{imei}"))
    assert code == AlreadyProvisionedError.exit_code, err
    assert f"endpoint {taken} was already provisioned (registered) at station S1" in err
    steps = {s["name"]: s["status"] for s in again["steps"]}
    assert steps["read-endpoint"] == "failed" and steps["upload"] == "pending"
    assert not list((tmp_path / "S2b").glob("secrets/*"))  # no key was even made for it

    # `hilprov records` lists them all, naming the database without its password.
    listed = subprocess.run([sys.executable, "-c", HILPROV, "records", "--records",
                             postgres_url], capture_output=True, text=True, timeout=120,
                            env=_env(), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    table = listed.stdout.splitlines()[1:]
    assert len(table) == 7 and sum("registered" in line for line in table) == 6
    assert {line.split()[2] for line in table} == {"S1", "S2", "S3"}
    assert "7 attempt(s) in postgresql://hilprov:***@" in listed.stderr
    assert postgres_server.password not in listed.stdout + listed.stderr

    # A dump of the whole database holds no key, in any spelling.
    dump = subprocess.run([postgres_server.tool("pg_dump"), postgres_url], capture_output=True,
                          timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert b"CREATE TABLE" in dump.stdout and taken.encode() in dump.stdout
    keys = [json.loads(p.read_text())["psk_key_hex"]
            for p in tmp_path.glob("S*/secrets/*.psk.json")]
    assert len(keys) == 6
    for key in keys:
        raw = bytes.fromhex(key)
        for form in (key.encode(), key.upper().encode(), raw, base64.b64encode(raw)):
            assert form not in dump.stdout


def test_two_stations_racing_for_one_unit_provision_it_once(tmp_path, postgres_url):
    """The same unit (a pinned IMEI) on two stations at the same moment: one provisions it, the
    other is refused by the database (busy, or already provisioned, by who won the race)."""
    unit = "sim:490154203237518"
    procs = [station(tmp_path / name, postgres_url, name, unit) for name in ("S1", "S2")]
    done = [finish(proc) for proc in procs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, AlreadyProvisionedError.exit_code], [err for _, _, err in done]
    loser = next(err for code, _, err in done if code)
    assert ("is being provisioned right now at station" in loser
            or "was already provisioned (registered) at station" in loser)
    rows = RecordStore(postgres_url).query()
    assert sorted(r["outcome"] for r in rows) == ["failed", "registered"]
    [failed] = [r for r in rows if r["outcome"] == "failed"]
    assert failed["current_step"] == "read-endpoint"
    assert "upload" not in {s["name"] for s in json.loads(failed["steps"])}


def test_a_database_down_at_start_stops_the_run_before_any_board(tmp_path, postgres_server):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    url = postgres_server.url("line", port=closed)
    code, results, err = finish(station(tmp_path / "S1", url, "S1", "sim"))
    assert code == 12 and results == []
    assert "records error" in err and "cannot connect" in err
    assert postgres_server.password not in err
    assert not (tmp_path / "S1" / "hilprov-logs").exists()  # no board was opened


@pytest.mark.parametrize("bad", ["mysql://h/db", "sqlite:///"])
def test_a_records_target_that_is_no_database_is_a_usage_error(bad, capsys):
    from hilprov.cli import ptool_main

    with pytest.raises(SystemExit) as info:
        ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "--records", bad])
    assert info.value.code == 2 and "--records" in capsys.readouterr().err


def test_a_url_password_is_never_shown():
    from hilprov.settings import Settings
    from hilprov.station.database import PostgresDatabase, display, parse_target

    url = "postgresql://line:s3cr%40t@db.example:5433/records?sslmode=require&password=other"
    shown = display(url)
    assert shown == ("postgresql://line:***@db.example:5433/records?sslmode=require"
                     "&password=***")
    assert "s3cr" not in repr(Settings(records=url)) and "other" not in repr(Settings(records=url))
    assert PostgresDatabase(url).scrub("token 's3cr@t' / s3cr%40t / other") == (
        "token '***' / *** / ***")
    assert parse_target(url) == url and str(parse_target("sqlite:///r.sqlite")) == "r.sqlite"
    assert str(parse_target("sqlite:////abs/r.sqlite")) == "/abs/r.sqlite"


def test_a_password_in_a_url_the_driver_cannot_parse_is_not_shown(capsys):
    """psycopg quotes a URL it cannot parse in its error, password and all."""
    from hilprov.cli import main

    bad = "postgresql://u:TopSecret1@[bad/db"
    assert main(["records", "--records", bad]) == 12
    err = capsys.readouterr().err
    assert "TopSecret1" not in err and "postgresql://***" in err, err


def test_a_url_without_a_host_keeps_its_slashes_when_shown():
    from hilprov.station.target import display

    assert display("postgresql:///line?host=/run/pg&password=pw") == (
        "postgresql:///line?host=/run/pg&password=***")


def test_the_plugin_records_into_postgresql_named_by_the_environment(pytester, postgres_url,
                                                                    monkeypatch):
    """HILPROV_RECORDS and HILPROV_STATION as an end-of-line PC sets them. The plugin provisions
    a unit again by default (the suite does, test after test); HILPROV_REPROVISION=0 makes the
    records refuse it."""
    (pytester.path / "configs").mkdir()
    (pytester.path / "configs" / "endpoint_cfg").write_text(
        (CONFIGS / "endpoint_cfg").read_text())
    pytester.makepyfile("""
        import json, pytest

        @pytest.mark.hil
        @pytest.mark.parametrize("n", [1, 2])
        def test_provision(provision, n):
            result = provision(check=False).result
            with open("outcomes.jsonl", "a") as out:
                out.write(json.dumps([result.outcome, result.error_kind]) + "\\n")
    """)
    monkeypatch.setenv("HILPROV_RECORDS", postgres_url)
    monkeypatch.setenv("HILPROV_STATION", "eol-3")
    pytester.runpytest("--board=sim:490154203237518").assert_outcomes(passed=2)
    monkeypatch.setenv("HILPROV_REPROVISION", "0")
    pytester.runpytest("--board=sim:490154203237518").assert_outcomes(passed=2)
    outcomes = [json.loads(line) for line in
                (pytester.path / "outcomes.jsonl").read_text().splitlines()]
    assert outcomes == [["registered", None]] * 2 + [["failed", "already provisioned"]] * 2
    rows = RecordStore(postgres_url).query()
    assert [(r["station"], r["source"], r["outcome"]) for r in rows] == (
        [("eol-3", "pytest", "registered")] * 2 + [("eol-3", "pytest", "failed")] * 2)
