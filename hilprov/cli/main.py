"""Command-line entry points: `ptool` (the seed's flags) and `hilprov` (subcommands).

This is the only layer that prints for the user and turns errors into exit codes: the library
raises typed `HilprovError`s, and each class has its own documented exit code (`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence

from hilprov import __version__
from hilprov.cloud import coiote
from hilprov.core import profile
from hilprov.errors import EXIT_CODES, HilprovError, ValidationError

log = logging.getLogger("hilprov")

EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# -- argument groups ---------------------------------------------------------------------------
def add_provision_arguments(parser: argparse.ArgumentParser) -> None:
    seed = parser.add_argument_group("seed-compatible options (ptool)")
    seed.add_argument("-c", "--endpoint_cfg", required=True, metavar="FILE",
                      help="endpoint configuration to load on the device")
    seed.add_argument("-e", "--URN", metavar="NAME",
                      help="endpoint name (default: the name the board reports)")
    seed.add_argument("-s", "--server", metavar="JSON",
                      help="Coiote server information (url, port, domain)")
    seed.add_argument("-t", "--token", metavar="TOKEN",
                      help="Coiote access token (prefer COIOTE_TOKEN or --token-file: argv is "
                           "visible to other users)")
    seed.add_argument("-C", "--cert", metavar="JSON",
                      help="cert_info.json: generate a self-signed endpoint certificate")
    seed.add_argument("-k", "--pkey", metavar="FILE",
                      help="endpoint private key (DER or PEM); ignored with -C")
    seed.add_argument("-r", "--pcert", metavar="FILE",
                      help="endpoint certificate (DER or PEM); ignored with -C")
    seed.add_argument("-p", "--scert", metavar="FILE", help="server certificate (DER or PEM)")
    more = parser.add_argument_group("hilprov options")
    more.add_argument("--output", metavar="PATH",
                      help="where to write the blob (default: ./SenMLCBOR; with a board, only "
                           "when given)")
    more.add_argument("--profile", choices=profile.PROFILES, default=profile.DEFAULT_PROFILE,
                      help="device profile to validate against (default: %(default)s)")
    more.add_argument("--token-file", metavar="FILE", help="read the Coiote token from FILE")
    more.add_argument("--cert-dir", metavar="DIR", default="cert",
                      help="where -C writes certificate files (default: ./cert; with a board: "
                           "./cert/<endpoint>)")
    board = parser.add_argument_group("board options (without them, only the blob is written)")
    board.add_argument("--board", action="append", default=[], metavar="SNR|sim",
                       help="J-Link serial number of an nRF board, or 'sim' for a virtual "
                            "board; repeat to provision several boards at once")
    board.add_argument("--port", metavar="PORT",
                       help="serial port (any pyserial URL); alone: a device already running "
                            "the initial image (no flashing)")
    board.add_argument("--baudrate", type=int, default=115200, metavar="B",
                       help="serial baud rate (default: %(default)s)")
    board.add_argument("--image-dir", metavar="DIR",
                       help="directory holding initial.hex and final.hex")
    board.add_argument("--initial-hex", metavar="FILE", help="initial (provisioning) image")
    board.add_argument("--final-hex", metavar="FILE", help="final (production) image")
    board.add_argument("--force-endpoint", action="store_true",
                       help="use -e even if the device reports another endpoint name")
    board.add_argument("--no-final", action="store_true",
                       help="stop after the device accepted the configuration")
    board.add_argument("--no-erase", action="store_true",
                       help="flash the initial image without a chip erase (a device that was "
                            "provisioned before then refuses as 'already provisioned')")
    board.add_argument("--coiote-replace", action="store_true",
                       help="delete the endpoint's existing Coiote device before onboarding "
                            "(re-provisioning in another security mode)")
    board.add_argument("--records", metavar="PATH", default="hilprov-records.sqlite",
                       help="device records database (default: %(default)s)")
    board.add_argument("--log-dir", metavar="DIR", default="hilprov-logs",
                       help="serial logs, one file per board and run (default: %(default)s)")
    board.add_argument("--emulate-baud", action="store_true",
                       help="virtual boards: bytes take their wire time at --baudrate")
    board.add_argument("--json", action="store_true",
                       help="print a machine-readable summary on stdout at the end")
    add_verbosity(parser)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="debug output")


_CONFIGURED_LOGGERS = ("hilprov", "hilprov.serial", "hilprov.sim", "hilprov.cloud.coiote",
                       "pynrfjprog")


@contextlib.contextmanager
def logging_for(args: argparse.Namespace):
    """Configure hilprov's loggers for one command, and put them back afterwards, so a command
    run inside another program (a test, a station script) leaves its logging as it was."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate)
             for lg in map(logging.getLogger, _CONFIGURED_LOGGERS)]
    setup_logging(args)
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    elif getattr(args, "verbose", False):
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("hilprov")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # The serial console mirror, the virtual board and the HTTP client narrate every detail:
    # shown with -v; the step lines already say what happened.
    chatty = logging.DEBUG if level == logging.DEBUG else logging.WARNING
    for name in ("hilprov.serial", "hilprov.sim", "hilprov.cloud.coiote"):
        logging.getLogger(name).setLevel(chatty)
    logging.getLogger("pynrfjprog").setLevel(logging.CRITICAL)  # we report its errors ourselves


