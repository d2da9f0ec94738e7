"""`FactoryProvisioning`: the seed tool's public API, on hilprov's safe parts.

Scripts written against the seed (`FactoryProvisioning(cfg, ep, server, token, cert_info)` then
`get_sec_mode()`, `set_server_cert()`, `generate_self_signed_cert()` or
`set_endpoint_cert_and_key()`, `provision_device()`, `register()`) keep working. What changes:
the config is parsed, not `eval`ed; Objlink works; the blob is validated against a device profile
before anything is written; errors are typed `HilprovError`s; secrets stay out of messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from hilprov.cloud import coiote
from hilprov.core import certs, profile, senml
from hilprov.core.config import EndpointConfig, load_config
from hilprov.core.files import write_atomic
from hilprov.core.lwm2m import OID, RID, SecurityMode
from hilprov.errors import ConfigError, ValidationError

log = logging.getLogger("hilprov")

CREDENTIAL_MODES = (SecurityMode.CERT, SecurityMode.EST)
_PLACEHOLDER = b"\x00"  # stands in for credentials that are added later, during early validation


class FactoryProvisioning:
    """Build, validate and write the provisioning blob of one endpoint; onboard it in Coiote."""

    def __init__(self, endpoint_cfg, endpoint_name=None, server_info=None, token=None,
                 cert_info=None, *, profile_name: str = profile.DEFAULT_PROFILE,
                 report: Callable[[str], None] | None = None) -> None:
        self.config: EndpointConfig = load_config(endpoint_cfg)
        self.endpoint_name: str | None = endpoint_name
        self.srv_info: coiote.ServerInfo | None = (
            coiote.load_server_info(server_info) if server_info is not None else None)
        self.access_token: str | None = token
        self.cert_info: dict | None = (
            certs.load_cert_info(cert_info) if cert_info is not None else None)
        self.profile = profile_name
        self.report = report or log.info
        self.server_cert: bytes | None = None
        self.endpoint_cert: bytes | None = None
        self.endpoint_key: bytes | None = None
        self.generated: certs.GeneratedCert | None = None
        self.blob: bytes | None = None
        self.warnings: list[profile.Problem] = []

    def __repr__(self) -> str:
        return (f"FactoryProvisioning(config={self.config.source!r}, "
                f"endpoint_name={self.endpoint_name!r}, sec_mode={self._mode_or_none()!r})")

    # -- the server account -------------------------------------------------------------------
    def server_account(self) -> tuple[int, dict]:
        return server_account(self.config)

    def security_mode(self) -> SecurityMode:
        return security_mode(self.config)

    def get_sec_mode(self) -> str:
        """"psk", "cert", "nosec" or "est", as the seed returns."""
        return str(self.security_mode())

    def _mode_or_none(self) -> str | None:
        try:
            return self.get_sec_mode()
        except ConfigError:
            return None

    def _where(self, path) -> str:
        return _where(self.config, path)

    # -- credentials ---------------------------------------------------------------------------
    def set_server_cert(self, cert) -> None:
        self.server_cert = certs.load_certificate(cert)

    def load_credentials(self, scert, pcert, pkey, *, generating: bool) -> None:
        """Certificate/EST mode: the server certificate (required, as in the seed) and the
        endpoint certificate + key, unless a self-signed pair will be generated."""
        mode = self.get_sec_mode()
        if scert is None:
            raise ConfigError(f"{mode} mode needs the server certificate: give -p FILE")
        if not generating and (pcert is None or pkey is None):
            raise ConfigError(f"{mode} mode needs the endpoint certificate and key: give -C "
                              "cert_info.json, or -r CERT and -k KEY")
        self.set_server_cert(scert)
        if not generating:
            self.set_endpoint_cert_and_key(pcert, pkey)

    def set_endpoint_cert_and_key(self, cert, key) -> None:
        cert_der = certs.load_certificate(cert)
        key_der = certs.load_private_key(key)
        certs.check_key_matches_certificate(cert_der, key_der, cert_name=f"certificate {cert}",
                                            key_name=f"private key {key}")
        self.endpoint_cert, self.endpoint_key = cert_der, key_der

    def generate_self_signed_cert(self, directory: str | Path = "cert") -> dict[str, Path]:
        """Make a self-signed endpoint certificate (CN defaults to the endpoint name) and write
        `cert/client_cert.der`, `client_cert.crt` and `client_key.der` (mode 0600)."""
        if self.cert_info is None:
            raise ConfigError("missing information for certificate generation: give -C "
                              "cert_info.json")
        self.report("Generating device certificates...")
        self.generated = certs.generate_self_signed(self.cert_info, self.endpoint_name)
        paths = certs.write_cert_files(self.generated, directory)
        self.endpoint_cert = self.generated.cert_der
        self.endpoint_key = self.generated.key_der
        self.report(f"Certificates generated in {Path(directory)}/")
        return paths

    def certificate_fingerprint(self) -> str | None:
        return certs.certificate_fingerprint(self.endpoint_cert) if self.endpoint_cert else None

    # -- blob ----------------------------------------------------------------------------------
    def build_config(self, *, pending_credentials: bool = False) -> EndpointConfig:
        """The config as it goes to the device: in Certificate/EST mode, /0/x/4, /0/x/3 and
        /0/x/5 are set after the file's resources, in the seed's order."""
        return with_credentials(self.config, self.server_cert, self.endpoint_cert,
                                self.endpoint_key, pending=pending_credentials)

    def check(self, *, pending_credentials: bool = True) -> list[profile.Problem]:
        """Validate against the device profile; raise ValidationError listing every error.

        With `pending_credentials`, Certificate/EST credentials not loaded yet count as present,
        so a bad config is refused before any certificate file is written."""
        return self._validate(self.build_config(pending_credentials=pending_credentials))

    def _validate(self, config: EndpointConfig) -> list[profile.Problem]:
        problems = profile.validate(config, self.profile)
        bad = profile.errors(problems)
        if bad:
            raise ValidationError(bad, self.config.source)
        self.warnings = [p for p in problems if not p.is_error]
        return self.warnings

    def serialize(self) -> bytes:
        """Validate the final config and return its SenML CBOR blob (nothing is written)."""
        config = self.build_config()
        self._validate(config)
        self.blob = senml.encode_config(config)
        return self.blob

    def provision_device(self, output: str | Path = "SenMLCBOR") -> bytes:
        """Validate, serialize and write the blob to `output` (atomically; like the seed's
        ./SenMLCBOR). Returns the blob."""
        self.report(f'Security Mode set to "{self._mode_or_none() or "unknown"}"')
        self.report("Serializing endpoint configuration...")
        blob = self.serialize()
        for warning in self.warnings:
            log.warning("%s", warning)
        write_atomic(Path(output), blob, mode=0o600)  # it carries the PSK or private key
        self.report(f"SenML CBOR blob created: {output} ({len(blob)} bytes)")
        return blob

    # -- cloud ---------------------------------------------------------------------------------
    def register(self, client: coiote.CoioteClient | None = None, *,
                 domain: str | None = None) -> coiote.RegistrationResult:
        """Onboard the endpoint in Coiote with the server account's security settings.

        `client` and `domain` replace `-s server.json` and the token (a local server, tests)."""
        if domain is None and self.srv_info is None:
            raise ConfigError("missing Coiote server information for registration: give -s "
                              "server.json")
        domain = domain or self.srv_info.domain
        if self.access_token is None and client is None:
            raise ConfigError("missing Coiote access token: set COIOTE_TOKEN, or give "
                              "--token-file FILE (or -t)")
        if self.endpoint_name is None:
            raise ConfigError("missing endpoint name for Coiote registration: give -e NAME or "
                              "provision a board")
        mode = self.security_mode()
        identity = key = None
        if mode == SecurityMode.PSK:
            iid, inst = self.server_account()
            identity = inst.get(RID.Security.PKOrIdentity)
            key = inst.get(RID.Security.SecretKey)
            if not isinstance(identity, bytes) or not isinstance(key, bytes):
                raise ConfigError(f"{self._where((0, iid))}: PSK mode needs the identity "
                                  "(/0/x/3) and key (/0/x/5) as bytes for Coiote")
        client = client or coiote.CoioteClient(self.srv_info.base_url, self.access_token)
        self.report(f"Registering endpoint {self.endpoint_name!r} in Coiote...")
        result = client.register_device(self.endpoint_name, domain, str(mode), identity, key)
        self.report(f'Device "{self.endpoint_name}" {result.status}')
        return result


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
        raise ConfigError(f"{_where(config, (0, iid, 2))}: unsupported Security Mode {raw!r}; "
                          "expected 0 (PSK), 2 (Certificate), 3 (NoSec) or 4 (EST)")
    return mode


def with_credentials(config: EndpointConfig, server_cert: bytes | None,
                     endpoint_cert: bytes | None, endpoint_key: bytes | None, *,
                     pending: bool = False) -> EndpointConfig:
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
    values = {RID.Security.ServerPKOrIdentity: server_cert,
              RID.Security.PKOrIdentity: endpoint_cert,
              RID.Security.SecretKey: endpoint_key}
    missing = {RID.Security.ServerPKOrIdentity: "the server certificate (-p FILE)",
               RID.Security.PKOrIdentity: "the endpoint certificate (-r FILE or -C JSON)",
               RID.Security.SecretKey: "the endpoint private key (-k FILE or -C JSON)"}
    for rid, value in values.items():
        if value is None and pending:
            value = _PLACEHOLDER
        if value is None:
            raise ConfigError(f"{mode.name.title()} mode needs {missing[rid]}")
        config.set_resource(OID.Security, iid, rid, value)
    return config


def _where(config: EndpointConfig, path) -> str:
    loc = config.location(path)
    return str(loc) if loc else config.source
