"""Endpoint certificates and keys for the `cert` security mode.

Two jobs: make a self-signed endpoint certificate from a `cert_info.json` (the seed tool's format,
spec §6), and load user-supplied certificates and keys as DER for Security /0/x/3 and /0/x/5.

Curves and digests are looked up by name among the public classes of the installed `cryptography`
(the seed reached into a private table and broke on cryptography 48). Every library `ValueError`
becomes a :class:`CertificateError` naming the offending field or file. Key bytes never appear in
a message or repr, and the key file is created with mode 0600 from its first byte.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hilprov.core.files import read_input, read_json
from hilprov.errors import CertificateError

DEFAULT_CURVE = "secp256r1"
DEFAULT_DIGEST = "sha256"
DEFAULT_SERIAL = 1
DEFAULT_VALIDITY_SECONDS = 7 * 365 * 24 * 60 * 60  # 220752000, the seed's default
RSA_MIN_BITS = 1024  # cryptography refuses smaller keys
RSA_MAX_BITS = 16384  # larger keys take minutes to generate: almost surely a typo

# Subject attributes in the seed's order: C, ST, L, O, OU, emailAddress, CN.
SUBJECT_FIELDS: dict[str, x509.ObjectIdentifier] = {
    "countryName": NameOID.COUNTRY_NAME,
    "stateOrProvinceName": NameOID.STATE_OR_PROVINCE_NAME,
    "localityName": NameOID.LOCALITY_NAME,
    "organizationName": NameOID.ORGANIZATION_NAME,
    "organizationUnitName": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "commonName": NameOID.COMMON_NAME,
}
OTHER_FIELDS = ("serialNumber", "validityOffsetInSeconds", "ellipticCurve", "RSAKeyLen", "digest")
KNOWN_FIELDS = (*SUBJECT_FIELDS, *OTHER_FIELDS)

CERT_DER_NAME = "client_cert.der"
CERT_PEM_NAME = "client_cert.crt"
KEY_DER_NAME = "client_key.der"


# -- what the installed cryptography offers ----------------------------------------------------

@functools.cache
def supported_curves() -> dict[str, type[ec.EllipticCurve]]:
    """Curve name (e.g. ``secp256r1``) -> curve class, from the public classes of `ec`."""
    curves = {}
    for obj in vars(ec).values():
        if (inspect.isclass(obj) and issubclass(obj, ec.EllipticCurve)
                and obj is not ec.EllipticCurve and not inspect.isabstract(obj)
                and isinstance(getattr(obj, "name", None), str)):
            curves[obj.name] = obj
    return curves


@functools.cache
def supported_digests() -> dict[str, type[hashes.HashAlgorithm]]:
    """Digest name (e.g. ``sha256``, ``sha3-256``) -> class, for digests that can sign X.509.

    Found by trying each public fixed-length hash once on a throwaway certificate, so the list
    follows the installed library instead of a table that ages (sha1/md5 are refused by it).
    """
    candidates = [
        obj for obj in vars(hashes).values()
        if inspect.isclass(obj) and issubclass(obj, hashes.HashAlgorithm)
        and not inspect.isabstract(obj) and not issubclass(obj, hashes.ExtendableOutputFunction)
        and isinstance(getattr(obj, "name", None), str)
    ]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=1)))
    usable = {}
    for cls in candidates:
        try:
            builder.sign(key, cls())
        except (TypeError, ValueError, UnsupportedAlgorithm):
            continue  # needs constructor arguments, or cannot sign certificates
        usable[cls.name] = cls
    return usable


def _lookup(name: str, table: Mapping[str, Any]) -> Any:
    if name in table:
        return table[name]
    folded = {k.lower(): v for k, v in table.items()}
    return folded.get(name.lower())


# -- cert_info.json ----------------------------------------------------------------------------

def load_cert_info(path: str | Path) -> dict:
    """Read and check a `cert_info.json`; errors name the file. Defaults are applied later."""
    info = read_json(path, "certificate info")
    validate_cert_info(info, str(path))
    return info


def validate_cert_info(info: Any, source: str = "cert_info") -> None:
    """Check the keys and value types of a cert_info mapping; errors name `source`."""
    if not isinstance(info, dict):
        raise CertificateError(f"{source}: certificate info must be a JSON object, "
                               f"got {type(info).__name__}")
    unknown = [k for k in info if k not in KNOWN_FIELDS]
    if unknown:
        raise CertificateError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                               f"known keys: {', '.join(KNOWN_FIELDS)}")
    _check_subject(info, source)
    _check_int(info, "serialNumber", source, minimum=1)
    if "validityOffsetInSeconds" in info:
        value = info["validityOffsetInSeconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise CertificateError(f"{source}: validityOffsetInSeconds must be a positive number "
                                   f"of seconds, got {_describe(value)}")
    if "RSAKeyLen" in info and "ellipticCurve" in info:
        raise CertificateError(f"{source}: RSAKeyLen and ellipticCurve are mutually exclusive; "
                               "keep the one for the key type you want")
    _check_int(info, "RSAKeyLen", source, minimum=RSA_MIN_BITS, maximum=RSA_MAX_BITS)
    _check_algorithm(info, "ellipticCurve", supported_curves(), source, "is not supported here")
    _check_algorithm(info, "digest", supported_digests(), source,
                     "cannot sign certificates here")


def _check_subject(info: dict, source: str) -> None:
    for key in SUBJECT_FIELDS:
        if key in info:
            value = info[key]
            if not isinstance(value, str) or not value:
                raise CertificateError(f"{source}: {key} must be a non-empty string, "
                                       f"got {_describe(value)}")
    country = info.get("countryName")
    if country is not None and not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise CertificateError(f"{source}: countryName must be a 2-letter country code "
                               f"(e.g. 'PL'), got {country!r}")


def _check_algorithm(info: dict, key: str, table: Mapping[str, Any], source: str,
                     refusal: str) -> None:
    if key not in info:
        return
    name = info[key]
    if not isinstance(name, str) or _lookup(name, table) is None:
        raise CertificateError(f"{source}: {key} {_describe(name)} {refusal}; use one of "
                               f"{', '.join(sorted(table))}")


def _check_int(info: dict, key: str, source: str, *, minimum: int,
               maximum: int | None = None) -> None:
    if key not in info:
        return
    value = info[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        limits = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise CertificateError(f"{source}: {key} must be an integer {limits}, "
                               f"got {_describe(value)}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- generation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneratedCert:
    """A self-signed endpoint certificate (DER and PEM) and its PKCS#8 DER private key."""

    cert_der: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    key_der: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.cert_der)

    def __repr__(self) -> str:
        return f"GeneratedCert(sha256={self.fingerprint})"