# -- commands ------------------------------------------------------------------------------------
def cmd_provision(args: argparse.Namespace) -> int:
    if args.board or args.port:
        return cmd_provision_boards(args)
    from hilprov.provisioning import FactoryProvisioning

    token = coiote.resolve_token(args.token, args.token_file)
    fp = FactoryProvisioning(args.endpoint_cfg, args.URN, args.server, token, args.cert,
                             profile_name=args.profile)
    fp.check()  # refuse a bad config before any file is written
    if fp.get_sec_mode() in ("cert", "est"):
        load_credentials(fp, args)
    fp.provision_device(args.output or "SenMLCBOR")
    register_if_asked(fp, args, token)
    return 0


def load_credentials(fp, args: argparse.Namespace) -> None:
    """Certificate/EST mode: server certificate and endpoint certificate + key, seed order."""
    fp.load_credentials(args.scert, args.pcert, args.pkey, generating=args.cert is not None)
    if args.cert is not None:
        fp.generate_self_signed_cert(args.cert_dir)


def register_if_asked(fp, args: argparse.Namespace, token: str | None) -> None:
    wanted = {"-s server.json": args.server, "a token (COIOTE_TOKEN, --token-file or -t)": token,
              "an endpoint name (-e)": fp.endpoint_name}
    missing = [name for name, value in wanted.items() if not value]
    if not missing:
        fp.register()
    elif args.server or args.token or args.token_file:
        log.warning("not registering in Coiote: missing %s", " and ".join(missing))


