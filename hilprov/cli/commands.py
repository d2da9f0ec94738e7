"""The `hilprov` subcommands other than provision: validate, decode, fs, records, probes,
coiote-sim and sim. Each imports what it uses when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hilprov.errors import ConfigError, ValidationError

log = logging.getLogger("hilprov")


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
        import json

        print(json.dumps([{"name": n, "label": lbl, "value": v} for n, lbl, v in rows], indent=2))
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
    from hilprov.cli.progress import TransferBar
    from hilprov.core.files import read_input, write_atomic

    progress = TransferBar() if sys.stderr.isatty() and not args.quiet else None
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
    log.info("%d bytes %s %s in %.2f s (%.0f B/s)", len(data), verb, args.remote, seconds,
             len(data) / max(seconds, 1e-6))
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    from hilprov.core.files import write_atomic
    from hilprov.station.records import RecordStore, export, parse_since

    since = parse_since(args.since) if args.since else None
    rows = RecordStore(args.records).query(since=since, endpoint=args.endpoint,
                                           failed=args.failed)
    if args.format in ("csv", "json"):
        text = export(rows, args.format)
        if args.output:
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
    from hilprov.board import flashers

    probes = flashers.choose(args.flasher).list_probes()
    if args.json:
        import json

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
