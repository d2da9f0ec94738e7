"""Model of the device side of factory provisioning (spec §3–§5), for the virtual board.

`factory_provision()` is what the Zephyr initial image does with the uploaded blob:
Anjay 3.11 `anjay_factory_provision()` with the Security (/0), Server (/1) and Access Control (/2)
objects installed. `registration_outcome()` is what the final image then does with the committed
objects at boot. The model is written from the device spec, independently of the host-side
validator, so that the two can be compared; where the spec is silent it follows Anjay's design
(see the notes next to each rule).

Log lines use the spec's format without file/line: ``LEVEL [module] message``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hilprov.sim.cbor_reader import (
    ID_INVALID,
    CachedValue,
    Number,
    SenmlError,
    SenmlReader,
    SenmlRecord,
    ValueType,
    number_to_i64,
    number_to_u64,
)

SECURITY, SERVER, ACCESS_CONTROL = 0, 1, 2
INSTALLED_OBJECTS = (SECURITY, SERVER, ACCESS_CONTROL)
SSID_BOOTSTRAP = 65535
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1

MODE_PSK, MODE_RPK, MODE_CERT, MODE_NOSEC, MODE_EST = 0, 1, 2, 3, 4
MODE_NAMES = {MODE_PSK: "PSK", MODE_RPK: "RPK", MODE_CERT: "Certificate", MODE_NOSEC: "NoSec",
              MODE_EST: "Certificate with EST"}

# Anjay's transport table, in its lookup order: (scheme, transport, security).
# security: True = encrypted, False = plain, None = "undefined" (fits every Security Mode).
_TRANSPORTS = (
    ("coap", "udp", False),
    ("coaps", "udp", True),
    ("coap+tcp", "tcp", False),
    ("coaps+tcp", "tcp", True),
    ("tel", "sms", None),
    ("coap+nidd", "nidd", False),
    ("coaps+nidd", "nidd", True),
)
_BINDING_LETTERS = "UTSN"                      # LwM2M 1.1 binding letters known to Anjay
_BINDINGS_1_0 = ("U", "UQ", "S", "SQ", "US", "UQS")
_BINDING_MAX_BYTES = 7                         # char data[8]

# Transports the anjay-zephyr demo image can actually use (no CoAP+TCP, SMS or NIDD support).
_DEMO_TRANSPORTS = ("udp",)


@dataclass
class ProvisionOutcome:
    """What the device did with one blob. `objects` holds secrets and is kept out of repr()."""

    ok: bool
    result_text: str                 # the content of /factory/result.txt: "0" or "-1"
    errno_name: str | None           # EPROTO, EBADMSG, ENOMEM, or None on success
    log: list[str]
    objects: dict[int, dict[int, dict]] = field(repr=False)
    reason: str = ""                 # one readable sentence: what was committed or what failed
    bytes_consumed: int = 0          # how much of the blob the device read before stopping


@dataclass(frozen=True)
class RegistrationOutcome:
    registers: bool
    reason: str
    server_uri: str | None
    security_mode: int | None


class _WriteError(Exception):
    """A resource write handler refused a record (the device aborts the whole write)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _c_text(raw: bytes) -> str:
    """A C string read from the device: it ends at the first NUL byte.

    Anjay does not check UTF-8; invalid sequences become U+FFFD here so the objects stay
    serialisable. No verdict depends on them (schemes, bindings and letters are ASCII).
    """
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class _Value:
    """The cached value of one record, read through the device's typed getters."""

    def __init__(self, cached: CachedValue, path: str) -> None:
        self._cached = cached
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def _fail(self, expected: str) -> _WriteError:
        got = "no value" if self._cached.type is None else f"a {self._cached.type.value}"
        return _WriteError(f"{self._path} needs {expected}, got {got}")

    def _number(self) -> Number:
        value = self._cached.value
        if not isinstance(value, Number):
            raise self._fail("a number (label v)")
        return value

    def i64(self) -> int:
        result = number_to_i64(self._number())
        if result is None:
            raise self._fail("an exact integer")
        return result

    def i32(self) -> int:
        result = self.i64()
        if not INT32_MIN <= result <= INT32_MAX:
            raise _WriteError(f"{self._path} = {result} does not fit a 32-bit signed integer")
        return result

    def u32(self) -> int:
        result = number_to_u64(self._number())
        if result is None:
            raise self._fail("a non-negative exact integer")
        if result > UINT32_MAX:
            raise _WriteError(f"{self._path} = {result} does not fit a 32-bit unsigned integer")
        return result

    def boolean(self) -> bool:
        if self._cached.type is not ValueType.BOOL:
            raise self._fail("a boolean (label vb)")
        return bool(self._cached.value)

    def text(self, max_bytes: int | None = None) -> str:
        raw = self._cached.value
        if self._cached.type is not ValueType.TEXT_STRING or not isinstance(raw, bytes):
            raise self._fail("a text string (label vs)")
        if max_bytes is not None and len(raw) > max_bytes:
            raise _WriteError(f"{self._path} is {len(raw)} bytes long; the device keeps at most "
                              f"{max_bytes}")
        return _c_text(raw)

    def opaque(self) -> bytes:
        raw = self._cached.value
        if self._cached.type is not ValueType.BYTE_STRING or not isinstance(raw, bytes):
            raise self._fail("a byte string (label vd)")
        return raw