def cmd_provision_boards(args: argparse.Namespace) -> int:
    """The full flow (spec §5.4) on each board; one progress line per step and board."""
    from datetime import datetime
    from pathlib import Path

    from hilprov.station import runner as station
    from hilprov.station.flow import FlowOptions
    from hilprov.station.records import RecordStore, RecordWriter

    token = coiote.resolve_token(args.token, args.token_file)
    options = FlowOptions(
        endpoint_cfg=Path(args.endpoint_cfg), endpoint_name=args.URN,
        force_endpoint=args.force_endpoint, server_info=args.server, token=token,
        cert_info=args.cert, pkey=args.pkey, pcert=args.pcert, scert=args.scert,
        profile=args.profile, cert_dir=Path(args.cert_dir), flash_final=not args.no_final,
        erase_initial=not args.no_erase, replace_cloud_device=args.coiote_replace,
        output=args.output and Path(args.output),
        initial_hex=args.initial_hex and Path(args.initial_hex),
        final_hex=args.final_hex and Path(args.final_hex))
    any_sim = station.SIM in args.board
    station.resolve_images(options, args.image_dir and Path(args.image_dir), any_sim)
    run_dir = Path(args.log_dir) / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    with contextlib.ExitStack() as stack:
        registrar = None
        if any_sim and args.server is None:
            # No -s with a virtual board: onboard in a local Coiote-compatible server, and let
            # virtual boards register only if it knows them (spec §7 semantics).
            from pytest_hilprov.support import local_coiote

            cloud = stack.enter_context(local_coiote())
            log.info("no -s given: onboarding in a local Coiote-compatible server at %s",
                     cloud.local.url)
            options.coiote_client, options.coiote_domain = cloud.client, cloud.domain
            registrar = cloud.registrar()
        boards = station.make_boards(args.board, port=args.port, baudrate=args.baudrate,
                                     emulate_baud=args.emulate_baud, registrar=registrar)
        stack.callback(station.close_all, boards)
        observers = [station.ProgressPrinter(prefix=len(boards) > 1 or args.verbose),
                     RecordWriter(RecordStore(args.records))]
        if args.quiet:
            observers.pop(0)
        results = station.run_flows(boards, options, observers=observers, log_dir=run_dir)
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results]}, indent=2))
    failed = [r for r in results if not r.ok]
    for result in failed:
        print(f"{args.prog}: {result.error_kind}: [{result.board}] {result.error}",
              file=sys.stderr)
        if result.log_path:
            print(f"{args.prog}: serial log of {result.board}: {result.log_path}",
                  file=sys.stderr)
    return failed[0].exit_code if failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hilprov.core.config import load_config
    from hilprov.provisioning import with_credentials

    config = load_config(args.config)
    # Certificate/EST credentials come from flags at provisioning time: count them as present.
    problems = profile.validate(with_credentials(config, None, None, None, pending=True),
                                args.profile)
    for problem in problems:
        print(problem)
    errors = profile.errors(problems)
    summary = f"{args.config}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s) " \
              f"[profile {args.profile}]"
    print(summary, file=sys.stderr)
    return ValidationError.exit_code if errors else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hilprov.core import senml
    from hilprov.errors import ConfigError

    try:
        blob = Path(args.blob).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.blob}: cannot read: {exc.strerror or exc}") from None
    try:
        records = senml.decode(blob)
    except senml.SenmlError as exc:
        raise senml.SenmlError(f"{args.blob}: {exc}") from None
    rows = [(r.name, r.label_name, _show(r, args.show_secrets)) for r in records]
    if args.json:
        print(json.dumps([{"name": n, "label": lbl, "value": v} for n, lbl, v in rows], indent=2))
        return 0
    width = max([len(n) for n, _, _ in rows] + [4])
    print(f"{'#':>3}  {'name':<{width}}  label  value")
    for index, (name, label, value) in enumerate(rows, start=1):
        print(f"{index:>3}  {name:<{width}}  {label:<5}  {value}")
    print(f"{len(rows)} records, {len(blob)} bytes", file=sys.stderr)
    return 0


def _show(record, show_secrets: bool):
    """A printable value; PSK keys and private keys (/0/x/5) are masked unless asked."""
    from hilprov.core.lwm2m import is_secret

    value = record.value
    if isinstance(value, bytes):
        if is_secret(record.name) and not show_secrets:
            return f"<{len(value)} bytes, hidden; --show-secrets to print>"
        if len(value) <= 64 and all(32 <= b < 127 for b in value):
            return repr(value)
        return f"{value[:32].hex()}{'…' if len(value) > 32 else ''} ({len(value)} bytes)"
    return value


