"""FactoryProvisioning: the seed's API and meaning, on the safe parts; cert and EST layouts."""

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hilprov.core.certs import generate_self_signed
from hilprov.core.senml import decode
from hilprov.errors import CertificateError, ConfigError, ValidationError
from hilprov.provisioning import FactoryProvisioning
from hilprov.sim.coiote_server import CoioteServer
from tests import CONFIGS

ENDPOINT = "anjay-zephyr-demo-351234567890123"
CERT_INFO = CONFIGS / "cert_info.json"


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_cfg(path, text):
    path.write_text(text)
    return path


@pytest.fixture()
def server_cert(tmp_path):
    """A server certificate in DER and PEM (self-signed, as Coiote's own would be)."""
    made = generate_self_signed({"commonName": "eu.iot.avsystem.cloud"}, None)
    der = tmp_path / "server.der"
    der.write_bytes(made.cert_der)
    pem = tmp_path / "server.pem"
    pem.write_bytes(made.cert_pem)
    return der, pem, made.cert_der


def test_psk_sample_writes_the_seed_blob(workdir):
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg", ENDPOINT, None, None, None)
    assert fp.get_sec_mode() == "psk"
    blob = fp.provision_device()
    assert (workdir / "SenMLCBOR").read_bytes() == blob
    assert len(blob) == 192
    assert stat.S_IMODE(os.stat(workdir / "SenMLCBOR").st_mode) == 0o600  # it holds the PSK


@pytest.mark.parametrize("name,mode", [("endpoint_cfg_cert", "cert"),
                                       ("endpoint_cfg_nosec", "nosec")])
def test_sec_mode_strings(name, mode):
    assert FactoryProvisioning(CONFIGS / name, None, None, None, None).get_sec_mode() == mode


def test_objlink_configs_provision(workdir):
    cfg = write_cfg(workdir / "cfg", "{OID.Device: {0: {RID.Device.ExtDevInfo: "
                                     "{0: Objlink(OID.ExtDevInfo, 0)}}}}")
    fp = FactoryProvisioning(cfg, None, None, None, None, profile_name="lwm2m")
    blob = fp.provision_device()
    assert [(r.name, r.value) for r in decode(blob)] == [("/3/0/22/0", "33606:0")]


def test_cert_mode_appends_server_cert_endpoint_cert_and_key_in_seed_order(workdir, server_cert):
    der, _, server_der = server_cert
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg_cert", ENDPOINT, None, None, CERT_INFO)
    fp.set_server_cert(der)
    paths = fp.generate_self_signed_cert()
    records = decode(fp.provision_device())
    assert [r.name for r in records] == ["/0/1/0", "/0/1/1", "/0/1/2", "/0/1/10", "/0/1/4",
                                         "/0/1/3", "/0/1/5", "/1/1/0", "/1/1/1", "/1/1/6",
                                         "/1/1/7"]
    values = {r.name: r.value for r in records}
    assert values["/0/1/4"] == server_der
    cert = x509.load_der_x509_certificate(values["/0/1/3"])
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == ENDPOINT
    assert values["/0/1/3"] == paths.cert_der.read_bytes()
    key = serialization.load_der_private_key(values["/0/1/5"], None)
    assert key.key_size == 384  # secp384r1 from the sample cert_info.json
    assert values["/0/1/5"] == paths.key_der.read_bytes()
    assert stat.S_IMODE(os.stat(paths.key_der).st_mode) == 0o600
    assert len(fp.blob) > 512