def binding_valid(binding: str) -> bool:
    """Anjay's Binding check: a LwM2M 1.0 binding, or 1.1 letters each at most once."""
    if binding in _BINDINGS_1_0:
        return True
    return all(c in _BINDING_LETTERS for c in binding) and len(set(binding)) == len(binding)


def transport_of(uri: str, log: list[str] | None = None) -> tuple[str, bool | None] | None:
    """(transport, encrypted) for a Server URI, matched on its scheme like Anjay does."""
    raw = uri.encode("utf-8", "surrogateescape")
    for scheme, transport, secure in _TRANSPORTS:
        size = len(scheme)
        if raw[:size].lower() == scheme.encode() and raw[size:size + 1] in (b"", b":"):
            return transport, secure
    if log is not None:
        log.append(f"WARNING [anjay] unsupported URI scheme: {uri}")
    return None


# --- write handlers (spec §4.2) ----------------------------------------------------------------

def _new_security() -> dict:
    # An instance created by a write starts as PSK, not bootstrap (spec §4.2: defaults that pass
    # validation).
    return {1: False, 2: MODE_PSK}


def _new_server() -> dict:
    return {}


def _new_access_control() -> dict:
    return {3: SSID_BOOTSTRAP}   # Owner defaults to the Bootstrap Server


# Resource readers: the typed getter a resource is written with, and its write-time checks.
# Each takes the record's value and the log, and returns what the device stores.
_Reader = Callable[[_Value, list[str]], Any]


def _text(value: _Value, log: list[str]) -> str:
    return value.text()


def _boolean(value: _Value, log: list[str]) -> bool:
    return value.boolean()


def _opaque(value: _Value, log: list[str]) -> bytes:
    return value.opaque()


def _i32(value: _Value, log: list[str]) -> int:
    return value.i32()


def _i64(value: _Value, log: list[str]) -> int:
    return value.i64()


def _u32(value: _Value, log: list[str]) -> int:
    return value.u32()


def _security_mode(value: _Value, log: list[str]) -> int:
    mode = value.i32()
    if mode == MODE_RPK:
        log.append("ERROR [security] Raw Public Key mode not supported")
        raise _WriteError("Security Mode 1 (Raw Public Key) is not supported")
    if mode not in MODE_NAMES:
        log.append("ERROR [security] Invalid Security Mode")
        raise _WriteError(f"Security Mode {mode} is invalid (allowed: 0, 2, 3, 4)")
    return mode


def _short_server_id(value: _Value, log: list[str]) -> int:
    ssid = value.i32()
    if not 1 <= ssid <= 65535:
        raise _WriteError(f"Short Server ID {ssid} is outside 1..65535")
    return ssid


def _up_to_3(value: _Value, log: list[str]) -> int:
    number = value.u32()
    if number > 3:
        raise _WriteError(f"{value.path} = {number} is outside 0..3")
    return number


def _ciphersuite(value: _Value, log: list[str]) -> int:
    cipher = value.u32()
    if cipher == 0:
        log.append("WARNING [security] TLS-NULL-WITH-NULL-NULL cipher is not allowed")
        raise _WriteError("ciphersuite 0 (TLS_NULL_WITH_NULL_NULL) is not allowed")
    if cipher > 65535:
        log.append("WARNING [security] Ciphersuite ID > 65535 is not allowed")
        raise _WriteError(f"ciphersuite ID {cipher} is above 65535")
    return cipher


