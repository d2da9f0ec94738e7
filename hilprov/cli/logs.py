"""Logging for one command: messages on stderr, the chatty loggers quiet unless -v, and
everything put back afterwards so a command run inside another program leaves no trace."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

CONFIGURED = ("hilprov", "hilprov.serial", "hilprov.sim", "hilprov.cloud.coiote", "pynrfjprog")
CHATTY = ("hilprov.serial", "hilprov.sim", "hilprov.cloud.coiote")


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="debug output")


@contextlib.contextmanager
def logging_for(args: argparse.Namespace):
    """Configure hilprov's loggers for one command, and put them back afterwards."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate)
             for lg in map(logging.getLogger, CONFIGURED)]
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
    for name in CHATTY:
        logging.getLogger(name).setLevel(chatty)
    logging.getLogger("pynrfjprog").setLevel(logging.CRITICAL)  # we report its errors ourselves
