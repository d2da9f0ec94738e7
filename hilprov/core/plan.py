"""The provisioning plan: *prepare* once per run, *build* once per device.

`prepare(inputs)` reads and checks everything a run needs before any board is touched: the endpoint
config (parsed, never evaluated), its validation against the device profile, and the certificates
and keys of Certificate/EST mode. The result, a `Plan`, is pure data. `build(plan, endpoint)` then
makes one device's blob: the final configuration (credentials appended in the seed's order), a
self-signed certificate when one is to be generated, and the SenML CBOR bytes.

Messages name inputs the way the user gave them: `Inputs.flags` maps each input to its option
(`-p FILE` on the command line, `--hil-server-cert` under pytest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from hilprov.core import credentials, profile, senml
from hilprov.core.config import EndpointConfig, load_config
from hilprov.core.lwm2m import OID, RID, SecurityMode, format_path
from hilprov.errors import ConfigError, HilprovError, UsageError, ValidationError

if TYPE_CHECKING:  # certs (cryptography) is imported where certificates are made or loaded
    from hilprov.core import certs

CREDENTIAL_MODES = (SecurityMode.CERT, SecurityMode.EST)
_PLACEHOLDER = b"\x00"  # stands in for credentials added later, while validating early

CLI_FLAGS: Mapping[str, str] = MappingProxyType({
    "endpoint_cfg": "-c FILE", "server_cert": "-p FILE", "endpoint_cert": "-r FILE",
    "endpoint_key": "-k FILE", "cert_info": "-C JSON", "endpoint_name": "-e NAME",
    "psk_identity": "--psk-identity", "psk_key": "--psk-key",
})
"""How the command line names each input; other front ends pass their own."""


@dataclass(frozen=True)
class Inputs:
    """What the user gives for a run (paths only; nothing is read yet)."""

    endpoint_cfg: Path
    profile: str = profile.DEFAULT_PROFILE
    cert_info: Path | None = None
    server_cert: Path | None = None
    endpoint_cert: Path | None = None
    endpoint_key: Path | None = None
    psk_identity: str | None = None  # a template: {endpoint} and {imei} expand
    psk_key: str | None = None  # "random" or "random:N"
    # the two above are a session's defaults (the plugin's options), not asked for this config:
    # they apply only if its server account is in PSK mode
    psk_defaults: bool = False
    flags: Mapping[str, str] = field(default_factory=lambda: CLI_FLAGS, repr=False,
                                      compare=False)

    def flag(self, name: str) -> str:
        return self.flags.get(name) or CLI_FLAGS[name]


@dataclass(frozen=True)
class Plan:
    """A checked configuration and the credentials that go with it; holds no device identity."""

    inputs: Inputs
    config: EndpointConfig = field(repr=False)
    mode: SecurityMode
    warnings: tuple[profile.Problem, ...] = ()
    server_cert: bytes | None = field(default=None, repr=False)
    endpoint_cert: bytes | None = field(default=None, repr=False)
    endpoint_key: bytes | None = field(default=None, repr=False)
    cert_info: dict | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.config.source

    @property
    def generates_certificate(self) -> bool:
        return self.mode in CREDENTIAL_MODES and self.cert_info is not None

    @property
    def random_key(self) -> bool:
        """A key made for each device: nobody knows it unless it is onboarded or saved."""
        if self.mode != SecurityMode.PSK:
            return False
        _iid, inst = server_account(self.config)
        return isinstance(inst.get(RID.Security.SecretKey), credentials.RandomKey)

    def shared_credentials(self) -> list[str]:
        """What every unit of a run would share, named as the user can change it: the PSK
        identity or key, or a given certificate and key. Empty when each unit gets its own."""
        flag = self.inputs.flag
        if self.mode in CREDENTIAL_MODES:
            if self.generates_certificate:
                return []
            return [f"the endpoint certificate and key ({flag('endpoint_cert')}, "
                    f"{flag('endpoint_key')}; give {flag('cert_info')} to make one per unit)"]
        if self.mode != SecurityMode.PSK:
            return []
        iid, inst = server_account(self.config)
        shared = []
        for rid, what, option in ((RID.Security.PKOrIdentity, "identity", "psk_identity"),
                                  (RID.Security.SecretKey, "key", "psk_key")):
            if not credentials.per_device(inst.get(rid)):
                shared.append(f"the PSK {what} ({format_path((0, iid, rid))}; give "
                              f"{flag(option)})")
        return shared


@dataclass(frozen=True)
class Build:
    """One device's blob. `blob` and `config` carry the PSK or private key: never shown."""

    endpoint: str | None
    config: EndpointConfig = field(repr=False)
    blob: bytes = field(repr=False)
    mode: SecurityMode
    generated: certs.GeneratedCert | None = None
    endpoint_cert: bytes | None = field(default=None, repr=False)
    made_key: bool = False  # a random PSK key was made for this device

    @property
    def cert_fingerprint(self) -> str | None:
        if not self.endpoint_cert:
            return None
        from hilprov.core import certs

        return certs.certificate_fingerprint(self.endpoint_cert)

    def psk_credentials(self) -> tuple[bytes | None, bytes | None]:
        """(identity, key) of the server account in PSK mode, else (None, None)."""
        if self.mode != SecurityMode.PSK:
            return None, None
        _iid, inst = server_account(self.config)
        return inst.get(RID.Security.PKOrIdentity), inst.get(RID.Security.SecretKey)


