"""Building a flow in tests: one keyword list, split into the plan's inputs and the run options,
as the CLI's settings table does."""

from __future__ import annotations

import dataclasses

from hilprov.core.plan import Inputs
from hilprov.station.cloud import CloudTarget
from hilprov.station.flow import ProvisioningFlow, RunOptions

_INPUTS = {f.name for f in dataclasses.fields(Inputs)}
_RUN = {f.name for f in dataclasses.fields(RunOptions)}


def split(**kwargs) -> tuple[Inputs, RunOptions]:
    unknown = set(kwargs) - _INPUTS - _RUN
    assert not unknown, f"not a flow option: {unknown}"
    inputs = Inputs(**{k: v for k, v in kwargs.items() if k in _INPUTS})
    return inputs, RunOptions(**{k: v for k, v in kwargs.items() if k in _RUN})


def make_flow(board, *, client=None, domain="/embedded/", token="test-token", observers=(),
              log_dir=None, port=None, **kwargs) -> ProvisioningFlow:
    """A ProvisioningFlow; `client` (a CoioteClient) onboards into `domain`."""
    inputs, options = split(**kwargs)
    cloud = CloudTarget(client, domain, token) if client is not None else None
    return ProvisioningFlow(board, inputs, options, cloud=cloud, observers=list(observers),
                            log_dir=log_dir, port=port)
