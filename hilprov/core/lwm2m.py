"""LwM2M names and types: the `OID`/`RID` names the endpoint config uses, `Objlink`, security modes.

The names are exactly those of the seed tool's `test_utils` (spec §1.3/§1.4), so every existing
config resolves. Each resource also carries its LwM2M data type and whether it is multiple-instance,
which the `lwm2m` validation profile checks against. Types come from the OMA object registry; a few
resources the registry defines but the seed never named are listed too (marked ``hidden``: they are
known to the validator but cannot be written as ``RID.<Object>.<Name>``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import SimpleNamespace
from typing import NamedTuple

# LwM2M data types. "exec" marks an executable resource, which has no value and cannot be written.
TYPES = ("string", "integer", "unsigned", "float", "boolean", "opaque", "time", "objlnk",
         "corelnk", "exec")


@dataclass(frozen=True, repr=False)  # its own __repr__
class Objlink:
    """An LwM2M object link value; `str()` is the SenML text form ``"66:0"``."""

    oid: int
    iid: int

    def __str__(self) -> str:
        return f"{self.oid}:{self.iid}"

    def __repr__(self) -> str:
        return f"Objlink({self.oid}, {self.iid})"


class SecurityMode(enum.IntEnum):
    """Security Object /0/x/2 values and the seed tool's string for each."""

    PSK = 0
    RPK = 1
    CERT = 2
    NOSEC = 3
    EST = 4

    def __str__(self) -> str:
        return {0: "psk", 1: "rpk", 2: "cert", 3: "nosec", 4: "est"}[self.value]