def prepare(inputs: Inputs) -> Plan:
    """Parse and validate the config and load its credentials; raises a HilprovError."""
    config = load_config(inputs.endpoint_cfg)
    if inputs.psk_defaults and _mode_or_none(config) != SecurityMode.PSK:
        inputs = dataclasses.replace(inputs, psk_identity=None, psk_key=None)
    if inputs.psk_identity is not None or inputs.psk_key is not None:
        config = _with_psk_options(config, inputs)
    warnings = check(config, inputs.profile, pending=True, flags=inputs)
    mode = security_mode(config)
    _check_option_conflicts(inputs, mode)
    server_cert = endpoint_cert = endpoint_key = cert_info = None
    if inputs.cert_info is not None:
        from hilprov.core import certs

        cert_info = certs.load_cert_info(inputs.cert_info)
    if mode in CREDENTIAL_MODES:
        server_cert, endpoint_cert, endpoint_key = _load_credentials(inputs, mode,
                                                                     cert_info is not None)
    return Plan(inputs, config, mode, tuple(warnings), server_cert, endpoint_cert, endpoint_key,
                cert_info)


def build(plan: Plan, endpoint: str | None) -> Build:
    """The blob for `endpoint` (the certificate's CN when one is generated); per-device values
    (EndpointName(), RandomKey(N), identity templates) are made here."""
    generated = None
    endpoint_cert, endpoint_key = plan.endpoint_cert, plan.endpoint_key
    if plan.generates_certificate:
        from hilprov.core import certs

        generated = certs.generate_self_signed(plan.cert_info, endpoint,
                                               source=str(plan.inputs.cert_info))
        endpoint_cert, endpoint_key = generated.cert_der, generated.key_der
    config = _map_values(plan.config, lambda path, value: credentials.resolve(
        value, endpoint, where(plan.config, path)))
    config = with_credentials(config, plan.server_cert, endpoint_cert, endpoint_key,
                              flags=plan.inputs)
    check(config, plan.inputs.profile, flags=plan.inputs)
    return Build(endpoint, config, senml.encode_config(config), plan.mode, generated,
                 endpoint_cert if plan.mode in CREDENTIAL_MODES else None, plan.random_key)


