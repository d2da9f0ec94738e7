"""Run the flow on many boards at once: one plan for all, one thread per board, results in board
order. The calling thread only waits, so a SIGINT/SIGTERM reaches it, not a half-done step: it
stops every flow (each records itself as interrupted) and then re-raises."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hilprov.board.base import Board
from hilprov.core import plan
from hilprov.errors import Interrupted
from hilprov.station.flow import (
    FlowObserver,
    FlowResult,
    IdentityHistory,
    ProvisioningFlow,
    RunOptions,
)
from hilprov.station.plans import PlanSource

if TYPE_CHECKING:
    from hilprov.station.cloud import CloudTarget

log = logging.getLogger("hilprov.station.runner")

STOP_WAIT = 20.0  # seconds an interrupted flow may take to record itself (a flash cannot stop)


class RunInterrupted(Interrupted):
    """The run was interrupted; `results` say where each board was."""

    def __init__(self, signal: Interrupted, results: list[FlowResult]) -> None:
        super().__init__(signal.signum)
        self.results = results


def run_flows(boards: Sequence[Board | None], plans: PlanSource | plan.Inputs | plan.Plan,
              options: RunOptions, *, cloud: CloudTarget | None = None,
              cloud_missing: str = "no Coiote server given",
              observers: Sequence[FlowObserver] = (), log_dir: Path | None = None,
              history: IdentityHistory | None = None) -> list[FlowResult]:
    """Provision every board concurrently; `[None]` runs the flow once without a board."""
    source = plans if isinstance(plans, PlanSource) else PlanSource(plans, units=len(boards))
    flows = [ProvisioningFlow(board, source, options, cloud=cloud, cloud_missing=cloud_missing,
                              observers=list(observers), log_dir=log_dir, history=history)
             for board in boards]
    crashes: list[BaseException] = []
    # Waiting is on events, not Thread.join: on Python 3.11 a join cut short by the signal marks
    # the still running thread as stopped, and the join that should give it STOP_WAIT returns.
    finished = [threading.Event() for _ in flows]

    def run(flow: ProvisioningFlow, done: threading.Event) -> None:
        try:
            flow.run()
        except BaseException as exc:  # a bug in the flow: re-raised in the calling thread
            crashes.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=run, args=(flow, done), daemon=True,
                                name=f"board-{flow.result.board}")
               for flow, done in zip(flows, finished, strict=True)]
    try:
        for thread in threads:
            thread.start()
        for done in finished:
            while not done.wait(0.1):
                pass
    except KeyboardInterrupt as exc:
        signal = Interrupted.of(exc)
        _stop(flows, [done for thread, done in zip(threads, finished, strict=True)
                      if thread.ident is not None], signal)  # the started ones
        raise RunInterrupted(signal, [flow.result for flow in flows]) from None
    real = [exc for exc in crashes if not isinstance(exc, KeyboardInterrupt)]
    if real:
        real[0].results = [flow.result for flow in flows]  # what the boards did (for --json)
        raise real[0]
    return [flow.result for flow in flows]


def _stop(flows: list[ProvisioningFlow], started: list[threading.Event],
          signal: Interrupted) -> None:
    """Stop every flow and give them STOP_WAIT to record where they were. Another Ctrl-C does
    not cut it short: the rows would be left "in progress" and later read as abandoned."""
    deadline = time.monotonic() + STOP_WAIT
    to_stop = list(flows)
    while True:
        try:
            while to_stop:
                to_stop[0].interrupt(signal)
                to_stop.pop(0)
            for done in started:
                done.wait(max(0.0, deadline - time.monotonic()))
            return
        except KeyboardInterrupt:
            log.warning("still stopping: each board records where it was (at most %.0f s more)",
                        max(0.0, deadline - time.monotonic()))
