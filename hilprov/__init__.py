"""hilprov: factory provisioning for Nordic nRF boards running Zephyr + Anjay LwM2M."""

from hilprov.core.lwm2m import OID, RID, Objlink, SecurityMode
from hilprov.errors import (
    AlreadyProvisionedError,
    BoardError,
    CertificateError,
    CloudError,
    ConfigError,
    DeviceRejectedError,
    HilprovError,
    NotRegisteredError,
    TransferError,
    ValidationError,
)
from hilprov.version import __version__

__all__ = [
    "__version__", "FactoryProvisioning", "OID", "RID", "Objlink", "SecurityMode",
    "HilprovError", "ConfigError", "ValidationError", "CertificateError", "CloudError",
    "BoardError", "TransferError", "DeviceRejectedError", "AlreadyProvisionedError",
    "NotRegisteredError",
]


def __getattr__(name: str):
    """`hilprov.FactoryProvisioning`, imported on first use (it pulls in cryptography and
    requests, which `import hilprov` alone should not)."""
    if name == "FactoryProvisioning":
        from hilprov.provisioning import FactoryProvisioning

        return FactoryProvisioning
    raise AttributeError(f"module 'hilprov' has no attribute {name!r}")