def generate_self_signed(cert_info: Mapping[str, Any], endpoint_name: str | None,
                         *, source: str = "cert_info") -> GeneratedCert:
    """Make a key and a self-signed certificate as the seed does (CN defaults to the endpoint)."""
    info = dict(cert_info)
    validate_cert_info(info, source)
    if "commonName" not in info:
        if not endpoint_name:
            raise CertificateError(f"{source}: no commonName and no endpoint name to use instead; "
                                   "add commonName or give the endpoint name (-e)")
        info["commonName"] = endpoint_name

    attributes = []
    for key, oid in SUBJECT_FIELDS.items():
        if key in info:
            try:
                attributes.append(x509.NameAttribute(oid, info[key]))
            except ValueError as exc:
                raise CertificateError(f"{source}: {key}: {exc}") from None
    subject = x509.Name(attributes)

    key = _generate_key(info, source)
    digest = _lookup(info.get("digest", DEFAULT_DIGEST), supported_digests())()
    now = datetime.datetime.now(datetime.UTC)
    try:
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(subject)
                   .public_key(key.public_key())
                   .serial_number(info.get("serialNumber", DEFAULT_SERIAL)))
    except ValueError as exc:
        raise CertificateError(f"{source}: serialNumber: {exc}") from None
    try:
        validity = datetime.timedelta(
            seconds=info.get("validityOffsetInSeconds", DEFAULT_VALIDITY_SECONDS))
        builder = builder.not_valid_before(now).not_valid_after(now + validity)
    except (ValueError, OverflowError) as exc:
        raise CertificateError(f"{source}: validityOffsetInSeconds: {exc}") from None
    try:
        cert = builder.sign(key, digest)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{source}: digest {digest.name}: {exc}") from None

    return GeneratedCert(
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_der=key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def _generate_key(info: dict, source: str):
    if "RSAKeyLen" in info:
        try:
            return rsa.generate_private_key(public_exponent=65537, key_size=info["RSAKeyLen"])
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(f"{source}: RSAKeyLen: {exc}") from None
    name = info.get("ellipticCurve", DEFAULT_CURVE)
    curve_cls = _lookup(name, supported_curves())
    try:
        return ec.generate_private_key(curve_cls())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{source}: ellipticCurve {name!r}: {exc}") from None


# -- files -------------------------------------------------------------------------------------

class CertPaths(NamedTuple):
    cert_der: Path
    cert_pem: Path
    key_der: Path


def cert_paths(directory: str | Path) -> CertPaths:
    """Where `write_cert_files` puts the three files in `directory`."""
    directory = Path(directory)
    return CertPaths(directory / CERT_DER_NAME, directory / CERT_PEM_NAME,
                     directory / KEY_DER_NAME)


def write_cert_files(generated: GeneratedCert, directory: str | Path = "cert") -> CertPaths:
    """Write `client_cert.der`, `client_cert.crt` and `client_key.der` (mode 0600) atomically.

    All three are first written to temporary files in `directory` and only then renamed into
    place, so a failure leaves neither a half-written file nor a certificate without its key.
    """
    directory = Path(directory)
    paths = cert_paths(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(f"cannot create certificate directory {directory}: "
                               f"{exc.strerror or exc}") from None
    plan = [(paths.cert_der, generated.cert_der, 0o644),
            (paths.cert_pem, generated.cert_pem, 0o644),
            (paths.key_der, generated.key_der, 0o600)]
    staged: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for target, data, mode in plan:
            staged.append((_write_temp(directory, target.name, data, mode), target))
        for temp, target in staged:
            os.replace(temp, target)
            placed.append(target)
    except OSError as exc:
        for temp, _ in staged:
            _unlink_quietly(temp)
        for target in placed:  # never leave a certificate next to a stale key
            _unlink_quietly(target)
        raise CertificateError(f"cannot write certificate files to {directory}: "
                               f"{exc.strerror or exc}") from None
    return paths


def _write_temp(directory: Path, name: str, data: bytes, mode: int) -> Path:
    """Create a new temp file with `mode` from the start (O_EXCL: no symlink games), fsync it."""
    for _ in range(100):
        temp = directory / f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name in {directory}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# -- loading user-supplied certificates and keys ----------------------------------------------

def load_certificate(path: str | Path) -> bytes:
    """Return a certificate file as DER: DER verbatim, PEM converted. CertificateError otherwise."""
    path = Path(path)
    data = _read(path, "certificate")
    if b"-----BEGIN" in data:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CertificateError(f"{path}: PEM file holds no valid X.509 certificate "
                                   f"(found {_pem_labels(data) or 'no PEM block'})") from None
        if len(certs) != 1:
            raise CertificateError(f"{path}: holds {len(certs)} certificates; the device stores "
                                   "exactly one here, give that certificate alone")
        return certs[0].public_bytes(serialization.Encoding.DER)
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{path}: not an X.509 certificate in DER or PEM form") from None
    return data


def load_private_key(path: str | Path) -> bytes:
    """Return a private key file as DER.

    DER is checked and returned byte for byte (so the blob matches the seed's), PEM is converted
    to unencrypted PKCS#8 DER. Encrypted keys are refused: the device needs the key in clear.
    """
    path = Path(path)
    data = _read(path, "private key")
    encrypted = CertificateError(f"{path}: the private key is encrypted; encrypted keys are not "
                                 "supported (the device needs it unencrypted), export it without "
                                 "a passphrase")
    if b"-----BEGIN" in data:
        if b"ENCRYPTED" in data:
            raise encrypted
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise encrypted from None
        except (ValueError, UnsupportedAlgorithm):
            raise CertificateError(f"{path}: no usable private key in this PEM file (found "
                                   f"{_pem_labels(data) or 'no PEM block'})") from None
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise encrypted from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{path}: not a private key in DER (PKCS#8, SEC1, PKCS#1) or PEM "
                               "form") from None
    return data


def _read(path: Path, what: str) -> bytes:
    return read_input(path, f"{what} file", CertificateError)


def _pem_labels(data: bytes) -> str:
    labels = []
    for line in data.splitlines():
        line = line.strip()
        if line.startswith(b"-----BEGIN ") and line.endswith(b"-----"):
            labels.append(line[11:-5].decode("ascii", "replace"))
    return ", ".join(labels)


def check_key_matches_certificate(cert_der: bytes, key_der: bytes, *,
                                  cert_name: str = "certificate",
                                  key_name: str = "private key") -> None:
    """Raise CertificateError unless the key is the private half of the certificate's key."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise CertificateError(f"{cert_name}: not a DER X.509 certificate") from None
    try:
        key = serialization.load_der_private_key(key_der, password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{key_name}: not an unencrypted DER private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise CertificateError(f"{key_name} does not belong to {cert_name} "
                               f"(subject {cert.subject.rfc4514_string()}): their public keys "
                               "differ; give the key the certificate was issued for")


def certificate_fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons (for device records)."""
    return hashlib.sha256(cert_der).hexdigest()


__all__ = [
    "GeneratedCert", "CertPaths", "KNOWN_FIELDS", "supported_curves", "supported_digests",
    "load_cert_info", "validate_cert_info", "generate_self_signed", "write_cert_files",
    "load_certificate", "load_private_key", "check_key_matches_certificate",
    "certificate_fingerprint",
]
