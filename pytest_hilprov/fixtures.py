"""The plugin's fixtures. Every one has a `hil_` name, so hilprov sits beside pytest-embedded,
twister's harness and labgrid without taking their `dut`/`board`; the generic names are offered
as aliases only where no other plugin has them (see `plugin.offer_aliases`)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from hilprov.errors import HilprovError
from hilprov.settings import Settings
from hilprov.station.records import RecordStore, RecordWriter
from pytest_hilprov import support
from pytest_hilprov.dut import Dut
from pytest_hilprov.keys import ENDPOINT_KEY, PORT_KEY, SETTINGS_KEY


def _xdist_worker(config: pytest.Config) -> tuple[str | None, int]:
    """(worker id, worker count) of this pytest-xdist worker, or (None, 1)."""
    info = getattr(config, "workerinput", None)
    if not info:
        return None, 1
    return info.get("workerid"), int(info.get("workercount", 1))


@pytest.fixture(scope="session")
def hil_settings(pytestconfig: pytest.Config) -> Settings:
    """The merged hilprov options (CLI, then environment, then ini, then defaults)."""
    return pytestconfig.stash[SETTINGS_KEY]


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
    """Where this session's device secrets go (private keys of generated certificates, the
    virtual boards' flash, saved PSKs): --hil-keep-secrets DIR, else a private temporary
    directory (0700), outside the working and log directories (which CI uploads), removed at
    the end."""
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
    """Writes one row per provisioning attempt to the records database (never a secret); a
    database that cannot be reached fails the tests that provision, before they provision."""
    store = RecordStore(hil_settings.records, station=hil_settings.station)
    try:
        store.ensure_schema()
    except HilprovError as exc:
        pytest.fail(f"hil_records: {exc}", pytrace=False)
    return RecordWriter(store, source="pytest")


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
def hil_server_cert(hil_settings: Settings, hil_secrets_dir: Path) -> Path | None:
    """The LwM2M server certificate for Certificate mode: --hil-server-cert, or, for virtual
    boards, one made here (their server accepts it)."""
    if hil_settings.server_cert is not None or not hil_settings.all_sim:
        return hil_settings.server_cert
    from hilprov.core.certs import generate_self_signed

    path = hil_secrets_dir / "lwm2m-server.der"
    if not path.exists():
        path.write_bytes(generate_self_signed({"commonName": "eu.iot.avsystem.cloud"},
                                              None).cert_der)
    return path


@pytest.fixture(scope="session")
def hil_board(pytestconfig: pytest.Config, hil_settings: Settings, coiote,
              hil_secrets_dir: Path):
    """The board under test for this session (this xdist worker's): real or virtual;
    `hil_board.flashed` is the image this session last put on it."""
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
        raise pytest.fail.Exception(f"hil_board: {exc}", pytrace=False) from None
    yield opened
    opened.close()


@pytest.fixture
def hil_dut(request: pytest.FixtureRequest, hil_board, hil_run_dir: Path,
            hil_settings: Settings) -> Dut:
    """The board's console for this test: `expect(pattern | [patterns], timeout,
    not_matching=..., exact=...)`, `expect_exact`, `expect_all`, `shell(cmd)`, `write`, `tail`,
    `log_path` (one log file per test and board)."""
    from hilprov.board.serial import SerialPort

    log_path = (hil_run_dir / support.safe_name(request.node.nodeid)
                / f"{support.safe_name(hil_board.name)}.log")
    try:
        port = SerialPort(hil_board.port, hil_board.baudrate, log_path=log_path,
                          name=hil_board.name)
    except HilprovError as exc:  # one line, not a chain of two exceptions
        raise pytest.fail.Exception(f"hil_dut: {exc}", pytrace=False) from None
    request.node.stash[PORT_KEY] = port
    yield Dut(port, timeout=hil_settings.expect_timeout, board=hil_board)
    port.close()


@pytest.fixture
def hil_smp(hil_dut: Dut):
    """The device's SMP (MCUmgr) channel on the console: `upload(data, path)`,
    `download(path)`, `echo(text)`, `params()` — like twister's `mcumgr`."""
    return support.Mcumgr(hil_dut.port)


@pytest.fixture
def hil_provision(request: pytest.FixtureRequest, hil_board, hil_dut: Dut,
                  hil_settings: Settings, coiote, hil_records, hil_run_dir: Path,
                  hil_secrets_dir: Path, hil_server_cert):
    """Run the provisioning flow on the board as a test step: `hil_provision(endpoint_cfg=...,
    cert_info=..., server_cert=..., psk_identity=..., psk_key=..., erase=True,
    flash_final=True, check=True)` returns an Endpoint; a provisioning that fails fails the test
    (with the step, the error and the log tail) unless `check=False`."""
    def run(*, check: bool = True, **kwargs) -> support.Endpoint:
        if hil_server_cert is not None:
            kwargs.setdefault("server_cert", hil_server_cert)
        endpoint = support.provision(hil_board, hil_settings, port=hil_dut.port, cloud=coiote,
                                     observers=[hil_records], log_dir=hil_run_dir,
                                     secrets_dir=hil_secrets_dir, history=hil_records.store,
                                     test_node=request.node.nodeid, **kwargs)
        request.node.stash[ENDPOINT_KEY] = endpoint
        if check and not endpoint.ok:
            raise support.ProvisioningFailed(endpoint, hil_dut.port)
        return endpoint
    return run


@pytest.fixture
def provisioned_endpoint(hil_provision) -> support.Endpoint:
    """The board provisioned with --hil-endpoint-cfg: name, security mode, blob, certificate
    fingerprint, result and step timings (secrets redacted in its repr). A failure errors the
    test in setup."""
    return hil_provision()
