"""`ptool` / `hilprov provision`: the station flow on every `--board`, or without a board (the
seed's behaviour: build, validate and write the blob, onboard when asked) — one sequence."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hilprov.cli.exits import print_error
from hilprov.errors import HilprovError, UsageError
from hilprov.settings import Settings, from_cli
from hilprov.station.flow import DEFAULT_BLOB, FlowObserver, FlowResult, StepRecord, reaches
from hilprov.station.runner import RunInterrupted, run_flows
from hilprov.station.states import StepStatus

if TYPE_CHECKING:  # a run without a board needs neither the records nor the clouds
    from hilprov.station import cloud as clouds
    from hilprov.station.records import RecordWriter

log = logging.getLogger("hilprov")

TOKEN_SOURCES = "a token (COIOTE_TOKEN, --token-file or -t)"


def cmd_provision(args: argparse.Namespace) -> int:
    try:
        return _provision(args)
    except HilprovError as exc:  # the run stopped as a whole: --json still gets its document
        if getattr(args, "json", False):
            from hilprov.cli.commands import print_json

            ran = getattr(exc, "results", [])  # none if it stopped before any board ran
            print_json(_json_document(ran, exc))
        raise


def _provision(args: argparse.Namespace) -> int:
    settings = from_cli(args)
    token = _token(settings)
    store = None
    with contextlib.ExitStack() as stack:
        cloud, why_not = _cloud(settings, token, stack)
        if settings.has_board:
            from datetime import datetime

            from hilprov.board import registry
            from hilprov.cli.progress import ProgressPrinter
            from hilprov.station.records import RecordStore, RecordWriter

            store = RecordStore(settings.records, station=settings.station)
            store.ensure_schema()  # a records database that is not there stops the run here
            options = settings.board_options(cloud=cloud.view() if cloud else None)
            boards = registry.open_boards(settings.board, options)
            stack.callback(registry.close_all, boards)
            printer = ProgressPrinter(prefix=len(boards) > 1 or args.verbose)
            writer = RecordWriter(store)
            observers: list[FlowObserver] = [writer]
            if not args.quiet:
                observers.insert(0, printer)
            run_dir = Path(settings.log_dir) / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        else:
            boards, observers, run_dir = [None], [SeedReporter(settings, why_not)], None
            writer = None
        try:
            results = run_flows(boards, settings.inputs(), settings.run_options(), cloud=cloud,
                                cloud_missing=why_not, observers=observers, log_dir=run_dir,
                                history=store)
        except RunInterrupted as stop:
            print(f"{args.prog}: interrupted ({stop.signal_name}): "
                  f"{_where_stopped(stop.results, writer)}", file=sys.stderr)
            return stop.exit_code
    return _report(args, settings, results)


def _where_stopped(results: list[FlowResult], writer: RecordWriter | None) -> str:
    """Where each board was when the signal came, and whether its record says so (a board
    whose last write was still being tried has its row kept on this host, not yet recorded)."""
    from hilprov.station.records import unit_state

    said, kept = [], False
    for result in results:
        where = (f"[{result.board}] {result.outcome}" if result.ok
                 else f"[{result.board}] at {result.current_step or 'start'}")
        if writer is not None and result.attempt not in writer.recorded:
            where += f" (not recorded yet: {unit_state(result)})"
            kept = True
        said.append(where)
    if kept:
        said.append(f"rows not recorded yet are kept in {writer.store.journal.directory} and "
                    "written by this station's next run (or `hilprov records`)")
    elif writer is not None:
        said.append("each attempt is recorded")
    return "; ".join(said)


def _token(settings: Settings) -> str | None:
    """The Coiote token, read when the run can use it (a server, a board, or a token option)."""
    if not (settings.server or settings.has_board or settings.token or settings.token_file):
        return None
    from hilprov.cloud import coiote

    return coiote.resolve_token(settings.token, settings.token_file)


def _cloud(settings: Settings, token: str | None, stack: contextlib.ExitStack
           ) -> tuple[clouds.CloudTarget | None, str]:
    """Where to onboard, or (None, why not). Without a board the seed's rule holds: onboard only
    with a server, a token and an endpoint name."""
    if settings.server is not None and not token and settings.has_board:
        raise UsageError(f"-s {settings.server}: onboarding needs {TOKEN_SOURCES}; without it "
                         "the units would get their production image without being onboarded")
    if settings.server is not None and token:
        if settings.has_board or settings.endpoint_name:
            from hilprov.station import cloud as clouds

            # With boards the token is tried before any unit is touched; without, the seed's
            # order holds (the blob is written, then onboarding says what went wrong).
            target = clouds.remote_coiote(settings.server, token,
                                          check_access=settings.has_board)
            return stack.enter_context(target), ""
        return None, "not registering in Coiote: missing an endpoint name (-e)"
    if settings.server is None and settings.has_board and settings.all_sim \
            and reaches(settings.until, "onboard"):
        # No -s with virtual boards: onboard in a local Coiote-compatible server, and let the
        # boards register only if it knows them (spec §7 semantics).
        from hilprov.station import cloud as clouds

        target = stack.enter_context(clouds.local_coiote())
        log.info("no -s given: onboarding in a local Coiote-compatible server at %s", target.url)
        return target, ""
    missing = [what for what, value in (("-s server.json", settings.server),
                                        (TOKEN_SOURCES, token),
                                        ("an endpoint name (-e)",
                                         settings.endpoint_name or settings.has_board))
               if not value]
    if settings.server or settings.token or settings.token_file:
        return None, f"not registering in Coiote: missing {' and '.join(missing)}"
    return None, "no Coiote server given (-s)"


class SeedReporter(FlowObserver):
    """The seed tool's messages for a run without a board."""

    def __init__(self, settings: Settings, cloud_missing: str) -> None:
        self.output = settings.output or DEFAULT_BLOB
        self.cert_dir = settings.cert_dir
        self.warn_skip = bool(settings.server or settings.token or settings.token_file)
        self.cloud_missing = cloud_missing

    def step_started(self, result: FlowResult, step: StepRecord) -> None:
        if step.name == "build-blob":
            log.info('Security Mode set to "%s"', result.security_mode or "unknown")
            log.info("Serializing endpoint configuration...")
        elif step.name == "onboard":
            log.info("Registering endpoint %r in Coiote...", result.endpoint)

    def step_finished(self, result: FlowResult, step: StepRecord) -> None:
        if step.status == StepStatus.SKIPPED:
            if step.name == "onboard" and self.warn_skip:
                log.warning("%s", step.detail)
            return
        if step.status != StepStatus.OK:
            return
        if step.name == "build-blob":
            if result.cert_fingerprint and any(Path(p).parent == Path(self.cert_dir)
                                               for p in result.written):
                log.info("Certificates generated in %s/", self.cert_dir)
            log.info("SenML CBOR blob created: %s (%d bytes)", self.output, result.blob_size)
        elif step.name == "onboard":
            log.info('Device "%s" %s', result.endpoint, result.coiote)