def _at_least(low: int) -> _Reader:
    def read(value: _Value, log: list[str]) -> int:
        number = value.i32()
        if number < low:
            raise _WriteError(f"{value.path} = {number} must be at least {low}")
        return number

    return read


def _binding(value: _Value, log: list[str]) -> str:
    binding = value.text(_BINDING_MAX_BYTES)
    if not binding_valid(binding):
        raise _WriteError(f"Binding '{binding}' is not valid (U, UQ, S, SQ, US, UQS, or the "
                          "letters U, T, S, N each at most once; case-sensitive)")
    return binding


def _retry_count(what: str) -> _Reader:
    def read(value: _Value, log: list[str]) -> int:
        number = value.u32()
        if number == 0:
            log.append(f"ERROR [server] {what} cannot be 0")
            raise _WriteError(f"{what} ({value.path}) cannot be 0")
        return number

    return read


_SECURITY_RESOURCES: dict[int, _Reader] = {
    0: _text, 1: _boolean, 2: _security_mode, 3: _opaque, 4: _opaque, 5: _opaque,
    10: _short_server_id, 11: _i32, 12: _i32, 13: _up_to_3, 14: _text, 15: _up_to_3,
    16: _ciphersuite,
}
_SECURITY_MULTIPLE = (16,)  # multiple-instance resources (DTLS/TLS Ciphersuite)

_SERVER_RESOURCES: dict[int, _Reader] = {
    0: lambda value, log: value.i32() & 0xFFFF,   # stored as uint16_t: 65537 becomes 1
    1: _i32,
    2: _at_least(0),
    3: _at_least(1),
    5: _at_least(0),
    6: _boolean,
    7: _binding,
    11: lambda value, log: value.u32() & 0xFF,    # stored as uint8_t
    12: _i64,
    16: _boolean,
    17: _retry_count("Server Communication Retry Count"),
    18: _u32,
    19: _u32,
    20: _retry_count("Server Sequence Communication Retry Count"),
    22: lambda value, log: value.text(1),
}


def _write_security(inst: dict, rid: int, riid: int | None, value: _Value, log: list[str]
                    ) -> None:
    read = _SECURITY_RESOURCES.get(rid)
    if read is None:
        raise _WriteError(f"Security resource {rid} is not writable during provisioning")
    stored = read(value, log)
    if rid in _SECURITY_MULTIPLE:
        # Without a RIID in the path the device files the entry under RIID 65535.
        inst.setdefault(rid, {})[ID_INVALID if riid is None else riid] = stored
    else:
        inst[rid] = stored


def _write_server(inst: dict, rid: int, riid: int | None, value: _Value, log: list[str]
                  ) -> None:
    del riid  # single-instance resources only: a RIID in the path is ignored
    read = _SERVER_RESOURCES.get(rid)
    if read is None:
        raise _WriteError(f"Server resource {rid} is not writable during provisioning"
                          + (" (Anjay 3.11 has no Initial Registration Delay Timer)"
                             if rid == 14 else ""))
    inst[rid] = read(value, log)


def _write_access_control(inst: dict, rid: int, riid: int | None, value: _Value,
                          log: list[str]) -> None:
    del log
    if rid == 0:
        oid = value.i32()
        if not (1 <= oid < 65535 and oid != ACCESS_CONTROL):
            raise _WriteError(f"Access Control target object {oid} is invalid "
                              "(1..65534, not 2)")
        inst[rid] = oid
    elif rid == 1:
        iid = value.i32()
        if not 0 <= iid <= 65535:
            raise _WriteError(f"Access Control target instance {iid} is outside 0..65535")
        inst[rid] = iid
    elif rid == 2:
        # Without a RIID the device files the entry under SSID 65535 (refused at validation).
        inst.setdefault(rid, {})[ID_INVALID if riid is None else riid] = value.i32() & 0xFFFF
    elif rid == 3:
        owner = value.i32()
        if not 1 <= owner <= 65535:
            raise _WriteError(f"Access Control owner {owner} is outside 1..65535")
        inst[rid] = owner
    else:
        raise _WriteError(f"Access Control resource {rid} is not writable")


_Handler = Callable[[dict, int, int | None, _Value, list[str]], None]
_OBJECTS: dict[int, tuple[str, Callable[[], dict], _Handler]] = {
    SECURITY: ("Security", _new_security, _write_security),
    SERVER: ("Server", _new_server, _write_server),
    ACCESS_CONTROL: ("Access Control", _new_access_control, _write_access_control),
}


