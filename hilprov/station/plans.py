"""One plan per run, shared by every board: prepared once (by the first board's check-config
step, or up front), and the same result or the same error for all of them.

A run of several units refuses a plan in which they would share credentials (the same PSK
identity or key, or one given certificate and key) before any board is touched."""

from __future__ import annotations

import threading

from hilprov.core import plan
from hilprov.errors import ConfigError


class PlanSource:
    """Prepares `inputs` on first use; later calls get the same Plan or raise the same error."""

    def __init__(self, source: plan.Inputs | plan.Plan, units: int = 1) -> None:
        self.units = units
        self._lock = threading.Lock()
        self._inputs = source if isinstance(source, plan.Inputs) else source.inputs
        self._plan: plan.Plan | None = source if isinstance(source, plan.Plan) else None
        self._error: BaseException | None = None

    @property
    def inputs(self) -> plan.Inputs:
        return self._inputs

    def get(self) -> plan.Plan:
        with self._lock:
            if self._plan is None and self._error is None:
                try:
                    self._plan = self._unique(plan.prepare(self._inputs))
                except Exception as exc:
                    self._error = exc
            if self._error is not None:
                raise self._error.with_traceback(None)
            return self._plan

    def _unique(self, prepared: plan.Plan) -> plan.Plan:
        shared = prepared.shared_credentials() if self.units > 1 else []
        if shared:
            raise ConfigError(f"{self.units} units would all get {' and '.join(shared)}: every "
                              "unit of a line needs its own credentials")
        return prepared

    def __repr__(self) -> str:
        return f"PlanSource({str(self._inputs.endpoint_cfg)!r})"
