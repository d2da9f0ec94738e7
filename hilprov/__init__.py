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
from hilprov.lwm2m import OID, RID, Objlink, SecurityMode

__version__ = "0.1.0"

__all__ = [
    "OID", "RID", "Objlink", "SecurityMode",
    "HilprovError", "ConfigError", "ValidationError", "CertificateError", "CloudError",
    "BoardError", "TransferError", "DeviceRejectedError", "AlreadyProvisionedError",
    "NotRegisteredError",
]
