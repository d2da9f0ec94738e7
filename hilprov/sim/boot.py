"""What the virtual board's two images do from reset: their boot logs, provisioning, registration.

It exists so that the device's observable script - the lines a host waits for, what the initial
image does with an upload and what the final image does with the result - reads top to bottom
in one place, apart from the lifecycle that starts and stops it. :class:`Firmware` runs one
:class:`~hilprov.sim.console.Boot` of either image on the boot's own thread.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from hilprov.errors import ConfigError
from hilprov.sim.console import Boot, Console
from hilprov.sim.factory_fs import FactoryFs, MountTable
from hilprov.sim.faults import Faults
from hilprov.sim.state import ANJAY_VERSION, StateStore, encode_objects

log = logging.getLogger("hilprov.sim.board")  # the virtual board's one logger

TARGETS = ("security_object", "server_object", "access_control")

Registrar = Callable[[str, dict], "bool | str"]


def _pause(boot: Boot, seconds: float) -> bool:
    """Sleep unless the board reboots meanwhile; False when it does."""
    return not boot.stop.wait(seconds)


NOT_ONBOARDED = ("no Coiote knows this device: the virtual board was given none to check, so "
                 "as far as it knows the device was never onboarded")

class Firmware:
    """The initial and the final image, run against the board's console, state and mounts.

    `model` provides ``factory_provision(blob)`` and ``registration_outcome(objects, endpoint)``
    (None: :mod:`hilprov.sim.anjay`, imported on first use); `endpoint()` is the endpoint name.
    `attempts` collects the model's outcome of every provisioning attempt and `registrations`
    the endpoint names that registered.
    """

    def __init__(self, console: Console, store: StateStore, mounts: MountTable, faults: Faults,
                 *, model: Any, registrar: Registrar | None, endpoint: Callable[[], str],
                 on_provision_bytes: Callable[[int], None]) -> None:
        self.faults = faults
        self.registrar = registrar
        self.attempts: list[Any] = []
        self.registrations: list[str] = []
        self._console = console
        self._store = store
        self._mounts = mounts
        self._model = model
        self._endpoint = endpoint
        self._on_provision_bytes = on_provision_bytes

    def run(self, boot: Boot) -> None:
        """The body of a boot's thread."""
        runner = self._initial_image if boot.image == "initial" else self._final_image
        try:
            runner(boot)
        except Exception:  # a model bug must show up, not silently kill the device
            log.exception("virtual board: %s image crashed", boot.image)
            self._console.say(boot,
                              "<err> os: >>> ZEPHYR FATAL ERROR (virtual board model crashed)")

    def _model_api(self) -> Any:
        if self._model is None:
            from hilprov.sim import anjay

            self._model = anjay
        return self._model

    def _log(self, boot: Boot, level: str, module: str, text: str) -> None:
        self._console.log(boot, level, module, text)

    def _boot_banner(self, boot: Boot) -> bool:
        if not _pause(boot, 0.005):
            return False
        self._console.say(boot, "*** Booting nRF Connect SDK v2.5.0 ***")
        return True

    # --- the initial image ----------------------------------------------------------------

    def _initial_image(self, boot: Boot) -> None:
        if not self._boot_banner(boot):
            return
        self._log(boot, "inf", "anjay", f"[anjay] Initializing Anjay {ANJAY_VERSION}")
        for oid in (0, 1, 2):
            self._log(boot, "inf", "anjay", f"[anjay_dm] successfully registered object /{oid}")
        if self._store.state.factory is not None:
            self._log(boot, "inf", "provisioning_app", "Factory provisioning information already "
                      "present. Please flash production firmware. Halting.")
            self._console.start_shell(boot)
            return
        factory = FactoryFs(self._endpoint(), self._provision, eof_idle=self.faults.eof_idle,
                            on_bytes=self._on_provision_bytes)
        boot.factory = factory
        if boot.stop.is_set():  # rebooted while booting: the halt may not have seen the factory
            return
        self._mounts.mount("/factory", factory)
        self._log(boot, "wrn", "provisioning_app", "NOTE: No more log messages will be "
                  "displayed. Please use mcumgr to check provisioning results")
        if not self.faults.no_ready_line:
            self._log(boot, "inf", "provisioning_app", "Device ready for provisioning.")
        boot.logging = False  # the UART log backend is disabled from here on
        self._console.start_shell(boot)
        factory.run_provisioning()

    def _provision(self, blob: bytes) -> tuple[bool, str]:
        """The Anjay thread's provisioning call; persists on success before result.txt says 0."""
        outcome = self._model_api().factory_provision(blob)
        self.attempts.append(outcome)
        ok, text = bool(outcome.ok), str(outcome.result_text)
        if ok:
            with self._store.lock:
                try:
                    self._store.state.factory = outcome.objects
                    self._store.save(self._endpoint())
                except (ConfigError, OSError, TypeError, ValueError) as err:
                    log.error("virtual board: could not persist the factory data: %s", err)
                    self._store.state.factory = None
                    ok, text = False, "-1"
        return ok, text

    # --- the final image ------------------------------------------------------------------

    def _final_image(self, boot: Boot) -> None:
        if not self._boot_banner(boot):
            return
        self._log(boot, "inf", "main_app",
                  f"Initializing Anjay-zephyr-client demo {self._store.state.version}")
        self._log(boot, "inf", "anjay_zephyr_lwm2m", "Starting Anjay")
        self._console.start_shell(boot)
        while not boot.stop.is_set():
            self._log(boot, "inf", "anjay_zephyr_lwm2m", "Connecting to the network...")
            if not _pause(boot, 0.05):
                return
            self._log(boot, "inf", "anjay_zephyr_lwm2m", "Connected to network")
            self._log(boot, "inf", "anjay", f"[anjay] Initializing Anjay {ANJAY_VERSION}")
            if self._restore(boot):
                break
            self._log(boot, "err", "anjay_zephyr_persistence",
                      "Couldn't restore Anjay from anjay_factory")
            self._log(boot, "err", "anjay_zephyr_lwm2m", "Failed to initialize anjay zephyr")
            if not _pause(boot, self.faults.retry_interval):
                return
        else:
            return
        self._register(boot, self._store.state.factory or {})

    def _restore(self, boot: Boot) -> bool:
        """Restore from anjay_persistence, else from anjay_factory (and persist); False: no data."""
        objects = self._store.state.factory
        if objects is not None and self._store.state.persistence:
            self._restore_lines(boot)
            self._log(boot, "inf", "anjay_zephyr_persistence",
                      "Anjay restored from anjay_persistence")
            return True
        self._log(boot, "err", "anjay_zephyr_persistence",
                  "Couldn't restore Anjay from anjay_persistence")
        for target in TARGETS:
            self._log(boot, "inf", "anjay_zephyr_persistence",
                      f"deleted anjay_persistence/{target} from storage")
        if objects is None:
            return False
        self._restore_lines(boot)
        self._log(boot, "inf", "anjay_zephyr_persistence", "Anjay restored from anjay_factory")
        for oid, target in enumerate(TARGETS):
            size = len(encode_objects(objects.get(oid, {})))
            self._log(boot, "inf", "anjay_zephyr_persistence", f"{target} persisted, len: {size}")
        self._log(boot, "inf", "anjay_zephyr_persistence", "All targets successfully persisted")
        with self._store.lock:
            if self._console.is_current(boot):
                self._store.state.persistence = True
                self._store.save(self._endpoint())
        return True

    def _restore_lines(self, boot: Boot) -> None:
        self._log(boot, "inf", "anjay", "[security_persistence] Security Object state restored")
        self._log(boot, "inf", "anjay_zephyr_persistence",
                  "Successfully loaded security_object from persistence")
        self._log(boot, "inf", "anjay", "[server_persistence] Server Object state restored")
        self._log(boot, "inf", "anjay_zephyr_persistence",
                  "Successfully loaded server_object from persistence")
        self._log(boot, "inf", "anjay", "[access_control] Access Control state restored")

    def _register(self, boot: Boot, objects: dict) -> None:
        endpoint = self._endpoint()
        outcome = self._model_api().registration_outcome(objects, endpoint)
        if not _pause(boot, 0.05):
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
        verdict: bool | str = (self.registrar(endpoint, objects) if self.registrar is not None
                               else NOT_ONBOARDED)
        if not _pause(boot, 0.05):
            return
        if verdict is True:
            location = secrets.token_hex(2)
            self.registrations.append(endpoint)
            self._log(boot, "inf", "anjay",
                      f"[anjay] registration successful, location = /rd/{location}")
        else:
            self._log(boot, "wrn", "anjay", "[anjay] server responded with 4.03 Forbidden "
                      "(expected 2.01 Created)")
