"""Per-device credentials: every unit of a line gets its own PSK identity and key.

A config (or the options `--psk-identity TEMPLATE` / `--psk-key random[:N]`) can say that a value
is made for each device when its blob is built:

* `EndpointName()` — the device's endpoint name, as bytes (a PSK identity is opaque);
* `RandomKey(N)` — N bytes from `secrets` (default 16);
* an identity template — text in which `{endpoint}` and `{imei}` expand (nothing else does: it is
  not a format string), e.g. `'{endpoint}'` or `'line7-{imei}'`.

The config forms are parsed like `Objlink`, never evaluated. Generated keys exist only in the
blob and in the request that onboards the device; their repr never shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hilprov.errors import ConfigError

DEFAULT_KEY_BYTES = 16
MAX_KEY_BYTES = 64  # the largest PSK DTLS stacks take (mbedTLS MBEDTLS_PSK_MAX_LEN default 32..)
TOKENS = ("{endpoint}", "{imei}")
_IMEI = re.compile(r"(\d{15})$")


@dataclass(frozen=True, repr=False)  # each has its own __repr__
class EndpointName:
    """Placeholder: the device's endpoint name (bytes)."""

    def __repr__(self) -> str:
        return "EndpointName()"


@dataclass(frozen=True, repr=False)
class RandomKey:
    """Placeholder: `size` random bytes, new for each device."""

    size: int = DEFAULT_KEY_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_KEY_BYTES:
            raise ConfigError(f"RandomKey({self.size}): a key of 1 to {MAX_KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"RandomKey({self.size})"

    def make(self) -> bytes:
        import secrets

        return secrets.token_bytes(self.size)


@dataclass(frozen=True, repr=False)
class IdentityTemplate:
    """Placeholder: text with `{endpoint}` and `{imei}` expanded, as bytes."""

    text: str

    def __repr__(self) -> str:
        return f"IdentityTemplate({self.text!r})"

    @property
    def per_device(self) -> bool:
        return any(token in self.text for token in TOKENS)

    def expand(self, endpoint: str) -> bytes:
        text = self.text
        if "{imei}" in text:
            imei = imei_of(endpoint)
            if imei is None:
                raise ConfigError(f"PSK identity template {self.text!r}: the endpoint name "
                                  f"{endpoint!r} carries no IMEI (expected "
                                  "anjay-zephyr-demo-<15 digits>); use {endpoint} instead")
            text = text.replace("{imei}", imei)
        return text.replace("{endpoint}", endpoint).encode("utf-8")


Placeholder = EndpointName | RandomKey | IdentityTemplate
PLACEHOLDERS = (EndpointName, RandomKey, IdentityTemplate)


def imei_of(endpoint: str) -> str | None:
    """The IMEI at the end of an nRF91 endpoint name (`anjay-zephyr-demo-<IMEI>`), else None."""
    found = _IMEI.search(endpoint)
    return found.group(1) if found else None


def parse_identity(text: str) -> IdentityTemplate:
    """`--psk-identity TEMPLATE`; ValueError (a usage error) for an empty one."""
    if not text:
        raise ValueError("an empty PSK identity; give a template such as '{endpoint}'")
    return IdentityTemplate(text)


def parse_key(text: str) -> RandomKey:
    """`--psk-key random` or `random:N` (N bytes); ValueError says what is expected."""
    kind, _, size = text.partition(":")
    if kind != "random" or (size and not size.isdigit()):
        raise ValueError(f"{text!r} is not random or random:N (N bytes, default "
                         f"{DEFAULT_KEY_BYTES})")
    count = int(size) if size else DEFAULT_KEY_BYTES
    if not 1 <= count <= MAX_KEY_BYTES:
        raise ValueError(f"random:{count}: a key of 1 to {MAX_KEY_BYTES} bytes")
    return RandomKey(count)


def resolve(value, endpoint: str | None, where: str):
    """The value a placeholder stands for on the device with `endpoint`; other values as they
    are."""
    if isinstance(value, RandomKey):
        return value.make()
    if isinstance(value, EndpointName | IdentityTemplate):
        if not endpoint:
            raise ConfigError(f"{where}: {value!r} needs the endpoint name: provision a board, "
                              "or give -e NAME")
        return endpoint.encode("utf-8") if isinstance(value, EndpointName) \
            else value.expand(endpoint)
    return value


def sample(value):
    """A stand-in of the placeholder's type for validating before any device is known."""
    if isinstance(value, RandomKey):
        return b"\x00" * value.size
    if isinstance(value, EndpointName | IdentityTemplate):
        return b"endpoint"
    return value


def per_device(value) -> bool:
    """Whether the value is made anew for each device."""
    if isinstance(value, IdentityTemplate):
        return value.per_device
    return isinstance(value, EndpointName | RandomKey)