class ResourceDef(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """One resource of an object: its id, name, data type, and whether it is multiple."""

    rid: int
    name: str
    type: str
    multiple: bool = False
    hidden: bool = False  # known to the validator, but not a RID name of the seed tool

    @property
    def executable(self) -> bool:
        return self.type == "exec"


class ObjectDef(NamedTuple):
    """One LwM2M object and its resources."""

    oid: int
    name: str
    resources: dict[int, ResourceDef]

    def resource(self, rid: int) -> ResourceDef | None:
        return self.resources.get(rid)


# One line per resource: "<rid> <Name> <type>[*]" where * marks a multiple-instance resource and a
# leading "~" on the name marks a hidden one.
_TABLE: dict[tuple[int, str], str] = {
    (0, "Security"): """
        0 ServerURI string; 1 Bootstrap boolean; 2 Mode integer; 3 PKOrIdentity opaque;
        4 ServerPKOrIdentity opaque; 5 SecretKey opaque; 6 SMSSecurityMode integer;
        7 SMSBindingKeyParameters opaque; 8 SMSBindingSecretKeys opaque; 9 ServerSMSNumber string;
        10 ShortServerID integer; 11 ClientHoldOffTime integer; 12 BootstrapTimeout integer;
        13 MatchingType unsigned; 14 SNI string; 15 CertificateUsage unsigned;
        16 DtlsTlsCiphersuite unsigned*""",
    (1, "Server"): """
        0 ShortServerID integer; 1 Lifetime integer; 2 DefaultMinPeriod integer;
        3 DefaultMaxPeriod integer; 4 Disable exec; 5 DisableTimeout integer;
        6 NotificationStoring boolean; 7 Binding string; 8 RegistrationUpdateTrigger exec;
        9 RequestBootstrapTrigger exec; 10 ~APNLink objlnk; 11 TlsDtlsAlertCode unsigned;
        12 LastBootstrapped time; 13 ~RegistrationPriorityOrder unsigned;
        14 InitialRegistrationDelayTimer unsigned; 15 ~RegistrationFailureBlock boolean;
        16 BootstrapOnRegistrationFailure boolean; 17 ServerCommunicationRetryCount unsigned;
        18 ServerCommunicationRetryTimer unsigned;
        19 ServerCommunicationSequenceDelayTimer unsigned;
        20 ServerCommunicationSequenceRetryCount unsigned; 21 Trigger boolean;
        22 PreferredTransport string; 23 MuteSend boolean""",
    (2, "AccessControl"): """
        0 TargetOID integer; 1 TargetIID integer; 2 ACL integer*; 3 Owner integer""",
    (3, "Device"): """
        0 Manufacturer string; 1 ModelNumber string; 2 SerialNumber string;
        3 FirmwareVersion string; 4 Reboot exec; 5 FactoryReset exec;
        6 AvailablePowerSources integer*; 7 PowerSourceVoltage integer*;
        8 PowerSourceCurrent integer*; 9 BatteryLevel integer; 10 MemoryFree integer;
        11 ErrorCode integer*; 12 ResetErrorCode exec; 13 CurrentTime time; 14 UTCOffset string;
        15 Timezone string; 16 SupportedBindingAndModes string; 17 DeviceType string;
        18 HardwareVersion string; 19 SoftwareVersion string; 20 BatteryStatus integer;
        21 MemoryTotal integer; 22 ExtDevInfo objlnk*""",
    (4, "ConnectivityMonitoring"): """
        0 NetworkBearer integer; 1 AvailableNetworkBearer integer*; 2 RadioSignalStrength integer;
        3 LinkQuality integer; 4 IPAddresses string*; 5 RouterIPAddresses string*;
        6 LinkUtilization integer; 7 APN string*; 8 CellID integer; 9 SMNC integer;
        10 SMCC integer""",
    (5, "FirmwareUpdate"): """
        0 Package opaque; 1 PackageURI string; 2 Update exec; 3 State integer;
        5 UpdateResult integer; 6 PackageName string; 7 PackageVersion string;
        8 FirmwareUpdateProtocolSupport integer*; 9 FirmwareUpdateDeliveryMethod integer;
        10 Cancel exec; 11 Severity integer; 12 LastStateChangeTime time;
        13 MaxDeferPeriod unsigned""",
    (6, "Location"): """
        0 Latitude float; 1 Longitude float; 2 Altitude float; 3 Uncertainty float;
        4 Velocity opaque; 5 Timestamp time""",
    (7, "ConnectivityStatistics"): """
        0 SMSTxCounter integer; 1 SMSRxCounter integer; 2 TxData integer; 3 RxData integer;
        4 MaxMessageSize integer; 5 AverageMessageSize integer; 6 Start exec; 7 Stop exec;
        8 CollectionPeriod unsigned; 9 CollectionDuration unsigned""",
    (9, "SoftwareManagement"): """
        0 PkgName string; 1 PkgVersion string; 2 Package opaque; 3 PackageURI string;
        4 Install exec; 5 Checkpoint objlnk; 6 Uninstall exec; 7 UpdateState integer;
        8 UpdateSupportedObjects boolean; 9 UpdateResult integer; 10 Activate exec;
        11 Deactivate exec; 12 ActivationState boolean; 13 PackageSettings objlnk;
        14 UserName string; 15 Password string; 16 StatusReason string;
        17 SoftwareComponentLink objlnk*; 18 SoftwareComponentTreeLength unsigned""",
    (10, "CellularConnectivity"): """
        0 SMSCAddress string; 1 DisableRadioPeriod integer; 2 ModuleActivationCode string;
        3 VendorSpecificExtensions objlnk; 4 PSMTimer integer; 5 ActiveTimer integer;
        6 ServingPLMNRateControl integer; 7 eDRXParamtersForIuMode opaque;
        8 eDRXParamtersForWBS1Mode opaque; 9 eDRXParametersForNBS1Mode opaque;
        10 eDRXParametersForAGbMode opaque; 11 ActivatedProfileNames objlnk*;
        12 CoverageEnhancementLevel integer; 13 PowerSavingModes opaque;
        14 ActivePowerSavingModes opaque""",
    (11, "ApnConnectionProfile"): """
        0 ProfileName string; 1 APN string; 2 AutoSelectAPNByDevice boolean;
        3 EnableStatus boolean; 4 AuthenticationType integer; 5 UserName string; 6 Secret string;
        7 ReconnectSchedule string; 8 Validity string*; 9 ConnectionEstablishmentTime time*;
        10 ConnectionEstablishmentResult integer*; 11 ConnectionEstablishmentRejectCause integer*;
        12 ConnectionEndTime time*; 13 TotalBytesSent integer; 14 TotalBytesReceived integer;
        15 IPAddress string*; 16 PrefixLength string*; 17 SubnetMask string*; 18 Gateway string*;
        19 PrimaryDNSAddress string*; 20 SecondaryDNSAddress string*; 21 QCI integer;
        22 VendorSpecificExtensions objlnk; 23 TotalPacketsSent integer; 24 PDNType integer;
        25 APNRateControl integer; 26 ServingPLMNRateControl integer; 27 UplinkTimeUnit integer;
        28 APNRateControlForExceptionData integer; 29 APNExceptionDataUplinkTimeUnit integer;
        30 SupportedRATTypes integer*; 31 RDSApplicationID string; 32 RDSDestinationPort integer;
        33 RDSSourcePort integer""",
    (16, "Portfolio"): """
        0 Identity string*; 1 GetAuthData exec; 2 AuthData opaque*; 3 AuthStatus integer""",
    (19, "BinaryAppDataContainer"): """
        0 Data opaque*; 1 DataPriority unsigned; 2 DataCreationTime time;
        3 DataDescription string; 4 DataFormat string; 5 AppId unsigned""",
    (20, "EventLog"): """
        4010 LogClass integer; 4011 LogStart exec; 4012 LogStop exec; 4013 LogStatus integer;
        4014 LogData opaque; 4015 LogDataFormat integer""",
    (25, "Lwm2mGateway"): "0 DeviceID string; 1 Prefix string; 3 IoTEndDeviceObjects corelnk",
    (3303, "Temperature"): """
        5601 MinMeasuredValue float; 5602 MaxMeasuredValue float; 5603 MinRangeValue float;
        5604 MaxRangeValue float; 5605 ResetMinAndMaxMeasuredValues exec; 5700 SensorValue float;
        5701 SensorUnits string; 5750 ApplicationType string""",
    (3313, "Accelerometer"): """
        5603 MinRangeValue float; 5604 MaxRangeValue float; 5702 XValue float; 5703 YValue float;
        5704 ZValue float; 5701 SensorUnits string""",
    (3347, "PushButton"): """
        5500 DigitalInputState boolean; 5501 DigitalInputCounter integer;
        5750 ApplicationType string""",
    (33605, "Test"): """
        0 Timestamp time; 1 Counter integer; 2 IncrementCounter exec; 3 IntArray integer*;
        4 LastExecArgsArray string*; 5 ResBytes opaque; 6 ResBytesSize integer;
        7 ResBytesBurst integer; 9 ResInitIntArray exec; 10 ResRawBytes opaque;
        11 ResOpaqueArray opaque*; 12 ResInt integer; 13 ResBool boolean; 14 ResFloat float;
        15 ResString string; 16 ResObjlnk objlnk; 17 ResBytesZeroBegin boolean;
        18 ResDouble float; 19 ResUnsignedInt unsigned; 20 ResUnsignedLong unsigned;
        21 ToggleBool exec; 22 BoolArray boolean*; 23 ResInitBoolArray exec""",
    (33606, "ExtDevInfo"): """
        0 ObuId string; 1 PlateNumber string; 2 Imei string; 3 Imsi string; 4 Iccid string;
        5 GprsRssi integer; 6 GprsPlmn integer; 7 GprsUlModulation string;
        8 GprsDlModulation string; 9 GprsUlFrequency integer; 10 GprsDlFrequency integer;
        11 RxBytes integer; 12 TxBytes integer; 13 NumIncomingRetransmissions integer;
        14 NumOutgoingRetransmissions integer; 15 Uptime integer""",
    (33607, "IpPing"): """
        0 Hostname string; 1 Repetitions unsigned; 2 TimeoutMs unsigned; 3 BlockSize unsigned;
        4 Dscp unsigned; 5 Run exec; 6 State integer; 7 SuccessCount unsigned;
        8 ErrorCount unsigned; 9 AvgTimeMs unsigned; 10 MinTimeMs unsigned;
        11 MaxTimeMs unsigned; 12 TimeStdevUs unsigned""",
    (33608, "GeoPoints"): """
        0 Latitude float; 1 Longitude float; 2 Radius float; 3 Description string;
        4 Inside boolean""",
    (33609, "DownloadDiagnostics"): """
        0 State integer; 1 Url string; 2 RomTimeUs unsigned; 3 BomTimeUs unsigned;
        4 EomTimeUs unsigned; 5 TotalBytes unsigned; 6 Run exec""",
    (33629, "AdvancedFirmwareUpdate"): """
        0 Package opaque; 1 PackageURI string; 2 Update exec; 3 State integer;
        5 UpdateResult integer; 6 PackageName string; 7 PackageVersion string;
        8 FirmwareUpdateProtocolSupport integer*; 9 FirmwareUpdateDeliveryMethod integer;
        10 Cancel exec; 11 Severity integer; 12 LastStateChangeTime time;
        13 MaxDeferPeriod unsigned; 14 PartitionName string; 15 CurrentVersion string;
        16 LinkedInstances objlnk*; 17 ConflictingInstances objlnk*""",
}


def _parse_object(oid: int, name: str, spec: str) -> ObjectDef:
    resources: dict[int, ResourceDef] = {}
    for item in spec.split(";"):
        rid_text, res_name, res_type = item.split()
        multiple = res_type.endswith("*")
        res_type = res_type.rstrip("*")
        hidden = res_name.startswith("~")
        assert res_type in TYPES, (name, res_name, res_type)
        rid = int(rid_text)
        resources[rid] = ResourceDef(rid, res_name.lstrip("~"), res_type, multiple, hidden)
    return ObjectDef(oid, name, resources)


OBJECTS: dict[int, ObjectDef] = {
    oid: _parse_object(oid, name, spec) for (oid, name), spec in _TABLE.items()
}

OBJECTS_BY_NAME: dict[str, ObjectDef] = {obj.name: obj for obj in OBJECTS.values()}

# `OID.Security == 0`, `RID.Security.ServerURI == 0`: the names a config file may use.
OID = SimpleNamespace(**{obj.name: obj.oid for obj in OBJECTS.values()})
RID = SimpleNamespace(**{
    obj.name: SimpleNamespace(**{r.name: r.rid for r in obj.resources.values() if not r.hidden})
    for obj in OBJECTS.values()
})


def oid_by_name(name: str) -> int | None:
    obj = OBJECTS_BY_NAME.get(name)
    return obj.oid if obj else None


def rid_by_name(object_name: str, resource_name: str) -> int | None:
    obj = OBJECTS_BY_NAME.get(object_name)
    if obj is None:
        return None
    for res in obj.resources.values():
        if res.name == resource_name and not res.hidden:
            return res.rid
    return None


def resource_name(oid: int, rid: int) -> str:
    """A readable name for messages: ``Security.ServerURI`` or ``/5/x/99`` style fallback."""
    obj = OBJECTS.get(oid)
    res = obj.resource(rid) if obj else None
    if obj and res:
        return f"{obj.name}.{res.name}"
    if obj:
        return f"{obj.name} resource {rid}"
    return f"object {oid} resource {rid}"


def format_path(path: tuple[int, ...]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _ids(path: tuple[int, ...] | str) -> tuple:
    if isinstance(path, str):
        return tuple(path.strip("/").split("/"))
    return tuple(str(p) for p in path)


def is_secret(path: tuple[int, ...] | str) -> bool:
    """/0/x/5, Security's Secret Key (the PSK or the private key): its value is never shown."""
    ids = _ids(path)
    return len(ids) >= 3 and ids[0] == "0" and ids[2] == "5"


def is_credential(path: tuple[int, ...] | str) -> bool:
    """/0/x/3, /0/x/4, /0/x/5: identities, certificates and keys; messages do not echo them."""
    ids = _ids(path)
    return len(ids) >= 3 and ids[0] == "0" and ids[2] in ("3", "4", "5")
