"""Start-up: a command imports what it uses, when it uses it (the timing is in bench/startup.py).

Checked on the real entry point: the `ptool` console script run by `python -X importtime`,
which names every module the process imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import CONFIGS

HEAVY = ("requests", "cryptography", "pydantic", "smp", "serial", "sqlite3",
         "hilprov.board.smp", "hilprov.board.serial", "hilprov.core.certs",
         "hilprov.cloud.coiote", "hilprov.station.records")


def imported(argv: list[str], cwd: Path) -> set[str]:
    """Every module a fresh process running `argv` imports (after checking it succeeds)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", done.stderr, re.M))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def ptool_script() -> str:
    script = Path(sys.executable).with_name("ptool")
    if not script.exists():
        pytest.skip("the ptool console script is not installed next to this interpreter")
    return str(script)


def test_ptool_without_a_board_in_psk_mode_imports_nothing_heavy(tmp_path):
    modules = imported([ptool_script(), "-c", str(CONFIGS / "endpoint_cfg")], tmp_path)
    assert (tmp_path / "SenMLCBOR").stat().st_size == 192  # it did its job
    assert "hilprov.station.flow" in modules  # the same flow as with a board
    assert loaded(modules, HEAVY) == []


def test_building_the_command_lines_imports_no_flow_and_no_plan(tmp_path):
    code = ("from hilprov.cli.parsers import build_parser, build_ptool_parser; "
            "build_parser(); build_ptool_parser()")
    modules = imported(["-c", code], tmp_path)
    assert loaded(modules, HEAVY + ("hilprov.station.flow", "hilprov.core.plan")) == []


def test_import_hilprov_alone_is_cheap(tmp_path):
    modules = imported(["-c", "import hilprov"], tmp_path)
    assert sorted(m for m in modules if m.startswith("hilprov")) == [
        "hilprov", "hilprov.errors", "hilprov.version"]
    assert loaded(modules, ("dataclasses", "logging", "json")) == []


def test_what_hilprov_exports_still_resolves():
    import hilprov

    assert hilprov.OID.Security == 0 and hilprov.RID.Security.SecretKey == 5
    assert str(hilprov.SecurityMode.PSK) == "psk" and str(hilprov.Objlink(66, 0)) == "66:0"
    assert hilprov.FactoryProvisioning.__name__ == "FactoryProvisioning"
