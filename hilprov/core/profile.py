"""Host-side validation: would the device accept this configuration, and would it ever register?

Two profiles:

* ``anjay-zephyr`` (default) — the Zephyr initial image of spec §5: Anjay 3.11 with objects /0, /1
  and /2, the writable resources and write-time checks of spec §4.2, and the checks Anjay runs when
  it finishes the bootstrap transaction (spec §4.3). A config that passes is one the device accepts.
* ``lwm2m`` — any object of the OID table, each value checked against its resource's LwM2M type;
  no device-specific limits.

Every problem carries its path, its line in the config file and what the device expects. Errors
are what the device would reject; warnings are configs the device accepts but that can never
register (or that probably do not mean what they say).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from hilprov.core import lwm2m
from hilprov.core.config import EndpointConfig, Location
from hilprov.core.lwm2m import Objlink, format_path
from hilprov.core.senml import label_for
from hilprov.core.text import shown

PROFILES = ("anjay-zephyr", "lwm2m")
DEFAULT_PROFILE = "anjay-zephyr"

INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
MAX_ID = 65534  # 65535 is the "no ID" marker and refused in paths
MAX_PATH_CHARS = 24

URI_SCHEMES = {"coap": "udp", "coaps": "udp", "coap+tcp": "tcp", "coaps+tcp": "tcp",
               "tel": "sms", "coap+nidd": "nidd", "coaps+nidd": "nidd"}
BINDINGS_1_0 = {"U", "UQ", "S", "SQ", "US", "UQS"}
MODE_NAMES = {0: "PSK", 1: "RPK", 2: "Certificate", 3: "NoSec", 4: "EST"}


class Problem(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """One thing the device would reject (error) or that looks wrong (warning)."""

    severity: str  # "error" or "warning"
    path: tuple[int, ...]
    message: str
    location: Location | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        path = format_path(self.path) if self.path else "/"
        return f"{where}{self.severity}: {path}: {self.message}"


# -- the anjay-zephyr resource table (spec §4.2) ---------------------------------------------------
# kind: "int" (numeric with an exact integer value), "str", "bytes", "bool".
# lo/hi: inclusive range checked when the value is written; None = unbounded on that side.


class Writable(NamedTuple):
    """How the device takes writes to one resource (see the table's comment)."""

    kind: str
    lo: int | None = None
    hi: int | None = None
    multiple: bool = False
    check: Callable[[object], str | None] | None = None  # extra write-time check → message


def _security_mode(value) -> str | None:
    if value == 1:
        return "Raw Public Key mode (1) is not supported by Anjay; use 0 (PSK), 2 (Certificate), " \
               "3 (NoSec) or 4 (EST)"
    if value not in (0, 2, 3, 4):
        return f"invalid Security Mode {value}; expected 0 (PSK), 2 (Certificate), 3 (NoSec) " \
               "or 4 (EST)"
    return None


def _binding(value) -> str | None:
    if len(value) > 7:
        return f"Binding {shown(value)} is longer than 7 characters"
    if value in BINDINGS_1_0 or (set(value) <= set("USTN") and len(set(value)) == len(value)):
        return None
    return (f"incorrect binding mode {shown(value)}; expected LwM2M 1.1 letters U, S, T, N (upper "
            "case, each at most once, e.g. 'U') or a 1.0 mode (U, UQ, S, SQ, US, UQS)")


def _preferred_transport(value) -> str | None:
    if len(value) != 1 or value not in "USTN":
        return f"incorrect Preferred Transport {shown(value)}; expected one of U, S, T, N"
    return None


ANJAY_ZEPHYR: dict[int, dict[int, Writable]] = {
    0: {
        0: Writable("str"), 1: Writable("bool"), 2: Writable("int", check=_security_mode),
        3: Writable("bytes"), 4: Writable("bytes"), 5: Writable("bytes"),
        10: Writable("int", 1, 65535), 11: Writable("int", *INT32), 12: Writable("int", *INT32),
        13: Writable("int", 0, 3), 14: Writable("str"), 15: Writable("int", 0, 3),
        16: Writable("int", 1, 65535, multiple=True),
    },
    1: {
        0: Writable("int", *INT32), 1: Writable("int", *INT32), 2: Writable("int", 0, INT32[1]),
        3: Writable("int", 1, INT32[1]), 5: Writable("int", 0, INT32[1]), 6: Writable("bool"),
        7: Writable("str", check=_binding), 11: Writable("int", *UINT32),
        12: Writable("int", *INT64), 16: Writable("bool"), 17: Writable("int", 1, UINT32[1]),
        18: Writable("int", *UINT32), 19: Writable("int", *UINT32),
        20: Writable("int", 1, UINT32[1]), 22: Writable("str", check=_preferred_transport),
    },
    2: {
        0: Writable("int", 1, MAX_ID, check=lambda v: "the device refuses Access Control "
                    "instances that target /2 itself" if v == 2 else None),
        1: Writable("int", 0, 65535), 2: Writable("int", *INT32, multiple=True),
        3: Writable("int", 1, 65535),
    },
}

_NOT_WRITABLE_WHY = {
    (0, 6): "SMS resources are not supported", (0, 7): "SMS resources are not supported",
    (0, 8): "SMS resources are not supported", (0, 9): "SMS resources are not supported",
    (1, 4): "it is executable", (1, 8): "it is executable", (1, 9): "it is executable",
    (1, 14): "Anjay 3.11 has no writable Initial Registration Delay Timer (3.14 has)",
    (1, 23): "Mute Send is only writable when SEND is enabled, which the demo disables",
}


def validate(config: EndpointConfig, profile: str = DEFAULT_PROFILE) -> list[Problem]:
    """Every problem the profile finds, errors and warnings, in file order."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    checker = _Checker(config)
    checker.common()
    if profile == "anjay-zephyr":
        checker.anjay_writes()
        checker.anjay_finish()
        checker.registration_warnings(checker.state)
    else:
        checker.lwm2m_types()
        checker.registration_warnings(config.tree)
    return checker.problems


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


class _Checker:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.problems: list[Problem] = []
        # (oid, iid) -> {rid: value} as the device would hold it after the writes
        self.state: dict[int, dict[int, dict[int, object]]] = {}
        # (oid, iid, rid) written but refused: already reported, so not also "missing"
        self.refused: set[tuple[int, int, int]] = set()

    def add(self, severity: str, path: tuple[int, ...], message: str) -> None:
        self.problems.append(Problem(severity, path, message, self.config.location(path)))

    def error(self, path, message) -> None:
        self.add("error", path, message)

    def warn(self, path, message) -> None:
        self.add("warning", path, message)

    # -- for every profile ---------------------------------------------------------------------
    def common(self) -> None:
        for path, _loc in self.config.duplicates:
            self.warn(path, "appears more than once in the file; only the last value is used")
        for path, obj_name in self.config.rid_namespaces.items():
            obj = lwm2m.OBJECTS.get(path[0])
            if obj is not None and obj.name != obj_name:
                rid_name = lwm2m.resource_name(lwm2m.OBJECTS_BY_NAME[obj_name].oid, path[2])
                self.warn(path, f"RID.{rid_name} names a {obj_name} resource but is used in "
                                f"object /{path[0]} ({obj.name}): it is written as "
                                f"{lwm2m.resource_name(path[0], path[2])}")
        for entry in self.config.entries():
            for part in entry.path:
                if not 0 <= part <= MAX_ID:
                    self.error(entry.path, f"ID {part} is out of range; the device expects "
                                           f"object, instance and resource IDs 0..{MAX_ID}")
                    break
            if len(format_path(entry.path)) > MAX_PATH_CHARS:
                self.error(entry.path, f"path is {len(format_path(entry.path))} characters; the "
                                       f"device reads at most {MAX_PATH_CHARS}")
            if isinstance(entry.value, Objlink) and not (
                    0 <= entry.value.oid <= 65535 and 0 <= entry.value.iid <= 65535):
                self.error(entry.path, f"{entry.value!r} is out of range; both parts must be "
                                       "0..65535")

    # -- anjay-zephyr: what the write handlers accept (spec §4.2) ------------------------------
    def anjay_writes(self) -> None:
        for oid, instances in self.config.tree.items():
            table = ANJAY_ZEPHYR.get(oid)
            if table is None:
                self.error((oid,), f"object /{oid} ({_object_name(oid)}) does not exist on the "
                                   "device: the initial image has only /0 Security, /1 Server "
                                   "and /2 Access Control")
                continue
            for iid, resources in instances.items():
                inst = self.state.setdefault(oid, {}).setdefault(iid, {})
                for rid, value in resources.items():
                    self._write(oid, iid, rid, value, table, inst)

    def _write(self, oid, iid, rid, value, table, inst) -> None:
        path = (oid, iid, rid)
        rule = table.get(rid)
        if rule is None:
            why = _NOT_WRITABLE_WHY.get((oid, rid), "the device has no writable resource there")
            self.error(path, f"{lwm2m.resource_name(oid, rid)} cannot be written during "
                             f"provisioning: {why}")
            return
        if isinstance(value, dict):
            self._write_instances(path, value, rule, inst)
            return
        if rule.multiple:
            # The device calls the write handler directly with "no RIID" (65535) as the ID.
            self.warn(path, f"{lwm2m.resource_name(oid, rid)} is a multiple-instance resource: "
                            "the device stores a single value as resource instance 65535; "
                            "write {riid: value}, e.g. {1: ...}")
            stored = self._check_value(path + (65535,), value, rule)
            if stored is _BAD:
                self.refused.add(path)
            else:
                inst.setdefault(rid, {})[65535] = stored
            return
        stored = self._check_value(path, value, rule)
        if stored is _BAD:
            self.refused.add(path)
            return
        if (oid, rid) == (1, 0):
            truncated = stored & 0xFFFF
            if truncated != stored:
                self.warn(path, f"Short Server ID {stored} is stored truncated to 16 bits as "
                                f"{truncated}")
            stored = truncated
        inst[rid] = stored

    def _write_instances(self, path, values: dict, rule: Writable, inst) -> None:
        """`{riid: value}`: resource instances, or on a single-instance resource the last one."""
        rid = path[2]
        if not rule.multiple:
            self.warn(path, f"{lwm2m.resource_name(path[0], rid)} is a single-instance "
                            "resource: the device ignores the resource instance IDs and keeps "
                            "the last value")
            for riid, inner in values.items():
                stored = self._check_value(path + (riid,), inner, rule)
                if stored is not _BAD:
                    inst[rid] = stored
            return
        for riid, inner in values.items():
            if not 0 <= riid <= MAX_ID:
                continue  # reported by common()
            stored = self._check_value(path + (riid,), inner, rule)
            if stored is not _BAD:
                inst.setdefault(rid, {})[riid] = stored

    def _check_value(self, path, value, rule: Writable):
        """The value as the device stores it, or _BAD after reporting why it is refused."""
        name = lwm2m.resource_name(path[0], path[2])
        found = _describe(value, reveal=not lwm2m.is_credential(path))
        if rule.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.error(path, f"{name} is an integer resource; found {found}")
                return _BAD
            if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
                self.error(path, f"{name} needs an integer value; found {found}")
                return _BAD
            value = int(value)
            lo, hi = rule.lo, rule.hi
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                self.error(path, f"{name} = {value} is out of range; the device expects "
                                 f"{_range(lo, hi)}")
                return _BAD
        elif rule.kind == "bool" and not isinstance(value, bool):
            self.error(path, f"{name} is a boolean resource; found {found} (write True or False)")
            return _BAD
        elif rule.kind == "str" and not isinstance(value, str):
            self.error(path, f"{name} is a string resource; found {found}")
            return _BAD
        elif rule.kind == "bytes" and not isinstance(value, bytes):
            hint = " (write b'...': the device refuses text for opaque resources)" \
                if isinstance(value, str) else ""
            self.error(path, f"{name} is an opaque resource; found {found}{hint}")
            return _BAD
        message = rule.check(value) if rule.check else None
        if message:
            self.error(path, message)
            return _BAD
        return value

    # -- anjay-zephyr: what Anjay checks when the transaction finishes (spec §4.3) -------------
    def anjay_finish(self) -> None:
        security = self.state.get(0, {})
        servers = self.state.get(1, {})
        for iid, inst in security.items():
            self._security_instance((0, iid), inst)
        self._security_object(security)
        for iid, inst in servers.items():
            self._server_instance((1, iid), inst)
        seen: dict[int, int] = {}
        for iid, inst in servers.items():
            ssid = inst.get(0)
            if isinstance(ssid, int) and 1 <= ssid <= MAX_ID:
                if ssid in seen:
                    self.error((1, iid), f"Short Server ID {ssid} is also used by /1/{seen[ssid]}; "
                                         "the device needs unique SSIDs")
                seen[ssid] = iid
        self._access_control(self.state.get(2, {}), set(seen))

    def _security_instance(self, path, inst) -> None:
        bootstrap = inst.get(1) is True
        uri = inst.get(0)
        mode_refused = path + (2,) in self.refused
        mode = None if mode_refused else inst.get(2, 0)
        if uri is None and path + (0,) not in self.refused:
            self.error(path, "missing mandatory 'Server URI' (/0/x/0)")
        if 10 not in inst and not bootstrap and path + (10,) not in self.refused:
            self.error(path, "missing mandatory 'Short Server ID' (/0/x/10); only a Bootstrap-"
                             "Server account may omit it")
        if isinstance(uri, str):
            self._uri_scheme(path, uri, mode)
        if mode in (0, 2):
            for rid, what in ((3, "PKOrIdentity"), (5, "SecretKey")):
                if not inst.get(rid):
                    detail = {(0, 3): "PSK identity", (0, 5): "PSK key",
                              (2, 3): "endpoint certificate: give -r or -C",
                              (2, 5): "endpoint private key: give -k or -C"}[mode, rid]
                    self.error(path + (rid,), f"{MODE_NAMES[mode]} mode needs a non-empty "
                                              f"{what} ({detail}); the device refuses "
                                              "credentials that are not fully configured")
        if inst.get(13) == 2:
            self.error(path + (13,), "Matching Type 2 (SHA-384) is not supported by the device")
        if 2 not in inst and not mode_refused:
            self.warn(path, "Security Mode (/0/x/2) is not set: the device assumes 0 (PSK)")

    def _uri_scheme(self, path, uri: str, mode) -> None:
        """The URI scheme must be one Anjay knows and fit the security mode (spec §4.3)."""
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        if scheme not in URI_SCHEMES:
            self.error(path + (0,), f"unsupported URI scheme in {shown(uri)}; expected one of "
                                    + ", ".join(URI_SCHEMES))
            return
        if scheme == "tel":
            return
        secure = scheme.startswith("coaps")
        if mode == 3 and secure:
            self.error(path + (0,), f"NoSec mode (3) needs a coap:// URI, found {shown(uri)}")
        elif mode in (0, 2, 4) and not secure:
            self.error(path + (0,), f"{MODE_NAMES[mode]} mode ({mode}) needs a coaps:// URI, "
                                    f"found {shown(uri)}")

    def _security_object(self, security) -> None:
        bootstraps = [iid for iid, inst in security.items() if inst.get(1) is True]
        if len(bootstraps) > 1:
            self.error((0, bootstraps[1]), "more than one Bootstrap-Server account (/0/x/1 = "
                                           f"True in /0/{', /0/'.join(map(str, bootstraps))}); "
                                           "the device allows at most one")
        seen: dict[tuple, int] = {}
        for iid, inst in security.items():
            if inst.get(1) is True or not isinstance(inst.get(10), int):
                continue
            uri = inst.get(0)
            scheme = uri.split(":", 1)[0].lower() if isinstance(uri, str) else ""
            key = (inst[10], URI_SCHEMES.get(scheme))
            if key in seen:
                self.error((0, iid), f"Short Server ID {inst[10]} over {key[1] or 'the same'} "
                                     f"transport is also used by /0/{seen[key]}; the device needs "
                                     "each (SSID, transport) once")
            seen[key] = iid

    def _server_instance(self, path, inst) -> None:
        for rid, name in ((0, "Short Server ID"), (1, "Lifetime"), (6, "Notification Storing"),
                          (7, "Binding")):
            if rid not in inst and path + (rid,) not in self.refused:
                self.error(path, f"missing mandatory '{name}' (/1/x/{rid})")
        ssid = inst.get(0)
        if isinstance(ssid, int) and not 1 <= ssid <= MAX_ID:
            self.error(path + (0,), f"invalid Short Server ID {ssid} (as stored); the device "
                                    f"expects 1..{MAX_ID}")
        lifetime = inst.get(1)
        if isinstance(lifetime, int) and lifetime < 0:
            self.error(path + (1,), f"Lifetime {lifetime} is negative; the device expects 0 or "
                                    "more seconds")

    def _access_control(self, acl_instances, server_ssids: set[int]) -> None:
        targets: dict[tuple, int] = {}
        for iid, inst in acl_instances.items():
            path = (2, iid)
            target_oid, target_iid = inst.get(0), inst.get(1)
            if target_oid is None or target_iid is None:
                if not {path + (0,), path + (1,)} & self.refused:
                    self.error(path, "Access Control needs both Target Object ID (/2/x/0) and "
                                     "Target Instance ID (/2/x/1)")
                continue
            if target_oid not in ANJAY_ZEPHYR:
                self.error(path + (0,), f"target object /{target_oid} is not installed on the "
                                        "device (it has /0, /1 and /2)")
            elif target_iid != 65535 and target_iid not in self.state.get(target_oid, {}):
                self.error(path + (1,), f"target /{target_oid}/{target_iid} does not exist in "
                                        "this configuration; use an existing instance or 65535")
            key = (target_oid, target_iid)
            if key in targets:
                self.error(path, f"target /{target_oid}/{target_iid} is already controlled by "
                                 f"/2/{targets[key]}; each target may appear once")
            targets[key] = iid
            owner = inst.get(3)
            if owner is not None and owner != 65535 and owner not in server_ssids:
                self.error(path + (3,), f"owner {owner} is not the SSID of a Server instance "
                                        f"(known: {_ssid_list(server_ssids)})")
            for riid in (inst.get(2) or {}):
                if riid != 0 and riid not in server_ssids:
                    self.error(path + (2, riid), f"ACL for SSID {riid} names no Server instance "
                                                 f"(known: {_ssid_list(server_ssids)})")

    # -- lwm2m: every object, typed ------------------------------------------------------------
    def lwm2m_types(self) -> None:
        for oid, instances in self.config.tree.items():
            obj = lwm2m.OBJECTS.get(oid)
            if obj is None:
                self.error((oid,), f"object /{oid} is not in the LwM2M object table")
                continue
            for iid, resources in instances.items():
                for rid, value in resources.items():
                    res = obj.resource(rid)
                    path = (oid, iid, rid)
                    if res is None:
                        self.error(path, f"object {obj.name} has no resource {rid}")
                        continue
                    if res.executable:
                        self.error(path, f"{obj.name}.{res.name} is executable and has no value")
                        continue
                    if isinstance(value, dict) != res.multiple:
                        shape = "{riid: value}" if res.multiple else "a single value"
                        self.error(path, f"{obj.name}.{res.name} expects {shape}")
                        continue
                    values = value.items() if isinstance(value, dict) else [(None, value)]
                    for riid, inner in values:
                        message = _lwm2m_type_error(res.type, inner)
                        if message:
                            ipath = path if riid is None else path + (riid,)
                            self.error(ipath, f"{obj.name}.{res.name} is {res.type}; {message}")

    # -- accepted, but never registers ---------------------------------------------------------
    def registration_warnings(self, tree: dict) -> None:
        """Warnings for what the device accepts but cannot register with (spec §4.3 end)."""
        security = tree.get(0, {})
        servers = tree.get(1, {})
        if not self.config.tree:
            self.warn((), "the configuration is empty: the device accepts it and deletes its "
                          "server accounts, so it can never register")
            return
        accounts = {iid: inst for iid, inst in security.items() if inst.get(1) is not True}
        server_ssids = {inst.get(0): iid for iid, inst in servers.items()}
        security_ssids = {inst.get(10): iid for iid, inst in accounts.items()}
        if not accounts and security:
            self.warn((0,), "there is no non-bootstrap Security instance: the device has no "
                            "LwM2M server account to register with")
        for ssid, iid in security_ssids.items():
            if ssid is not None and ssid not in server_ssids:
                self.warn((0, iid, 10), f"Security /0/{iid} has Short Server ID {ssid} but no "
                                        "Server instance has it: this account can never register")
        for ssid, iid in server_ssids.items():
            if ssid is not None and ssid not in security_ssids:
                self.warn((1, iid, 0), f"Server /1/{iid} (SSID {ssid}) has no Security instance "
                                       "with that Short Server ID: it can never register")
        if accounts and not servers:
            self.warn((1,), "there is no Server instance (/1): the device cannot register")


def _lwm2m_type_error(kind: str, value) -> str | None:
    if kind in ("string", "corelnk"):
        ok = isinstance(value, str)
    elif kind in ("integer", "time"):
        ok = label_for(value) == 2 and _exact_int(value) and INT64[0] <= value <= INT64[1]
    elif kind == "unsigned":
        ok = label_for(value) == 2 and _exact_int(value) and UINT64[0] <= value <= UINT64[1]
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "opaque":
        ok = isinstance(value, bytes)
    elif kind == "objlnk":
        ok = isinstance(value, Objlink)
    else:
        ok = False
    return None if ok else f"found {_describe(value)}"


def _exact_int(value) -> bool:
    return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())


_BAD = object()


def _describe(value, reveal: bool = True) -> str:
    if not reveal:
        kind = {str: "text", bytes: "bytes"}.get(type(value), type(value).__name__)
        return f"{kind} (value not shown)"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {shown(value, 50)}"
    if isinstance(value, bytes):
        return f"bytes ({len(value)} bytes)"
    if isinstance(value, Objlink):
        return repr(value)
    return type(value).__name__


def _range(lo, hi) -> str:
    if lo is None:
        return f"at most {hi}"
    if hi is None:
        return f"at least {lo}"
    return f"{lo}..{hi}"


def _ssid_list(ssids: set[int]) -> str:
    return ", ".join(map(str, sorted(ssids))) or "none"


def _object_name(oid: int) -> str:
    obj = lwm2m.OBJECTS.get(oid)
    return obj.name if obj else "unknown object"
