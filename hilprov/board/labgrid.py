"""Boards behind a labgrid place (`--board labgrid:PLACE`).

The place is acquired through the labgrid coordinator when the board is opened and released when
it is closed, whatever ended the run (success, a failed step, Ctrl-C, SIGTERM). Its
`NetworkSerialPort` is the console and the SMP transport: `protocol: raw` is opened as
``socket://host:port``, `rfc2217` (labgrid's default, what its exporter's ser2net speaks) as
``rfc2217://host:port?ign_set_control`` (ser2net on a pty or a plain UART cannot switch modem
lines; labgrid's own SerialDriver asks the same).

Flashing: labgrid 26 has no driver for the nRF programmers hilprov drives; a SEGGER J-Link shows
up in a place as a `USBDebugger` (exported as `NetworkUSBDebugger`: host, USB bus path, bus and
device numbers, no serial number). When that J-Link is plugged into this station (the exporter
runs here: its host is this machine and the USB device at that path has those numbers), hilprov
reads its serial number from sysfs and flashes through pynrfjprog, as `--board SNR` does, with the
place's serial port as the console. Any other place (no J-Link, or one on another host) is a
device that already runs the initial image, exactly like `--port` (`can_flash` is False).

labgrid is an optional dependency (`pip install 'hilprov[labgrid]'`), imported only when such a
board is opened. We use its Python client, `labgrid.remote.client.ClientSession`, rather than
running `labgrid-client`: it keeps errors typed and costs no process per call. The session is
asyncio and gRPC based, so each call runs in a private event loop on a worker thread of its own
(nothing leaks into the caller's thread, which may be running an event loop of its own, and a
signal in the main thread cannot cut a call in half). Acquire and release go straight to the
coordinator's AcquirePlace/ReleasePlace calls on the session's stub: the session's own `acquire`
and `release` print to stdout, which belongs to the CLI (`--json`). Release names us as the holder
(`fromuser`), so it never frees a place someone else took over, and releasing twice is harmless.

Who we are to the coordinator is labgrid's ``host/user`` (`LG_HOSTNAME`, `LG_USERNAME` override
them, as for labgrid-client). A run killed with SIGKILL cannot release; the place then stays
acquired by this host/user until an operator runs ``labgrid-client -p PLACE release``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import queue
import signal
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hilprov.board.base import Board
from hilprov.errors import BoardError, ConfigError, Interrupted

log = logging.getLogger(__name__)

PREFIX = "labgrid:"
COORDINATOR_ENV = "LG_COORDINATOR"
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid-client's default
CONNECT_TIMEOUT = 10.0  # seconds to reach the coordinator
ACQUIRE_TIMEOUT = 30.0  # the coordinator asks every exporter of the place to lock its resources
RESOURCE_TIMEOUT = 15.0  # after acquiring, for the exporter to publish the serial port's TCP port
RELEASE_TIMEOUT = 20.0  # the exporter stops its ser2net (about a second) before answering
_SERIAL_CLS = "NetworkSerialPort"
_DEBUGGER_CLS = ("NetworkUSBDebugger", "USBDebugger")
SEGGER_VENDOR_ID = 0x1366
USB_DEVICES = Path("/sys/bus/usb/devices")
_CONSOLE = "console"  # the serial port used when a place has several
_PROTOCOLS = {"raw": "socket://{host}:{port}", "rfc2217": "rfc2217://{host}:{port}?ign_set_control"}


def place_of(spec: str) -> str:
    """The place a `labgrid:PLACE` spec names; ConfigError if it names none."""
    place = spec[len(PREFIX):].strip() if spec.startswith(PREFIX) else ""
    if not place:
        raise ConfigError(f"--board {spec}: give the labgrid place after 'labgrid:' "
                          "(labgrid-client places lists them)")
    return place


def coordinator_address(configured: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The coordinator as labgrid's tools find it: the option, else $LG_COORDINATOR, else
    127.0.0.1:20408."""
    for value in (configured, environ.get(COORDINATOR_ENV)):
        if value and value.strip():
            return value.strip()
    return DEFAULT_COORDINATOR