def _json_document(results: list[FlowResult], error: HilprovError | None = None) -> dict:
    """What --json prints: every board's result, and the error that stopped the whole run."""
    document: dict = {"results": [r.as_dict() for r in results]}
    if error is not None:
        document["error"] = {"kind": error.kind, "exit_code": error.exit_code,
                             "message": str(error)}
    return document


def _report(args: argparse.Namespace, settings: Settings, results: list[FlowResult]) -> int:
    if settings.json:
        from hilprov.cli.commands import print_json

        print_json(_json_document(results))
    failed = [r for r in results if not r.ok]
    shared: dict[tuple[str, str], list[FlowResult]] = {}  # one line for an error boards share
    for result in failed:
        shared.setdefault((str(result.error_kind), str(result.error)), []).append(result)
    for same in shared.values():
        result = same[0]
        where = ", ".join(r.board for r in same if r.board_kind != "none")
        if isinstance(result.exception, HilprovError):
            print_error(args.prog, result.exception, where)
        else:
            print(f"{args.prog}: {result.error_kind}: [{where}] {result.error}", file=sys.stderr)
    for result in failed:
        if result.log_path:
            print(f"{args.prog}: serial log of {result.board}: {result.log_path}",
                  file=sys.stderr)
    return failed[0].exit_code if failed else 0
