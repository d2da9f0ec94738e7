"""What the pytest plugin needs, kept out of pytest: settings from CLI/env/ini, which board a
worker gets, the Coiote access object, provisioning as a test step, and the endpoint summary.

Usable from any test runner or station script; `pytest_hilprov` only wires it to pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from hilprov.board.base import Board
from hilprov.cloud import coiote
from hilprov.errors import ConfigError
from hilprov.station.flow import FlowObserver, FlowOptions, FlowResult, ProvisioningFlow
from hilprov.station.runner import SIM, make_boards, resolve_images

# name -> (environment variable, default). CLI beats environment beats ini beats default.
SETTINGS: dict[str, tuple[str, object]] = {
    "board": ("HILPROV_BOARD", []),
    "hil_port": ("HILPROV_PORT", None),
    "hil_baudrate": ("HILPROV_BAUDRATE", 115200),
    "hil_image_dir": ("HILPROV_IMAGE_DIR", None),
    "hil_endpoint_cfg": ("HILPROV_ENDPOINT_CFG", "configs/endpoint_cfg"),
    "hil_cert_info": ("HILPROV_CERT_INFO", None),
    "hil_server_cert": ("HILPROV_SERVER_CERT", None),
    "hil_profile": ("HILPROV_PROFILE", "anjay-zephyr"),
    "hil_logdir": ("HILPROV_LOGDIR", "hilprov-logs"),
    "hil_records": ("HILPROV_RECORDS", "hilprov-records.sqlite"),
    "hil_require_board": ("HILPROV_REQUIRE_BOARD", False),
    "hil_emulate_baud": ("HILPROV_EMULATE_BAUD", False),
    "coiote_server": ("HILPROV_COIOTE_SERVER", None),
}

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class HilSettings:
    boards: list[str] = field(default_factory=list)
    port: str | None = None
    baudrate: int = 115200
    image_dir: Path | None = None
    endpoint_cfg: Path = Path("configs/endpoint_cfg")
    cert_info: Path | None = None
    server_cert: Path | None = None
    profile: str = "anjay-zephyr"
    logdir: Path = Path("hilprov-logs")
    records: Path = Path("hilprov-records.sqlite")
    require_board: bool = False
    emulate_baud: bool = False
    coiote_server: Path | None = None

    @property
    def has_board(self) -> bool:
        return bool(self.boards) or self.port is not None

    @property
    def all_sim(self) -> bool:
        return bool(self.boards) and all(b == SIM for b in self.boards)


def resolve_settings(cli: dict, ini: dict, environ=os.environ) -> HilSettings:
    """Merge the sources: `cli` holds the parsed options (None/empty when not given), `ini`
    the ini values (None/empty when not set)."""
    def pick(name: str):
        env_name, default = SETTINGS[name]
        value = cli.get(name)
        if value not in (None, [], False):
            return value
        if environ.get(env_name):
            raw = environ[env_name]
            if name == "board":
                return [b.strip() for b in raw.split(",") if b.strip()]
            if isinstance(default, bool):
                return raw.strip().lower() in _TRUE
            return raw
        value = ini.get(name)
        if value not in (None, [], ""):
            if isinstance(default, bool) and isinstance(value, str):
                return value.strip().lower() in _TRUE
            return value
        return default

    def path(value):
        return Path(value) if value not in (None, "") else None

    try:
        baudrate = int(pick("hil_baudrate"))
    except ValueError:
        raise ConfigError(f"--hil-baudrate: not a number: {pick('hil_baudrate')!r}") from None
    return HilSettings(
        boards=list(pick("board")), port=pick("hil_port"), baudrate=baudrate,
        image_dir=path(pick("hil_image_dir")), endpoint_cfg=Path(pick("hil_endpoint_cfg")),
        cert_info=path(pick("hil_cert_info")), server_cert=path(pick("hil_server_cert")),
        profile=pick("hil_profile"), logdir=Path(pick("hil_logdir")),
        records=Path(pick("hil_records")), require_board=bool(pick("hil_require_board")),
        emulate_baud=bool(pick("hil_emulate_baud")),
        coiote_server=path(pick("coiote_server")))


def board_for_worker(boards: list[str], worker: str | None, workers: int) -> str:
    """xdist worker `gwN` gets the N-th board; without xdist the first one."""
    if not boards:
        raise ConfigError("no --board given")
    if workers > len(boards):
        raise ConfigError(f"{workers} pytest-xdist workers but {len(boards)} board(s): give one "
                          "--board per worker (e.g. -n 2 --board A --board B)")
    index = int(worker[2:]) if worker and re.fullmatch(r"gw\d+", worker) else 0
    return boards[index]


def open_board(settings: HilSettings, spec: str | None, *, registrar=None,
               state_dir: Path | None = None, sim_number: int = 1) -> Board:
    """The Board for one spec (probe serial or `sim`, numbered `sim_number`), or the
    `--hil-port` device."""
    specs = [spec] if spec else []
    boards = make_boards(specs, port=settings.port, baudrate=settings.baudrate,
                         emulate_baud=settings.emulate_baud, registrar=registrar,
                         state_root=state_dir, first_sim=sim_number)
    board = boards[0]
    if board.kind == "sim" and len(settings.boards) > 1:
        board.name = f"sim-{sim_number}"  # one of several: numbered like the CLI does
    return board


# -- Coiote ---------------------------------------------------------------------------------------
class CoioteAccess:
    """The Coiote a test run onboards into: the real one (server JSON + COIOTE_TOKEN) or a local
    Coiote-compatible server. Helpers find and delete devices so tests clean up after themselves."""

    def __init__(self, client: coiote.CoioteClient, domain: str, *, local=None,
                 server_info: Path | None = None) -> None:
        self.client = client
        self.domain = domain
        self.local = local  # hilprov.sim.coiote_server.CoioteServer or None
        self.server_info = server_info

    def __repr__(self) -> str:
        where = self.local.url if self.local else str(self.server_info)
        return f"CoioteAccess({where!r}, domain={self.domain!r})"

    def find_device(self, endpoint: str) -> dict | None:
        return self.client.find_device(endpoint)

    def delete_device(self, endpoint: str) -> bool:
        return self.client.delete_by_endpoint(endpoint)

    def registrar(self):
        """For virtual boards: register only if this Coiote knows the device."""
        if self.local is None:
            return None
        from hilprov.sim.cloud import coiote_registrar

        return coiote_registrar(self.local)


@contextlib.contextmanager
def coiote_access(settings: HilSettings, environ=os.environ):
    """Yield CoioteAccess: real with --coiote-server and COIOTE_TOKEN, else a local server."""
    if settings.coiote_server is not None:
        token = environ.get(coiote.TOKEN_ENV)
        if not token:
            raise ConfigError(f"--coiote-server {settings.coiote_server} needs the token in "
                              f"${coiote.TOKEN_ENV}")
        info = coiote.load_server_info(settings.coiote_server)
        with coiote.CoioteClient(info.base_url, token) as client:
            yield CoioteAccess(client, info.domain, server_info=settings.coiote_server)
        return
    with local_coiote() as access:
        yield access


@contextlib.contextmanager
def local_coiote():
    """A local Coiote-compatible server with a fresh random token, and a client for it."""
    from hilprov.sim.coiote_server import CoioteServer

    token = secrets.token_hex(16)
    with CoioteServer(token=token) as server, \
            coiote.CoioteClient(server.url, token, timeout=5.0) as client:
        yield CoioteAccess(client, "/embedded/", local=server)


# -- provisioning as a test step ------------------------------------------------------------------
@dataclass
class Endpoint:
    """A provisioned endpoint as tests see it. No secret is kept here: the blob holds the PSK or
    private key, so it is available only as `blob` and never shown in the repr."""

    name: str | None
    security_mode: str | None
    cert_fingerprint: str | None
    result: FlowResult
    blob: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def step_seconds(self) -> dict[str, float]:
        return {s.name: round(s.seconds, 3) for s in self.result.steps if s.status == "ok"}

    def __repr__(self) -> str:
        return (f"Endpoint(name={self.name!r}, security_mode={self.security_mode!r}, "
                f"cert_fingerprint={self.cert_fingerprint!r}, outcome={self.result.outcome!r}, "
                f"blob=<{len(self.blob)} bytes, redacted>)")


def provision(board: Board, settings: HilSettings, *, port=None, coiote: CoioteAccess | None,
              observers: list[FlowObserver] = (), log_dir: Path | None = None,
              endpoint_cfg: Path | None = None, cert_info: Path | None = None,
              server_cert: Path | None = None, erase: bool = True, profile: str | None = None,
              **flow_kwargs) -> Endpoint:
    """Run the provisioning flow on `board` as a test step; never raises for device outcomes
    (the Endpoint's result says what happened), only for bugs."""
    options = FlowOptions(
        endpoint_cfg=Path(endpoint_cfg or settings.endpoint_cfg),
        cert_info=cert_info if cert_info is not None else settings.cert_info,
        scert=server_cert if server_cert is not None else settings.server_cert,
        profile=profile or settings.profile, erase_initial=erase,
        cert_dir=(log_dir or settings.logdir) / "cert", **flow_kwargs)
    if coiote is not None:
        options.coiote_client = coiote.client
        options.coiote_domain = coiote.domain
    resolve_images(options, settings.image_dir, board.kind == "sim")
    flow = ProvisioningFlow(board, options, observers=list(observers), log_dir=log_dir,
                            port=port)
    result = flow.run()
    blob = flow.fp.blob if flow.fp is not None and flow.fp.blob else b""
    return Endpoint(result.endpoint, result.security_mode, result.cert_fingerprint, result, blob)


def safe_name(text: str) -> str:
    """A file-system-safe name for a test node id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]