def cmd_fs(args: argparse.Namespace) -> int:
    """`mcumgr fs upload/download` for any Zephyr MCUmgr device with the file-system group."""
    import time
    from pathlib import Path

    from hilprov.board.serial import SerialPort
    from hilprov.board.smp import SmpFileClient
    from hilprov.core.files import write_atomic
    from hilprov.errors import ConfigError

    progress = _TransferBar() if sys.stderr.isatty() and not args.quiet else None
    if args.action == "upload":
        try:
            data = Path(args.local).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{args.local}: cannot read: {exc.strerror or exc}") from None
    with SerialPort(args.port, args.baudrate) as port:
        client = SmpFileClient(port, timeout=args.timeout, retries=args.retries)
        start = time.monotonic()
        if args.action == "upload":
            client.upload(data, args.remote, progress=progress)
            size = len(data)
        else:
            data = client.download(args.remote, progress=progress)
            write_atomic(Path(args.local), data, mode=0o644)
            size = len(data)
        seconds = time.monotonic() - start
    if progress:
        progress.done()
    verb = "uploaded to" if args.action == "upload" else "downloaded from"
    log.info("%d bytes %s %s in %.2f s (%.0f B/s)", size, verb, args.remote, seconds,
             size / max(seconds, 1e-6))
    return 0


class _TransferBar:
    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} B\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def cmd_records(args: argparse.Namespace) -> int:
    from hilprov.station.records import RecordStore, export, parse_since

    since = parse_since(args.since) if args.since else None
    rows = RecordStore(args.records).query(since=since, endpoint=args.endpoint,
                                           failed=args.failed)
    if args.format in ("csv", "json"):
        text = export(rows, args.format)
        if args.output:
            from pathlib import Path

            from hilprov.core.files import write_atomic

            write_atomic(Path(args.output), text.encode(), mode=0o644)
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    print(f"{'id':>5}  {'started (UTC)':<23}  {'board':<12} {'endpoint':<36} {'outcome':<12} "
          "error")
    for row in rows:
        error = f"{row['error_kind']} at {row['current_step']}" if row["error_kind"] else ""
        print(f"{row['id']:>5}  {row['started_at'][:23]:<23}  {row['board']:<12} "
              f"{(row['endpoint'] or '-'):<36} {row['outcome']:<12} {error}")
    print(f"{len(rows)} attempt(s) in {args.records}", file=sys.stderr)
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    """Connected J-Link probes: serial number, chip family, VCOM ports (first = console)."""
    from hilprov.board.nordic import list_probes

    probes = list_probes()
    if args.json:
        print(json.dumps([{"serial_number": p.serial_number, "family": p.family,
                           "vcom_ports": p.vcom_ports} for p in probes], indent=2))
        return 0
    for probe in probes:
        print(f"{probe.serial_number:<12} {probe.family:<10} {' '.join(probe.vcom_ports) or '-'}")
    print(f"{len(probes)} J-Link probe(s)", file=sys.stderr)
    return 0