def check(config: EndpointConfig, profile_name: str, *, pending: bool = False,
          flags: Inputs | None = None) -> list[profile.Problem]:
    """Validate `config` as the device will get it; raise ValidationError listing every error,
    return the warnings. With `pending`, Certificate/EST credentials not loaded yet count as
    present, so a bad config is refused before a certificate is made."""
    if pending:
        config = with_credentials(config, None, None, None, pending=True, flags=flags)
        config = _map_values(config, lambda path, value: credentials.sample(value))
    problems = profile.validate(config, profile_name)
    bad = profile.errors(problems)
    if bad:
        raise ValidationError(bad, config.source)
    return [p for p in problems if not p.is_error]


def _check_option_conflicts(inputs: Inputs, mode: SecurityMode) -> None:
    """Options that cannot mean anything together are refused, not silently ignored."""
    flag = inputs.flag
    if inputs.cert_info is not None:
        if inputs.endpoint_cert is not None or inputs.endpoint_key is not None:
            raise UsageError(f"{flag('cert_info')} makes the endpoint certificate and key: it "
                             f"cannot be combined with {flag('endpoint_cert')} or "
                             f"{flag('endpoint_key')}; give one or the other")
        if mode not in CREDENTIAL_MODES:
            raise UsageError(f"{flag('cert_info')} makes a certificate, but the server account "
                             f"of {inputs.endpoint_cfg} uses {mode} mode, which uses none")
    psk = [flag(name) for name in ("psk_identity", "psk_key") if getattr(inputs, name)]
    if psk and mode != SecurityMode.PSK:
        raise UsageError(f"{' and '.join(psk)} set the PSK credentials, but the server account "
                         f"of {inputs.endpoint_cfg} uses {mode} mode")


def _mode_or_none(config: EndpointConfig) -> SecurityMode | None:
    """The mode before validation; None if the config does not say (validation will)."""
    try:
        return security_mode(config)
    except HilprovError:
        return None


def _with_psk_options(config: EndpointConfig, inputs: Inputs) -> EndpointConfig:
    """The server account with --psk-identity / --psk-key in /0/x/3 and /0/x/5."""
    config = config.copy()
    iid, _ = server_account(config)
    if inputs.psk_identity is not None:
        config.set_resource(OID.Security, iid, RID.Security.PKOrIdentity,
                            credentials.IdentityTemplate(inputs.psk_identity))
    if inputs.psk_key is not None:
        try:
            key = credentials.parse_key(inputs.psk_key)
        except ValueError as exc:
            raise UsageError(f"{inputs.flag('psk_key')}: {exc}") from None
        config.set_resource(OID.Security, iid, RID.Security.SecretKey, key)
    return config


def _map_values(config: EndpointConfig, change) -> EndpointConfig:
    """A copy of `config` with `change(path, value)` applied to every value."""
    config = config.copy()
    for oid, instances in config.tree.items():
        for iid, resources in instances.items():
            for rid, value in resources.items():
                if isinstance(value, dict):
                    for riid, inner in value.items():
                        value[riid] = change((oid, iid, rid, riid), inner)
                else:
                    resources[rid] = change((oid, iid, rid), value)
    return config


def _load_credentials(inputs: Inputs, mode: SecurityMode, generating: bool
                      ) -> tuple[bytes, bytes | None, bytes | None]:
    """The server certificate (required, as in the seed) and the endpoint certificate + key,
    unless a self-signed pair will be generated."""
    if inputs.server_cert is None:
        raise ConfigError(f"{mode} mode needs the server certificate: give "
                          f"{inputs.flag('server_cert')}")
    if not generating and (inputs.endpoint_cert is None or inputs.endpoint_key is None):
        raise ConfigError(f"{mode} mode needs the endpoint certificate and key: give "
                          f"{inputs.flag('cert_info')}, or {inputs.flag('endpoint_cert')} and "
                          f"{inputs.flag('endpoint_key')}")
    from hilprov.core import certs

    server = certs.load_certificate(inputs.server_cert)
    if generating:
        return server, None, None
    cert, key = load_endpoint_pair(inputs.endpoint_cert, inputs.endpoint_key)
    return server, cert, key


