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
from hilprov.core import certs, plan, profile, senml
from hilprov.core.config import EndpointConfig, load_config
from hilprov.core.files import write_atomic
from hilprov.core.lwm2m import RID, SecurityMode
from hilprov.errors import ConfigError

log = logging.getLogger("hilprov")


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
        return plan.server_account(self.config)

    def security_mode(self) -> SecurityMode:
        return plan.security_mode(self.config)

    def get_sec_mode(self) -> str:
        """"psk", "cert", "nosec" or "est", as the seed returns."""
        return str(self.security_mode())

    def _mode_or_none(self) -> str | None:
        try:
            return self.get_sec_mode()
        except ConfigError:
            return None

    def _where(self, path) -> str:
        return plan.where(self.config, path)

    # -- credentials ---------------------------------------------------------------------------
    def set_server_cert(self, cert) -> None:
        self.server_cert = certs.load_certificate(cert)

    def set_endpoint_cert_and_key(self, cert, key) -> None:
        self.endpoint_cert, self.endpoint_key = plan.load_endpoint_pair(cert, key)

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
        return plan.with_credentials(self.config, self.server_cert, self.endpoint_cert,
                                     self.endpoint_key, pending=pending_credentials)

    def check(self, *, pending_credentials: bool = True) -> list[profile.Problem]:
        """Validate against the device profile; raise ValidationError listing every error.

        With `pending_credentials`, Certificate/EST credentials not loaded yet count as present,
        so a bad config is refused before any certificate file is written."""
        return self._validate(self.build_config(pending_credentials=pending_credentials))

    def _validate(self, config: EndpointConfig) -> list[profile.Problem]:
        self.warnings = plan.check(config, self.profile)
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