def cmd_coiote_sim(args: argparse.Namespace) -> int:
    """A local Coiote-compatible server for benches without the cloud: prints its URL, serves
    until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from hilprov.errors import ConfigError
    from hilprov.sim.coiote_server import CoioteServer

    token = coiote.resolve_token(None, args.token_file)
    if not token:
        raise ConfigError("no token for the local Coiote server: give --token-file FILE or set "
                          "COIOTE_TOKEN")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with CoioteServer(token, host=args.host, port=args.port) as server:
        print(server.url, flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from hilprov.sim.runner import sim_main

    return sim_main(args.sim_args)


# -- parsers -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilprov", formatter_class=_formatter, epilog=EPILOG,
        description="Provision Nordic nRF boards running Zephyr + Anjay LwM2M.")
    parser.add_argument("--version", action="version", version=f"hilprov {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("provision", help="build, validate and write the blob; onboard in Coiote",
                       formatter_class=_formatter, epilog=EPILOG)
    add_provision_arguments(p)
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("validate", help="report every problem the device would reject",
                       formatter_class=_formatter, epilog=EPILOG)
    p.add_argument("config", help="endpoint configuration file")
    p.add_argument("--profile", choices=profile.PROFILES, default=profile.DEFAULT_PROFILE)
    add_verbosity(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("decode", help="print the records of a SenML CBOR blob",
                       formatter_class=_formatter, epilog=EPILOG)
    p.add_argument("blob", help="SenML CBOR file (e.g. SenMLCBOR)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--show-secrets", action="store_true", help="print /0/x/5 keys too")
    add_verbosity(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("fs", help="upload/download files over SMP (an `mcumgr fs` replacement)",
                       formatter_class=_formatter, epilog=EPILOG)
    fs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, first, second in (("upload", "local", "remote"),
                                  ("download", "remote", "local")):
        q = fs.add_parser(action, help=f"{action} one file",
                          formatter_class=_formatter, epilog=EPILOG)
        q.add_argument("--port", required=True, help="serial port (any pyserial URL)")
        q.add_argument("--baudrate", type=int, default=115200)
        q.add_argument("--timeout", type=float, default=5.0, help="seconds per response")
        q.add_argument("--retries", type=int, default=3, help="sendings per request")
        q.add_argument(first, metavar=first.upper())
        q.add_argument(second, metavar=second.upper())
        add_verbosity(q)
        q.set_defaults(func=cmd_fs)

    p = sub.add_parser("records", help="list or export the device records",
                       formatter_class=_formatter, epilog=EPILOG)
    p.add_argument("--records", default="hilprov-records.sqlite", metavar="PATH",
                   help="records database (default: %(default)s)")
    p.add_argument("--since", metavar="WHEN", help="ISO date/time, or 30m / 12h / 7d")
    p.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    p.add_argument("--failed", action="store_true", help="only attempts that did not succeed")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--output", metavar="FILE", help="write csv/json here instead of stdout")
    add_verbosity(p)
    p.set_defaults(func=cmd_records)

    p = sub.add_parser("probes", help="list connected J-Link probes and their serial ports",
                       formatter_class=_formatter, epilog=EPILOG)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_verbosity(p)
    p.set_defaults(func=cmd_probes)

    p = sub.add_parser("coiote-sim", help="run a local Coiote-compatible server (prints its URL)",
                       formatter_class=_formatter, epilog=EPILOG)
    p.add_argument("--token-file", metavar="FILE",
                   help="the Bearer token it accepts (default: $COIOTE_TOKEN)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="default: any free port")
    add_verbosity(p)
    p.set_defaults(func=cmd_coiote_sim)

    p = sub.add_parser("sim", help="run a virtual board (prints its pty path first)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("sim_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sim)
    return parser


def build_ptool_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptool", formatter_class=_formatter, epilog=EPILOG,
        description="Factory provisioning tool (seed-compatible front end of hilprov).")
    add_provision_arguments(parser)
    parser.set_defaults(func=cmd_provision)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    args.prog = parser.prog
    with logging_for(args):
        return guarded(args.func, args, parser.prog)


def guarded(func: Callable[[argparse.Namespace], int], args, prog: str) -> int:
    """Run a command: a HilprovError becomes its lines and exit code, never a traceback."""
    try:
        return func(args)
    except HilprovError as exc:
        for line in error_lines(exc):
            print(f"{prog}: {exc.kind}: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, the traceback only with -v
        log.debug("internal error", exc_info=True)
        print(f"{prog}: internal error: {type(exc).__name__}: {exc} (this is a bug; run with -v "
              "and report it)", file=sys.stderr)
        return 1


def error_lines(exc: HilprovError) -> list[str]:
    problems = getattr(exc, "problems", None)
    if not problems:
        return [str(exc)]
    head = [str(exc)] if isinstance(exc, ValidationError) else []
    return head + [str(p) for p in problems]


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def ptool_main(argv: Sequence[str] | None = None) -> int:
    return run(build_ptool_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
