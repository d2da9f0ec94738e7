"""Command-line entry points: `ptool` (the seed's flags) and `hilprov` (subcommands).

This is the only layer that prints for the user and turns errors into exit codes: the library
raises typed `HilprovError`s, and each class has its own documented exit code (`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from hilprov import __version__, coiote, profile
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
    more.add_argument("--output", metavar="PATH", default="SenMLCBOR",
                      help="where to write the blob (default: ./SenMLCBOR)")
    more.add_argument("--profile", choices=profile.PROFILES, default=profile.DEFAULT_PROFILE,
                      help="device profile to validate against (default: %(default)s)")
    more.add_argument("--token-file", metavar="FILE", help="read the Coiote token from FILE")
    more.add_argument("--cert-dir", metavar="DIR", default="cert",
                      help="where -C writes certificate files (default: ./cert)")
    add_verbosity(parser)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="debug output")


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


# -- commands ------------------------------------------------------------------------------------
def cmd_provision(args: argparse.Namespace) -> int:
    from hilprov.provisioning import FactoryProvisioning

    token = coiote.resolve_token(args.token, args.token_file)
    fp = FactoryProvisioning(args.endpoint_cfg, args.URN, args.server, token, args.cert,
                             profile_name=args.profile)
    fp.check()  # refuse a bad config before any file is written
    if fp.get_sec_mode() in ("cert", "est"):
        load_credentials(fp, args)
    fp.provision_device(args.output)
    register_if_asked(fp, args, token)
    return 0


def load_credentials(fp, args: argparse.Namespace) -> None:
    """Certificate/EST mode: server certificate and endpoint certificate + key, seed order."""
    if args.scert is None:
        raise_config(f"{fp.get_sec_mode()} mode needs the server certificate: give -p FILE")
    if args.cert is None and (args.pkey is None or args.pcert is None):
        raise_config(f"{fp.get_sec_mode()} mode needs the endpoint certificate and key: give -C "
                     "cert_info.json, or -r CERT and -k KEY")
    fp.set_server_cert(args.scert)
    if args.cert is not None:
        fp.generate_self_signed_cert(args.cert_dir)
    else:
        fp.set_endpoint_cert_and_key(args.pcert, args.pkey)


def register_if_asked(fp, args: argparse.Namespace, token: str | None) -> None:
    wanted = {"-s server.json": args.server, "a token (COIOTE_TOKEN, --token-file or -t)": token,
              "an endpoint name (-e)": fp.endpoint_name}
    missing = [name for name, value in wanted.items() if not value]
    if not missing:
        fp.register()
    elif args.server or args.token or args.token_file:
        log.warning("not registering in Coiote: missing %s", " and ".join(missing))


def raise_config(message: str) -> None:
    from hilprov.errors import ConfigError

    raise ConfigError(message)


def cmd_validate(args: argparse.Namespace) -> int:
    from hilprov.config import load_config
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
    return profile_exit(errors)


def profile_exit(errors: list) -> int:
    from hilprov.errors import ValidationError

    return ValidationError.exit_code if errors else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hilprov import senml
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
    parts = record.name.strip("/").split("/")
    secret = len(parts) >= 3 and parts[0] == "0" and parts[2] == "5"
    value = record.value
    if isinstance(value, bytes):
        if secret and not show_secrets:
            return f"<{len(value)} bytes, hidden; --show-secrets to print>"
        if len(value) <= 64 and all(32 <= b < 127 for b in value):
            return repr(value)
        return f"{value[:32].hex()}{'…' if len(value) > 32 else ''} ({len(value)} bytes)"
    return value


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
    setup_logging(args)
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
