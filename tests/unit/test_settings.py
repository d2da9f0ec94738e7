"""One table of settings: the CLI's flags and the plugin's options, ini keys and environment
variables all come from it, and a bad value is a usage error that names the option."""

import dataclasses
import json

import pytest

from hilprov import settings
from hilprov.cli import main, ptool_main
from hilprov.cli.parsers import build_ptool_parser
from hilprov.samples import sample
from hilprov.settings import SettingError, Settings, from_cli, from_sources
from hilprov.station.flow import STEP_NAMES
from tests import CONFIGS


def test_every_setting_is_declared_once_with_help_and_a_front_end():
    for field in dataclasses.fields(Settings):
        spec = field.metadata["spec"]
        assert spec.help, field.name
        assert spec.cli or spec.pytest, f"{field.name} is on no front end"


def test_the_plugin_spellings_are_derived_from_the_option():
    assert settings.spec("board").env == "HILPROV_BOARD"
    assert settings.spec("board").ini == "hil_board"
    assert settings.spec("port").env == "HILPROV_PORT"
    assert settings.spec("port").ini == "hil_port"
    assert settings.spec("server").ini == "coiote_server"
    assert settings.spec("server").env == "HILPROV_COIOTE_SERVER"


def test_cli_defaults_and_conversions_come_from_the_table():
    args = build_ptool_parser().parse_args(["-c", "cfg", "--board", "sim", "--baudrate", "9600"])
    parsed = from_cli(args)
    assert parsed.endpoint_cfg.name == "cfg" and parsed.board == ["sim"]
    assert parsed.baudrate == 9600 and parsed.profile == "anjay-zephyr"
    assert str(parsed.records) == "hilprov-records.sqlite"


@pytest.mark.parametrize("argv, option, accepted", [
    (["--profile", "anjay-zephr"], "--profile", "anjay-zephyr, lwm2m"),
    (["--until", "uplaod"], "--until", ", ".join(STEP_NAMES)),
    (["--baudrate", "fast"], "--baudrate", "whole number"),
    (["--board", "simm"], "--board", "<J-Link serial number>"),
])
def test_a_bad_cli_value_is_exit_2_naming_the_option_and_what_it_accepts(argv, option, accepted,
                                                                         capsys):
    with pytest.raises(SystemExit) as info:
        ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and accepted in err
    assert "Traceback" not in err


def test_plugin_settings_prefer_option_then_environment_then_ini():
    env = {"HILPROV_PROFILE": "lwm2m", "HILPROV_BAUDRATE": "9600"}
    ini = {"profile": "anjay-zephyr", "baudrate": "19200", "log_dir": "ini-logs"}
    got = from_sources({"baudrate": "38400"}, ini, env)
    assert (got.baudrate, got.profile, str(got.log_dir)) == (38400, "lwm2m", "ini-logs")
    assert got.endpoint_cfg == sample("endpoint_cfg_line")  # the plugin's own default


@pytest.mark.parametrize("cli, env, source", [
    ({"profile": "anjay-zephr"}, {}, "--hil-profile"),
    ({}, {"HILPROV_PROFILE": "anjay-zephr"}, "HILPROV_PROFILE"),
])
def test_a_bad_plugin_value_names_the_option_and_where_it_came_from(cli, env, source):
    with pytest.raises(SettingError) as info:
        from_sources(cli, {}, env)
    message = str(info.value)
    assert message.startswith("--hil-profile: 'anjay-zephr' is not one of anjay-zephyr, lwm2m")
    assert f"(from {source})" in message
    assert info.value.exit_code == 2


def test_a_bad_plugin_value_is_a_usage_error_at_start_up(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--hil-profile", "anjay-zephr")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hil-profile: 'anjay-zephr' is not one of anjay-zephyr, "
                                 "lwm2m*"])


def test_a_plugin_flag_that_is_on_by_default_can_be_turned_off_on_the_command_line(pytester):
    pytester.makeconftest("""
        from pytest_hilprov.keys import SETTINGS_KEY

        def pytest_report_header(config):
            return f"reprovision={config.stash[SETTINGS_KEY].reprovision}"
    """)
    pytester.makepyfile("def test_x():\n    pass\n")
    assert "reprovision=True" in pytester.runpytest().stdout.str()
    off = pytester.runpytest("--no-hil-reprovision")
    assert off.ret == 0 and "reprovision=False" in off.stdout.str()


def test_until_upload_stops_after_the_upload_and_the_record_says_so(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim", "--until", "upload",
            "--json"]
    assert ptool_main(argv) == 0
    out = capsys.readouterr()
    assert "local Coiote" not in out.err  # nothing will be onboarded: none is started
    [result] = json.loads(out.out)["results"]
    steps = {s["name"]: (s["status"], s["detail"]) for s in result["steps"]}
    assert result["outcome"] == "stopped" and result["stopped_after"] == "upload"
    assert steps["upload"][0] == "ok"
    assert steps["read-result"] == ("skipped", "not run: stopped after upload (--until upload)")
    assert main(["records", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["outcome"] == "stopped"
    recorded = {s["name"]: s["detail"] for s in row["steps"]}
    assert recorded["onboard"] == "not run: stopped after upload (--until upload)"


def test_the_board_flow_on_a_virtual_board_ends_registered(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert ptool_main(["-c", str(CONFIGS / "endpoint_cfg"), "--board", "sim", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert result["outcome"] == "registered"
    assert [s["status"] for s in result["steps"]] == ["ok"] * len(STEP_NAMES)


def test_plugin_messages_name_plugin_options_and_say_whose_the_others_are(tmp_path):
    from hilprov.core import plan
    from hilprov.errors import ConfigError

    server = tmp_path / "server.der"
    server.write_bytes(b"")  # never read: the endpoint pair is missing first
    inputs = Settings().inputs("pytest", endpoint_cfg=CONFIGS / "endpoint_cfg_cert",
                               server_cert=server)
    with pytest.raises(ConfigError) as caught:
        plan.prepare(inputs)
    assert "--hil-cert-info" in str(caught.value)
    assert "ptool's -r FILE" in str(caught.value) and "ptool's -k FILE" in str(caught.value)
