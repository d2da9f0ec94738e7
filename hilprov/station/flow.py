"""The station flow of spec §5.4: a list of steps over a board, a plan and an optional cloud.

check-config → flash-initial → wait-ready → read-endpoint → build-blob → upload → read-result →
onboard → flash-final → wait-restored → wait-registered

Each step has a name, an action, a rule for when it is skipped (and why), a timeout, a typed error
and a line in the attempt's record. The config is checked before the board is touched, so a bad
config never erases a device. Without a board the same sequence runs with the board's steps
skipped: the blob is built and written, as the seed tool does. `until` stops after any step.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from hilprov.board.base import Board, image_sha256
from hilprov.core import plan, profile
from hilprov.core.files import safe_name, write_atomic
from hilprov.core.lwm2m import SecurityMode
from hilprov.errors import (
    AlreadyProvisionedError,
    BoardError,
    ConfigError,
    DeviceRejectedError,
    EndpointBusyError,
    EndpointMismatchError,
    HilprovError,
    Interrupted,
    NotRegisteredError,
    TransferError,
)
from hilprov.station import app, secrets
from hilprov.station.plans import PlanSource
from hilprov.station.states import Outcome, StepStatus
from hilprov.station.steps import STEP_NAMES

if TYPE_CHECKING:  # a run without a board needs none of these (start-up time)
    from hilprov.board import smp
    from hilprov.board.serial import SerialPort
    from hilprov.station.cloud import CloudTarget

log = logging.getLogger(__name__)

DEFAULT_BLOB = Path("SenMLCBOR")  # where a run without a board writes the blob (the seed's name)


@dataclass
class Timeouts:
    """Seconds each waiting step may take (defaults cover a real nRF9160 DK with LTE attach)."""

    ready: float = 60.0
    prompt: float = 5.0
    smp: float = 5.0
    result: float = 45.0  # result.txt blocks until Anjay finishes (spec §5.3: 15 s idle EOF)
    restored: float = 60.0
    registered: float = 180.0


def reaches(until: str | None, step: str) -> bool:
    """Whether a run stopped after `until` (None: not stopped) gets to `step`."""
    return until is None or STEP_NAMES.index(until) >= STEP_NAMES.index(step)


@dataclass(frozen=True)
class RunOptions:
    """How the flow runs on each board; the what (plan) and the where to onboard (cloud) are
    given separately."""

    initial_hex: Path | None = None  # default: the board's own images (virtual boards)
    final_hex: Path | None = None
    erase: bool = True  # False: flash the initial image without a chip erase
    endpoint_name: str | None = None  # -e: must match the device unless force_endpoint
    force_endpoint: bool = False
    until: str | None = None  # stop after this step
    output: Path | None = None  # also write the blob here (it holds secrets: mode 0600)
    cert_dir: Path = Path("cert")  # generated certificates; per endpoint with a board
    secrets_out: Path | None = None  # save generated secrets here (0700 dir, 0600 files)
    replace_cloud_device: bool = False  # delete the endpoint's Coiote device before onboarding
    reprovision: bool = False  # provision an endpoint the records show provisioned already
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class StepRecord:
    """How one step of one attempt went."""

    name: str
    status: StepStatus = StepStatus.PENDING
    seconds: float = 0.0
    detail: str = ""


@dataclass
class FlowResult:
    """What happened on one board; what records and `--json` report. Never holds a secret."""

    board: str
    board_kind: str
    attempt: str = field(default_factory=lambda: os.urandom(16).hex())  # unique: 128 random bits
    port: str | None = None
    flasher: str | None = None  # the tool that flashes the board (nrfutil, pynrfjprog)
    endpoint: str | None = None
    security_mode: str | None = None
    cert_fingerprint: str | None = None
    psk_identity_sha256: str | None = None  # never the identity itself, never the key
    blob_size: int | None = None
    images: dict[str, str] = field(default_factory=dict)  # initial/final -> sha256
    coiote: str | None = None  # created / already registered
    steps: list[StepRecord] = field(default_factory=list)
    outcome: Outcome = Outcome.IN_PROGRESS
    error_kind: str | None = None
    error: str | None = None
    exit_code: int = 0
    log_path: str | None = None
    stopped_after: str | None = None  # --until
    written: list[str] = field(default_factory=list)  # files written (blob, certificates)
    test_node: str | None = None  # the pytest node id that ran this attempt
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return Outcome(self.outcome).ok

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    @property
    def current_step(self) -> str | None:
        """The step running or failed, if any."""
        return next((s.name for s in self.steps
                     if s.status in (StepStatus.RUNNING, StepStatus.FAILED)), None)

    def as_dict(self) -> dict:
        return {
            "attempt": self.attempt, "board": self.board, "board_kind": self.board_kind,
            "port": self.port, "flasher": self.flasher,
            "endpoint": self.endpoint, "security_mode": self.security_mode,
            "cert_fingerprint": self.cert_fingerprint,
            "psk_identity_sha256": self.psk_identity_sha256, "blob_size": self.blob_size,
            "images": self.images, "coiote": self.coiote, "outcome": str(self.outcome),
            "error_kind": self.error_kind, "error": self.error, "exit_code": self.exit_code,
            "log_path": self.log_path, "stopped_after": self.stopped_after,
            "written": self.written, "test_node": self.test_node,
            "seconds": round(self.seconds, 3),
            "steps": [{"name": s.name, "status": str(s.status), "seconds": round(s.seconds, 3),
                       "detail": s.detail} for s in self.steps],
        }


class FlowObserver:
    """Hooks for progress output and device records; every method is optional."""

    def run_started(self, result: FlowResult) -> None: ...

    def step_started(self, result: FlowResult, step: StepRecord) -> None: ...

    def step_finished(self, result: FlowResult, step: StepRecord) -> None: ...

    def run_finished(self, result: FlowResult) -> None: ...

    def transfer(self, result: FlowResult, step: str, done: int, total: int) -> None: ...

    def status(self, result: FlowResult, step: str, text: str) -> None: ...


@dataclass(frozen=True)
class EndpointHolder:
    """The attempt that holds an endpoint another attempt asked for."""

    attempt: str
    station: str
    outcome: str  # registered / provisioned, or in progress (running right now)
    when: str  # when it started (UTC)

    @property
    def running(self) -> bool:
        return self.outcome == Outcome.IN_PROGRESS


class IdentityHistory:
    """Where a station looks up which endpoint a PSK identity was provisioned on, and which
    attempt holds an endpoint (the line's records)."""

    def identity_owner(self, digest: str, endpoint: str | None, attempt: str) -> str | None:
        """Give the identity to `endpoint` unless another endpoint has it: that one, or None."""
        return None

    def endpoint_holder(self, endpoint: str, attempt: str, *, reprovision: bool = False
                        ) -> EndpointHolder | None:
        """Give `endpoint` to `attempt` unless another attempt provisioned it (and `reprovision`
        is not asked for) or runs on it right now: that one, or None."""
        return None


Action = Callable[["ProvisioningFlow"], "str | None"]
SkipRule = Callable[["ProvisioningFlow"], "str | None"]


class Step(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """One step: `action(flow)` returns a detail line; `skip(flow)` a reason not to run it."""

    name: str
    action: Action
    skip: SkipRule = lambda flow: None


class ProvisioningFlow:
    """Provision one board end to end; `run()` returns a FlowResult and never leaves it lying.

    `plans` is the run's plan (or its inputs, prepared at the check-config step); `board` None
    runs the sequence without a board. `port`: an already open SerialPort on the board (e.g. a
    test's console) to share; the flow then neither opens nor closes one."""

    def __init__(self, board: Board | None, plans: PlanSource | plan.Inputs | plan.Plan,
                 options: RunOptions | None = None, *, cloud: CloudTarget | None = None,
                 cloud_missing: str = "no Coiote server given",
                 observers: list[FlowObserver] | tuple = (), log_dir: Path | None = None,
                 port: SerialPort | None = None, history: IdentityHistory | None = None,
                 test_node: str | None = None) -> None:
        self.board = board
        self.plans = plans if isinstance(plans, PlanSource) else PlanSource(plans)
        self.options = options or RunOptions()
        self.cloud = cloud
        self.cloud_missing = cloud_missing
        self.observers = list(observers)
        self.history = history
        self.log_dir = Path(log_dir) if log_dir else None
        name, kind = (board.name, board.kind) if board is not None else ("-", "none")
        self.result = FlowResult(board=name, board_kind=kind, test_node=test_node,
                                 flasher=board.flasher_name if board is not None else None,
                                 steps=[StepRecord(step.name) for step in STEPS])
        self.plan: plan.Plan | None = None
        self.build: plan.Build | None = None
        self.images: dict[str, Path] = {}
        self.port = port
        self._owns_port = port is None
        self.smp: smp.SmpFileClient | None = None
        self.interrupted: Interrupted | None = None
        if board is not None or port is not None:
            _smp()  # imported now, not in a step, so step timings show no imports

    # -- running -------------------------------------------------------------------------------
    def run(self) -> FlowResult:
        result = self.result
        self._notify("run_started", result)
        start = time.monotonic()
        try:
            self._run_steps()
        except HilprovError as exc:
            self._fail(self.interrupted or exc)
        except KeyboardInterrupt as exc:  # Ctrl-C in this thread: record it, then stop the run
            self._fail(Interrupted.of(exc))
            raise
        except Exception as exc:  # a bug: still record the truth, then let the CLI report it
            self._fail(self.interrupted or exc)
            if self.interrupted is None:
                raise
        finally:
            result.seconds = time.monotonic() - start
            self._close_port()
            self._notify("run_finished", result)
        return result

    def _run_steps(self) -> None:
        until = self.options.until
        for index, step in enumerate(STEPS):
            if self.interrupted is not None:
                raise self.interrupted
            self._step(step)
            if step.name == until and index + 1 < len(STEPS):
                self._stop_after(step.name)
                return
        self.result.outcome = self._natural_outcome()

    def _natural_outcome(self) -> Outcome:
        if self.board is None:
            return Outcome.BUILT
        if self.result.step("wait-registered").status == StepStatus.OK:
            return Outcome.REGISTERED
        return Outcome.PROVISIONED

    def _stop_after(self, name: str) -> None:
        why = f"not run: stopped after {name} (--until {name})"
        for record in self.result.steps:
            if record.status == StepStatus.PENDING:
                record.status, record.detail = StepStatus.SKIPPED, why
                self._notify("step_finished", self.result, record)
        self.result.stopped_after = name
        accepted = self.result.step("read-result").status == StepStatus.OK
        self.result.outcome = Outcome.PROVISIONED if accepted else (
            Outcome.BUILT if self.board is None else Outcome.STOPPED)

    def _step(self, step: Step) -> None:
        record = self.result.step(step.name)
        why = step.skip(self)
        if why:
            record.status, record.detail = StepStatus.SKIPPED, why
            self._notify("step_finished", self.result, record)
            return
        record.status = StepStatus.RUNNING
        self._notify("step_started", self.result, record)
        start = time.monotonic()
        try:
            detail = step.action(self)
        except BaseException as exc:
            record.seconds = time.monotonic() - start
            record.status = StepStatus.FAILED
            stopped = self.interrupted or (
                Interrupted.of(exc) if isinstance(exc, KeyboardInterrupt) else None)
            if stopped is not None:
                record.detail = f"interrupted by {stopped.signal_name}"
            else:
                record.detail = str(exc) if isinstance(exc, HilprovError) else type(exc).__name__
            self._notify("step_finished", self.result, record)
            raise
        record.seconds = time.monotonic() - start
        record.status = StepStatus.OK
        record.detail = detail or ""
        self._notify("step_finished", self.result, record)

    def interrupt(self, signal: Interrupted) -> None:
        """Stop this flow from another thread (SIGINT/SIGTERM): the step it waits in fails at
        once (its serial port is closed) and the attempt is recorded as interrupted."""
        self.interrupted = signal
        if self.port is not None and self._owns_port:
            self.port.close()

    def _fail(self, exc: BaseException) -> None:
        result = self.result
        result.outcome = Outcome.FAILED
        result.exception = exc
        if isinstance(exc, Interrupted):
            step = result.current_step or self._not_begun(exc)
            result.outcome, result.error_kind, result.exit_code = (
                Outcome.INTERRUPTED, "interrupted", exc.exit_code)
            result.error = f"interrupted by {exc.signal_name}" + (
                f" during {step}" if step else "")
        elif isinstance(exc, HilprovError):
            result.error_kind, result.exit_code = exc.kind, exc.exit_code
            result.error = str(exc)
        else:
            result.error_kind, result.exit_code = "internal error", 1
            result.error = f"{type(exc).__name__}: {exc}"

    def _not_begun(self, signal: Interrupted) -> str | None:
        """Interrupted between two steps: the record names the step that was to begin next
        (None: every step had run)."""
        record = next((s for s in self.result.steps if s.status == StepStatus.PENDING), None)
        if record is None:
            return None
        record.status = StepStatus.FAILED
        record.detail = f"interrupted by {signal.signal_name} before it began"
        return record.name

    def _notify(self, event: str, *args) -> None:
        for observer in self.observers:
            handler = getattr(observer, event, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except HilprovError:
                raise
            except Exception:  # an observer bug must not break provisioning
                log.exception("observer %s failed in %s", type(observer).__name__, event)

    # -- plumbing the steps use ----------------------------------------------------------------
    @property
    def onboards(self) -> bool:
        """Whether this run will onboard the device (a cloud, and not stopped before)."""
        return self.cloud is not None and reaches(self.options.until, "onboard")

    @property
    def who(self) -> str:
        return f"board {self.board.name}" if self.board is not None else "no board"

    def open_port(self) -> SerialPort:
        """The board's serial port, opened once (before the first flash, so no boot line is
        lost)."""
        if self.port is not None:
            return self.port
        self.result.port = self.board.port
        path = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"{safe_name(self.board.name)}.log"
            self.result.log_path = str(path)
        from hilprov.board.serial import SerialPort

        self.port = SerialPort(self.board.port, self.board.baudrate, log_path=path,
                               name=self.board.name)
        return self.port

    def smp_client(self) -> smp.SmpFileClient:
        if self.smp is None:
            self.smp = _smp().SmpFileClient(self.open_port(), timeout=self.options.timeouts.smp)
        return self.smp

    def status_reporter(self, step: str) -> Callable[[str], None]:
        def report(text: str) -> None:
            self._notify("status", self.result, step, text)
        return report

    def progress_reporter(self, step: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            self._notify("transfer", self.result, step, done, total)
        return report

    def _close_port(self) -> None:
        if self.port is not None and self._owns_port:
            try:
                self.port.close()
            except Exception:  # closing must not hide the real outcome
                log.debug("closing the port failed", exc_info=True)


def _smp():
    """The SMP client module (smp and pydantic behind it: ~300 ms), imported by the first flow
    that has a board."""
    from hilprov.board import smp

    return smp


# -- skip rules ----------------------------------------------------------------------------------
def _no_board(flow: ProvisioningFlow) -> str | None:
    return "no board given" if flow.board is None else None


def _needs_probe(without_probe: str) -> SkipRule:
    """A step that flashes or follows a flash: skipped without a board or without a probe."""
    def rule(flow: ProvisioningFlow) -> str | None:
        return _no_board(flow) or (None if flow.board.can_flash else without_probe)
    return rule


def _no_cloud(flow: ProvisioningFlow) -> str | None:
    if flow.cloud is None:
        return flow.cloud_missing
    if flow.result.endpoint is None:
        return "no endpoint name: give -e NAME (or provision a board)"
    return None


_no_probe = _needs_probe("no probe: the device already runs the initial image")
_not_flashed_here = _needs_probe("not flashed here: the ready line was printed earlier")
_no_final = _needs_probe("no probe to flash the final image")


# -- the steps ------------------------------------------------------------------------------------
def check_config(flow: ProvisioningFlow) -> str:
    """Parse and validate everything before the board is touched."""
    prepared = flow.plans.get()
    flow.plan = prepared
    prefix = f"{flow.who}: " if flow.board is not None else ""
    for warning in prepared.warnings:
        log.warning("%s%s", prefix, warning)
    flow.result.security_mode = str(prepared.mode)
    if prepared.random_key and not flow.onboards and flow.options.secrets_out is None:
        raise ConfigError(
            f"{prepared.inputs.flag('psk_key')}: each unit gets a random PSK key, but this run "
            "neither onboards it in Coiote nor saves it, so nobody would know the key of a "
            f"provisioned unit (scrap): onboard it (-s and a token) or give --secrets-out DIR")
    if flow.board is not None and flow.board.can_flash:
        defaults = flow.board.default_images or (None, None)
        for which, given, default in (("initial", flow.options.initial_hex, defaults[0]),
                                      ("final", flow.options.final_hex, defaults[1])):
            image = given or default
            if image is None:
                raise ConfigError(f"no {which} image: give --image-dir DIR or "
                                  f"--{which}-hex FILE")
            flow.images[which] = Path(image)
            flow.result.images[which] = image_sha256(image)
    return f"{prepared.mode} mode, {len(prepared.warnings)} warning(s)"


def flash_initial(flow: ProvisioningFlow) -> str:
    port = flow.open_port()
    port.clear()
    erase = flow.options.erase
    flow.board.flash(flow.images["initial"], erase=erase,
                     progress=flow.status_reporter("flash-initial"))
    return f"{flow.images['initial'].name}, {'chip erase' if erase else 'no chip erase'}"


def wait_ready(flow: ProvisioningFlow) -> str:
    t = flow.options.timeouts
    port = flow.open_port()
    match = port.expect(app.READY_OR_ALREADY, t.ready)
    if match.group(0) == app.ALREADY:
        raise AlreadyProvisionedError(
            f"{flow.who}: the initial image found factory provisioning data already present and "
            "halted; flash the production image, or erase the chip to provision it again")
    try:
        port.expect_exact(app.PROMPT, t.prompt)
    except BoardError:
        log.info("%s: no shell prompt after the ready line; continuing", flow.who)
    return "ready"


def read_endpoint(flow: ProvisioningFlow) -> str:
    wanted = flow.options.endpoint_name
    if flow.board is None:
        flow.result.endpoint = wanted
        return f"no board: {wanted!r} from -e" if wanted else "no board and no -e: none"
    smp = _smp()
    try:
        raw = flow.smp_client().download(app.ENDPOINT_FILE)
    except (smp.RemoteNotMounted, smp.RemoteFileNotFound):
        raise AlreadyProvisionedError(
            f"{flow.who}: /factory is not mounted, so the device is already provisioned (or not "
            "running the initial image); flash the production image or erase the chip") from None
    name = raw.decode("utf-8", "replace").strip()
    if not name:
        raise BoardError(f"{flow.who}: {app.ENDPOINT_FILE} is empty")
    if wanted and wanted != name:
        if not flow.options.force_endpoint:
            raise EndpointMismatchError(
                f"-e {wanted!r} differs from the device's endpoint name {name!r}, the name the "
                f"final image registers with; drop -e, or give --force-endpoint to use "
                f"{wanted!r} anyway")
        log.warning("%s: using %r instead of the device's %r (--force-endpoint)", flow.who,
                    wanted, name)
        name = wanted
    flow.result.endpoint = name
    _claim_endpoint(flow, name)
    return name


def _claim_endpoint(flow: ProvisioningFlow, endpoint: str) -> None:
    """The line provisions a unit once: the records give the endpoint to this attempt (atomic,
    so of two stations racing for it one is refused), before anything is written to it."""
    holder = getattr(flow.history, "endpoint_holder", None)
    if holder is None:
        return
    other = holder(endpoint, flow.result.attempt, reprovision=flow.options.reprovision)
    if other is None:
        return
    if other.running:
        raise EndpointBusyError(
            f"{flow.who}: endpoint {endpoint} is being provisioned right now at station "
            f"{other.station} (attempt {other.attempt}, started {other.when}; device records): "
            "one unit cannot be on two boards, so check which unit is on which board")
    flag = (flow.plan.inputs.flags.get("reprovision") if flow.plan else None) or "--reprovision"
    raise AlreadyProvisionedError(
        f"{flow.who}: endpoint {endpoint} was already provisioned ({other.outcome}) at station "
        f"{other.station} on {other.when} (attempt {other.attempt}; device records); the line "
        f"provisions a unit once: give {flag} to provision it again")


def build_blob(flow: ProvisioningFlow) -> str:
    endpoint = flow.result.endpoint
    built = plan.build(flow.plan, endpoint)
    flow.build = built
    identity, _key = built.psk_credentials()
    flow.result.psk_identity_sha256 = secrets.identity_digest(identity)
    _check_identity_is_free(flow, endpoint)
    _refuse_overwriting_inputs(flow, built)
    if flow.options.secrets_out is not None and built.mode == SecurityMode.PSK:
        flow.result.written.append(str(secrets.save_psk(flow.options.secrets_out, built)))
    if built.generated is not None:
        from hilprov.core import certs

        paths = certs.write_cert_files(built.generated, _cert_dir(flow))
        flow.result.written.extend(str(path) for path in paths)
    output = flow.options.output or (DEFAULT_BLOB if flow.board is None else None)
    if output is not None:
        write_atomic(Path(output), built.blob, mode=0o600)  # it holds the PSK or private key
        flow.result.written.append(str(output))
    flow.result.blob_size = len(built.blob)
    flow.result.cert_fingerprint = built.cert_fingerprint
    where = f", written to {output}" if output is not None else ""
    return f"{len(built.blob)} bytes{where}"


def upload(flow: ProvisioningFlow) -> str:
    blob = flow.build.blob
    smp = _smp()
    start = time.monotonic()
    try:
        flow.smp_client().upload(blob, app.PROVISION_FILE, max_chunk=app.PROVISION_WRITE_LIMIT,
                                 progress=flow.progress_reporter("upload"))
    except (smp.RemoteNotMounted, smp.RemoteFileNotFound) as exc:
        if exc.offset:  # mid-upload: the device rebooted, not a used-up attempt
            raise TransferError(
                f"{flow.who}: the device restarted during the upload (at offset {exc.offset} of "
                f"{len(blob)} it no longer knew the file), so this provisioning attempt is lost; "
                "re-run to provision it again") from None
        raise AlreadyProvisionedError(
            f"{flow.who}: the device takes no provisioning file: this boot's one attempt is used "
            "up (the device was provisioned, or an earlier attempt failed); reset it or flash "
            "the initial image again") from None
    seconds = max(time.monotonic() - start, 1e-6)
    return f"{len(blob)} bytes, {len(blob) / seconds:.0f} B/s"


def read_result(flow: ProvisioningFlow) -> str:
    raw = flow.smp_client().download(app.RESULT_FILE, timeout=flow.options.timeouts.result)
    text = raw.decode("ascii", "replace").strip()
    if text == "0":
        return "device accepted the configuration"
    raise DeviceRejectedError(
        f"{flow.who}: the device rejected the configuration ({app.RESULT_FILE} = {text!r}). "
        f"{_rejection_guess(flow)} The device allows one attempt per boot: re-run to flash the "
        "initial image again.")


def _check_identity_is_free(flow: ProvisioningFlow, endpoint: str | None) -> None:
    digest = flow.result.psk_identity_sha256
    if flow.history is None or digest is None:
        return
    owner = flow.history.identity_owner(digest, endpoint, flow.result.attempt)
    if owner is not None:
        raise ConfigError(
            f"{flow.who}: the PSK identity for {endpoint} already belongs to endpoint {owner} "
            "(an earlier attempt claimed it; device records): two units must not share one; "
            f"give {flow.plan.inputs.flag('psk_identity').split()[0]} '{{endpoint}}'")


def _refuse_overwriting_inputs(flow: ProvisioningFlow, built: plan.Build) -> None:
    """A generated file never replaces one of the run's inputs."""
    inputs = flow.plan.inputs
    given = {Path(p).resolve() for p in (inputs.endpoint_cfg, inputs.cert_info,
                                         inputs.server_cert, inputs.endpoint_cert,
                                         inputs.endpoint_key) if p is not None}
    targets = []
    if flow.options.output is not None or flow.board is None:
        targets.append(Path(flow.options.output or DEFAULT_BLOB))
    if built.generated is not None:
        from hilprov.core import certs

        targets.extend(certs.cert_paths(_cert_dir(flow)))
    for target in targets:
        if target.resolve() in given:
            raise ConfigError(f"{target}: this run would overwrite one of its own inputs with a "
                              "generated file; write it elsewhere (--output, --cert-dir)")


def _cert_dir(flow: ProvisioningFlow) -> Path:
    directory = Path(flow.options.cert_dir)
    if flow.board is not None:
        directory = directory / safe_name(flow.result.endpoint or flow.board.name)
    return directory


def _rejection_guess(flow: ProvisioningFlow) -> str:
    """The host validator's best guess why the device said no."""
    bad = profile.errors(profile.validate(flow.build.config, "anjay-zephyr"))
    if bad:
        return "The host validator (anjay-zephyr profile) finds: " + "; ".join(
            str(p) for p in bad[:3]) + "."
    return ("The host validator finds no problem, so the upload was probably cut short (a reset "
            "or a lost line) or the firmware differs from Anjay 3.11.")


def onboard(flow: ProvisioningFlow) -> str:
    endpoint = flow.result.endpoint
    status, replaced = flow.cloud.onboard(endpoint, flow.build,
                                          replace=flow.options.replace_cloud_device)
    flow.result.coiote = status
    return status + (" (replaced the previous device)" if replaced else "")


def flash_final(flow: ProvisioningFlow) -> str:
    port = flow.open_port()
    port.clear()
    flow.board.flash(flow.images["final"], erase=False,
                     progress=flow.status_reporter("flash-final"))
    return f"{flow.images['final'].name}, no chip erase"


def wait_restored(flow: ProvisioningFlow) -> str:
    match = flow.open_port().expect(app.RESTORED_OR_NOT, flow.options.timeouts.restored)
    if match.group(0).startswith(app.NO_FACTORY_DATA):
        raise DeviceRejectedError(
            f"{flow.who}: the final image found no factory data (\"Couldn't restore Anjay from "
            "anjay_factory\"); provision it again")
    return f"restored from {match.group(1)}"


def wait_registered(flow: ProvisioningFlow) -> str:
    timeout = flow.options.timeouts.registered
    try:
        match = flow.open_port().expect(app.REGISTERED_OR_REJECTED, timeout)
    except BoardError as exc:
        raise NotRegisteredError(
            f"{flow.who}: restored the configuration but did not register within "
            f"{timeout:.0f} s ({exc})") from None
    if match.group(0) != app.REGISTERED:
        raise NotRegisteredError(
            f"{flow.who}: restored the configuration, but the LwM2M server refused the "
            f"registration ({match.group(1)}): check the device in Coiote (endpoint name, "
            "security mode, credentials)")
    return "registered"


STEPS: tuple[Step, ...] = (
    Step("check-config", check_config),
    Step("flash-initial", flash_initial, _no_probe),
    Step("wait-ready", wait_ready, _not_flashed_here),
    Step("read-endpoint", read_endpoint),
    Step("build-blob", build_blob),
    Step("upload", upload, _no_board),
    Step("read-result", read_result, _no_board),
    Step("onboard", onboard, _no_cloud),
    Step("flash-final", flash_final, _no_final),
    Step("wait-restored", wait_restored, _no_final),
    Step("wait-registered", wait_registered, _no_final),
)
if tuple(step.name for step in STEPS) != STEP_NAMES:  # pragma: no cover - a wrong edit
    raise AssertionError("hilprov.station.steps.STEP_NAMES must list the flow's STEPS in order")

__all__ = ["STEPS", "STEP_NAMES", "EndpointHolder", "FlowObserver", "FlowResult",
           "ProvisioningFlow", "RunOptions", "Step", "StepRecord", "Timeouts"]
