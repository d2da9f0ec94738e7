"""The virtual board: a Zephyr + Anjay device on a pty, with a fake flasher (spec §5).

`VirtualBoard.start()` returns a ``/dev/pts/N`` path that the host opens like the board's VCOM.
The board runs one of two images (``hilprov/sim/images/``):

* **initial** - boot log, then either "Factory provisioning information already present ...
  Halting." (factory data persisted earlier; ``/factory`` stays unmounted) or "Device ready for
  provisioning." and the shell prompt, after which only the shell and SMP use the UART. The
  fake ``/factory`` (:mod:`hilprov.sim.factory_fs`) feeds the uploaded blob to the Anjay model;
  success persists the objects to `state_dir`.
* **final** - restores from ``anjay_persistence`` or, on its first boot, from ``anjay_factory``,
  persists, and registers when the Anjay model (and the optional `registrar` hook) say so;
  without factory data it logs the failure and retries "Connecting to the network..." forever.

A RAM file system at ``/lfs1`` serves general ``mcumgr fs`` use in both images. :class:`Faults`
holds the realism knobs (line drops and corruption, stalls, a reset mid-upload, RX buffer
overflow, missing ready line, a final image that never registers). All waits are on events with
timeouts, so `stop()` and `reset()` return promptly from any state.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cbor2

from hilprov.core.files import write_atomic
from hilprov.core.lwm2m import Objlink
from hilprov.errors import BoardError, ConfigError
from hilprov.sim.factory_fs import FactoryFs, MountTable, RamFs
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE, identify
from hilprov.sim.pty import PtyLink
from hilprov.sim.smp_server import CONTINUE, START, FileSystem, SmpServer, SmpShellTransport

log = logging.getLogger(__name__)

PROMPT = b"uart:~$ "
ERASE_LINE = b"\r\x1b[K"  # what Zephyr's shell sends before a log line overwrites the prompt
ANJAY_VERSION = "3.11.0"
STATE_FILE = "board.json"
FACTORY_FILE = "anjay_factory.cbor"
TARGETS = ("security_object", "server_object", "access_control")
_OBJLINK_TAG = 40001  # private CBOR tag for Objlink values in the persisted objects

Registrar = Callable[[str, dict], "bool | str"]


@dataclass
class Faults:
    """Realism knobs. Line and request numbers are 1-based and count from `start()`."""

    drop_lines: frozenset[int] = frozenset()
    """SMP lines (as received by the device) to lose."""
    corrupt_lines: Mapping[int, str] = field(default_factory=dict)
    """SMP line number -> "base64" (invalid character) or "crc" (valid base64, wrong bits)."""
    stall_requests: Mapping[int, float] = field(default_factory=dict)
    """SMP request number -> seconds the device waits before handling it."""
    duplicate_responses: frozenset[int] = frozenset()
    """SMP responses (in sending order) the device sends twice, back to back."""
    drop_responses: frozenset[int] = frozenset()
    """SMP responses (in sending order) lost on the way to the host (the request was handled)."""
    reset_after_provision_bytes: int | None = None
    """Reboot once provision.cbor has received this many bytes (once; the attempt is lost)."""
    rx_buffer_drop: bool = False
    """Two RX line buffers: a line arriving while both are still being decoded is dropped."""
    rx_line_buffers: int = 2
    line_process_time: float = 0.0005
    """Seconds the shell thread needs to decode one SMP line (frees its buffer)."""
    no_ready_line: bool = False
    """The initial image never prints "Device ready for provisioning."."""
    never_register: bool = False
    """The final image restores and sends Register, but registration never completes."""
    params_supported: bool = True
    """MCUmgr parameters command available (else rc 8 ENOTSUP)."""
    legacy_rc: bool = False
    """Successful responses carry "rc": 0 (CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR=y)."""
    eof_idle: float = 15.0
    """Seconds without provision.cbor data (after the first byte) that count as EOF."""
    retry_interval: float = 3.0
    """Seconds between the final image's network/initialisation retries without data."""
    boot_line_delay: float = 0.002
    """Seconds between boot log lines."""


@dataclass
class _State:
    image: str = "initial"
    version: str = ANJAY_VERSION
    factory: dict | None = None
    persistence: bool = False
    boots: int = 0


