"""The Coiote a run onboards into: the real one (server info + token) or a local Coiote-compatible
server. Virtual boards check their registrations against the same server (`view()`)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hilprov.cloud import coiote
from hilprov.core.lwm2m import SecurityMode
from hilprov.core.plan import Build
from hilprov.errors import ConfigError

LOCAL_DOMAIN = "/embedded/"


@dataclass
class CloudTarget:
    """A Coiote client and the domain devices go to; `local` is the server when it runs here."""

    client: coiote.CoioteClient
    domain: str
    token: str = field(repr=False)
    local: object | None = None  # hilprov.sim.coiote_server.CoioteServer
    source: str = ""

    def __repr__(self) -> str:
        return f"CloudTarget({self.client.base_url!r}, domain={self.domain!r})"

    @property
    def url(self) -> str:
        return self.client.base_url

    def view(self):
        """Where a virtual board's LwM2M server looks its devices up (read-only)."""
        from hilprov.sim.cloud import CloudView

        return CloudView(self.client.base_url, self.token)

    def onboard(self, endpoint: str, build: Build, *, replace: bool = False) -> tuple[str, bool]:
        """Create the device with the build's security settings; (status, replaced).

        A unit that got a newly made key replaces its own entry (same endpoint, same unit):
        whatever Coiote holds for it is an older attempt's key."""
        identity, key = build.psk_credentials()
        psk = build.mode == SecurityMode.PSK
        if psk and not (isinstance(identity, bytes) and isinstance(key, bytes)):
            raise ConfigError(f"{build.config.source}: PSK mode needs the identity (/0/x/3) and "
                              "key (/0/x/5) as bytes for Coiote")
        replaced = (replace or build.made_key) and self.client.delete_by_endpoint(endpoint)
        result = self.client.register_device(endpoint, self.domain, str(build.mode), identity,
                                             key)
        return result.status, replaced

    def find_device(self, endpoint: str) -> dict | None:
        return self.client.find_device(endpoint)

    def delete_device(self, endpoint: str) -> bool:
        return self.client.delete_by_endpoint(endpoint)


@contextlib.contextmanager
def remote_coiote(server_info: str | Path, token: str, *,
                  check_access: bool = True) -> Iterator[CloudTarget]:
    """The Coiote a server.json names, with `token`; with `check_access`, once a read has shown
    that the token works (a run with boards must not upload to units it cannot onboard)."""
    info = coiote.load_server_info(server_info)
    with coiote.CoioteClient(info.base_url, token) as client:
        if check_access:
            client.check_access()
        yield CloudTarget(client, info.domain, token, source=str(server_info))


@contextlib.contextmanager
def local_coiote() -> Iterator[CloudTarget]:
    """A local Coiote-compatible server with a fresh random token, and a client for it."""
    from hilprov.sim.coiote_server import CoioteServer

    token = secrets.token_hex(16)
    with CoioteServer(token=token) as server, \
            coiote.CoioteClient(server.url, token, timeout=5.0) as client:
        yield CloudTarget(client, LOCAL_DOMAIN, token, local=server, source=server.url)
