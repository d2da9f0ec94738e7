"""The pytest plugin, tested with pytester: options, markers, skips, fixtures, reports, records."""

import sqlite3
import xml.etree.ElementTree as ET

import pytest

from hilprov.sim import imei
from tests import CONFIGS

PINNED_IMEI = "351234567890124"

HIL_TESTS = """
import pytest

@pytest.mark.hil
def test_needs_board(hil_board):
    assert hil_board.port

@pytest.mark.hil_real
def test_real_only(hil_board):
    pass

@pytest.mark.hil_sim
def test_sim_only(hil_board):
    assert hil_board.kind == "sim"

def test_plain():
    pass
"""


@pytest.fixture()
def configs_here(pytester):
    """The suite's default --hil-endpoint-cfg is configs/endpoint_cfg, relative to the run."""
    (pytester.path / "configs").mkdir()
    for name in ("endpoint_cfg", "endpoint_cfg_nosec", "cert_info.json"):
        (pytester.path / "configs" / name).write_text((CONFIGS / name).read_text())
    return pytester


def test_help_lists_one_hilprov_group_with_every_option(pytester):
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    assert "hilprov: hardware-in-the-loop provisioning:" in out
    for option in ("--board", "--hil-port", "--hil-baudrate", "--hil-image-dir",
                   "--hil-endpoint-cfg", "--hil-cert-info", "--hil-profile", "--hil-logdir",
                   "--hil-records", "--hil-require-board", "--coiote-server"):
        assert option in out
    for generic in ("--port ", "--count ", "--build-dir "):
        assert generic not in out


def test_markers_are_registered_for_strict_markers(pytester):
    pytester.makepyfile(HIL_TESTS)
    result = pytester.runpytest("--strict-markers", "--markers")
    for marker in ("hil:", "hil_real:", "hil_sim:", "cloud:", "destructive:"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}*"])


def test_without_a_board_hil_tests_skip_with_a_reason_and_the_run_passes(pytester):
    pytester.makepyfile(HIL_TESTS)
    result = pytester.runpytest("--strict-markers", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["*no board: give --board SNR (a J-Link serial) or --board sim*"])
    assert result.ret == 0


def test_require_board_turns_the_skips_into_failures(pytester):
    pytester.makepyfile(HIL_TESTS)
    result = pytester.runpytest("--hil-require-board")
    result.assert_outcomes(passed=1, errors=3)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--hil-require-board: no board*"])


def test_require_board_also_from_the_environment(pytester, monkeypatch):
    pytester.makepyfile(HIL_TESTS)
    monkeypatch.setenv("HILPROV_REQUIRE_BOARD", "1")
    assert pytester.runpytest().ret != 0


def test_virtual_board_runs_hil_and_sim_tests_and_skips_real_only(pytester):
    pytester.makepyfile(HIL_TESTS)
    result = pytester.runpytest("--board", "sim", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*needs a real board*"])


@pytest.mark.parametrize("source", ["env", "ini"])
def test_board_from_environment_or_ini(pytester, monkeypatch, source):
    pytester.makepyfile(HIL_TESTS)
    if source == "env":
        monkeypatch.setenv("HILPROV_BOARD", "sim")
    else:
        pytester.makeini("[pytest]\nhil_board = sim\n")
    pytester.runpytest().assert_outcomes(passed=3, skipped=1)


@pytest.mark.parametrize("workers", ["3", "auto"])
def test_more_workers_than_real_boards_is_a_usage_error_that_echoes_what_was_typed(
        pytester, monkeypatch, workers):
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")  # what -n auto resolves to
    pytester.makepyfile(HIL_TESTS)
    result = pytester.runpytest_subprocess("-n", workers, "--board", "960012345",
                                           "--board", "960012346")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*-n {workers}: 3 pytest-xdist workers but 2 --board "
                                 "value(s)*"])


def test_dut_expects_on_the_console_and_failures_carry_the_serial_log(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_prompt(hil_dut):
            hil_dut.write(b"\\n")
            hil_dut.expect_exact("uart:~$", timeout=5)

        @pytest.mark.hil
        def test_missing_line(hil_dut):
            hil_dut.write(b"\\n")
            hil_dut.expect("this never appears", timeout=0.3)
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--board", "sim", f"--junitxml={junit}",
                                "-o", "junit_logging=all")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "pattern 'this never appears' did not appear within 0.3 s" in out
    assert "Full log:" in out and "test_missing_line" in out
    failed = [case for case in ET.parse(junit).iter("testcase")
              if case.get("name") == "test_missing_line"][0]
    system_out = failed.find("system-out").text
    assert "serial log" in system_out and "uart:~$" in system_out


