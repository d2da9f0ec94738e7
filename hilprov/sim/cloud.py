"""The virtual board's LwM2M server: it accepts a Register only when the Coiote the device was
onboarded to knows the device with the security settings the device restored, as the real
service does.

The check asks that Coiote over its REST API, read-only (find the device by endpoint name, then
read it), with the standard library only: it is an independent look at what the server really
stored, not a call back into the host's client. Any Coiote-compatible server works: the local one
a station starts, or a separately started `hilprov coiote-sim`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

API_PREFIX = "/api/coiotedm/v3"
MODES = {0: "psk", 2: "cert", 3: "nosec", 4: "est"}
API_MODES = {"est": "cert"}  # the API has no "est": EST devices are onboarded as cert

Registrar = Callable[[str, dict], "bool | str"]


@dataclass(frozen=True)
class CloudView:
    """A Coiote-compatible REST API and a token that may read its devices."""

    base_url: str
    token: str = field(repr=False)
    timeout: float = 5.0


class _Unreachable(Exception):
    pass


def rest_registrar(view: CloudView) -> Registrar:
    """A `registrar(endpoint, objects)` for VirtualBoard: True, or why the server says 4.03."""

    def registrar(endpoint: str, objects: dict) -> bool | str:
        try:
            device = _find_device(view, endpoint)
        except _Unreachable as exc:
            return f"the LwM2M server cannot check the device in Coiote: {exc}"
        if device is None:
            return f"endpoint {endpoint} is not onboarded in Coiote"
        return _compare(device, objects)

    return registrar


def _compare(device: dict, objects: dict) -> bool | str:
    account = _server_account(objects)
    if account is None:
        return "no server account in the restored configuration"
    mode = MODES.get(account.get(2, 0), "unknown")
    expected = API_MODES.get(mode, mode)
    if device.get("securityMode") != expected:
        return (f"Coiote expects security mode {device.get('securityMode')}, the device "
                f"uses {expected}")
    if mode != "psk":
        return True
    identity = account.get(3, b"")
    if not isinstance(identity, bytes) or device.get("dtlsIdentity") != identity.decode(
            "utf-8", "replace"):
        return "PSK identity differs from the one onboarded in Coiote"
    stored = (device.get("dtlsPsk") or {}).get("HexadecimalPsk", "")
    key = account.get(5, b"")
    if not isinstance(key, bytes) or str(stored).lower() != key.hex():
        return "PSK differs from the one onboarded in Coiote"
    return True


def _find_device(view: CloudView, endpoint: str) -> dict | None:
    if "'" in endpoint:
        return None
    query = urlencode({"searchCriteria": f"properties.endpointName eq '{endpoint}'",
                       "fieldSelection": "id", "limit": "1"}, quote_via=quote, safe="'/,:")
    found = _get(view, f"/devices/find/details?{query}")
    devices = found.get("devices") if isinstance(found, dict) else None
    ids = [d["id"] for d in devices or () if isinstance(d, dict) and isinstance(d.get("id"), str)]
    if not ids:
        return None
    device = _get(view, f"/devices/{quote(ids[0], safe='')}")
    return device if isinstance(device, dict) else None


def _get(view: CloudView, path: str):
    request = urllib.request.Request(
        view.base_url.rstrip("/") + API_PREFIX + path,
        headers={"Authorization": f"Bearer {view.token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=view.timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise _Unreachable(f"HTTP {exc.code} from {view.base_url}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _Unreachable(f"{view.base_url}: {getattr(exc, 'reason', exc)}") from None


def _server_account(objects: dict) -> dict | None:
    for inst in objects.get(0, {}).values():
        if inst.get(1) is not True:
            return inst
    return None


def coiote_registrar(server) -> Registrar:
    """The registrar for a local `CoioteServer` (asked over HTTP like any other)."""
    return rest_registrar(CloudView(server.url, server.token))