def serial_url(params: Mapping[str, Any]) -> str:
    """The pyserial URL of a NetworkSerialPort's parameters (host, port, protocol)."""
    host, port = params.get("host"), params.get("port")
    protocol = params.get("protocol") or "rfc2217"
    if not host or not port:
        raise BoardError(f"the NetworkSerialPort has no host and port yet ({dict(params)})")
    if protocol not in _PROTOCOLS:
        raise BoardError(f"the NetworkSerialPort speaks {protocol!r}: hilprov opens "
                         f"{' and '.join(_PROTOCOLS)} ports")
    if ":" in str(host) and not str(host).startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return _PROTOCOLS[protocol].format(host=host, port=int(port))


@dataclass(frozen=True)
class Acquired:
    """A place we hold: its name, who we are to the coordinator, its console's parameters."""

    place: str
    holder: str
    serial: dict[str, Any]
    debuggers: tuple[dict[str, Any], ...] = ()  # the place's USB debuggers' parameters


class Coordinator:
    """One labgrid coordinator, reached through labgrid's client session.

    Every call opens a session, does its job and closes the session again, in a private event
    loop on a worker thread. The calling thread only waits; an interrupt (SIGINT, SIGTERM as the
    CLI raises them) that arrives meanwhile is held until the call is over and then raised, so a
    place is never left half acquired or half released.
    """

    def __init__(self, address: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"Coordinator({self.address!r})"

    # -- what boards and tests ask ----------------------------------------------------------------
    def acquire(self, place: str) -> Acquired:
        """Acquire `place` and wait until its serial port is exported; BoardError says why not
        (unknown place, held by someone else, no serial port, coordinator unreachable). A
        signal meanwhile gives the place back before it is raised."""
        with signals_held() as caught:
            acquired, interrupt = self._call(f"acquire {place}", lambda s: _acquire(s, place),
                                             ACQUIRE_TIMEOUT + RESOURCE_TIMEOUT)
            if acquired is not None and (caught or interrupt is not None):
                self.release(acquired.place, acquired.holder)
        if interrupt is not None:
            raise interrupt
        return acquired

    def release(self, place: str, holder: str) -> None:
        """Release `place` if `holder` still has it; a signal meanwhile waits for it."""
        with signals_held():
            _, interrupt = self._call(f"release {place}", lambda s: _release(s, place, holder),
                                      RELEASE_TIMEOUT)
        if interrupt is not None:
            raise interrupt

    def holder(self, place: str) -> str | None:
        """Who holds `place` now (``host/user``), None if it is free."""
        found, interrupt = self._call(f"look at {place}", lambda s: _holder(s, place), 10.0)
        if interrupt is not None:
            raise interrupt
        return found

    # -- one session per call, in its own loop and thread ------------------------------------------
    def _call(self, what: str, job: Callable[[Any], Awaitable[Any]], timeout: float
              ) -> tuple[Any, KeyboardInterrupt | None]:
        """(job's result, an interrupt that arrived meanwhile); the job's error is raised, unless
        an interrupt came too (then it is logged and the interrupt wins)."""
        value, error, interrupt = finish_first(
            what, lambda: asyncio.run(self._session(what, job, timeout)))
        if error is not None:
            if interrupt is not None and isinstance(error, BoardError):
                log.warning("labgrid: %s", error)
                return None, interrupt
            raise error
        return value, interrupt

    async def _session(self, what: str, job: Callable[[Any], Awaitable[Any]],
                       timeout: float) -> Any:
        client = _client()
        loop = asyncio.get_running_loop()
        address = client.proxymanager.get_grpc_address(self.address, default_port=20408)
        session = client.ClientSession(address, loop)
        try:
            try:
                await asyncio.wait_for(session.start(), self.connect_timeout)
            except (TimeoutError, client.ServerError):
                raise BoardError(f"labgrid coordinator {self.address}: cannot connect (is "
                                 f"labgrid-coordinator running? --lg-coordinator or "
                                 f"${COORDINATOR_ENV} names it)") from None
            try:
                return await asyncio.wait_for(job(session), timeout)
            except TimeoutError:
                raise BoardError(f"labgrid coordinator {self.address}: {what}: no answer within "
                                 f"{timeout:g} s") from None
            except client.Error as exc:  # labgrid's UserError / ServerError
                raise BoardError(f"labgrid place: {what}: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                await session.stop()
            with contextlib.suppress(Exception):
                await session.close()


@contextlib.contextmanager
def signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM wait until the block is done, then take effect as they would have
    (the CLI's handlers raise Interrupted, Python's raise KeyboardInterrupt). Only the main thread
    receives signals, so elsewhere this does nothing."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def hold(signum: int, frame: object) -> None:
        if not caught:
            log.warning("labgrid: %s arrived while a place is taken or given back; it waits "
                        "until that is done", signal.Signals(signum).name)
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def finish_first(what: str, work: Callable[[], Any]
                 ) -> tuple[Any, BaseException | None, KeyboardInterrupt | None]:
    """Run `work` on a worker thread and wait for it to end, whatever arrives meanwhile:
    (its result, its exception, the first KeyboardInterrupt/Interrupted raised while waiting).

    The wait is a queue, not `Thread.join`: on Python 3.11 an interrupted join marks a running
    thread as stopped, and the next join returns at once."""
    outcome: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()

    def run() -> None:
        try:
            outcome.put((work(), None))
        except BaseException as exc:  # handed to the waiting thread
            outcome.put((None, exc))

    threading.Thread(target=run, name=f"labgrid {what}", daemon=True).start()
    interrupt: KeyboardInterrupt | None = None
    while True:
        try:
            value, error = outcome.get(timeout=0.1)
            return value, error, interrupt
        except queue.Empty:
            continue
        except KeyboardInterrupt as exc:  # the call may be taking or giving back a place
            log.warning("labgrid: %s in progress; it finishes first", what)
            interrupt = interrupt or exc


async def _holder(session, wanted: str) -> str | None:
    return _find_place(session, wanted).acquired


def _client() -> SimpleNamespace:
    """The parts of labgrid's client we use (imported on first use: labgrid is an optional
    dependency)."""
    try:
        import grpc
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2
        from labgrid.util.proxy import proxymanager
    except ImportError as exc:
        raise BoardError(f"--board labgrid:PLACE needs labgrid ({exc.name} is missing): pip "
                         "install 'hilprov[labgrid]'") from None
    _keep_labgrid_off_the_root_logger()
    return SimpleNamespace(ClientSession=client.ClientSession, Error=client.Error,
                           ServerError=client.ServerError, RpcError=grpc.aio.AioRpcError,
                           pb2=labgrid_coordinator_pb2, proxymanager=proxymanager)


def _keep_labgrid_off_the_root_logger() -> None:
    """labgrid logs through the `logging` module functions, which configure the root logger on
    first use when it has no handler. Give it Python's own last-resort handler instead, so the
    process logs exactly as before; labgrid's messages are dropped (its failures reach the user
    as BoardErrors)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()  # stderr, looked up when written, like logging.lastResort
    handler.setLevel(logging.WARNING)
    labgrid_dir = str(Path(_labgrid_file()).parent)
    handler.addFilter(lambda record: not record.pathname.startswith(labgrid_dir))
    root.addHandler(handler)


def _labgrid_file() -> str:
    import labgrid

    return labgrid.__file__


def _find_place(session, wanted: str):
    """The place named `wanted`, or whose alias it is (exactly: a substring never picks a
    station's board)."""
    places = session.places
    if wanted in places:
        return places[wanted]
    aliased = [p for p in places.values() if wanted in {a.split(":", 1)[-1] for a in p.aliases}]
    if len(aliased) == 1:
        return aliased[0]
    known = ", ".join(sorted(places)) or "none"
    if aliased:
        raise BoardError(f"labgrid place {wanted!r}: the alias of several places "
                         f"({', '.join(p.name for p in aliased)})")
    raise BoardError(f"labgrid place {wanted!r}: the coordinator knows no such place (places: "
                     f"{known})")


def _me(session) -> str:
    return f"{session.gethostname()}/{session.getuser()}"


async def _acquire(session, wanted: str) -> Acquired:
    client = _client()
    place = _find_place(session, wanted)
    me = _me(session)
    if place.acquired:
        ours = " (this host and user: a run that was killed? see the README)" \
            if place.acquired == me else ""
        raise BoardError(f"labgrid place {place.name} is acquired by {place.acquired}{ours}; "
                         f"free it with labgrid-client -p {place.name} release")
    session.check_matches(place)
    try:
        await session.stub.AcquirePlace(client.pb2.AcquirePlaceRequest(placename=place.name))
    except client.RpcError as exc:
        raise BoardError(f"labgrid place {place.name}: not acquired: {exc.details()}") from None
    try:
        await session.sync_with_coordinator()
        serial, debuggers = await asyncio.wait_for(_exported(session, place.name),
                                                   RESOURCE_TIMEOUT)
    except BaseException as exc:
        await _release(session, place.name, me)
        if isinstance(exc, TimeoutError):
            raise BoardError(f"labgrid place {place.name}: its NetworkSerialPort was not "
                             f"exported within {RESOURCE_TIMEOUT:g} s (is its exporter "
                             "running?)") from None
        raise
    log.info("labgrid place %s acquired as %s: console %s", place.name, me, serial_url(serial))
    return Acquired(place.name, me, serial, debuggers)


async def _exported(session, name: str) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    """The console's parameters once the exporter has started exporting it, and the place's
    USB debuggers'."""
    while True:
        place = session.places[name]
        resources = session.get_target_resources(place)
        ports = {res_name: entry for (res_name, cls), entry in resources.items()
                 if cls == _SERIAL_CLS}
        debuggers = tuple(dict(entry.args) for (_, cls), entry in resources.items()
                          if cls in _DEBUGGER_CLS)
        entry = _console_entry(name, ports)
        if entry.extra.get("proxy_required"):
            raise BoardError(f"labgrid place {name}: its serial port is reachable only through "
                             f"an SSH proxy ({entry.extra.get('proxy')}), which hilprov does "
                             "not set up")
        if entry.avail and entry.args.get("port"):
            return dict(entry.args), debuggers
        await asyncio.sleep(0.1)


def _console_entry(name: str, ports: dict[str, Any]):
    if len(ports) == 1:
        return next(iter(ports.values()))
    if _CONSOLE in ports:
        return ports[_CONSOLE]
    if not ports:
        raise BoardError(f"labgrid place {name} has no {_SERIAL_CLS}: hilprov needs one for "
                         "the console and SMP")
    raise BoardError(f"labgrid place {name} has several serial ports ({', '.join(sorted(ports))})"
                     f": name the console's match '{_CONSOLE}' (labgrid-client add-named-match)")


async def _release(session, name: str, holder: str) -> None:
    client = _client()
    request = client.pb2.ReleasePlaceRequest(placename=name, fromuser=holder)
    try:
        await session.stub.ReleasePlace(request)
        await session.sync_with_coordinator()
    except client.RpcError as exc:
        raise BoardError(f"labgrid place {name}: not released: {exc.details()}") from None


# -- flashing through a J-Link on this station -----------------------------------------------------
def local_jlink(debuggers: tuple[dict[str, Any], ...], *, usb_devices: Path | None = None,
                this_host: set[str] | None = None) -> tuple[str | None, str]:
    """(serial number of the place's J-Link on this station, or None; why not, for the log)."""
    jlinks = [d for d in debuggers if d.get("vendor_id") == SEGGER_VENDOR_ID]
    if not jlinks:
        return None, "it offers no J-Link"
    hosts = this_host if this_host is not None else _this_host()
    why = ""
    for params in jlinks:
        if str(params.get("host")) not in hosts:
            why = f"its J-Link is on {params.get('host')}, not on this station"
            continue
        device = (usb_devices or USB_DEVICES) / str(params.get("path"))
        try:
            numbers = [int((device / name).read_text()) for name in ("busnum", "devnum")]
            serial = (device / "serial").read_text().strip()
        except (OSError, ValueError):
            why = f"its J-Link ({device}) is not on this station's USB"
            continue
        if numbers != [params.get("busnum"), params.get("devnum")]:
            why = f"the USB device at {device} is another one than the place's J-Link"
            continue
        return serial, ""
    return None, why


def _this_host() -> set[str]:
    import socket

    return {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}


# -- the board ------------------------------------------------------------------------------------
_HELD: weakref.WeakSet[LabgridBoard] = weakref.WeakSet()


def _raise_sigterm(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _sigterm_unwinds(holding: bool) -> None:
    """While a place is held, a SIGTERM left at its default (the process would just die, keeping
    the place: pytest, a script) is an interrupt like Ctrl-C, so the program unwinds and closes
    its boards; put back when the last place is released. A handler of the program's own (the
    CLI's) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if holding and current is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_sigterm)
    elif not holding and current is _raise_sigterm and not _HELD:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class LabgridBoard(Board):
    """A device on a labgrid place: the console is the place's NetworkSerialPort; flashed
    through the place's J-Link when that is on this station, else not at all (like --port)."""

    kind = "labgrid"

    def __init__(self, name: str, coordinator: Coordinator, acquired: Acquired, *,
                 probe: Board | None = None) -> None:
        super().__init__(name, serial_url(acquired.serial),
                         int(acquired.serial.get("speed") or 115200))
        self.coordinator = coordinator
        self.place = acquired.place
        self.holder = acquired.holder
        self.probe = probe  # flashes and resets; None: the device runs the initial image
        self.can_flash = probe is not None
        self._lock = threading.Lock()
        self._held = True
        _HELD.add(self)
        _sigterm_unwinds(True)

    @classmethod
    def open(cls, spec: str, coordinator: Coordinator, *,
             probe_factory: Callable[[str, str, int], Board] | None = None) -> LabgridBoard:
        """Acquire the place; `probe_factory(serial number, console, baud)` makes the J-Link
        board that flashes (default: NordicBoard)."""
        acquired = coordinator.acquire(place_of(spec))
        try:
            board = cls(spec, coordinator, acquired)
        except BaseException:
            coordinator.release(acquired.place, acquired.holder)
            raise
        try:
            serial_number, why = local_jlink(acquired.debuggers)
            if serial_number is None:
                log.info("labgrid place %s: not flashed (%s): the device must run the initial "
                         "image already", acquired.place, why)
                return board
            board.probe = (probe_factory or _nordic)(serial_number, board.port, board.baudrate)
            board.can_flash = True
            log.info("labgrid place %s: flashing through J-Link %s on this station",
                     acquired.place, serial_number)
            return board
        except BaseException:
            board.close()
            raise

    def _flash(self, image: Path, *, erase: bool, progress=None) -> None:
        if self.probe is None:
            raise BoardError(f"labgrid place {self.place}: no flashing resource hilprov can "
                             "drive; the device must run the initial image already")
        self.probe.flash(image, erase=erase, progress=progress)

    def reset(self) -> None:
        if self.probe is None:
            super().reset()
        self.probe.reset()

    def close(self) -> None:
        """Release the place (once; an interrupt meanwhile waits until it is released)."""
        try:
            with signals_held(), self._lock:
                if not self._held:
                    return
                self._held = False
                _HELD.discard(self)
                if self.probe is not None:
                    with contextlib.suppress(BoardError):
                        self.probe.close()
                log.info("labgrid place %s: releasing", self.place)
                try:
                    self.coordinator.release(self.place, self.holder)
                except BoardError as exc:
                    raise BoardError(f"{exc}; free it with labgrid-client -x "
                                     f"{self.coordinator.address} -p {self.place} release"
                                     ) from None
                log.info("labgrid place %s released", self.place)
        finally:
            _sigterm_unwinds(False)


@atexit.register
def _release_forgotten() -> None:
    """A program that never closed its board (a script, a test runner stopped short) still
    frees the place when Python exits."""
    for board in list(_HELD):
        with contextlib.suppress(BaseException):
            board.close()


def _nordic(serial_number: str, port: str, baudrate: int) -> Board:
    from hilprov.board.nordic import NordicBoard

    return NordicBoard(serial_number, port, baudrate)
