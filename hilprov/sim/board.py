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

This module is the lifecycle (power, reset, flash) and the wiring of the parts, each in a module
of its own: :mod:`~hilprov.sim.state` (what persists), :mod:`~hilprov.sim.boot` (the images'
scripts), :mod:`~hilprov.sim.console` (UART output), :mod:`~hilprov.sim.uart` (UART input split
into SMP and shell), :mod:`~hilprov.sim.shell` and :mod:`~hilprov.sim.faults`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from hilprov.errors import BoardError
from hilprov.sim.boot import Firmware, Registrar
from hilprov.sim.console import Boot, Console, uptime_stamp
from hilprov.sim.factory_fs import MountTable, RamFs
from hilprov.sim.faults import FaultInjector, Faults
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE, identify
from hilprov.sim.pty import PtyLink
from hilprov.sim.shell import Shell
from hilprov.sim.smp_server import FileSystem, SmpServer, SmpShellTransport
from hilprov.sim.state import StateStore
from hilprov.sim.uart import UartSplitter

log = logging.getLogger(__name__)


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
        self.name = name
        faults = faults or Faults()
        self._store = StateStore(self.state_dir, default_image=image)
        self._lock = threading.RLock()  # lifecycle: start/stop/reset/flash
        self._boot: Boot | None = None
        self._generation = 0
        self._mounts = MountTable()
        self._mounts.mount("/lfs1", RamFs())
        self._injector = FaultInjector(faults, reset=self.reset)
        self._server = SmpServer(self._mounts, buf_size=buf_size,
                                 params_supported=faults.params_supported,
                                 legacy_rc=faults.legacy_rc)
        self._transport = SmpShellTransport(
            self._server, self._send_lines,
            rx_line_buffers=faults.rx_line_buffers if faults.rx_buffer_drop else None,
            line_process_time=faults.line_process_time,
            line_filter=self._injector.line, request_delay=self._injector.request_delay,
            on_drop=self._rx_dropped)
        self._uart = UartSplitter(self._transport.rx_line, self._shell_input)
        self._pty = PtyLink(self._uart.feed, baud=baud)
        self._console = Console(self._pty.write, lambda: self._generation, faults)
        self._shell = Shell(self._console, reboot=self.reset)
        self._firmware = Firmware(self._console, self._store, self._mounts, faults,
                                  model=model, registrar=registrar,
                                  endpoint=lambda: self.endpoint_name,
                                  on_provision_bytes=self._injector.provision_bytes)
        self.port: str | None = None

    # --- attributes kept by the parts -----------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector.faults = self._console.faults = self._firmware.faults = faults

    @property
    def registrar(self) -> Registrar | None:
        return self._firmware.registrar

    @registrar.setter
    def registrar(self, registrar: Registrar | None) -> None:
        self._firmware.registrar = registrar

    @property
    def attempts(self) -> list[Any]:
        """ProvisionOutcome (or model result) of every attempt."""
        return self._firmware.attempts

    @attempts.setter
    def attempts(self, attempts: list[Any]) -> None:
        self._firmware.attempts = attempts

    @property
    def registrations(self) -> list[str]:
        """Endpoint names that registered."""
        return self._firmware.registrations

    @registrations.setter
    def registrations(self, registrations: list[str]) -> None:
        self._firmware.registrations = registrations

    @property
    def _reset_fired(self) -> bool:  # read by bench/soak.py
        return self._injector.reset_fired

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def endpoint_name(self) -> str:
        """The default endpoint name (spec §5.5): ``anjay-zephyr-demo-<IMEI>``."""
        return f"anjay-zephyr-demo-{self.imei}" if self.imei else "anjay-zephyr-demo"

    @property
    def image(self) -> str:
        return self._store.state.image

    @property
    def provisioned(self) -> bool:
        """Factory data is persisted (settings subtree ``anjay_factory``)."""
        return self._store.state.factory is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: SMP lines/requests/drops, bytes on the UART both ways."""
        out: dict[str, int] = dict(self._transport.stats)
        out.update({f"frames dropped ({why})": n
                    for why, n in self._transport.assembler.dropped.items()})
        out.update(uart_rx_bytes=self._pty.rx_bytes, uart_tx_bytes=self._pty.tx_bytes,
                   uart_tx_dropped=self._pty.tx_dropped, boots=self._store.state.boots)
        return out

    def start(self, power_on: bool = True) -> str:
        """Create the pty, start the device threads and boot; returns the pty slave path.
        `power_on=False` leaves the device off until `reset()`, as a bench that opens the
        console before it powers the board: then every line of the first boot is seen."""
        with self._lock:
            if self.port is None:
                self.port = self._pty.open()
                self._transport.start()
                if power_on:
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
                self._mounts.mount("/lfs1", RamFs())
                self._store.erase()
            self._store.state.image = found.kind
            self._store.state.version = found.version
            self._store.save(self.endpoint_name)
            log.info("virtual board: flashed %s image %s%s", found.kind, image,
                     " after a chip erase" if erase else "")
            if self.port is not None:
                self._reboot()

    # --- boots ----------------------------------------------------------------------------

    def _halt(self, boot: Boot) -> None:
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
        self._uart.reset()
        self._shell.clear()
        self._generation += 1
        self._store.state.boots += 1
        self._store.save(self.endpoint_name)
        boot = Boot(self._generation, self._store.state.image, time.monotonic())
        boot.thread = threading.Thread(target=self._firmware.run, args=(boot,), daemon=True,
                                       name=f"sim-{boot.image}-boot{boot.generation}")
        self._boot = boot
        boot.thread.start()

    # --- UART plumbing --------------------------------------------------------------------

    def _shell_input(self, data: bytes) -> None:
        self._shell.feed(self._boot, data)

    def _rx_dropped(self) -> None:
        """A received SMP line found both RX buffers busy: Zephyr's smp_shell logs it."""
        boot = self._boot
        if boot is not None and boot.logging:
            stamp = uptime_stamp(time.monotonic() - boot.started)
            self._console.say(boot, f"{stamp} <wrn> smp_shell: Failed to alloc SMP buf")

    def _send_lines(self, lines: list[bytes]) -> None:
        """An SMP response, as the transport's lines, subject to the response faults."""
        boot = self._boot
        if boot is None:
            return
        for _ in range(self._injector.response_copies(self._transport.stats)):
            for line in lines:
                self._console.tx(boot, line)


__all__ = ["FINAL_IMAGE", "INITIAL_IMAGE", "Faults", "VirtualBoard", "uptime_stamp"]