# --- validation at Bootstrap Finish (spec §4.3) ------------------------------------------------

def _security_problem(inst: dict, log: list[str]) -> str | None:
    if 0 not in inst:
        return "missing mandatory 'Server URI' resource value"
    bootstrap = bool(inst.get(1, False))
    if not bootstrap and 10 not in inst:
        return "missing mandatory 'Short Server ID' resource value"
    uri, mode = inst[0], inst.get(2, MODE_PSK)
    transport = transport_of(uri, log)
    if transport is None or (transport[1] is not None
                             and transport[1] != (mode != MODE_NOSEC)):
        return (f"Incorrect protocol in Server Uri '{uri}' due to security configuration "
                "(coap:// instead of coaps:// or vice versa?)")
    if mode not in (MODE_NOSEC, MODE_EST) and not (inst.get(3) and inst.get(5)):
        return "security credentials not fully configured"
    if inst.get(13) == 2:
        return "SHA-384 Matching Type is not supported"
    return None


def _validate_security(objects: dict, log: list[str]) -> str | None:
    """None when valid, else the reason; logs what the device logs."""
    bootstrap_iid = None
    seen: dict[tuple[int, str], int] = {}
    duplicate = None
    for iid, inst in sorted(objects[SECURITY].items()):
        problem = _security_problem(inst, log)
        if problem:
            log.append(f"WARNING [security] /0/{iid}: {problem}")
            return f"/0/{iid}: {problem}"
        if inst.get(1, False):
            if bootstrap_iid is not None:
                return (f"/0/{bootstrap_iid} and /0/{iid} are both Bootstrap-Server accounts; "
                        "at most one is allowed")
            bootstrap_iid = iid
            continue
        found = transport_of(inst[0])
        assert found is not None  # checked by _security_problem
        key = (inst[10], found[0])
        if key in seen and duplicate is None:
            duplicate = (f"/0/{seen[key]} and /0/{iid} both use Short Server ID {key[0]} over "
                         f"{key[1].upper()}")
        seen.setdefault(key, iid)
    return duplicate


def _server_problem(inst: dict) -> str | None:
    if 0 not in inst:
        return "missing mandatory 'Short Server ID' resource value"
    if not 1 <= inst[0] < 65535:
        return f"invalid 'Short Server ID' resource value: {inst[0]}"
    for rid, name in ((7, "Binding"), (1, "Lifetime"),
                      (6, "Notification Storing when disabled or offline")):
        if rid not in inst:
            return f"missing mandatory '{name}' resource value"
    checks = (
        (inst[1] < 0, f"Lifetime value is negative: {inst[1]}"),
        (inst.get(3, 1) <= 0, "Default Max Period is non-positive"),
        (inst.get(2, 0) < 0, "Default Min Period is negative"),
        (inst.get(5, 0) < 0, "Disable Timeout is negative"),
        (not binding_valid(inst[7]), f"Incorrect binding mode {inst[7]}"),
        (inst.get(12, 0) < 0, "Last Bootstrapped is negative"),
        (22 in inst and (len(inst[22]) != 1 or inst[22] not in _BINDING_LETTERS),
         f"Incorrect Preferred Transport: {inst.get(22, '')}"),
        (inst.get(17, 1) == 0, "Communication Retry Count cannot be zero"),
        (inst.get(20, 1) == 0, "Communication Sequence Retry Count cannot be zero"),
    )
    return next((message for failed, message in checks if failed), None)


def _validate_server(objects: dict, log: list[str]) -> str | None:
    for iid, inst in sorted(objects[SERVER].items()):
        problem = _server_problem(inst)
        if problem:
            log.append(f"WARNING [server] /1/{iid}: {problem}")
            return f"/1/{iid}: {problem}"
    by_ssid: dict[int, int] = {}
    for iid, inst in sorted(objects[SERVER].items()):
        if inst[0] in by_ssid:
            return (f"/1/{by_ssid[inst[0]]} and /1/{iid} both use Short Server ID {inst[0]}")
        by_ssid[inst[0]] = iid
    return None


