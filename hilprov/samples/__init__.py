"""The sample inputs, shipped with the package (the repository's `configs/` points here):
endpoint configurations for each security mode, a cert_info.json and a Coiote server.json."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample(name: str) -> Path:
    """The path of a packaged sample, e.g. `sample("endpoint_cfg")`."""
    return Path(str(resources.files(__name__) / name))


NAMES = ("endpoint_cfg", "endpoint_cfg_line", "endpoint_cfg_cert", "endpoint_cfg_nosec",
         "cert_info.json", "lwm2m_server.json")
