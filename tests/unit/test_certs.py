"""Self-signed endpoint certificates and loading of user-supplied certificates and keys."""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hilprov.core import certs
from hilprov.core.certs import (
    DEFAULT_VALIDITY_SECONDS,
    CertificateError,
    certificate_fingerprint,
    check_key_matches_certificate,
    generate_self_signed,
    load_cert_info,
    load_certificate,
    load_private_key,
    write_cert_files,
)
from hilprov.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
FULL_INFO = {
    "countryName": "PL",
    "stateOrProvinceName": "Malopolska",
    "localityName": "Cracow",
    "organizationName": "AVSystem",
    "organizationUnitName": "Embedded",
    "emailAddress": "factory@example.com",
    "commonName": "my-device-cn",
}
SUBJECT_OIDS = [NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.LOCALITY_NAME,
                NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
                NameOID.EMAIL_ADDRESS, NameOID.COMMON_NAME]


def parse(generated: certs.GeneratedCert) -> x509.Certificate:
    return x509.load_der_x509_certificate(generated.cert_der)


def key_of(generated: certs.GeneratedCert):
    return serialization.load_der_private_key(generated.key_der, password=None)


# -- key types and digests ---------------------------------------------------------------------

@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1", "secp256k1",
                                   "brainpoolP256r1"])
def test_elliptic_curves(curve):
    generated = generate_self_signed({"ellipticCurve": curve}, "ep-1")
    cert = parse(generated)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == curve
    check_key_matches_certificate(generated.cert_der, generated.key_der)
    cert.verify_directly_issued_by(cert)  # really self-signed by that key


def test_every_curve_the_library_offers_works():
    offered = certs.supported_curves()
    assert {"secp256r1", "secp384r1", "secp521r1"} <= set(offered)
    for name in offered:
        cert = parse(generate_self_signed({"ellipticCurve": name}, "ep-1"))
        assert cert.public_key().curve.name == name


def test_rsa_2048():
    generated = generate_self_signed({"RSAKeyLen": 2048}, "ep-1")
    cert = parse(generated)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048
    assert isinstance(key_of(generated), rsa.RSAPrivateKey)
    check_key_matches_certificate(generated.cert_der, generated.key_der)


@pytest.mark.parametrize("digest", ["sha224", "sha256", "sha384", "sha512", "sha3-256",
                                    "sha3-512"])
def test_digests(digest):
    cert = parse(generate_self_signed({"digest": digest}, "ep-1"))
    assert cert.signature_hash_algorithm.name == digest
    cert.verify_directly_issued_by(cert)


def test_rsa_with_sha3_digest():
    cert = parse(generate_self_signed({"RSAKeyLen": 2048, "digest": "sha3-384"}, "ep-1"))
    assert cert.signature_hash_algorithm.name == "sha3-384"


def test_digests_that_cannot_sign_are_not_offered():
    offered = certs.supported_digests()
    assert {"sha256", "sha384", "sha512", "sha3-256"} <= set(offered)
    assert "md5" not in offered and "sha1" not in offered and "shake128" not in offered


# -- subject, defaults -------------------------------------------------------------------------

def test_full_subject_in_seed_order_and_issuer_equals_subject():
    cert = parse(generate_self_signed(FULL_INFO, "ep-1"))
    assert [attr.oid for attr in cert.subject] == SUBJECT_OIDS
    assert [attr.value for attr in cert.subject] == list(FULL_INFO.values())
    assert cert.issuer == cert.subject


@pytest.mark.parametrize("missing", [k for k in FULL_INFO if k != "commonName"])
def test_each_optional_subject_field_can_be_missing(missing):
    info = {k: v for k, v in FULL_INFO.items() if k != missing}
    cert = parse(generate_self_signed(info, "ep-1"))
    oids = [attr.oid for attr in cert.subject]
    assert certs.SUBJECT_FIELDS[missing] not in oids
    assert oids == [o for o in SUBJECT_OIDS if o != certs.SUBJECT_FIELDS[missing]]