def _validate_access_control(objects: dict, log: list[str]) -> str | None:
    server_ssids = {inst[0] for inst in objects[SERVER].values() if 0 in inst}
    targets: set[tuple[int, int]] = set()
    used: set[int] = set()
    for iid, inst in sorted(objects[ACCESS_CONTROL].items()):
        oid, target_iid = inst.get(0, 0), inst.get(1, -1)
        owner = inst.get(3, SSID_BOOTSTRAP)
        reachable = (1 <= oid < 65535 and oid != ACCESS_CONTROL and 0 <= target_iid <= 65535
                     and oid in objects
                     and (target_iid == ID_INVALID or target_iid in objects[oid])
                     and (oid, target_iid) not in targets)
        if not reachable:
            log.append(f"WARNING [access_control] Validation failed for target: "
                       f"/{oid}/{target_iid}")
            return (f"/2/{iid}: target /{oid}/{target_iid} must be an existing instance (or "
                    "65535) of an installed object other than /2, and appear in one instance "
                    "only")
        targets.add((oid, target_iid))
        if owner != SSID_BOOTSTRAP:
            used.add(owner)
        used.update(inst.get(2, {}))
    for ssid in sorted(used):
        if ssid == SSID_BOOTSTRAP or (ssid != 0 and ssid not in server_ssids):
            log.append(f"WARNING [access_control] Validation failed: invalid SSID: {ssid}")
            return (f"Access Control refers to SSID {ssid}, which is not the Short Server ID "
                    "of any provisioned Server instance")
    return None


_VALIDATORS = ((SECURITY, _validate_security), (SERVER, _validate_server),
               (ACCESS_CONTROL, _validate_access_control))


# --- factory provisioning (spec §4.1) ----------------------------------------------------------

def _touch_last_bootstrapped(objects: dict, oid: int, iid: int, now: int, log: list[str]
                             ) -> None:
    """After each /0 or /1 record the device stamps /1/x/12 of the affected Server instance."""
    if oid == SERVER:
        objects[SERVER][iid][12] = now
        return
    if oid != SECURITY:
        return
    security = objects[SECURITY][iid]
    if security.get(1, False):
        return
    ssid = security.get(10)
    if ssid is None:
        log.append(f"ERROR [anjay] could not get Short Server ID from /0/{iid}/10")
        return
    for _siid, server in sorted(objects[SERVER].items()):
        if 0 not in server:
            return  # the device's lookup stops at an instance it cannot read
        if server[0] == ssid:
            server[12] = now
            return


def _write_record(objects: dict, record: SenmlRecord, log: list[str]) -> None:
    oid, iid, rid = record.path[:3]
    riid = record.path[3] if len(record.path) > 3 else None
    if oid not in _OBJECTS:
        log.append(f"DEBUG [anjay] Object not found: {oid}")
        raise _WriteError(f"object /{oid} is not installed in the initial image (only /0, /1 "
                          "and /2 are)")
    _name, create, handler = _OBJECTS[oid]
    instance = objects[oid].get(iid)
    if instance is None:
        instance = objects[oid][iid] = create()
    handler(instance, rid, riid, _Value(record.value, record.path_text), log)


def _counts(objects: dict) -> str:
    parts = [f"{len(objects[oid])} {_OBJECTS[oid][0]}" for oid in INSTALLED_OBJECTS]
    return f"{parts[0]}, {parts[1]} and {parts[2]} instance(s)"


