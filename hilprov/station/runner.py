"""Run the flow on many boards at once: one plan for all, one thread per board, results in board
order."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hilprov.board.base import Board
from hilprov.core import plan
from hilprov.station.cloud import CloudTarget
from hilprov.station.flow import FlowObserver, FlowResult, ProvisioningFlow, RunOptions
from hilprov.station.plans import PlanSource


def run_flows(boards: Sequence[Board | None], plans: PlanSource | plan.Inputs | plan.Plan,
              options: RunOptions, *, cloud: CloudTarget | None = None,
              cloud_missing: str = "no Coiote server given",
              observers: Sequence[FlowObserver] = (), log_dir: Path | None = None
              ) -> list[FlowResult]:
    """Provision every board concurrently; `[None]` runs the flow once without a board."""
    source = plans if isinstance(plans, PlanSource) else PlanSource(plans)

    def one(board: Board | None) -> FlowResult:
        return ProvisioningFlow(board, source, options, cloud=cloud, cloud_missing=cloud_missing,
                                observers=list(observers), log_dir=log_dir).run()

    if len(boards) == 1:
        return [one(boards[0])]
    with ThreadPoolExecutor(max_workers=len(boards), thread_name_prefix="board") as pool:
        return list(pool.map(one, boards))
