"""Shared by the benchmark sections and the soak run: paths, timing, the Certificate-mode inputs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hilprov.core.certs import generate_self_signed
from hilprov.core.plan import Inputs
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station.cloud import CloudTarget
from hilprov.station.flow import RunOptions, Timeouts

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
CERT_CFG = CONFIGS / "endpoint_cfg_cert"
PSK_CFG = CONFIGS / "endpoint_cfg"
CERT_INFO = CONFIGS / "cert_info.json"
BAUD = 115200
DOMAIN = "/embedded/"

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """One speed target: `value` must be at most `limit` (both in `unit`)."""

    name: str
    value: float
    limit: float
    unit: str
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def as_dict(self) -> dict:
        return {"name": self.name, "value": round(self.value, 4), "limit": self.limit,
                "unit": self.unit, "met": self.met, "note": self.note}


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = action()
    return time.perf_counter() - start, out


def median(values: list[float]) -> float:
    return statistics.median(values)


def server_cert(directory: Path) -> Path:
    """A throw-away LwM2M server certificate (DER) for Certificate mode."""
    path = directory / "server.der"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(generate_self_signed({"commonName": "lwm2m-server"}, None).cert_der)
    return path


def cert_flow_options(work: Path, *, timeouts: Timeouts | None = None
                      ) -> tuple[Inputs, RunOptions]:
    """The Certificate-mode flow of configs/endpoint_cfg_cert with a generated endpoint cert."""
    inputs = Inputs(CERT_CFG, cert_info=CERT_INFO, server_cert=server_cert(work))
    return inputs, RunOptions(initial_hex=INITIAL_IMAGE, final_hex=FINAL_IMAGE,
                              cert_dir=work / "cert", timeouts=timeouts or Timeouts())


def cloud_for(client, token: str) -> CloudTarget:
    """Onboarding into the benchmark's local Coiote server."""
    return CloudTarget(client, DOMAIN, token)
