"""The `hilprov` subcommands other than provision: validate, decode, fs, smp, records, probes,
coiote-sim and sim. Each imports what it uses when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hilprov.errors import ConfigError, ValidationError

log = logging.getLogger("hilprov")


def print_json(value: object) -> None:
    import json  # only the --json outputs need it

    print(json.dumps(value, indent=2))


def cmd_validate(args: argparse.Namespace) -> int:
    from hilprov.core import profile
    from hilprov.core.config import load_config
    from hilprov.core.plan import with_credentials

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
    from hilprov.core import senml
    from hilprov.core.files import read_input

    blob = read_input(args.blob, "blob")
    try:
        records = senml.decode(blob)
    except senml.SenmlError as exc:
        raise senml.SenmlError(f"{args.blob}: {exc}") from None
    rows = [(r.name, r.label_name, _show(r, args.show_secrets)) for r in records]
    if args.json:  # JSON escapes control characters itself
        print_json([{"name": n, "label": lbl, "value": v} for n, lbl, v in rows])
        return 0
    rows = [(_printable(n), lbl, _printable(v) if isinstance(v, str) else v)
            for n, lbl, v in rows]
    width = max([len(n) for n, _, _ in rows] + [4])
    print(f"{'#':>3}  {'name':<{width}}  label  value")
    for index, (name, label, value) in enumerate(rows, start=1):
        print(f"{index:>3}  {name:<{width}}  {label:<5}  {value}")
    print(f"{len(rows)} records, {len(blob)} bytes", file=sys.stderr)
    return 0


def _printable(text: str) -> str:
    """Text from a blob, safe for a terminal: control characters (escape sequences, bells,
    carriage returns) are shown escaped, as `\\x1b`, never sent to the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


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
    from hilprov.board.serial import SerialPort
    from hilprov.board.smp import SmpFileClient
    from hilprov.core.files import read_input, write_atomic

    progress = None
    if sys.stderr.isatty() and not args.quiet:  # a bar only on a terminal: import it only then
        from hilprov.cli.progress import TransferBar

        progress = TransferBar()
    if args.action == "upload":
        data = read_input(args.local, "file to upload")
    with SerialPort(args.port, args.baudrate) as port:
        client = SmpFileClient(port, timeout=args.timeout, retries=args.retries)
        start = time.monotonic()
        if args.action == "upload":
            client.upload(data, args.remote, progress=progress)
        else:
            data = client.download(args.remote, progress=progress)
            write_atomic(Path(args.local), data, mode=0o644)
        seconds = time.monotonic() - start
    if progress:
        progress.done()
    verb = "uploaded to" if args.action == "upload" else "downloaded from"
    log.info("%d bytes %s %s in %.2f s (%.0f B/s; SMP link: %s)", len(data), verb, args.remote,
             seconds, len(data) / max(seconds, 1e-6), client.level.name)
    return 0


def cmd_smp(args: argparse.Namespace) -> int:
    """`hilprov smp echo|params`: check a board's SMP link from the bench."""
    from hilprov.board.serial import SerialPort
    from hilprov.board.smp import SmpFileClient

    with SerialPort(args.port, args.baudrate) as port:
        client = SmpFileClient(port, timeout=args.timeout, retries=args.retries)
        if args.action == "echo":
            echoed, seconds = client.echo(args.text)
            _print_echo(args, echoed, seconds)
        else:
            params = client.params()
            state = client.learn()
            _print_params(args, params, state)
    return 0


def _print_echo(args: argparse.Namespace, echoed: str, seconds: float) -> None:
    if args.json:
        print_json({"port": args.port, "sent": args.text, "echo": echoed,
                    "round_trip_ms": round(seconds * 1000, 3)})
        return
    print(_printable(echoed))
    print(f"round trip {seconds * 1000:.1f} ms")


def _print_params(args: argparse.Namespace, params, state) -> None:
    link = state.as_dict() if state is not None else None
    if args.json:
        print_json({"port": args.port, "buf_size": params.buf_size,
                    "buf_count": params.buf_count, "max_request": params.max_request,
                    "link": link, "tried": state.tried() if state else None})
        return
    if params.from_device:
        print(f"buf_size    {params.buf_size} bytes (largest request {params.max_request} B)")
        print(f"buf_count   {params.buf_count}")
    else:
        print("buf_size    not reported (no MCUmgr parameters command): "
              f"{params.max_request}-byte requests")
        print("buf_count   not reported")
    if state is None:
        return
    level = state.current
    print(f"link        {level.name}: {level.describe()}")
    print(f"tried       {state.tried()}")
    if state.round_trip is not None:
        print(f"round trip  {state.round_trip * 1000:.1f} ms (MCUmgr parameters)")


def cmd_records(args: argparse.Namespace) -> int:
    from hilprov.core.files import write_atomic
    from hilprov.station.records import RecordStore, export, parse_since

    since = parse_since(args.since) if args.since else None
    store = RecordStore(args.records)
    store.require_existing()
    rows = store.query(since=since, endpoint=args.endpoint, failed=args.failed,
                       test=args.test, stations=args.station)
    if args.format in ("csv", "json"):
        text = export(rows, args.format)
        if args.output:
            write_atomic(Path(args.output), text.encode(), mode=0o644)
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    print(f"{'id':>5}  {'started (UTC)':<23}  {'station':<12} {'board':<12} {'endpoint':<36} "
          f"{'outcome':<12} error")
    for row in rows:
        error = f"{row['error_kind']} at {row['current_step']}" if row["error_kind"] else ""
        print(f"{row['id']:>5}  {row['started_at'][:23]:<23}  {row['station']:<12} "
              f"{row['board']:<12} {(row['endpoint'] or '-'):<36} {row['outcome']:<12} {error}")
    print(f"{len(rows)} attempt(s) in {store.where}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The line report: figures per station and for the line, as JSON for a MES, as a
    self-contained HTML page, or as a few lines of text."""
    from hilprov.core.files import write_atomic
    from hilprov.station import report
    from hilprov.station.records import RecordStore, parse_since

    since = parse_since(args.since) if args.since else None
    store = RecordStore(args.records)
    store.require_existing()
    rows = store.query(since=since, stations=args.station)
    figures = report.line_figures(rows, since=since)
    if args.html:
        from hilprov.station import report_page

        text = report_page.page(figures, rows, source=store.where)
        write_atomic(Path(args.html), text.encode(), mode=0o644)
        log.info("line report: %s (%d attempts, %d units, %d station(s))", args.html,
                 figures["attempts"], figures["units"], len(figures["stations"]))
    if args.json:
        print_json(figures)
    elif not args.html:
        print("\n".join(report.summary_lines(figures)))
        print(f"{figures['attempts']} attempt(s) in {store.where}", file=sys.stderr)
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    """Connected J-Link probes: serial number, chip family, VCOM ports (first = console)."""
    from hilprov.board import flashers

    probes = flashers.choose(args.flasher).list_probes()
    if args.json:
        print_json([{"serial_number": p.serial_number, "family": p.family,
                     "vcom_ports": p.vcom_ports} for p in probes])
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

    from hilprov.cloud import coiote
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
