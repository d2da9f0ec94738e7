"""Errors to lines and exit codes: the library raises typed HilprovErrors, each class has one
documented exit code, and a command prints one line per problem, never a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from hilprov.core.text import PROBLEMS_SHOWN
from hilprov.errors import (
    EXIT_CODES,
    INTERRUPTED_CODES,
    HilprovError,
    Interrupted,
    ValidationError,
)

log = logging.getLogger("hilprov")

EPILOG = ("exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
          + f"\n  {INTERRUPTED_CODES}")


def guarded(func: Callable[..., int], args, prog: str) -> int:
    """Run a command: a HilprovError becomes its lines and exit code, never a traceback."""
    try:
        return func(args)
    except HilprovError as exc:
        print_error(prog, exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        interrupted = Interrupted.of(exc)
        print(f"{prog}: interrupted ({interrupted.signal_name})", file=sys.stderr)
        return interrupted.exit_code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except Exception as exc:  # a bug: say so in one line, the traceback only with -v
        log.debug("internal error", exc_info=True)
        print(f"{prog}: internal error: {type(exc).__name__}: {exc} (this is a bug; run with -v "
              "and report it)", file=sys.stderr)
        return 1


def quiet_broken_pipe() -> int:
    """stdout was closed by its reader (`| head`): stop quietly, as `cat` does (exit 141)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
    except (OSError, ValueError):
        pass
    return 141


def print_error(prog: str, exc: HilprovError, where: str = "") -> None:
    """`prog: kind: [where] line` for each line of `exc`."""
    head = f"[{where}] " if where else ""
    for index, line in enumerate(error_lines(exc)):
        print(f"{prog}: {exc.kind}: {head if index == 0 else ''}{line}", file=sys.stderr)


def error_lines(exc: HilprovError) -> list[str]:
    """The error, then one line per problem; a long list is cut after the first
    PROBLEMS_SHOWN, with a count of the rest."""
    problems = getattr(exc, "problems", None)
    if not problems:
        return [str(exc)]
    head = [str(exc)] if isinstance(exc, ValidationError) else []
    lines = head + [str(p) for p in problems[:PROBLEMS_SHOWN]]
    if len(problems) > PROBLEMS_SHOWN:
        lines.append(f"... and {len(problems) - PROBLEMS_SHOWN} more problems (fix these "
                     "first, or run hilprov validate for the whole list)")
    return lines
