"""The plugin as a test engineer uses it: a small suite in a directory of its own (pytester's
temporary directory is outside this repository), failures that fail, start-up checks, the
console helpers, pytest-embedded in the same environment, and records that know their test."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from hilprov.cli import main

USER_SUITE = '''
import re
import pytest

@pytest.mark.hil
def test_provisioned_unit_registers(provisioned_endpoint, hil_dut, coiote):
    assert provisioned_endpoint.result.outcome == "registered"
    hit = hil_dut.expect_exact(["uart:~$", "never printed"], timeout=10)
    assert hit.index == 0
    assert coiote.find_device(provisioned_endpoint.name)["securityMode"] == "psk"

@pytest.mark.hil
def test_shell_and_smp(provision, hil_dut, hil_smp):
    endpoint = provision(flash_final=False)
    assert endpoint.result.outcome == "provisioned"
    assert hil_dut.shell("kernel version") == "Zephyr version 3.4.99"
    assert "kernel uptime" in hil_dut.shell("help")
    assert hil_smp.echo("hello") == "hello"
    hil_smp.upload(b"payload", "/lfs1/x.bin")
    assert hil_smp.download("/lfs1/x.bin") == b"payload"

@pytest.mark.hil
def test_expect_patterns(hil_board, hil_dut):
    initial, _final = hil_board.default_images
    hil_board.flash(initial, erase=True)
    got = hil_dut.expect([r"Initializing Anjay (\\S+)", "Halting"], timeout=10)
    assert got.group(1) == "3.11.0" and "Booting" in got.before
    lines = hil_dut.expect_all([r"object /2", r"object /1"], timeout=10)
    assert [r.index for r in lines] == [0, 1]
'''


def test_a_user_suite_outside_the_repository_passes_on_virtual_boards(pytester, monkeypatch):
    pytester.makepyfile(test_user=USER_SUITE)
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")
    for argv in (["--board", "sim"], ["-n", "auto", "--board", "sim"],
                 ["-n", "2", "--board", "sim", "--board", "sim"]):
        result = pytester.runpytest_subprocess(*argv, "--hil-records", "rec.sqlite")
        result.assert_outcomes(passed=3)
    nodes = {row[0] for row in sqlite3.connect(pytester.path / "rec.sqlite").execute(
        "SELECT test_node FROM attempts")}
    assert nodes == {"test_user.py::test_provisioned_unit_registers",
                     "test_user.py::test_shell_and_smp"}


FAILING = '''
import pytest

@pytest.mark.hil
def test_in_the_test(hil_provision):
    hil_provision(endpoint_cfg="bad_cfg")

@pytest.mark.hil
def test_in_setup(provisioned_endpoint):
    pass

@pytest.mark.hil
def test_asked_for_the_outcome(hil_provision):
    endpoint = hil_provision(endpoint_cfg="bad_cfg", check=False)
    assert endpoint.result.error_kind == "validation failed"
'''


def test_a_provisioning_failure_fails_its_test_with_the_step_the_error_and_the_log(pytester):
    bad = ('{0: {1: {0: "coaps://x:5684", 2: 0, 3: b"id", 5: b"key", 10: 1}},'
           ' 1: {1: {0: 1, 1: 60, 6: False, 7: "u"}}}')
    (pytester.path / "bad_cfg").write_text(bad)
    pytester.makepyfile(test_failing=FAILING)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--board", "sim", "--hil-endpoint-cfg", "bad_cfg",
                                f"--junitxml={junit}", "-o", "junit_logging=all")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    out = result.stdout.str()
    assert "provisioning failed at check-config: validation failed (exit 4)" in out
    assert "incorrect binding mode 'u'" in out  # the problem itself, not only a count
    assert "Traceback" not in out and "support.py" not in out
    cases = {case.get("name"): case for case in ET.parse(junit).iter("testcase")}
    for name in ("test_in_the_test", "test_in_setup"):
        props = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
        assert props["board"] == "sim" and props["outcome"] == "failed"
        assert props["failed_step"] == "check-config"
        assert props["error_kind"] == "validation failed"
        assert "endpoint" in props
        assert "serial log" in (cases[name].find("system-out").text or "")


def test_provision_failure_after_flashing_shows_the_console_tail(pytester):
    pytester.makepyfile('''
        import pytest

        @pytest.mark.hil
        def test_twice(hil_provision):
            hil_provision(flash_final=False)
            hil_provision(erase=False)
    ''')
    result = pytester.runpytest("--board", "sim")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*provisioning failed at wait-ready: already provisioned "
                                 "(exit 10)*", "*last * console line(s):*", "*| *",
                                 "*serial log: *"])


@pytest.mark.parametrize("argv, says", [
    (["--hil-endpoint-cfg", "missing_cfg"], "--hil-endpoint-cfg: missing_cfg: cannot read"),
    (["--hil-endpoint-cfg", "broken_cfg"], "--hil-endpoint-cfg: broken_cfg:1:"),
    (["--hil-profile", "anjay-zephr"], "--hil-profile: 'anjay-zephr' is not one of"),
    (["--hil-image-dir", "no_such_dir"], "--hil-image-dir no_such_dir: not a directory"),
    (["--hil-server-cert", "missing.der"], "--hil-server-cert: missing.der: cannot read"),
    (["--hil-cert-info", "missing.json"], "--hil-cert-info: missing.json: cannot read"),
])
def test_bad_inputs_are_one_usage_error_at_start_up(pytester, argv, says):
    (pytester.path / "broken_cfg").write_text("{0: {1: ")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--board", "sim", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str()


def test_certificate_mode_on_a_virtual_board_gets_its_server_certificate_made(pytester):
    from tests import CONFIGS

    pytester.makepyfile(f'''
        import pytest

        @pytest.mark.hil
        def test_cert(hil_provision):
            endpoint = hil_provision(endpoint_cfg={str(CONFIGS / "endpoint_cfg_cert")!r},
                                     cert_info={str(CONFIGS / "cert_info.json")!r})
            assert endpoint.result.outcome == "registered"

        @pytest.mark.hil
        def test_cert_without_cert_info(hil_provision):
            hil_provision(endpoint_cfg={str(CONFIGS / "endpoint_cfg_cert")!r})
    ''')
    result = pytester.runpytest("--board", "sim")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "give --hil-cert-info" in out and "-C JSON" not in out  # pytest's own options


def test_pytest_embedded_keeps_its_dut_and_hilprov_its_hil_names(pytester):
    pytest.importorskip("pytest_embedded")
    pytester.makepyfile('''
        import pytest

        def test_their_dut(request):
            fixture = request._fixturemanager.getfixturedefs("dut", request.node)[-1]
            assert fixture.func.__module__.startswith("pytest_embedded")

        @pytest.mark.hil
        def test_our_fixtures(hil_dut, board, provision):
            assert type(hil_dut).__module__ == "pytest_hilprov.dut"
            assert board.kind == "sim" and callable(provision)
    ''')
    result = pytester.runpytest("--board", "sim", "-p", "pytest_embedded")
    result.assert_outcomes(passed=2)
    listing = pytester.runpytest("--fixtures", "--board", "sim").stdout.str()
    duts = [line for line in listing.splitlines() if re.match(r"dut\b", line)]
    assert len(duts) == 1 and "pytest_embedded" in duts[0]  # only pytest-embedded's


def test_without_another_plugin_the_generic_names_are_aliases(pytester):
    pytester.makepyfile('''
        import pytest

        @pytest.mark.hil
        def test_aliases(dut, board, hil_dut, hil_board):
            assert dut is hil_dut and board is hil_board
    ''')
    result = pytester.runpytest("--board", "sim", "-p", "no:pytest_embedded")
    result.assert_outcomes(passed=1)


def test_expect_fails_at_once_on_unwanted_output_and_has_a_default_timeout(pytester):
    pytester.makepyfile('''
        import pytest

        from pytest_hilprov.dut import UnwantedOutput

        @pytest.mark.hil
        def test_unwanted(hil_board, hil_dut):
            hil_board.flash(hil_board.default_images[0], erase=True)
            # Synchronise on the shell first: a boot in progress when the port opened may
            # still print anything. The answer to a command comes only after it is sent.
            hil_dut.shell("kernel uptime", timeout=60)
            hil_dut.write("kernel version\\r\\n")
            with pytest.raises(UnwantedOutput) as info:  # not the 60 s timeout: at once
                hil_dut.expect("never printed", timeout=60, not_matching=["Zephyr version"])
            assert "unwanted output 'Zephyr version'" in str(info.value)

        @pytest.mark.hil
        def test_default_timeout(hil_dut):
            with pytest.raises(Exception) as info:
                hil_dut.expect("never printed")
            assert "within 0.5 s" in str(info.value)
    ''')
    result = pytester.runpytest("--board", "sim", "--hil-expect-timeout", "0.5")
    result.assert_outcomes(passed=2)


DESTRUCTIVE = '''
import pytest

@pytest.mark.destructive
def test_erases():
    pass
'''


@pytest.mark.parametrize("argv, outcome", [
    (["--board", "960012345"], "skipped"),
    (["--board", "960012345", "--hil-allow-destructive"], "passed"),
    (["--board", "sim"], "passed"),
])
def test_destructive_tests_need_an_opt_in_on_real_boards(pytester, argv, outcome):
    pytester.makepyfile(DESTRUCTIVE)
    result = pytester.runpytest(*argv, "-rs")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "skipped":
        result.stdout.fnmatch_lines(["*give --hil-allow-destructive*"])


def test_records_can_be_filtered_by_the_test_that_made_them(pytester, capsys):
    pytester.makepyfile('''
        import pytest

        @pytest.mark.hil
        @pytest.mark.parametrize("n", [1, 2])
        def test_unit(provisioned_endpoint, n):
            pass

        @pytest.mark.hil
        def test_other(provisioned_endpoint):
            pass
    ''')
    pytester.runpytest_subprocess("--board", "sim", "--hil-records",
                                  "rec.sqlite").assert_outcomes(passed=3)
    records = str(pytester.path / "rec.sqlite")
    capsys.readouterr()  # what pytester printed
    assert main(["records", "--records", records, "--test", "test_records_can_be_filtered_by_"
                 "the_test_that_made_them.py::test_unit", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["test_node"].split("::")[1] for r in rows) == ["test_unit[1]",
                                                                   "test_unit[2]"]


def test_labgrids_plugin_keeps_its_fixtures_and_hilprov_works_beside_it(pytester):
    """labgrid's plugin (env, target, strategy, --lg-*) and hilprov's in one run. (Beside
    pytest-embedded, labgrid's plugin skips every test of any project: both define `target`;
    that is between those two.)"""
    pytest.importorskip("labgrid")
    pytester.makepyfile('''
        import pytest

        def test_theirs(request):
            [env] = request._fixturemanager.getfixturedefs("env", request.node)
            assert env.func.__module__.startswith("labgrid")

        @pytest.mark.hil
        def test_ours(provisioned_endpoint, hil_dut, board):
            assert provisioned_endpoint.result.outcome == "registered"
            assert board.kind == "sim"
    ''')
    result = pytester.runpytest_subprocess("--board", "sim", "-p", "labgrid",
                                           "-p", "no:pytest_embedded")
    result.assert_outcomes(passed=2)
