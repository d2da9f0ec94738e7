"""Section 3: the host's own work per device, without any board: config parse + validate +
encode, certificate generation, and the Coiote registration against the local server."""

from __future__ import annotations

from pathlib import Path

from bench.common import CERT_CFG, CERT_INFO, DOMAIN, PSK_CFG, Target, median, server_cert, timed
from hilprov.cloud.coiote import CoioteClient
from hilprov.core.certs import generate_self_signed, load_cert_info
from hilprov.provisioning import FactoryProvisioning
from hilprov.sim.coiote_server import CoioteServer

ENDPOINT = "anjay-zephyr-demo-351234567890123"
TARGET_MS = 50.0


def host_work(work: Path, runs: int) -> tuple[list[dict], list[Target], list[str]]:
    cert_info = load_cert_info(CERT_INFO)
    credentials = generate_self_signed(cert_info, ENDPOINT)
    scert = server_cert(work)

    def encode_psk() -> bytes:
        return FactoryProvisioning(PSK_CFG, ENDPOINT).serialize()

    def encode_cert() -> bytes:
        fp = FactoryProvisioning(CERT_CFG, ENDPOINT, cert_info=CERT_INFO)
        fp.set_server_cert(scert)
        fp.endpoint_cert, fp.endpoint_key = credentials.cert_der, credentials.key_der
        return fp.serialize()

    def cert(**key):
        info = {k: v for k, v in cert_info.items() if k not in ("ellipticCurve", "RSAKeyLen")}
        return lambda: generate_self_signed({**info, **key}, ENDPOINT)

    rows = [
        _row("parse + validate + encode, PSK config", encode_psk, runs),
        _row("parse + validate + encode, Certificate config", encode_cert, runs),
        _row("certificate: EC P-256 key + self-signed cert", cert(ellipticCurve="secp256r1"), runs),
        _row("certificate: EC P-384 key + self-signed cert", cert(ellipticCurve="secp384r1"), runs),
        _row("certificate: RSA-2048 (not in the target)", cert(RSAKeyLen=2048),
             max(3, runs // 10)),
    ]
    with CoioteServer() as server, CoioteClient(server.url, server.token) as client:
        names = iter(f"bench-endpoint-{n}" for n in range(10 * runs + 1))
        client.register_device(next(names), DOMAIN, "cert", None, None)  # warm the session
        rows.append(_row("Coiote registration (local server, new endpoint)",
                         lambda: client.register_device(next(names), DOMAIN, "cert", None, None),
                         runs))
    by_name = {r["what"]: r["median_ms"] for r in rows}
    curve = cert_info.get("ellipticCurve", "secp256r1")
    bits = {"secp256r1": "P-256", "secp384r1": "P-384"}[curve]
    per_device = (by_name["parse + validate + encode, Certificate config"]
                  + by_name[f"certificate: EC {bits} key + self-signed cert"]
                  + by_name["Coiote registration (local server, new endpoint)"])
    rows.append({"what": f"per device: Certificate encode + {curve} cert + registration",
                 "median_ms": round(per_device, 3), "runs": None})
    targets = [Target("host work per device (no RSA)", per_device, TARGET_MS, "ms",
                      note=f"cert_info.json curve {curve}")]
    notes = [f"medians of {runs} runs; the per-device sum uses configs/cert_info.json's curve "
             f"({curve}); registration goes over HTTP to 127.0.0.1 on one kept-alive session"]
    return rows, targets, notes


def _row(what: str, action, runs: int) -> dict:
    action()  # first call pays imports and caches
    samples = [timed(action)[0] * 1000 for _ in range(runs)]
    return {"what": what, "median_ms": round(median(samples), 3),
            "min_ms": round(min(samples), 3), "max_ms": round(max(samples), 3), "runs": runs}
