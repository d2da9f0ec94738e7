"""What the pytest plugin needs, kept out of pytest's hooks: which board a worker gets, the Coiote
a session uses, provisioning as a test step, and the endpoint a test sees. Usable from any test
runner or station script; `plugin.py` only wires it to pytest."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hilprov.board import registry
from hilprov.board.base import Board
from hilprov.board.serial import SerialPort
from hilprov.cloud import coiote
from hilprov.core.files import safe_name
from hilprov.errors import ConfigError
from hilprov.settings import Settings
from hilprov.station import cloud as clouds
from hilprov.station.flow import FlowObserver, FlowResult, ProvisioningFlow, RunOptions

__all__ = ["Endpoint", "Mcumgr", "ProvisioningFailed", "board_for_worker", "coiote_access",
           "open_board", "provision", "safe_name"]

LOG_LINES_SHOWN = 15  # console lines a provisioning failure shows


def board_for_worker(boards: list[str], worker: str | None, workers: int) -> str:
    """xdist worker `gwN` gets the N-th board; without xdist the first one. Plain virtual
    boards (`sim`) scale with the workers: every worker gets its own, whatever `-n` is."""
    if not boards:
        raise ConfigError("no --board given")
    index = int(worker[2:]) if worker and re.fullmatch(r"gw\d+", worker) else 0
    if all(board == registry.SIM for board in boards):
        return registry.SIM
    if workers > len(boards):
        raise ConfigError(f"{workers} pytest-xdist workers but {len(boards)} board(s): give one "
                          "--board per worker (e.g. -n 2 --board A --board B)")
    return boards[index]


def open_board(settings: Settings, spec: str | None, *, cloud: clouds.CloudTarget | None = None,
               state_dir: Path | None = None, sim_number: int = 1) -> Board:
    """The Board for one spec (probe serial or `sim`, numbered `sim_number`), or the
    `--hil-port` device."""
    options = settings.board_options(state_root=state_dir, first_sim=sim_number,
                                     cloud=cloud.view() if cloud is not None else None)
    board = registry.open_boards([spec] if spec else [], options)[0]
    if board.kind == "sim" and len(settings.board) > 1:
        board.name = f"sim-{sim_number}"  # one of several: numbered like the CLI does
    return board


@contextlib.contextmanager
def coiote_access(settings: Settings, environ=os.environ) -> Iterator[clouds.CloudTarget]:
    """The session's Coiote: real with --coiote-server and COIOTE_TOKEN, else a local server."""
    if settings.server is not None:
        token = environ.get(coiote.TOKEN_ENV)
        if not token:
            raise ConfigError(f"--coiote-server {settings.server} needs the token in "
                              f"${coiote.TOKEN_ENV}")
        with clouds.remote_coiote(settings.server, token) as target:
            yield target
        return
    with clouds.local_coiote() as target:
        yield target


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
    def outcome(self) -> str:
        """"registered", "provisioned", "failed", … (as the repr shows it)."""
        return str(self.result.outcome)

    @property
    def step_seconds(self) -> dict[str, float]:
        return {s.name: round(s.seconds, 3) for s in self.result.steps if s.status == "ok"}

    def __repr__(self) -> str:
        return (f"Endpoint(name={self.name!r}, security_mode={self.security_mode!r}, "
                f"cert_fingerprint={self.cert_fingerprint!r}, outcome={self.result.outcome!r}, "
                f"blob=<{len(self.blob)} bytes, redacted>)")


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunOptions)}


class ProvisioningFailed(pytest.fail.Exception):
    """A provisioning step failed: the test fails with the step, the error kind and exit code,
    the problems, the last console lines and the log path — no traceback of hilprov's code."""

    def __init__(self, endpoint: Endpoint, port: SerialPort | None = None) -> None:
        self.endpoint = endpoint
        result = endpoint.result
        lines = [f"provisioning failed at {result.current_step or '?'}: {result.error_kind} "
                 f"(exit {result.exit_code}): {result.error}"]
        problems = getattr(result.exception, "problems", None) or []
        lines += [f"  {problem}" for problem in problems[:20]]
        if port is not None:
            tail = port.tail(LOG_LINES_SHOWN)
            if tail:
                lines.append(f"last {len(tail)} console line(s):")
                lines += [f"  | {line}" for line in tail]
            lines.append(f"serial log: {port.log_path}")
        super().__init__("\n".join(lines), pytrace=False)


class Mcumgr:
    """SMP file transfer and echo on the board's console, for tests (`hil_smp`)."""

    def __init__(self, port: SerialPort) -> None:
        from hilprov.board.smp import SmpFileClient

        self.client = SmpFileClient(port)

    def upload(self, data: bytes | str | Path, remote: str, **kwargs) -> None:
        payload = data if isinstance(data, bytes) else Path(data).read_bytes()
        self.client.upload(payload, remote, **kwargs)

    def download(self, remote: str, **kwargs) -> bytes:
        return self.client.download(remote, **kwargs)

    def params(self):
        return self.client.params()

    def echo(self, text: str) -> str:
        return self.client.echo(text)[0]


def provision(board: Board, settings: Settings, *, port: SerialPort | None = None,
              cloud: clouds.CloudTarget | None, observers: list[FlowObserver] = (),
              log_dir: Path | None = None, secrets_dir: Path | None = None,
              history=None, test_node: str | None = None, endpoint_cfg: Path | None = None,
              cert_info: Path | None = None,
              server_cert: Path | None = None, psk_identity: str | None = None,
              psk_key: str | None = None, erase: bool = True, profile: str | None = None,
              flash_final: bool = True, **run: object) -> Endpoint:
    """Run the provisioning flow on `board` as a test step; never raises for device outcomes
    (the Endpoint's result says what happened), only for bugs. Certificates and keys it makes
    go to `secrets_dir`, never to the log directory. `run` sets RunOptions fields."""
    unknown = set(run) - _RUN_FIELDS
    if unknown:
        raise TypeError(f"provision() got unknown options: {', '.join(sorted(unknown))}")
    inputs = settings.inputs("pytest", endpoint_cfg=endpoint_cfg, cert_info=cert_info,
                             server_cert=server_cert, profile=profile,
                             psk_identity=psk_identity, psk_key=psk_key,
                             # a test's own config: the session's PSK options only if it is PSK
                             psk_defaults=endpoint_cfg is not None and psk_identity is None
                             and psk_key is None)
    secrets_dir = secrets_dir or settings.secrets_out
    options = settings.run_options(
        erase=erase, cert_dir=Path(secrets_dir or (log_dir or settings.log_dir)) / "cert",
        **({"until": "onboard"} if not flash_final else {}), **run)
    flow = ProvisioningFlow(board, inputs, options, cloud=cloud, observers=list(observers),
                            log_dir=log_dir, port=port, history=history, test_node=test_node)
    result = flow.run()
    blob = flow.build.blob if flow.build is not None else b""
    return Endpoint(result.endpoint, result.security_mode, result.cert_fingerprint, result, blob)