@dataclass
class _Boot:
    generation: int
    image: str
    started: float
    stop: threading.Event = field(default_factory=threading.Event)
    factory: FactoryFs | None = None
    shell: bool = False  # prompt shown, input handled
    logging: bool = True  # the UART log backend is on
    thread: threading.Thread | None = None


def _encode_objects(objects: dict) -> bytes:
    def default(encoder: cbor2.CBOREncoder, value: Any) -> None:
        if isinstance(value, Objlink):
            encoder.encode(cbor2.CBORTag(_OBJLINK_TAG, [value.oid, value.iid]))
        else:
            raise TypeError(f"cannot persist a {type(value).__name__} value")

    return cbor2.dumps(objects, default=default)


def _decode_objects(data: bytes) -> dict:
    def tag_hook(decoder: cbor2.CBORDecoder, tag: cbor2.CBORTag) -> Any:
        if tag.tag == _OBJLINK_TAG:
            return Objlink(*tag.value)
        return tag

    return cbor2.loads(data, tag_hook=tag_hook)


def uptime_stamp(seconds: float) -> str:
    """Zephyr's log timestamp: ``[HH:MM:SS.mmm,uuu]``."""
    micros = int(seconds * 1_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    secs, micros = divmod(micros, 1_000_000)
    millis, micros = divmod(micros, 1000)
    return f"[{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d},{micros:03d}]"


class VirtualBoard:
    """A simulated nRF91 board running the Anjay demo images on a pty.

    `model` provides ``factory_provision(blob)`` and ``registration_outcome(objects, endpoint)``
    (default: :mod:`hilprov.sim.anjay`, imported on first use). `registrar(endpoint, objects)`
    may veto the registration (False or a reason string: the server answers 4.03 Forbidden).
    `image` is the image a board without saved state starts with. `baud` emulates wire time.
    """

    def __init__(self, state_dir: Path | None = None, *, imei: str = "351234567890123",
                 baud: int | None = None, buf_size: int = 2048, model: Any = None,
                 faults: Faults | None = None, registrar: Registrar | None = None,
                 image: str = "initial", name: str = "sim") -> None:
        if image not in ("initial", "final"):
            raise BoardError(f"virtual board: unknown image {image!r} (initial or final)")
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.imei = imei
        self.faults = faults or Faults()
        self.registrar = registrar
        self.name = name
        self._model = model
        self._state = self._load_state(default_image=image)
        self._lock = threading.RLock()  # lifecycle: start/stop/reset/flash
        self._state_lock = threading.RLock()  # the persisted state (never held while joining)
        self._boot: _Boot | None = None
        self._generation = 0
        self._counts: Counter[str] = Counter()
        self._reset_fired = False
        self._mounts = MountTable()
        self._mounts.mount("/lfs1", RamFs())
        self._pty = PtyLink(self._on_rx, baud=baud)
        self._server = SmpServer(self._mounts, buf_size=buf_size,
                                 params_supported=self.faults.params_supported,
                                 legacy_rc=self.faults.legacy_rc)
        self._transport = SmpShellTransport(
            self._server, self._send_lines,
            rx_line_buffers=self.faults.rx_line_buffers if self.faults.rx_buffer_drop else None,
            line_process_time=self.faults.line_process_time,
            line_filter=self._line_fault, request_delay=self._request_fault)
        self._smp_line: bytearray | None = None
        self._half_marker = b""
        self._shell_line = bytearray()
        self._last_enter = b""
        self.port: str | None = None
        self.attempts: list[Any] = []  # ProvisionOutcome (or model result) of every attempt
        self.registrations: list[str] = []  # endpoint names that registered

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def endpoint_name(self) -> str:
        """The default endpoint name (spec §5.5): ``anjay-zephyr-demo-<IMEI>``."""
        return f"anjay-zephyr-demo-{self.imei}" if self.imei else "anjay-zephyr-demo"

    @property
    def image(self) -> str:
        return self._state.image

    @property
    def provisioned(self) -> bool:
        """Factory data is persisted (settings subtree ``anjay_factory``)."""
        return self._state.factory is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: SMP lines/requests/drops, bytes on the UART both ways."""
        out: dict[str, int] = dict(self._transport.stats)
        out.update({f"frames dropped ({why})": n
                    for why, n in self._transport.assembler.dropped.items()})
        out.update(uart_rx_bytes=self._pty.rx_bytes, uart_tx_bytes=self._pty.tx_bytes,
                   uart_tx_dropped=self._pty.tx_dropped, boots=self._state.boots)
        return out

    def start(self) -> str:
        """Create the pty, start the device threads and boot; returns the pty slave path."""
        with self._lock:
            if self.port is None:
                self.port = self._pty.open()
                self._transport.start()
                self._reboot()
            return self.port

    def stop(self) -> None:
        """Power off: stop every thread and close the pty (idempotent)."""
        with self._lock:
            boot, self._boot = self._boot, None
            if boot is not None:
                self._halt(boot)
        self._transport.stop()
        self._pty.close()

    close = stop

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def mount(self, point: str, fs: FileSystem) -> None:
        """Mount another file system (e.g. a misbehaving one in a test) at `point`."""
        self._mounts.mount(point, fs)

    def console_port(self) -> str:
        if self.port is None:
            raise BoardError("virtual board is not started")
        return self.port

    def reset(self) -> None:
        """Reboot the current image (what a pin reset does)."""
        with self._lock:
            if self.port is None:
                raise BoardError("virtual board is not started")
            self._reboot()

    def flash(self, image: Path, erase: bool = True) -> None:
        """The fake flasher: identify `image`, optionally erase everything, boot it.

        Raises BoardError for an image that is not one of the virtual board's.
        """
        found = identify(Path(image))
        with self._lock:
            if erase:
                self._state = _State()
                self._mounts.mount("/lfs1", RamFs())
                self._remove_state_files()
            self._state.image = found.kind
            self._state.version = found.version
            self._save_state()
            log.info("virtual board: flashed %s image %s%s", found.kind, image,
                     " after a chip erase" if erase else "")
            if self.port is not None:
                self._reboot()

    # --- state ----------------------------------------------------------------------------

    def _load_state(self, default_image: str) -> _State:
        state = _State(image=default_image)
        if self.state_dir is None:
            return state
        path = self.state_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as err:
            raise BoardError(f"virtual board state {path} is unreadable: {err}") from None
        state.image = raw.get("image", default_image)
        state.version = raw.get("version", ANJAY_VERSION)
        state.persistence = bool(raw.get("persistence", False))
        state.boots = int(raw.get("boots", 0))
        factory = self.state_dir / FACTORY_FILE
        if factory.exists():
            try:
                state.factory = _decode_objects(factory.read_bytes())
            except (OSError, ValueError, cbor2.CBORDecodeError) as err:
                raise BoardError(f"virtual board state {factory} is unreadable: {err}") from None
        return state

    def _save_state(self) -> None:
        """Write board.json and the factory objects (mode 0600: they hold PSKs and keys)."""
        if self.state_dir is None:
            return
        with self._state_lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            raw = {"image": self._state.image, "version": self._state.version,
                   "persistence": self._state.persistence, "boots": self._state.boots,
                   "endpoint": self.endpoint_name}
            write_atomic(self.state_dir / STATE_FILE, json.dumps(raw, indent=1).encode())
            factory = self.state_dir / FACTORY_FILE
            if self._state.factory is not None:
                write_atomic(factory, _encode_objects(self._state.factory))
            elif factory.exists():
                factory.unlink()

    def _remove_state_files(self) -> None:
        if self.state_dir is not None:
            for name in (STATE_FILE, FACTORY_FILE):
                (self.state_dir / name).unlink(missing_ok=True)

    # --- boot -----------------------------------------------------------------------------

    def _model_api(self) -> Any:
        if self._model is None:
            from hilprov.sim import anjay

            self._model = anjay
        return self._model

    def _halt(self, boot: _Boot) -> None:
        boot.stop.set()
        if boot.factory is not None:
            boot.factory.cancel()
        if boot.thread is not None and boot.thread is not threading.current_thread():
            boot.thread.join(timeout=2.0)

    def _reboot(self) -> None:
        """Stop the running image and boot the current one (caller holds _lock)."""
        if self._boot is not None:
            self._halt(self._boot)
        self._mounts.unmount("/factory")
        self._transport.reset()
        self._pty.discard_pending()
        self._smp_line, self._half_marker = None, b""
        self._shell_line.clear()
        self._generation += 1
        self._state.boots += 1
        self._save_state()
        boot = _Boot(self._generation, self._state.image, time.monotonic())
        runner = self._initial_image if boot.image == "initial" else self._final_image
        boot.thread = threading.Thread(target=self._run, args=(runner, boot), daemon=True,
                                       name=f"sim-{boot.image}-boot{boot.generation}")
        self._boot = boot
        boot.thread.start()

    def _run(self, runner: Callable[[_Boot], None], boot: _Boot) -> None:
        try:
            runner(boot)
        except Exception:  # a model bug must show up, not silently kill the device
            log.exception("virtual board: %s image crashed", boot.image)
            self._say(boot, "<err> os: >>> ZEPHYR FATAL ERROR (virtual board model crashed)")

    def _pause(self, boot: _Boot, seconds: float) -> bool:
        """Sleep unless the board reboots meanwhile; False when it does."""
        return not boot.stop.wait(seconds)

    def _tx(self, boot: _Boot, data: bytes) -> None:
        if boot.generation == self._generation and not boot.stop.is_set():
            self._pty.write(data)

    def _say(self, boot: _Boot, text: str) -> None:
        """One console line; if the prompt is shown, overwrite it and print it again."""
        out = (ERASE_LINE if boot.shell else b"") + text.encode() + b"\r\n"
        self._tx(boot, out + (PROMPT if boot.shell else b""))

    def _log(self, boot: _Boot, level: str, module: str, text: str) -> None:
        if boot.logging:
            stamp = uptime_stamp(time.monotonic() - boot.started)
            self._say(boot, f"{stamp} <{level}> {module}: {text}")
            boot.stop.wait(self.faults.boot_line_delay)

    def _start_shell(self, boot: _Boot) -> None:
        boot.shell = True
        self._tx(boot, PROMPT)

    def _boot_banner(self, boot: _Boot) -> bool:
        if not self._pause(boot, 0.005):
            return False
        self._say(boot, "*** Booting nRF Connect SDK v2.5.0 ***")
        return True

    def _initial_image(self, boot: _Boot) -> None:
        if not self._boot_banner(boot):
            return
        self._log(boot, "inf", "anjay", f"[anjay] Initializing Anjay {ANJAY_VERSION}")
        for oid in (0, 1, 2):
            self._log(boot, "inf", "anjay", f"[anjay_dm] successfully registered object /{oid}")
        if self._state.factory is not None:
            self._log(boot, "inf", "provisioning_app", "Factory provisioning information already "
                      "present. Please flash production firmware. Halting.")
            self._start_shell(boot)
            return
        factory = FactoryFs(self.endpoint_name, self._provision, eof_idle=self.faults.eof_idle,
                            on_bytes=self._provision_bytes)
        boot.factory = factory
        if boot.stop.is_set():  # rebooted while booting: _halt may not have seen the factory
            return
        self._mounts.mount("/factory", factory)
        self._log(boot, "wrn", "provisioning_app", "NOTE: No more log messages will be "
                  "displayed. Please use mcumgr to check provisioning results")
        if not self.faults.no_ready_line:
            self._log(boot, "inf", "provisioning_app", "Device ready for provisioning.")
        boot.logging = False  # the UART log backend is disabled from here on
        self._start_shell(boot)
        factory.run_provisioning()

    def _provision(self, blob: bytes) -> tuple[bool, str]:
        """The Anjay thread's provisioning call; persists on success before result.txt says 0."""
        outcome = self._model_api().factory_provision(blob)
        self.attempts.append(outcome)
        ok, text = bool(outcome.ok), str(outcome.result_text)
        if ok:
            with self._state_lock:
                try:
                    self._state.factory = outcome.objects
                    self._save_state()
                except (ConfigError, OSError, TypeError, ValueError) as err:
                    log.error("virtual board: could not persist the factory data: %s", err)
                    self._state.factory = None
                    ok, text = False, "-1"
        return ok, text

    def _final_image(self, boot: _Boot) -> None:
        if not self._boot_banner(boot):
            return
        self._log(boot, "inf", "main_app",
                  f"Initializing Anjay-zephyr-client demo {self._state.version}")
        self._log(boot, "inf", "anjay_zephyr_lwm2m", "Starting Anjay")
        self._start_shell(boot)
        while not boot.stop.is_set():
            self._log(boot, "inf", "anjay_zephyr_lwm2m", "Connecting to the network...")
            if not self._pause(boot, 0.05):
                return
            self._log(boot, "inf", "anjay_zephyr_lwm2m", "Connected to network")
            self._log(boot, "inf", "anjay", f"[anjay] Initializing Anjay {ANJAY_VERSION}")
            objects = self._state.factory
            if objects is not None and self._state.persistence:
                self._restore_lines(boot)
                self._log(boot, "inf", "anjay_zephyr_persistence",
                          "Anjay restored from anjay_persistence")
                break
            self._log(boot, "err", "anjay_zephyr_persistence",
                      "Couldn't restore Anjay from anjay_persistence")
            for target in TARGETS:
                self._log(boot, "inf", "anjay_zephyr_persistence",
                          f"deleted anjay_persistence/{target} from storage")
            if objects is not None:
                self._restore_lines(boot)
                self._log(boot, "inf", "anjay_zephyr_persistence",
                          "Anjay restored from anjay_factory")
                for oid, target in enumerate(TARGETS):
                    size = len(_encode_objects(objects.get(oid, {})))
                    self._log(boot, "inf", "anjay_zephyr_persistence",
                              f"{target} persisted, len: {size}")
                self._log(boot, "inf", "anjay_zephyr_persistence",
                          "All targets successfully persisted")
                with self._state_lock:
                    if boot.generation == self._generation:
                        self._state.persistence = True
                        self._save_state()
                break
            self._log(boot, "err", "anjay_zephyr_persistence",
                      "Couldn't restore Anjay from anjay_factory")
            self._log(boot, "err", "anjay_zephyr_lwm2m", "Failed to initialize anjay zephyr")
            if not self._pause(boot, self.faults.retry_interval):
                return
        else:
            return
        self._register(boot, self._state.factory or {})

    def _restore_lines(self, boot: _Boot) -> None:
        self._log(boot, "inf", "anjay", "[security_persistence] Security Object state restored")
        self._log(boot, "inf", "anjay_zephyr_persistence",
                  "Successfully loaded security_object from persistence")
        self._log(boot, "inf", "anjay", "[server_persistence] Server Object state restored")
        self._log(boot, "inf", "anjay_zephyr_persistence",
                  "Successfully loaded server_object from persistence")
        self._log(boot, "inf", "anjay", "[access_control] Access Control state restored")

    def _register(self, boot: _Boot, objects: dict) -> None:
        endpoint = self.endpoint_name
        outcome = self._model_api().registration_outcome(objects, endpoint)
        if not self._pause(boot, 0.05):
            return
        if not outcome.registers:
            # Nothing to register with: Anjay logs no Register at all.
            self._log(boot, "wrn", "anjay_zephyr_lwm2m",
                      f"No LwM2M server to register with: {outcome.reason}")
            return
        self._log(boot, "inf", "anjay", "[anjay] Attempting to register with LwM2M version 1.1")
        self._log(boot, "inf", "anjay", "[anjay] Register sent")
        if self.faults.never_register:
            return  # the Register is never answered
        verdict: bool | str = True
        if self.registrar is not None:
            verdict = self.registrar(endpoint, objects)
        if not self._pause(boot, 0.05):
            return
        if verdict is True:
            location = secrets.token_hex(2)
            self.registrations.append(endpoint)
            self._log(boot, "inf", "anjay",
                      f"[anjay] registration successful, location = /rd/{location}")
        else:
            self._log(boot, "wrn", "anjay", "[anjay] server responded with 4.03 Forbidden "
                      "(expected 2.01 Created)")

    # --- UART input -----------------------------------------------------------------------

    def _on_rx(self, segment: bytes) -> None:
        """Route received bytes: SMP lines to the transport, everything else to the shell.

        Like Zephyr's shell UART, an SMP line is recognised by its marker at the start of a
        received chunk or right after a newline.
        """
        if self._smp_line is not None:
            self._smp_line += segment[:256 - len(self._smp_line)]  # longer ones get dropped
            if segment.endswith(b"\n"):
                line, self._smp_line = bytes(self._smp_line), None
                self._transport.rx_line(line)  # a truncated line is > 127 bytes: dropped
            return
        segment = self._half_marker + segment
        self._half_marker = b""
        if segment[:1] in (START[:1], CONTINUE[:1]):
            if len(segment) == 1:
                self._half_marker = segment
                return
            if segment[:2] in (START, CONTINUE):
                self._smp_line = bytearray()
                self._on_rx(segment)
                return
        self._shell_input(segment)

    def _shell_input(self, data: bytes) -> None:
        boot = self._boot
        if boot is None or not boot.shell:
            return
        for value in data:
            char = bytes([value])
            if char in (b"\r", b"\n"):
                if char == b"\n" and self._last_enter == b"\r":
                    self._last_enter = b""
                    continue
                self._last_enter = char
                command = self._shell_line.decode("ascii", "replace").strip()
                self._shell_line.clear()
                self._tx(boot, b"\r\n")
                self._shell_command(boot, command)
                self._tx(boot, PROMPT)
                continue
            self._last_enter = b""
            if char in (b"\x7f", b"\x08"):
                if self._shell_line:
                    self._shell_line = self._shell_line[:-1]
                    self._tx(boot, b"\x08 \x08")
            elif 0x20 <= value < 0x7F:
                self._shell_line += char
                self._tx(boot, char)

    def _shell_command(self, boot: _Boot, command: str) -> None:
        if not command:
            return
        if command in ("kernel reboot cold", "kernel reboot warm") and boot.image == "initial":
            threading.Thread(target=self.reset, daemon=True, name="sim-shell-reboot").start()
            return
        if command == "help":
            self._tx(boot, b"Available commands:\r\n  help\r\n  kernel\r\n")
            return
        name = command.split()[0]
        self._tx(boot, f"{name}: command not found\r\n".encode())

    # --- SMP plumbing and faults ----------------------------------------------------------

    def _send_lines(self, lines: list[bytes]) -> None:
        boot = self._boot
        if boot is None:
            return
        self._counts["response"] += 1
        copies = 1
        if self._counts["response"] in self.faults.drop_responses:
            log.info("virtual board: losing SMP response %d (fault)", self._counts["response"])
            self._transport.stats["responses lost (fault injection)"] += 1
            copies = 0
        elif self._counts["response"] in self.faults.duplicate_responses:
            log.info("virtual board: sending SMP response %d twice (fault)",
                     self._counts["response"])
            self._transport.stats["responses duplicated (fault injection)"] += 1
            copies = 2
        for _ in range(copies):
            for line in lines:
                self._tx(boot, line)

    def _line_fault(self, line: bytes) -> bytes | None:
        self._counts["line"] += 1
        number = self._counts["line"]
        if number in self.faults.drop_lines:
            log.info("virtual board: dropping SMP line %d (fault)", number)
            return None
        how = self.faults.corrupt_lines.get(number)
        if how is None:
            return line
        log.info("virtual board: corrupting SMP line %d (%s)", number, how)
        body = bytearray(line[2:-1])
        spot = max(0, len(body) // 2 - 1)
        if how == "base64":
            body[spot] = ord("*")
        else:
            body[spot] = ord("A") if body[spot] != ord("A") else ord("B")
        return line[:2] + bytes(body) + b"\n"

    def _request_fault(self) -> float:
        self._counts["request"] += 1
        return float(self.faults.stall_requests.get(self._counts["request"], 0.0))

    def _provision_bytes(self, total: int) -> None:
        limit = self.faults.reset_after_provision_bytes
        if limit is not None and total >= limit and not self._reset_fired:
            self._reset_fired = True
            log.info("virtual board: resetting after %d bytes of provision.cbor (fault)", total)
            threading.Thread(target=self.reset, daemon=True, name="sim-fault-reset").start()


__all__ = ["FINAL_IMAGE", "INITIAL_IMAGE", "Faults", "VirtualBoard", "uptime_stamp"]