def test_est_mode_uses_the_same_layout_with_user_supplied_pem_files(workdir, server_cert):
    _, pem, server_der = server_cert
    made = generate_self_signed({"commonName": ENDPOINT}, None)
    (workdir / "ep.pem").write_bytes(made.cert_pem)
    key_pem = serialization.load_der_private_key(made.key_der, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    (workdir / "ep.key").write_bytes(key_pem)
    cfg = write_cfg(workdir / "cfg", (CONFIGS / "endpoint_cfg_cert").read_text()
                    .replace("Mode               : 2", "Mode               : 4"))
    fp = FactoryProvisioning(cfg, ENDPOINT, None, None, None)
    assert fp.get_sec_mode() == "est"
    fp.set_server_cert(pem)
    fp.set_endpoint_cert_and_key(workdir / "ep.pem", workdir / "ep.key")
    values = {r.name: r.value for r in decode(fp.provision_device())}
    assert [n for n in values if n.startswith("/0/1/")][-3:] == ["/0/1/4", "/0/1/3", "/0/1/5"]
    assert values["/0/1/4"] == server_der  # PEM converted to DER
    assert values["/0/1/3"] == made.cert_der
    assert values["/0/1/5"] == made.key_der  # PEM converted to PKCS#8 DER


def test_der_key_is_passed_through_byte_for_byte(workdir, server_cert):
    made = generate_self_signed({"commonName": ENDPOINT}, None)
    (workdir / "ep.der").write_bytes(made.cert_der)
    (workdir / "ep.key.der").write_bytes(made.key_der)
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg_cert", ENDPOINT, None, None, None)
    fp.set_server_cert(server_cert[0])
    fp.set_endpoint_cert_and_key(workdir / "ep.der", workdir / "ep.key.der")
    assert made.key_der in fp.serialize()


def test_key_that_does_not_match_its_certificate_is_refused(workdir):
    one = generate_self_signed({"commonName": "a"}, None)
    other = generate_self_signed({"commonName": "b"}, None)
    (workdir / "c.der").write_bytes(one.cert_der)
    (workdir / "k.der").write_bytes(other.key_der)
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg_cert", ENDPOINT, None, None, None)
    with pytest.raises(CertificateError, match=r"private key .*k\.der does not belong to "
                                                  r"certificate .*c\.der"):
        fp.set_endpoint_cert_and_key(workdir / "c.der", workdir / "k.der")


def test_cert_mode_without_server_certificate_is_an_error_and_writes_nothing(workdir):
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg_cert", ENDPOINT, None, None, CERT_INFO)
    fp.generate_self_signed_cert()
    with pytest.raises(ConfigError, match=r"needs the server certificate \(-p FILE\)"):
        fp.provision_device()
    assert not (workdir / "SenMLCBOR").exists()


def test_invalid_config_raises_with_every_problem_and_writes_nothing(workdir):
    cfg = write_cfg(workdir / "cfg", "{0: {1: {0: 'coap://x', 2: 1, 10: 1}}, 5: {0: {1: 'u'}}}")
    fp = FactoryProvisioning(cfg, None, None, None, None)
    with pytest.raises(ValidationError) as info:
        fp.provision_device()
    assert len(info.value.problems) == 2
    assert not (workdir / "SenMLCBOR").exists()


def test_bootstrap_account_beside_the_server_account_is_allowed(workdir):
    cfg = write_cfg(workdir / "cfg", """{
        0: {0: {0: 'coaps://bs.example:5684', 1: True, 2: 0, 3: b'bs', 5: b'bskey'},
            1: {0: 'coap://lwm2m.example:5683', 1: False, 2: 3, 10: 1}},
        1: {1: {0: 1, 1: 60, 6: False, 7: 'U'}}}""")
    fp = FactoryProvisioning(cfg, None, None, None, None)
    assert fp.get_sec_mode() == "nosec"
    assert len(decode(fp.provision_device())) == 13


def test_two_server_accounts_are_ambiguous_for_what_needs_the_account(workdir):
    cfg = write_cfg(workdir / "cfg", """{
        0: {1: {0: 'coap://a', 2: 3, 10: 1}, 2: {0: 'coap://b', 2: 3, 10: 2}},
        1: {1: {0: 1, 1: 60, 6: False, 7: 'U'}, 2: {0: 2, 1: 60, 6: False, 7: 'U'}}}""")
    fp = FactoryProvisioning(cfg, "ep", None, None, None)
    fp.provision_device()  # the device accepts two accounts
    with pytest.raises(ConfigError, match=r"ambiguous server account: /0/1, /0/2"):
        fp.get_sec_mode()


def test_register_onboards_with_the_accounts_psk_and_is_idempotent(tmp_path):
    with CoioteServer(token="tok-123") as server:
        info = tmp_path / "server.json"
        info.write_text(__import__("json").dumps(server.server_info()))
        fp = FactoryProvisioning(CONFIGS / "endpoint_cfg", ENDPOINT, info, "tok-123", None)
        assert fp.register().status == "created"
        body = server.requests[-1].json
        assert body["dtlsIdentity"] == "reg-test-psk-identity"
        assert body["dtlsPsk"] == {"HexadecimalPsk": b"3x@mpl3P5K53cr3tK3y".hex()}
        assert fp.register().status == "already registered"
        assert len(server.devices) == 1


def test_register_needs_server_token_and_endpoint():
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg", None, None, "t", None)
    with pytest.raises(ConfigError, match="missing Coiote server information"):
        fp.register()


def test_repr_shows_no_secrets():
    fp = FactoryProvisioning(CONFIGS / "endpoint_cfg", ENDPOINT, None, "secret-token", None)
    text = repr(fp)
    assert "secret-token" not in text and "3x@mpl3" not in text
    assert "psk" in text


def test_the_seed_entry_point_is_importable_from_the_package(workdir):
    import hilprov

    fp = hilprov.FactoryProvisioning(str(CONFIGS / "endpoint_cfg"), ENDPOINT, None, None, None)
    assert fp.get_sec_mode() == "psk"
    fp.provision_device()
    assert (workdir / "SenMLCBOR").stat().st_size == 192