def test_common_name_defaults_to_endpoint_name():
    info = {k: v for k, v in FULL_INFO.items() if k != "commonName"}
    cert = parse(generate_self_signed(info, "urn:dev:ep-42"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "urn:dev:ep-42"
    assert list(cert.subject)[-1].oid == NameOID.COMMON_NAME


def test_explicit_common_name_wins_over_endpoint_name():
    cert = parse(generate_self_signed({"commonName": "given"}, "ep-1"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "given"


def test_defaults_serial_validity_curve_digest():
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = parse(generate_self_signed({}, "ep-1"))
    after = datetime.datetime.now(datetime.UTC)
    assert cert.serial_number == 1
    assert before <= cert.not_valid_before_utc <= after
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity == datetime.timedelta(seconds=DEFAULT_VALIDITY_SECONDS) == \
        datetime.timedelta(seconds=220752000)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.signature_hash_algorithm.name == "sha256"
    assert [a.oid for a in cert.subject] == [NameOID.COMMON_NAME]


def test_serial_and_validity_are_taken_from_info():
    cert = parse(generate_self_signed({"serialNumber": 4242, "validityOffsetInSeconds": 3600},
                                      "ep-1"))
    assert cert.serial_number == 4242
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(hours=1)


def test_missing_common_name_and_no_endpoint_name():
    with pytest.raises(CertificateError, match="commonName"):
        generate_self_signed({"countryName": "PL"}, None)


def test_key_is_unencrypted_pkcs8_der():
    generated = generate_self_signed({}, "ep-1")
    key = key_of(generated)
    assert generated.key_der == key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert generated.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(generated.cert_pem).public_bytes(
        serialization.Encoding.DER) == generated.cert_der


def test_repr_shows_no_key_material():
    generated = generate_self_signed({}, "ep-1")
    text = repr(generated)
    assert generated.fingerprint in text
    assert generated.key_der.hex() not in text and repr(generated.key_der)[2:20] not in text


def test_sample_cert_info_from_the_repo():
    info = load_cert_info(REPO / "configs" / "cert_info.json")
    cert = parse(generate_self_signed(info, "ep-1"))
    assert cert.public_key().curve.name == "secp384r1"
    assert cert.signature_hash_algorithm.name == "sha512"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ep-1"


# -- invalid cert_info -------------------------------------------------------------------------

@pytest.mark.parametrize("info, field", [
    ({"RSAKeyLen": 2048, "ellipticCurve": "secp256r1"}, "mutually exclusive"),
    ({"ellipticCurve": "secp999r1"}, "ellipticCurve"),
    ({"ellipticCurve": 256}, "ellipticCurve"),
    ({"digest": "md5"}, "digest"),
    ({"digest": "sha1"}, "digest"),
    ({"digest": "whirlpool"}, "digest"),
    ({"countryName": "POL"}, "countryName"),
    ({"countryName": "12"}, "countryName"),
    ({"countryName": "P"}, "countryName"),
    ({"commonName": "x" * 65}, "commonName"),
    ({"organizationName": 5}, "organizationName"),
    ({"serialNumber": "1"}, "serialNumber"),
    ({"serialNumber": 0}, "serialNumber"),
    ({"serialNumber": True}, "serialNumber"),
    ({"serialNumber": 2 ** 170}, "serialNumber"),
    ({"validityOffsetInSeconds": -5}, "validityOffsetInSeconds"),
    ({"validityOffsetInSeconds": 10 ** 15}, "validityOffsetInSeconds"),
    ({"RSAKeyLen": 512}, "RSAKeyLen"),
    ({"RSAKeyLen": "2048"}, "RSAKeyLen"),
    ({"organisationName": "typo"}, "organisationName"),
])
def test_invalid_cert_info_names_the_field(info, field):
    with pytest.raises(CertificateError) as caught:
        generate_self_signed(info, "ep-1")
    assert field in str(caught.value)


def test_invalid_curve_lists_the_supported_ones():
    with pytest.raises(CertificateError) as caught:
        generate_self_signed({"ellipticCurve": "nope"}, "ep-1")
    assert "secp384r1" in str(caught.value) and "brainpoolP256r1" in str(caught.value)


def test_unknown_key_in_file_names_file_and_known_keys(tmp_path):
    path = tmp_path / "cert_info.json"
    path.write_text(json.dumps({"countryName": "PL", "comonName": "x"}))
    with pytest.raises(CertificateError) as caught:
        load_cert_info(path)
    message = str(caught.value)
    assert str(path) in message and "'comonName'" in message
    for known in certs.KNOWN_FIELDS:
        assert known in message


def test_wrong_type_in_file_names_file(tmp_path):
    path = tmp_path / "ci.json"
    path.write_text('{"digest": 256}')
    with pytest.raises(CertificateError, match=str(path)):
        load_cert_info(path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_invalid_json_names_file(tmp_path, content):
    path = tmp_path / "ci.json"
    path.write_text(content)
    with pytest.raises((ConfigError, CertificateError)) as caught:
        load_cert_info(path)
    assert str(path) in str(caught.value)


def test_unreadable_cert_info(tmp_path):
    with pytest.raises(ConfigError, match="missing.json"):
        load_cert_info(tmp_path / "missing.json")


# -- writing files -----------------------------------------------------------------------------

def test_write_cert_files(tmp_path):
    generated = generate_self_signed({}, "ep-1")
    paths = write_cert_files(generated, tmp_path / "cert")
    assert [p.name for p in paths] == ["client_cert.der", "client_cert.crt", "client_key.der"]
    assert paths.cert_der.read_bytes() == generated.cert_der
    assert paths.cert_pem.read_bytes() == generated.cert_pem
    assert paths.key_der.read_bytes() == generated.key_der
    assert sorted(os.listdir(tmp_path / "cert")) == sorted(p.name for p in paths)


def test_key_file_is_0600_from_creation(tmp_path, monkeypatch):
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy_open(path, flags, mode=0o777, *args, **kwargs):
        opened.append((os.fspath(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def no_chmod(*args, **kwargs):
        raise AssertionError("the key's mode must be set at creation, not by chmod afterwards")

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old_umask = os.umask(0)  # so the umask cannot be what makes the file private
    try:
        paths = write_cert_files(generate_self_signed({}, "ep-1"), tmp_path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(paths.key_der.stat().st_mode) == 0o600
    key_opens = [mode for path, mode in opened if "client_key.der" in path]
    assert key_opens == [0o600]


def test_rewriting_replaces_a_world_readable_key(tmp_path):
    old = tmp_path / "client_key.der"
    old.write_bytes(b"old")
    old.chmod(0o644)
    paths = write_cert_files(generate_self_signed({}, "ep-1"), tmp_path)
    assert stat.S_IMODE(paths.key_der.stat().st_mode) == 0o600
    assert paths.key_der.read_bytes() != b"old"


def test_write_failure_leaves_no_files(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync

    def full_disk_on_key(fd):
        calls.append(fd)
        if len(calls) == 3:  # the key is written last
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_on_key)
    target = tmp_path / "cert"
    with pytest.raises(CertificateError, match="No space left"):
        write_cert_files(generate_self_signed({}, "ep-1"), target)
    assert os.listdir(target) == []


def test_rename_failure_leaves_no_certificate_without_key(tmp_path):
    (tmp_path / "client_key.der").mkdir()  # the key cannot replace a directory
    with pytest.raises(CertificateError, match=str(tmp_path)):
        write_cert_files(generate_self_signed({}, "ep-1"), tmp_path)
    assert os.listdir(tmp_path) == ["client_key.der"]
    assert (tmp_path / "client_key.der").is_dir()


def test_directory_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CertificateError, match="file"):
        write_cert_files(generate_self_signed({}, "ep-1"), blocker / "cert")


# -- loading user certificates and keys --------------------------------------------------------

@pytest.fixture(scope="module")
def pair():
    return generate_self_signed({"commonName": "user"}, None)


def test_load_der_certificate_verbatim(tmp_path, pair):
    path = tmp_path / "c.der"
    path.write_bytes(pair.cert_der)
    assert load_certificate(path) == pair.cert_der


def test_load_pem_certificate_as_der(tmp_path, pair):
    path = tmp_path / "c.pem"
    path.write_bytes(b"Bag Attributes: something openssl prints\n" + pair.cert_pem)
    assert load_certificate(path) == pair.cert_der


@pytest.mark.parametrize("content", [b"", b"garbage\x00\x01", b"-----BEGIN CERTIFICATE-----\nAA"
                                     b"\n-----END CERTIFICATE-----\n"])
def test_load_certificate_rejects_non_certificates(tmp_path, content):
    path = tmp_path / "bad.crt"
    path.write_bytes(content)
    with pytest.raises(CertificateError, match="bad.crt"):
        load_certificate(path)


def test_load_certificate_rejects_a_key_and_a_chain(tmp_path, pair):
    key_pem = tmp_path / "key.pem"
    key_pem.write_bytes(key_of(pair).private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    with pytest.raises(CertificateError, match="PRIVATE KEY"):
        load_certificate(key_pem)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pair.cert_pem + generate_self_signed({}, "other").cert_pem)
    with pytest.raises(CertificateError, match="2 certificates"):
        load_certificate(chain)


def test_load_certificate_missing_file(tmp_path):
    with pytest.raises(CertificateError, match="nope.der"):
        load_certificate(tmp_path / "nope.der")


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_load_der_key_verbatim(tmp_path, pair, fmt):
    der = key_of(pair).private_bytes(serialization.Encoding.DER, fmt,
                                     serialization.NoEncryption())
    path = tmp_path / "k.der"
    path.write_bytes(der)
    assert load_private_key(path) == der  # byte-identical to what the seed would embed


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_load_pem_key_as_pkcs8_der(tmp_path, pair, fmt):
    path = tmp_path / "k.pem"
    path.write_bytes(key_of(pair).private_bytes(serialization.Encoding.PEM, fmt,
                                                serialization.NoEncryption()))
    assert load_private_key(path) == pair.key_der


def test_load_rsa_pem_key(tmp_path):
    generated = generate_self_signed({"RSAKeyLen": 2048}, "ep-1")
    path = tmp_path / "rsa.pem"
    path.write_bytes(key_of(generated).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    der = load_private_key(path)
    assert der == generated.key_der
    check_key_matches_certificate(generated.cert_der, der)


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_encrypted_keys_are_refused(tmp_path, pair, encoding):
    path = tmp_path / "enc.key"
    path.write_bytes(key_of(pair).private_bytes(
        encoding, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(CertificateError, match="encrypted keys are not supported"):
        load_private_key(path)


def test_bad_key_message_carries_no_key_bytes(tmp_path, pair):
    truncated = pair.key_der[:-10]
    path = tmp_path / "broken.der"
    path.write_bytes(truncated)
    with pytest.raises(CertificateError) as caught:
        load_private_key(path)
    message = str(caught.value)
    assert "broken.der" in message
    assert truncated.hex()[:16] not in message and repr(truncated)[2:18] not in message


def test_certificate_given_as_key_is_refused(tmp_path, pair):
    path = tmp_path / "cert-as-key.pem"
    path.write_bytes(pair.cert_pem)
    with pytest.raises(CertificateError, match="CERTIFICATE"):
        load_private_key(path)


# -- pairs and fingerprints --------------------------------------------------------------------

def test_key_certificate_mismatch(pair):
    other = generate_self_signed({"commonName": "user"}, None)
    with pytest.raises(CertificateError, match="does not belong"):
        check_key_matches_certificate(pair.cert_der, other.key_der, key_name="k.der",
                                      cert_name="c.der")
    check_key_matches_certificate(pair.cert_der, pair.key_der)


def test_mismatch_between_key_types():
    ec_pair = generate_self_signed({}, "ep")
    rsa_pair = generate_self_signed({"RSAKeyLen": 2048}, "ep")
    with pytest.raises(CertificateError, match="does not belong"):
        check_key_matches_certificate(ec_pair.cert_der, rsa_pair.key_der)


def test_check_rejects_garbage():
    with pytest.raises(CertificateError):
        check_key_matches_certificate(b"junk", b"junk")


def test_fingerprint(pair):
    fingerprint = certificate_fingerprint(pair.cert_der)
    assert fingerprint == hashlib.sha256(pair.cert_der).hexdigest()
    assert fingerprint == parse(pair).fingerprint(hashes.SHA256()).hex()
    assert len(fingerprint) == 64 and fingerprint == fingerprint.lower() and ":" not in fingerprint
