"""pytest plugin for hilprov: options, fixtures, markers and report hooks; the logic is in
`pytest_hilprov.support`, `hilprov.station` and `hilprov.settings`.

Options come from the one settings table (`hilprov.settings`) and live in one group, "hilprov",
each also settable in ini and by an environment variable. Only `--board` has no prefix;
everything else is `--hil-*` or `--coiote-*`, so this plugin can sit next to pytest-embedded,
twister-harness or pytest-repeat without option clashes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from hilprov import settings as table
from hilprov.errors import HilprovError
from hilprov.settings import Settings
from hilprov.station.records import RecordStore, RecordWriter
from pytest_hilprov import support

SETTINGS_KEY = pytest.StashKey[Settings]()
PORT_KEY = pytest.StashKey[object]()
ENDPOINT_KEY = pytest.StashKey[support.Endpoint]()

MARKERS = {
    "hil": "needs a board (real or virtual): skipped without --board, an error with "
           "--hil-require-board",
    "hil_real": "needs a real board (skipped on --board sim)",
    "hil_sim": "virtual board only (e.g. blobs a real device must never get)",
    "cloud": "needs Coiote: --coiote-server + COIOTE_TOKEN, or the local server with --board sim",
    "destructive": "erases the device",
}

PYTEST_HELP = {
    "board": "J-Link serial number of the board under test, 'sim' for a virtual board, or "
             "labgrid:PLACE for a board on a labgrid place; repeat with pytest-xdist to give "
             "each worker its own board",
    "port": "serial port (pyserial URL); overrides the probe's VCOM; alone: a device that "
            "already runs the initial image",
    "baudrate": "baud rate, default 115200",
    "endpoint_cfg": "endpoint config to provision, default configs/endpoint_cfg",
    "cert_info": "cert_info.json for Certificate-mode tests",
    "server_cert": "LwM2M server certificate for Certificate-mode tests",
    "profile": "device profile to validate against, default anjay-zephyr",
    "log_dir": "serial logs, one file per test and board, default hilprov-logs",
    "records": "device records database, default hilprov-records.sqlite",
    "server": "Coiote server JSON (url, port, domain); the token only from $COIOTE_TOKEN",
}


def _dest(name: str) -> str:
    return f"hilprov_{name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hilprov", "hilprov: hardware-in-the-loop provisioning")
    for name, spec in table.pytest_settings():
        help_text = f"{PYTEST_HELP.get(name, spec.help)} [{spec.env}, ini {spec.ini}]"
        kwargs: dict = {"dest": _dest(name), "help": help_text.replace("%", "%%")}
        if spec.kind == "flag":
            kwargs.update(action="store_true", default=None)
        else:
            kwargs["metavar"] = spec.metavar
            if spec.kind == "list":
                kwargs["action"] = "append"
        group.addoption(spec.pytest, **kwargs)
        ini_type = {"list": "linelist", "flag": "bool"}.get(spec.kind, "string")
        parser.addini(spec.ini, help=PYTEST_HELP.get(name, spec.help).replace("%", "%%"),
                      type=ini_type, default=[] if ini_type == "linelist" else None)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    specs = table.pytest_settings()
    cli = {name: config.getoption(_dest(name)) for name, _spec in specs}
    ini = {name: config.getini(spec.ini) for name, spec in specs}
    try:
        settings = table.from_sources(cli, ini)
    except HilprovError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1 and settings.board \
            and workers > len(settings.board):
        raise pytest.UsageError(f"-n {workers} pytest-xdist workers but {len(settings.board)} "
                                "--board value(s): give one --board per worker")


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    port = item.stash.get(PORT_KEY, None)
    endpoint = item.stash.get(ENDPOINT_KEY, None)
    if call.when == "call":
        if endpoint is not None:
            _record_properties(item, endpoint)
        if port is not None:
            text = "\n".join(port.tail(400))
            item.add_report_section("call", "log", f"serial log {port.log_path}\n{text}")
    report = yield
    return report


def _record_properties(item: pytest.Item, endpoint: support.Endpoint) -> None:
    result = endpoint.result
    props = {"board": result.board, "endpoint": endpoint.name, "result": str(result.outcome),
             "security_mode": endpoint.security_mode,
             "durations": json.dumps(endpoint.step_seconds)}
    existing = {k for k, _v in item.user_properties}
    for key, value in props.items():
        if key not in existing:
            item.user_properties.append((key, value))


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hil_settings(pytestconfig: pytest.Config) -> Settings:
    """The merged hilprov options (CLI, then environment, then ini, then defaults)."""
    return pytestconfig.stash[SETTINGS_KEY]


def _xdist_worker(config: pytest.Config) -> tuple[str | None, int]:
    """(worker id, worker count) of this pytest-xdist worker, or (None, 1)."""
    info = getattr(config, "workerinput", None)
    if not info:
        return None, 1
    return info.get("workerid"), int(info.get("workercount", 1))


@pytest.fixture(scope="session")
def hil_run_dir(pytestconfig: pytest.Config, hil_settings: Settings) -> Path:
    """This session's log directory (one per xdist worker)."""
    worker = _xdist_worker(pytestconfig)[0] or "main"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(hil_settings.log_dir) / f"{stamp}-{os.getpid()}-{worker}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def hil_secrets_dir(hil_settings: Settings):
    """Where this session's device secrets go (private keys of generated certificates, saved
    PSKs): --hil-keep-secrets DIR, else a private temporary directory (0700), outside the working
    and log directories (which CI uploads), removed at the end."""
    if hil_settings.secrets_out is not None:
        from hilprov.station.secrets import private_dir

        yield private_dir(hil_settings.secrets_out)
        return
    path = Path(tempfile.mkdtemp(prefix="hilprov-secrets-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def hil_records(hil_settings: Settings) -> RecordWriter:
    """Writes one row per provisioning attempt to the records database (never a secret)."""
    return RecordWriter(RecordStore(hil_settings.records), source="pytest")


@pytest.fixture(scope="session")
def coiote(hil_settings: Settings):
    """A Coiote client: the real one with --coiote-server and $COIOTE_TOKEN, else a local
    Coiote-compatible server. `find_device(ep)` / `delete_device(ep)` help tests clean up."""
    try:
        with support.coiote_access(hil_settings) as access:
            yield access
    except HilprovError as exc:
        pytest.fail(f"coiote: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def board(pytestconfig: pytest.Config, hil_settings: Settings, coiote, hil_secrets_dir: Path):
    """The board under test for this session (this xdist worker's): real or virtual;
    `board.flashed` is the image this session last put on it."""
    if not hil_settings.has_board:
        pytest.skip("no board: give --board SNR or --board sim")
    worker, workers = _xdist_worker(pytestconfig)
    try:
        spec = (support.board_for_worker(hil_settings.board, worker, workers)
                if hil_settings.board else None)
        number = int(worker[2:]) + 1 if worker and worker[2:].isdigit() else 1
        opened = support.open_board(hil_settings, spec, sim_number=number, cloud=coiote,
                                    state_dir=hil_settings.sim_state or hil_secrets_dir / "sim")
    except HilprovError as exc:
        pytest.fail(f"board: {exc}", pytrace=False)
    yield opened
    opened.close()


@pytest.fixture
def dut(request: pytest.FixtureRequest, board, hil_run_dir: Path):
    """The board's console for this test: `expect(regex, timeout)`, `expect_exact(text,
    timeout)`, `write(bytes)`, `tail(n)`, `log_path` (one log file per test and board)."""
    from hilprov.board.serial import SerialPort

    log_path = (hil_run_dir / support.safe_name(request.node.nodeid)
                / f"{support.safe_name(board.name)}.log")
    try:
        port = SerialPort(board.port, board.baudrate, log_path=log_path, name=board.name)
    except HilprovError as exc:
        pytest.fail(f"dut: {exc}", pytrace=False)
    request.node.stash[PORT_KEY] = port
    yield port
    port.close()


@pytest.fixture
def provision(request: pytest.FixtureRequest, board, dut, hil_settings, coiote, hil_records,
              hil_run_dir: Path, hil_secrets_dir: Path):
    """Run the provisioning flow on the board as a test step: `provision(endpoint_cfg=...,
    cert_info=..., server_cert=..., psk_identity=..., psk_key=..., erase=True,
    flash_final=True)` returns an Endpoint whose `result` says what happened (it does not raise
    for device outcomes)."""
    def run(**kwargs) -> support.Endpoint:
        endpoint = support.provision(board, hil_settings, port=dut, cloud=coiote,
                                     observers=[hil_records], log_dir=hil_run_dir,
                                     secrets_dir=hil_secrets_dir,
                                     history=hil_records.store, **kwargs)
        request.node.stash[ENDPOINT_KEY] = endpoint
        return endpoint
    return run


@pytest.fixture
def provisioned_endpoint(provision) -> support.Endpoint:
    """The board provisioned with --hil-endpoint-cfg: name, security mode, blob, certificate
    fingerprint, result and step timings (secrets redacted in its repr)."""
    endpoint = provision()
    if not endpoint.ok:
        pytest.fail(f"provisioning failed at {endpoint.result.current_step or '?'}: "
                    f"{endpoint.result.error_kind}: {endpoint.result.error}", pytrace=False)
    return endpoint