def factory_provision(blob: bytes, now: int | None = None) -> ProvisionOutcome:
    """Run the device's provisioning on `blob`; `now` stamps Last Bootstrapped (default: clock)."""
    stamp = int(time.time()) if now is None else now
    log: list[str] = []
    objects: dict[int, dict[int, dict]] = {oid: {} for oid in INSTALLED_OBJECTS}

    def failed(errno_name: str, reason: str, consumed: int) -> ProvisionOutcome:
        return ProvisionOutcome(False, "-1", errno_name, log, {}, reason, consumed)

    # Step 2 (delete every instance) is implicit: the model starts from empty objects.
    try:
        reader = SenmlReader.open(blob, log)
    except SenmlError as exc:
        log.append("ERROR [anjay_factory_provision] Cannot create CBOR context")
        return failed("ENOMEM", exc.reason, min(len(blob), 1))

    index = 0
    error = None
    while True:
        try:
            record = reader.next_record()
        except SenmlError as exc:
            error = f"record {index + 1}: {exc.reason}"
            break
        if record is None:
            break
        index += 1
        try:
            _write_record(objects, record, log)
        except _WriteError as exc:
            error = f"record {index} ({record.path_text}): {exc.reason}"
            break
        _touch_last_bootstrapped(objects, record.path[0], record.path[1], stamp, log)
    reader.close()
    consumed = reader.decoder.bytes_consumed
    if error is not None:
        log.append("ERROR [anjay_factory_provision] Error occured during writing bootstrap "
                   "information")
        return failed("EPROTO", error, consumed)

    for oid, validate in _VALIDATORS:
        problem = validate(objects, log)
        if problem is not None:
            log.append(f"ERROR [anjay] Validation failed for /{oid}")
            log.append("WARNING [anjay] Bootstrap configuration is invalid, rejecting")
            log.append("ERROR [anjay_factory_provision] Could not apply bootstrap information")
            return failed("EBADMSG", f"validation failed: {problem}", consumed)

    log.append("TRACE [anjay] Bootstrap Sequence finished")
    log.append("INFO [anjay_factory_provision] Finished factory provisioning")
    return ProvisionOutcome(True, "0", None, log, copy.deepcopy(objects),
                            f"provisioned {index} record(s): {_counts(objects)}", consumed)


# --- final image (spec §4.3 "not validated", §5.6) ---------------------------------------------

def _connection_problem(uri: str, mode: int) -> str | None:
    found = transport_of(uri)
    if found is None:
        return f"its URI '{uri}' has an unsupported scheme"
    if found[0] not in _DEMO_TRANSPORTS:
        return (f"its URI '{uri}' uses the {found[0].upper()} transport, which the anjay-zephyr "
                "demo image does not support (UDP only: coap:// or coaps://)")
    host = uri.split("://", 1)[1] if "://" in uri else ""
    host = host.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.split("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":", 1)[0]
    if not host:
        return f"its URI '{uri}' has no host"
    if mode == MODE_EST:
        return ("it uses Security Mode 4 (Certificate with EST), which needs Anjay's commercial "
                "EST feature; the open-source demo image cannot connect")
    return None


def registration_outcome(objects: dict[int, dict[int, dict]], endpoint_name: str
                         ) -> RegistrationOutcome:
    """Whether the final image registers with the provisioned data, and why not if it doesn't."""
    security = objects.get(SECURITY, {})
    servers = objects.get(SERVER, {})
    if not endpoint_name:
        return RegistrationOutcome(False, "no endpoint name: the device cannot register", None,
                                   None)
    if not objects:
        return RegistrationOutcome(
            False, "no provisioning data was persisted (provisioning failed or never ran): the "
            "final image cannot restore Anjay from anjay_factory and retries forever", None, None)
    if not security and not servers:
        return RegistrationOutcome(
            False, "empty configuration: no Security or Server instance was provisioned, so the "
            "final image has no server account and never registers", None, None)

    problems: list[str] = []
    for siid, server in sorted(servers.items()):
        ssid = server.get(0)
        match = next(((iid, inst) for iid, inst in sorted(security.items())
                      if not inst.get(1, False) and inst.get(10) == ssid), None)
        if match is None:
            problems.append(f"Server /1/{siid} (SSID {ssid}) has no non-bootstrap Security "
                            f"instance with Short Server ID {ssid}")
            continue
        sec_iid, sec = match
        uri, mode = sec.get(0, ""), sec.get(2, MODE_PSK)
        problem = _connection_problem(uri, mode)
        if problem:
            problems.append(f"Security /0/{sec_iid} for Server /1/{siid}: {problem}")
            continue
        return RegistrationOutcome(
            True, f"registers as '{endpoint_name}' with {uri} (SSID {ssid}, "
            f"{MODE_NAMES.get(mode, mode)} mode)", uri, mode)

    for iid, inst in sorted(security.items()):
        if inst.get(1, False):
            problems.append(f"Security /0/{iid} is a Bootstrap-Server account: the final image "
                            "would attempt Client-Initiated Bootstrap, not a registration")
        elif not any(srv.get(0) == inst.get(10) for srv in servers.values()):
            problems.append(f"Security /0/{iid} (SSID {inst.get(10)}) has no Server instance "
                            f"with Short Server ID {inst.get(10)}")
    if not servers:
        problems.insert(0, "no Server instance (/1) was provisioned")
    return RegistrationOutcome(False, "never registers: " + "; ".join(problems), None, None)
