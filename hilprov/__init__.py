"""hilprov: factory provisioning for Nordic nRF boards running Zephyr + Anjay LwM2M."""

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


_LWM2M_NAMES = ("OID", "RID", "Objlink", "SecurityMode")


def __getattr__(name: str):
    """`hilprov.FactoryProvisioning` and the LwM2M names, imported on first use: `import
    hilprov` alone (every command's first line) stays cheap; FactoryProvisioning pulls in
    cryptography and requests."""
    if name == "FactoryProvisioning":
        from hilprov.provisioning import FactoryProvisioning

        return FactoryProvisioning
    if name in _LWM2M_NAMES:
        from hilprov.core import lwm2m

        return getattr(lwm2m, name)
    raise AttributeError(f"module 'hilprov' has no attribute {name!r}")
