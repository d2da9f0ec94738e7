"""Tie the virtual board's final image to the local Coiote server: the device registers only if
the cloud knows it with the security settings the device restored, as on the real service."""

from __future__ import annotations

from hilprov.sim.coiote_server import CoioteServer

MODES = {0: "psk", 2: "cert", 3: "nosec", 4: "est"}


def coiote_registrar(server: CoioteServer):
    """A `registrar(endpoint, objects)` for VirtualBoard: True, or why the server says 4.03."""

    def registrar(endpoint: str, objects: dict) -> bool | str:
        devices = [d for d in server.devices.values()
                   if d.get("properties", {}).get("endpointName") == endpoint]
        if not devices:
            return f"endpoint {endpoint} is not onboarded in Coiote"
        device = devices[0]
        account = _server_account(objects)
        if account is None:
            return "no server account in the restored configuration"
        mode = MODES.get(account.get(2, 0), "unknown")
        if device.get("securityMode") != mode:
            return (f"Coiote expects security mode {device.get('securityMode')}, the device "
                    f"uses {mode}")
        if mode == "psk":
            identity = account.get(3, b"")
            if isinstance(identity, bytes) and device.get("dtlsIdentity") != identity.decode(
                    "utf-8", "replace"):
                return "PSK identity differs from the one onboarded in Coiote"
            stored = (device.get("dtlsPsk") or {}).get("HexadecimalPsk", "")
            key = account.get(5, b"")
            if not isinstance(key, bytes) or stored.lower() != key.hex():
                return "PSK differs from the one onboarded in Coiote"
        return True

    return registrar


def _server_account(objects: dict) -> dict | None:
    for inst in objects.get(0, {}).values():
        if inst.get(1) is not True:
            return inst
    return None