def test_provisioned_endpoint_reports_properties_and_records(configs_here):
    configs_here.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_provision(provisioned_endpoint):
            text = repr(provisioned_endpoint)
            assert "redacted" in text and b"3x@mpl3" not in text.encode()
            assert provisioned_endpoint.result.outcome == "registered"
    """)
    junit = configs_here.path / "junit.xml"
    result = configs_here.runpytest(f"--board=sim:{PINNED_IMEI}", f"--junitxml={junit}",
                                    "--hil-records", "rec.sqlite")
    result.assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert props["board"] == "sim"
    assert props["endpoint"] == f"anjay-zephyr-demo-{PINNED_IMEI}"
    assert props["result"] == "registered"
    assert "upload" in props["durations"]
    rows = sqlite3.connect(configs_here.path / "rec.sqlite").execute(
        "SELECT board, endpoint, outcome, source FROM attempts").fetchall()
    assert rows == [("sim", f"anjay-zephyr-demo-{PINNED_IMEI}", "registered", "pytest")]


def test_failed_provisioning_fails_the_fixture_with_the_step_and_reason(configs_here):
    (configs_here.path / "configs" / "endpoint_cfg").write_text(
        (CONFIGS / "endpoint_cfg").read_text().replace("'U'", "'u'"))
    configs_here.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_provision(provisioned_endpoint):
            pass
    """)
    result = configs_here.runpytest("--board", "sim", "--hil-endpoint-cfg", "configs/endpoint_cfg")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*provisioning failed at check-config: validation failed*"])


def test_two_workers_get_two_boards_and_both_are_recorded(configs_here):
    configs_here.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_provision(provisioned_endpoint, hil_board):
            assert provisioned_endpoint.result.board == hil_board.name
    """)
    result = configs_here.runpytest_subprocess("-n", "2", "--dist", "each", "--board", "sim",
                                               "--board", "sim", "--hil-records", "rec.sqlite")
    result.assert_outcomes(passed=2)
    rows = sqlite3.connect(configs_here.path / "rec.sqlite").execute(
        "SELECT board, endpoint, outcome FROM attempts ORDER BY board").fetchall()
    assert [(board, outcome) for board, _, outcome in rows] == [("sim-1", "registered"),
                                                               ("sim-2", "registered")]
    imeis = [endpoint.removeprefix("anjay-zephyr-demo-") for _, endpoint, _ in rows]
    assert len(set(imeis)) == 2 and all(imei.valid(i) for i in imeis)  # two distinct devices


def test_the_sessions_psk_options_do_not_stop_a_test_that_provisions_another_mode(pytester):
    """--hil-psk-identity/--hil-psk-key are defaults for PSK-mode provisioning: a test that gives
    its own Certificate-mode config is not a usage error (its PSK test still gets them)."""
    pytester.makepyfile("""
        from importlib.resources import files

        import pytest

        SAMPLES = files("hilprov.samples")

        @pytest.mark.hil
        def test_cert(provision):
            endpoint = provision(endpoint_cfg=SAMPLES / "endpoint_cfg_cert",
                                 cert_info=SAMPLES / "cert_info.json")
            assert endpoint.result.security_mode == "cert"

        @pytest.mark.hil
        def test_psk(provision):
            endpoint = provision()
            assert endpoint.result.security_mode == "psk"
            assert endpoint.result.psk_identity_sha256 is not None
    """)
    result = pytester.runpytest("--board", "sim", "--hil-psk-identity", "{endpoint}",
                                "--hil-psk-key", "random")
    result.assert_outcomes(passed=2)


def test_a_board_that_cannot_be_reached_is_one_line_naming_the_fixture(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.hil
        def test_console(hil_dut):
            pass
    """)
    result = pytester.runpytest("--board", "960012345")  # this station has no J-Link software
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "hil_dut: SEGGER J-Link software is missing" in out, out
    assert "During handling of the above exception" not in out
