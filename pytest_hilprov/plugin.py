"""pytest plugin for hilprov: options, start-up checks, markers and report hooks; fixtures are
in `fixtures.py`, the console in `dut.py`, the logic in `support.py` and `hilprov`.

Options come from the one settings table (`hilprov.settings`) and live in one group, "hilprov",
each also settable in ini and by an environment variable. Only `--board` has no prefix;
everything else is `--hil-*` or `--coiote-*`, so this plugin can sit next to pytest-embedded,
twister-harness or labgrid without option or fixture clashes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hilprov import settings as table
from hilprov.errors import HilprovError
from hilprov.settings import Settings
from pytest_hilprov import fixtures, support
from pytest_hilprov.keys import ENDPOINT_KEY, PORT_KEY, SETTINGS_KEY

MARKERS = {
    "hil": "needs a board (real or virtual): skipped without --board, an error with "
           "--hil-require-board",
    "hil_real": "needs a real board (skipped on --board sim)",
    "hil_sim": "virtual board only (e.g. blobs a real device must never get)",
    "cloud": "needs Coiote: --coiote-server + COIOTE_TOKEN, or the local server with --board sim",
    "destructive": "erases the device: on a real board it runs only with "
                   "--hil-allow-destructive",
}

PYTEST_HELP = {
    "board": "J-Link serial number of the board under test, 'sim' for a virtual board, or "
             "labgrid:PLACE for a board on a labgrid place; repeat with pytest-xdist to give "
             "each worker its own real board (sim scales by itself)",
    "port": "serial port (pyserial URL); overrides the probe's VCOM; alone: a device that "
            "already runs the initial image",
    "baudrate": "baud rate, default 115200",
    "endpoint_cfg": "endpoint config to provision, default: the packaged endpoint_cfg_line "
                    "(PSK, every unit its own identity and key)",
    "cert_info": "cert_info.json for Certificate-mode tests",
    "server_cert": "LwM2M server certificate for Certificate-mode tests (virtual boards: made "
                   "by the plugin)",
    "profile": "device profile to validate against, default anjay-zephyr",
    "log_dir": "serial logs, one file per test and board, default hilprov-logs",
    "records": "device records database: a SQLite file or postgresql://HOST/DB, default "
               "hilprov-records.sqlite",
    "station": "this station's name in the records, default the host name",
    "reprovision": "on by default in the plugin (the end-of-line suite provisions a unit "
                   "several times): 0/false refuses an endpoint the records show provisioned",
    "server": "Coiote server JSON (url, port, domain); the token only from $COIOTE_TOKEN",
    "secrets_out": "keep device secrets (private keys, saved PSKs, virtual flash) in DIR "
                   "instead of a private temporary directory removed at the end",
}

ALIASES = {"board": "hil_board", "dut": "hil_dut", "provision": "hil_provision"}
"""Generic fixture names, offered only where no other plugin already has them."""


def _dest(name: str) -> str:
    return f"hilprov_{name}"


def option_help(name: str, spec: table.Spec) -> str:
    """The plugin's help for a setting, its default written out (pytest's help is not argparse's
    %-template)."""
    return PYTEST_HELP.get(name, spec.help).replace("%(default)s", str(table.default(name)))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hilprov", "hilprov: hardware-in-the-loop provisioning")
    for name, spec in table.pytest_settings():
        help_text = f"{option_help(name, spec)} [{spec.env}, ini {spec.ini}]"
        kwargs: dict = {"dest": _dest(name), "help": help_text.replace("%", "%%")}
        if spec.kind == "flag":  # --hil-x and --no-hil-x: a flag that is on by default can be
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)  # turned off
        else:
            kwargs["metavar"] = spec.metavar
            if spec.kind == "list":
                kwargs["action"] = "append"
        group.addoption(spec.pytest, **kwargs)
        ini_type = {"list": "linelist", "flag": "bool"}.get(spec.kind, "string")
        parser.addini(spec.ini, help=option_help(name, spec).replace("%", "%%"),
                      type=ini_type, default=[] if ini_type == "linelist" else None)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    specs = table.pytest_settings()
    cli = {name: config.getoption(_dest(name)) for name, _spec in specs}
    ini = {name: config.getini(spec.ini) for name, spec in specs}
    try:
        settings = table.from_sources(cli, ini)
        check_inputs(settings)
    except HilprovError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    check_workers(config, settings)
    config.pluginmanager.register(fixtures, "hilprov-fixtures")


def check_inputs(settings: Settings) -> None:
    """The files the options name exist and parse, at start-up: one usage error naming the
    option, rather than every test failing on its own. (A config that parses but that the
    device profile refuses is not a usage error: the tests that provision it fail.)"""
    from hilprov.core.certs import load_cert_info, load_certificate
    from hilprov.core.config import load_config

    checks = [("endpoint_cfg", load_config), ("cert_info", load_cert_info),
              ("server_cert", load_certificate), ("server", _server_info)]
    for name, load in checks:
        value = getattr(settings, name)
        if value is not None:
            try:
                load(value)
            except HilprovError as exc:
                raise table.SettingError(f"{table.spec(name).pytest}: {exc}") from None
    if settings.image_dir is not None and not Path(settings.image_dir).is_dir():
        raise table.SettingError(f"--hil-image-dir {settings.image_dir}: not a directory")


def _server_info(path):
    from hilprov.cloud.coiote import load_server_info

    return load_server_info(path)


def check_workers(config: pytest.Config, settings: Settings) -> None:
    """Real boards: one --board per xdist worker. Plain `sim` boards scale with any -n."""
    workers = getattr(config.option, "numprocesses", None)
    if not isinstance(workers, int) or workers <= 1 or not settings.board:
        return
    if all(board == "sim" for board in settings.board) or workers <= len(settings.board):
        return
    typed = _typed_workers(config.invocation_params.args)
    raise pytest.UsageError(f"{typed}: {workers} pytest-xdist workers but "
                            f"{len(settings.board)} --board value(s): give one --board per "
                            "worker (or use virtual boards, --board sim, which scale)")


def _typed_workers(args) -> str:
    """`-n VALUE` as the user typed it (e.g. `-n auto`)."""
    args = list(args)
    for index, arg in enumerate(args):
        if arg in ("-n", "--numprocesses") and index + 1 < len(args):
            return f"{arg} {args[index + 1]}"
        if arg.startswith(("-n", "--numprocesses=")) and len(arg) > 2:
            return arg
    return "-n"


@pytest.hookimpl(trylast=True)  # after pytest has made its fixture manager
def pytest_sessionstart(session: pytest.Session) -> None:
    offer_aliases(session)


def offer_aliases(session: pytest.Session) -> None:
    """Register `board`, `dut` and `provision` as aliases of the hil_ fixtures, each only if no
    other plugin (pytest-embedded, twister's harness) already provides that name."""
    manager = getattr(session, "_fixturemanager", None)
    if manager is None:
        return
    for alias, target in ALIASES.items():
        if not manager.getfixturedefs(alias, session):
            session.config.pluginmanager.register(_alias(alias, target), f"hilprov-{alias}")


def _alias(alias: str, target: str):
    def fixture(self, request: pytest.FixtureRequest):
        return request.getfixturevalue(target)

    # the docstring before decorating: `pytest --fixtures` reads the function's own
    fixture.__doc__ = f"The same as {target} (offered because no other plugin has it)."

    class Alias:
        pass

    Alias.fixture = pytest.fixture(name=alias)(fixture)
    return Alias()


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[SETTINGS_KEY]
    boards = ", ".join(settings.board) or (settings.port or "none")
    return f"hilprov: board(s) {boards}, profile {settings.profile}"


def pytest_runtest_setup(item: pytest.Item) -> None:
    settings = item.config.stash[SETTINGS_KEY]

    def marked(name: str) -> bool:
        return item.get_closest_marker(name) is not None

    needs_board = marked("hil") or marked("hil_real") or marked("hil_sim")
    if needs_board and not settings.has_board:
        reason = "no board: give --board SNR (a J-Link serial) or --board sim"
        if settings.require_board:
            pytest.fail(f"--hil-require-board: {reason}", pytrace=False)
        pytest.skip(reason)
    if marked("hil_real") and (settings.all_sim or not settings.has_board):
        pytest.skip("needs a real board (this run uses virtual boards)")
    if marked("hil_sim") and settings.has_board and not settings.all_sim:
        pytest.skip("virtual board only")
    if marked("cloud") and settings.server is None and not settings.all_sim:
        pytest.skip("needs Coiote: give --coiote-server JSON and $COIOTE_TOKEN")
    if marked("destructive") and settings.has_board and not settings.all_sim \
            and not settings.allow_destructive:
        pytest.skip("destructive (erases the device): give --hil-allow-destructive to run it "
                    "on a real board")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if call.when in ("setup", "call"):
        endpoint = item.stash.get(ENDPOINT_KEY, None)
        if endpoint is not None:
            _record_properties(item, endpoint)
        port = item.stash.get(PORT_KEY, None)
        failed_setup = call.when == "setup" and call.excinfo is not None
        if port is not None and (call.when == "call" or failed_setup):
            text = "\n".join(port.tail(400))
            item.add_report_section(call.when, "log", f"serial log {port.log_path}\n{text}")
    report = yield
    return report


def _record_properties(item: pytest.Item, endpoint: support.Endpoint) -> None:
    result = endpoint.result
    failed = next((s.name for s in result.steps if s.status == "failed"), None)
    props = {"board": result.board, "endpoint": endpoint.name, "result": str(result.outcome),
             "outcome": str(result.outcome), "failed_step": failed,
             "error_kind": result.error_kind, "security_mode": endpoint.security_mode,
             "attempt": result.attempt, "durations": json.dumps(endpoint.step_seconds)}
    kept = [(k, v) for k, v in item.user_properties if k not in props]  # the latest attempt
    item.user_properties[:] = kept + [(k, "" if v is None else v) for k, v in props.items()]
