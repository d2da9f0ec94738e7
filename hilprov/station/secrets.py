"""Per-device secrets a station must keep: a generated PSK key nobody else knows makes a unit that
nobody can use, unless it is onboarded or saved. Saved files are private: one per endpoint,
mode 0600, in a directory only the owner can enter (0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hilprov.core.files import safe_name, write_atomic
from hilprov.core.plan import Build
from hilprov.errors import ConfigError


def identity_digest(identity: bytes | None) -> str | None:
    """What records keep of a PSK identity: its SHA-256, enough to tell two apart."""
    import hashlib  # OpenSSL's load costs start-up; a run without a board never needs it

    return hashlib.sha256(identity).hexdigest() if identity else None


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can use (created 0700; an existing one that others
    can read is refused rather than silently used)."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the secrets directory: "
                          f"{exc.strerror or exc}") from None
    if mode & 0o077:
        raise ConfigError(f"{path}: the secrets directory is open to other users (mode "
                          f"{mode:04o}); use a private one (chmod 700 {path})")
    return path


def save_psk(directory: Path, build: Build) -> Path:
    """Write the device's PSK identity and key to `<directory>/<endpoint>.psk.json` (0600)."""
    identity, key = build.psk_credentials()
    target = private_dir(directory) / f"{safe_name(build.endpoint or 'endpoint')}.psk.json"
    body = {"endpoint": build.endpoint, "psk_identity": identity.decode("utf-8", "replace"),
            "psk_key_hex": key.hex()}
    import json

    write_atomic(target, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)
    return target


def owner_only(path: Path) -> bool:
    return not stat.S_IMODE(os.stat(path).st_mode) & 0o077
