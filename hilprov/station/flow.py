"""The station flow of spec §5.4, as named steps on one board.

check-config → flash-initial → wait-ready → read-endpoint → build-blob → upload → read-result →
onboard → flash-final → wait-restored → wait-registered

Each step has a name, a timeout, a typed error and a line in the run's record. The config is
checked before the board is touched, so a bad config never erases a device. The serial port is
opened before the first flash so no boot line is lost; console text and SMP frames share it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hilprov.board import smp  # imported here, not in a step, so step timings show no imports
from hilprov.board.base import Board, image_sha256
from hilprov.board.serial import SerialPort
from hilprov.core import certs
from hilprov.core.lwm2m import SecurityMode
from hilprov.errors import (
    AlreadyProvisionedError,
    BoardError,
    ConfigError,
    DeviceRejectedError,
    EndpointMismatchError,
    HilprovError,
    NotRegisteredError,
    TransferError,
)
from hilprov.provisioning import FactoryProvisioning

log = logging.getLogger("hilprov.station.flow")

STEPS = ("check-config", "flash-initial", "wait-ready", "read-endpoint", "build-blob", "upload",
         "read-result", "onboard", "flash-final", "wait-restored", "wait-registered")

PROVISION_FILE = "/factory/provision.cbor"
RESULT_FILE = "/factory/result.txt"
ENDPOINT_FILE = "/factory/endpoint.txt"

READY = "Device ready for provisioning."
ALREADY = "Factory provisioning information already present"
PROMPT = "uart:~$ "
RESTORED = "persistence: Anjay restored from"
NO_FACTORY_DATA = "Couldn't restore Anjay from anjay_factory"
REGISTERED = "registration successful"
REG_REJECTED = re.compile(r"server responded with (.+?) \(expected 2\.01 Created\)")


@dataclass
class Timeouts:
    """Seconds each waiting step may take (defaults cover a real nRF9160 DK with LTE attach)."""

    ready: float = 60.0
    prompt: float = 5.0
    smp: float = 5.0
    result: float = 45.0  # result.txt blocks until Anjay finishes (spec §5.3: 15 s idle EOF)
    restored: float = 60.0
    registered: float = 180.0


@dataclass
class FlowOptions:
    endpoint_cfg: Path
    endpoint_name: str | None = None  # -e: must match the device unless force_endpoint
    force_endpoint: bool = False
    server_info: Path | None = None
    token: str | None = None
    cert_info: Path | None = None
    pkey: Path | None = None
    pcert: Path | None = None
    scert: Path | None = None
    profile: str = "anjay-zephyr"
    cert_dir: Path = Path("cert")
    output: Path | None = None  # also write the blob here (it holds secrets: mode 0600)
    initial_hex: Path | None = None
    final_hex: Path | None = None
    flash_final: bool = True
    erase_initial: bool = True  # False: re-flash without erase (refused if already provisioned)
    timeouts: Timeouts = field(default_factory=Timeouts)
    coiote_client: object | None = None  # an already-built CoioteClient (local server, tests)
    coiote_domain: str | None = None  # the domain for coiote_client (else from server_info)
    replace_cloud_device: bool = False  # delete the endpoint's Coiote device before onboarding

    def __repr__(self) -> str:  # the token stays out of logs and reports
        return f"FlowOptions(endpoint_cfg={str(self.endpoint_cfg)!r}, board flow)"


@dataclass
class StepRecord:
    name: str
    status: str = "pending"  # pending, running, ok, failed, skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class FlowResult:
    """What happened on one board; what records and `--json` report. Never holds a secret."""

    board: str
    board_kind: str
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex)  # unique id of this attempt
    port: str | None = None
    endpoint: str | None = None
    security_mode: str | None = None
    cert_fingerprint: str | None = None
    blob_size: int | None = None
    images: dict[str, str] = field(default_factory=dict)  # initial/final -> sha256
    coiote: str | None = None  # created / already registered / skipped
    steps: list[StepRecord] = field(default_factory=list)
    outcome: str = "in progress"  # registered, provisioned, failed
    error_kind: str | None = None
    error: str | None = None
    exit_code: int = 0
    log_path: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("registered", "provisioned")

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def as_dict(self) -> dict:
        return {
            "attempt": self.attempt, "board": self.board, "board_kind": self.board_kind,
            "port": self.port,
            "endpoint": self.endpoint, "security_mode": self.security_mode,
            "cert_fingerprint": self.cert_fingerprint, "blob_size": self.blob_size,
            "images": self.images, "coiote": self.coiote, "outcome": self.outcome,
            "error_kind": self.error_kind, "error": self.error, "exit_code": self.exit_code,
            "log_path": self.log_path, "seconds": round(self.seconds, 3),
            "steps": [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 3),
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


class ProvisioningFlow:
    """Provision one board end to end; `run()` returns a FlowResult and never leaves it lying."""

    def __init__(self, board: Board, options: FlowOptions, *,
                 observers: list[FlowObserver] | tuple = (), log_dir: Path | None = None,
                 port=None) -> None:
        """`port`: an already open SerialPort on the board (e.g. a test's console) to share;
        the flow then neither opens nor closes one."""
        self.board = board
        self.options = options
        self.observers = list(observers)
        self.log_dir = Path(log_dir) if log_dir else None
        self.result = FlowResult(board=board.name, board_kind=board.kind,
                                 steps=[StepRecord(name) for name in STEPS])
        self.fp: FactoryProvisioning | None = None
        self.port = port
        self._owns_port = port is None
        self.smp = None

    # -- running -------------------------------------------------------------------------------
    def run(self) -> FlowResult:
        result = self.result
        self._notify("run_started", result)
        start = time.monotonic()
        try:
            self._steps()
        except HilprovError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug: still record the truth, then let the CLI report it
            self._fail(exc)
            raise
        finally:
            result.seconds = time.monotonic() - start
            self._close_port()
            self._notify("run_finished", result)
        return result

    def _steps(self) -> None:
        opts = self.options
        self._step("check-config", self.check_config)
        self._open_port()
        flashing = self.board.can_flash
        self._step("flash-initial", self.flash_initial, skip=not flashing,
                   why="no probe: the device already runs the initial image")
        self._step("wait-ready", self.wait_ready, skip=not flashing,
                   why="not flashed here: the ready line was printed earlier")
        self._step("read-endpoint", self.read_endpoint)
        self._step("build-blob", self.build_blob)
        self._step("upload", self.upload)
        self._step("read-result", self.read_result)
        wants_cloud = opts.coiote_client is not None or (opts.server_info and opts.token)
        self._step("onboard", self.onboard, skip=not wants_cloud,
                   why="no Coiote server and token given")
        final = flashing and opts.flash_final
        why = "no probe to flash the final image" if not flashing else "--no-final given"
        self._step("flash-final", self.flash_final, skip=not final, why=why)
        self._step("wait-restored", self.wait_restored, skip=not final, why=why)
        self._step("wait-registered", self.wait_registered, skip=not final, why=why)
        self.result.outcome = "registered" if final else "provisioned"

    def _step(self, name: str, action: Callable[[], str | None], *, skip: bool = False,
              why: str = "") -> None:
        step = self.result.step(name)
        if skip:
            step.status, step.detail = "skipped", why
            self._notify("step_finished", self.result, step)
            return
        step.status = "running"
        self._notify("step_started", self.result, step)
        start = time.monotonic()
        try:
            detail = action()
        except BaseException as exc:
            step.seconds = time.monotonic() - start
            step.status = "failed"
            step.detail = str(exc) if isinstance(exc, HilprovError) else type(exc).__name__
            self._notify("step_finished", self.result, step)
            raise
        step.seconds = time.monotonic() - start
        step.status = "ok"
        step.detail = detail or ""
        self._notify("step_finished", self.result, step)

    def _fail(self, exc: BaseException) -> None:
        result = self.result
        result.outcome = "failed"
        if isinstance(exc, HilprovError):
            result.error_kind, result.exit_code = exc.kind, exc.exit_code
            result.error = str(exc)
        else:
            result.error_kind, result.exit_code = "internal error", 1
            result.error = f"{type(exc).__name__}: {exc}"

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

    # -- steps ---------------------------------------------------------------------------------
    def check_config(self) -> str:
        """Parse and validate everything before the board is touched."""
        opts = self.options
        fp = FactoryProvisioning(opts.endpoint_cfg, opts.endpoint_name, opts.server_info,
                                 opts.token, opts.cert_info, profile_name=opts.profile,
                                 report=log.debug)
        warnings = fp.check()
        for warning in warnings:
            log.warning("%s: %s", self.board.name, warning)
        mode = fp.security_mode()
        self.result.security_mode = str(mode)
        if mode in (SecurityMode.CERT, SecurityMode.EST):
            fp.load_credentials(opts.scert, opts.pcert, opts.pkey,
                                generating=opts.cert_info is not None)
        if self.board.can_flash:
            for which in ("initial", "final"):
                image = getattr(opts, f"{which}_hex")
                if image is None:
                    raise ConfigError(f"no {which} image: give --image-dir DIR or "
                                      f"--{which}-hex FILE")
                self.result.images[which] = image_sha256(image)
        self.fp = fp
        return f"{str(mode)} mode, {len(warnings)} warning(s)"

    def flash_initial(self) -> str:
        self.port.clear()
        erase = self.options.erase_initial
        self.board.flash(self.options.initial_hex, erase=erase,
                         progress=self._status("flash-initial"))
        return f"{Path(self.options.initial_hex).name}, {'chip erase' if erase else 'no erase'}"

    def wait_ready(self) -> str:
        t = self.options.timeouts
        match = self.port.expect(re.compile(READY.replace(".", r"\.") + "|" + ALREADY), t.ready)
        if match.group(0) == ALREADY:
            raise AlreadyProvisionedError(
                f"board {self.board.name}: the initial image found factory provisioning data "
                "already present and halted; flash the production image, or erase the chip "
                "to provision it again")
        try:
            self.port.expect_exact(PROMPT, t.prompt)
        except BoardError:
            log.info("%s: no shell prompt after the ready line; continuing", self.board.name)
        return "ready"

    def read_endpoint(self) -> str:
        try:
            raw = self._smp().download(ENDPOINT_FILE)
        except (smp.RemoteNotMounted, smp.RemoteFileNotFound):
            raise AlreadyProvisionedError(
                f"board {self.board.name}: /factory is not mounted, so the device is already "
                "provisioned (or not running the initial image); flash the production image "
                "or erase the chip") from None
        name = raw.decode("utf-8", "replace").strip()
        if not name:
            raise BoardError(f"board {self.board.name}: {ENDPOINT_FILE} is empty")
        wanted = self.options.endpoint_name
        if wanted and wanted != name:
            if not self.options.force_endpoint:
                raise EndpointMismatchError(
                    f"-e {wanted!r} differs from the device's endpoint name {name!r}, the name "
                    "the final image registers with; drop -e, or give --force-endpoint to use "
                    f"{wanted!r} anyway")
            log.warning("%s: using %r instead of the device's %r (--force-endpoint)",
                        self.board.name, wanted, name)
            name = wanted
        self.result.endpoint = name
        return name

    def build_blob(self) -> str:
        opts, fp = self.options, self.fp
        fp.endpoint_name = self.result.endpoint
        if self.result.security_mode in ("cert", "est") and opts.cert_info is not None:
            fp.generate_self_signed_cert(Path(opts.cert_dir) / self.result.endpoint)
        blob = fp.serialize()
        if opts.output is not None:
            from hilprov.core.files import write_atomic

            write_atomic(Path(opts.output), blob)
        self.result.blob_size = len(blob)
        if fp.endpoint_cert:
            self.result.cert_fingerprint = certs.certificate_fingerprint(fp.endpoint_cert)
        return f"{len(blob)} bytes"

    def upload(self) -> str:
        blob = self.fp.blob
        start = time.monotonic()
        try:
            self._smp().upload(blob, PROVISION_FILE, progress=self._progress("upload"))
        except (smp.RemoteNotMounted, smp.RemoteFileNotFound) as exc:
            if exc.offset:  # mid-upload: the device rebooted, not a used-up attempt
                raise TransferError(
                    f"board {self.board.name}: the device restarted during the upload (at "
                    f"offset {exc.offset} of {len(blob)} it no longer knew the file), so this "
                    "provisioning attempt is lost; re-run to provision it again") from None
            raise AlreadyProvisionedError(
                f"board {self.board.name}: the device takes no provisioning file: this boot's "
                "one attempt is used up (the device was provisioned, or an earlier attempt "
                "failed); reset it or flash the initial image again") from None
        seconds = max(time.monotonic() - start, 1e-6)
        return f"{len(blob)} bytes, {len(blob) / seconds:.0f} B/s"

    def read_result(self) -> str:
        raw = self._smp().download(RESULT_FILE, timeout=self.options.timeouts.result)
        text = raw.decode("ascii", "replace").strip()
        if text == "0":
            return "device accepted the configuration"
        raise DeviceRejectedError(
            f"board {self.board.name}: the device rejected the configuration "
            f"({RESULT_FILE} = {text!r}). {self._rejection_guess()} The device allows one "
            "attempt per boot: re-run to flash the initial image again.")

    def _rejection_guess(self) -> str:
        """The host validator's best guess why the device said no."""
        from hilprov.core import profile

        problems = profile.validate(self.fp.build_config(), "anjay-zephyr")
        bad = profile.errors(problems)
        if bad:
            return "The host validator (anjay-zephyr profile) finds: " + "; ".join(
                str(p) for p in bad[:3]) + "."
        return ("The host validator finds no problem, so the upload was probably cut short "
                "(a reset or a lost line) or the firmware differs from Anjay 3.11.")

    def onboard(self) -> str:
        from hilprov.cloud.coiote import CoioteClient

        opts, fp = self.options, self.fp
        client = opts.coiote_client
        if client is None and fp.srv_info is not None and opts.token:
            client = CoioteClient(fp.srv_info.base_url, opts.token)
        replaced = ""
        if opts.replace_cloud_device and client is not None \
                and client.delete_by_endpoint(self.result.endpoint):
            replaced = " (replaced the previous device)"
        result = fp.register(client, domain=opts.coiote_domain)
        self.result.coiote = result.status
        return result.status + replaced

    def flash_final(self) -> str:
        self.port.clear()
        self.board.flash(self.options.final_hex, erase=False, progress=self._status("flash-final"))
        return f"{Path(self.options.final_hex).name}, no erase"

    def wait_restored(self) -> str:
        match = self.port.expect(re.compile(re.escape(RESTORED) + r" (\S+)|"
                                            + re.escape(NO_FACTORY_DATA)),
                                 self.options.timeouts.restored)
        if match.group(0).startswith(NO_FACTORY_DATA):
            raise DeviceRejectedError(
                f"board {self.board.name}: the final image found no factory data "
                "(\"Couldn't restore Anjay from anjay_factory\"); provision it again")
        return f"restored from {match.group(1)}"

    def wait_registered(self) -> str:
        try:
            pattern = re.compile(re.escape(REGISTERED) + "|" + REG_REJECTED.pattern)
            match = self.port.expect(pattern, self.options.timeouts.registered)
        except BoardError as exc:
            raise NotRegisteredError(
                f"board {self.board.name}: restored the configuration but did not register "
                f"within {self.options.timeouts.registered:.0f} s ({exc})") from None
        if match.group(0) != REGISTERED:
            raise NotRegisteredError(
                f"board {self.board.name}: restored the configuration, but the LwM2M server "
                f"refused the registration ({match.group(1)}): check the device in Coiote "
                "(endpoint name, security mode, credentials)")
        return "registered"

    # -- plumbing ------------------------------------------------------------------------------
    def _open_port(self) -> None:
        self.result.port = self.board.port
        if not self._owns_port:
            self.result.log_path = str(self.port.log_path) if self.port.log_path else None
            return
        path = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.board.name)
            path = self.log_dir / f"{safe}.log"
            self.result.log_path = str(path)
        self.port = SerialPort(self.board.port, self.board.baudrate, log_path=path,
                               name=self.board.name)

    def _smp(self):
        if self.smp is None:
            self.smp = smp.SmpFileClient(self.port, timeout=self.options.timeouts.smp)
        return self.smp

    def _status(self, step: str):
        def report(text: str) -> None:
            self._notify("status", self.result, step, text)
        return report

    def _progress(self, step: str):
        def report(done: int, total: int) -> None:
            self._notify("transfer", self.result, step, done, total)
        return report

    def _close_port(self) -> None:
        if self.port is not None and self._owns_port:
            try:
                self.port.close()
            except Exception:  # closing must not hide the real outcome
                log.debug("closing the port failed", exc_info=True)
