"""The parsers of `ptool` (the seed's flags) and `hilprov` (subcommands), and the entry points.
The provisioning options come from the one table in `hilprov.settings`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hilprov.board.flashers import DEFAULT_FLASHER, DEFAULT_VERIFY, FLASHERS, VERIFY_MODES
from hilprov.cli import commands
from hilprov.cli.exits import EPILOG, guarded
from hilprov.cli.logs import add_verbosity, logging_for
from hilprov.core.profile import DEFAULT_PROFILE, PROFILES
from hilprov.version import __version__


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32,
                                                width=_terminal_width())


def _terminal_width() -> int:
    """What argparse would ask `shutil.get_terminal_size` for (argparse builds a formatter for
    every option it adds; shutil, imported for that, would cost each start-up its compression
    modules)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


def _cmd_provision(args: argparse.Namespace) -> int:
    from hilprov.cli.provision import cmd_provision

    return cmd_provision(args)


def _cmd_flash(args: argparse.Namespace) -> int:
    from hilprov.cli.flash import cmd_flash

    return cmd_flash(args)


def add_flasher_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flasher", choices=FLASHERS, default=DEFAULT_FLASHER,
                        help="nrfutil (nRF Util), pynrfjprog, or auto: nRF Util when `nrfutil` "
                        "with its device command is on PATH (default: %(default)s)")


def add_provision_arguments(parser: argparse.ArgumentParser) -> None:
    from hilprov.settings import add_cli_arguments

    add_cli_arguments(parser)
    add_verbosity(parser)


def _sub(sub, name: str, help_text: str, func, **kwargs) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, formatter_class=_formatter, epilog=EPILOG,
                            **kwargs)
    parser.set_defaults(func=func)
    return parser


def _records_arguments(parser: argparse.ArgumentParser) -> None:
    """Which records to read: the database (as provisioning writes it), since when, which
    stations."""
    from hilprov.settings import checked, records_target

    parser.add_argument("--records", default="hilprov-records.sqlite", metavar="PATH|URL",
                        type=checked(records_target), help="records database: a SQLite file (PATH, "
                        "sqlite:///PATH) or postgresql://HOST/DB (default: %(default)s)")
    parser.add_argument("--since", metavar="WHEN", help="ISO date/time, or 30m / 12h / 7d")
    parser.add_argument("--station", metavar="NAME", action="append",
                        help="only this station (repeat for several)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilprov", formatter_class=_formatter, epilog=EPILOG,
        description="Provision Nordic nRF boards running Zephyr + Anjay LwM2M.")
    parser.add_argument("--version", action="version", version=f"hilprov {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_provision_arguments(_sub(sub, "provision", "build, validate and write the blob; onboard "
                                 "in Coiote", _cmd_provision))

    p = _sub(sub, "validate", "report every problem the device would reject",
             commands.cmd_validate)
    p.add_argument("config", help="endpoint configuration file")
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    add_verbosity(p)

    p = _sub(sub, "decode", "print the records of a SenML CBOR blob", commands.cmd_decode)
    p.add_argument("blob", help="SenML CBOR file (e.g. SenMLCBOR)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--show-secrets", action="store_true", help="print /0/x/5 keys too")
    add_verbosity(p)

    p = _sub(sub, "fs", "upload/download files over SMP (an `mcumgr fs` replacement)",
             commands.cmd_fs)
    fs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, first, second in (("upload", "local", "remote"),
                                  ("download", "remote", "local")):
        q = _sub(fs, action, f"{action} one file", commands.cmd_fs)
        q.add_argument("--port", required=True, help="serial port (any pyserial URL)")
        q.add_argument("--baudrate", type=int, default=115200)
        q.add_argument("--timeout", type=float, default=5.0, help="seconds per response")
        q.add_argument("--retries", type=int, default=3, help="sendings per request")
        q.add_argument(first, metavar=first.upper())
        q.add_argument(second, metavar=second.upper())
        add_verbosity(q)

    p = _sub(sub, "smp", "check an SMP link: echo, MCUmgr parameters and what the transport "
             "learns", commands.cmd_smp)
    smp = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("echo", "send TEXT with the OS echo command; print the echo and "
                          "the round trip"),
                         ("params", "print the device's MCUmgr buffer size and count, and "
                          "how the link takes lines")):
        q = _sub(smp, action, text, commands.cmd_smp)
        q.add_argument("--port", required=True, help="serial port (any pyserial URL)")
        q.add_argument("--baudrate", type=int, default=115200)
        q.add_argument("--timeout", type=float, default=5.0, help="seconds per response")
        q.add_argument("--retries", type=int, default=3, help="sendings per request")
        q.add_argument("--json", action="store_true", help="machine-readable output")
        if action == "echo":
            q.add_argument("text", metavar="TEXT")
        add_verbosity(q)

    p = _sub(sub, "records", "list or export the device records", commands.cmd_records)
    _records_arguments(p)
    p.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    p.add_argument("--test", metavar="NODEID", help="only attempts of this pytest test (a "
                   "node id such as tests/hardware/test_end_of_line.py::test_x, or a file::)")
    p.add_argument("--failed", action="store_true", help="only attempts that did not succeed")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--output", metavar="FILE", help="write csv/json here instead of stdout")
    add_verbosity(p)

    p = _sub(sub, "report", "the line report: yields, units per hour, failures, step times",
             commands.cmd_report)
    _records_arguments(p)
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML page here")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (for a MES)")
    add_verbosity(p)

    p = _sub(sub, "probes", "list connected J-Link probes and their serial ports",
             commands.cmd_probes)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_flasher_argument(p)
    add_verbosity(p)

    p = _sub(sub, "flash", "program a HEX file on J-Link boards, all at the same time",
             _cmd_flash)
    p.add_argument("hex", metavar="HEX", help="Intel HEX file")
    p.add_argument("--board", action="append", required=True, metavar="SNR",
                   help="J-Link serial number; repeat for more boards")
    p.add_argument("--erase", choices=("chip", "sector"), default="chip",
                   help="chip: all flash and UICR; sector: only the pages the file covers "
                   "(default: %(default)s)")
    p.add_argument("--verify", choices=VERIFY_MODES, default=DEFAULT_VERIFY,
                   help="hash: the chip hashes its flash; read: read it all back "
                   "(default: %(default)s)")
    add_flasher_argument(p)
    add_verbosity(p)

    p = _sub(sub, "coiote-sim", "run a local Coiote-compatible server (prints its URL)",
             commands.cmd_coiote_sim)
    p.add_argument("--token-file", metavar="FILE",
                   help="the Bearer token it accepts (default: $COIOTE_TOKEN)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="default: any free port")
    add_verbosity(p)

    p = sub.add_parser("sim", help="run a virtual board (prints its pty path first)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("sim_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=commands.cmd_sim)
    return parser


def build_ptool_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptool", formatter_class=_formatter, epilog=EPILOG,
        description="Factory provisioning tool (seed-compatible front end of hilprov).")
    add_provision_arguments(parser)
    parser.set_defaults(func=_cmd_provision)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    args.prog = parser.prog
    with logging_for(args):
        return guarded(args.func, args, parser.prog)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def ptool_main(argv: Sequence[str] | None = None) -> int:
    return run(build_ptool_parser(), argv)
