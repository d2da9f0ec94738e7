"""The sample inputs, shipped with the package (the repository's `configs/` points here):
endpoint configurations for each security mode, a cert_info.json and a Coiote server.json."""

from __future__ import annotations

from pathlib import Path


def sample(name: str) -> Path:
    """The path of a packaged sample, e.g. `sample("endpoint_cfg")`: a file next to this module
    (the package is installed as files; importlib.resources would cost every start-up ~5 ms)."""
    return Path(__file__).with_name(name)


NAMES = ("endpoint_cfg", "endpoint_cfg_line", "endpoint_cfg_cert", "endpoint_cfg_nosec",
         "cert_info.json", "lwm2m_server.json")