def load_endpoint_pair(cert_path, key_path) -> tuple[bytes, bytes]:
    """A user-supplied endpoint certificate and its key as DER; refused if they do not match."""
    from hilprov.core import certs

    cert_der = certs.load_certificate(cert_path)
    key_der = certs.load_private_key(key_path)
    certs.check_key_matches_certificate(cert_der, key_der, cert_name=f"certificate {cert_path}",
                                        key_name=f"private key {key_path}")
    return cert_der, key_der


def server_account(config: EndpointConfig) -> tuple[int, dict]:
    """(iid, resources) of the one non-bootstrap Security instance; ConfigError otherwise."""
    accounts = [(iid, inst) for iid, inst in config.instances(OID.Security).items()
                if inst.get(RID.Security.Bootstrap) is not True]
    if not accounts:
        raise ConfigError(f"{config.source}: no LwM2M server account: the config needs a "
                          "Security (/0) instance with Bootstrap False")
    if len(accounts) > 1:
        where = ", ".join(f"/0/{iid}" for iid, _ in accounts)
        raise ConfigError(f"{config.source}: ambiguous server account: {where} are all "
                          "non-bootstrap Security instances; keep one (a Bootstrap-Server "
                          "account may stay beside it)")
    return accounts[0]


def security_mode(config: EndpointConfig) -> SecurityMode:
    """The server account's mode; an omitted /0/x/2 means PSK, as on the device (spec §4.2)."""
    iid, inst = server_account(config)
    raw = inst.get(RID.Security.Mode, SecurityMode.PSK)
    try:
        mode = SecurityMode(raw)
    except ValueError:
        mode = None
    if mode is None or mode == SecurityMode.RPK or isinstance(raw, bool):
        raise ConfigError(f"{where(config, (0, iid, 2))}: unsupported Security Mode {raw!r}; "
                          "expected 0 (PSK), 2 (Certificate), 3 (NoSec) or 4 (EST)")
    return mode


def with_credentials(config: EndpointConfig, server_cert: bytes | None,
                     endpoint_cert: bytes | None, endpoint_key: bytes | None, *,
                     pending: bool = False, flags: Inputs | None = None) -> EndpointConfig:
    """A copy of `config` as it goes to the device. In Certificate/EST mode /0/x/4, /0/x/3 and
    /0/x/5 are set after the file's resources, in the seed's order. With `pending`, missing
    credentials get a placeholder (for validating before they exist)."""
    config = config.copy()
    try:
        mode = security_mode(config)
        iid, _ = server_account(config)
    except ConfigError:
        return config  # no single account: nothing to add; validation reports the rest
    if mode not in CREDENTIAL_MODES:
        return config
    flag = (flags or Inputs(Path())).flag
    values = {RID.Security.ServerPKOrIdentity: server_cert,
              RID.Security.PKOrIdentity: endpoint_cert,
              RID.Security.SecretKey: endpoint_key}
    missing = {
        RID.Security.ServerPKOrIdentity: f"the server certificate ({flag('server_cert')})",
        RID.Security.PKOrIdentity: f"the endpoint certificate ({flag('endpoint_cert')} or "
                                   f"{flag('cert_info')})",
        RID.Security.SecretKey: f"the endpoint private key ({flag('endpoint_key')} or "
                                f"{flag('cert_info')})"}
    for rid, value in values.items():
        if value is None and pending:
            value = _PLACEHOLDER
        if value is None:
            raise ConfigError(f"{mode.name.title()} mode needs {missing[rid]}")
        config.set_resource(OID.Security, iid, rid, value)
    return config


def where(config: EndpointConfig, path) -> str:
    """`file:line:col` of `path` in the config, else the file name."""
    loc = config.location(path)
    return str(loc) if loc else config.source
