"""Unit tests are hermetic: what the host has installed, attached or exported never changes them.

* The J-Link library: no unit test loads the real one. By default a test sees a station without
  the SEGGER J-Link software (pynrfjprog is installed, its J-Link library cannot be opened); a test
  that needs a probe hands the driver its own fake. So a bench PC with J-Link and a board
  plugged in gives the same results, and its probe is never touched.
* nRF Util: an `nrfutil` on the station's PATH is never found; a test that wants one puts the
  fake (tests/unit/fake_nrfutil.py) in place with the `fake_nrfutil` fixture.
* Environment: the variables the plugin and the CLI read (`HILPROV_*`, `COIOTE_TOKEN`, labgrid's
  `LG_*`) are removed for every test, so inner pytest runs and CLI calls see only what the test
  sets.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.unit.fake_nrfutil import FakeNrfutil
from tests.unit.fake_pynrfjprog import FakeHighLevel

READ_BY_HILPROV = ("COIOTE_TOKEN", "LG_COORDINATOR", "LG_PLACE", "LG_ENV", "NRFUTIL_HOME")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("HILPROV_") or name in READ_BY_HILPROV:
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def station_without_jlink(monkeypatch):
    """pynrfjprog as on a station without the J-Link software (the default for every test)."""
    from hilprov.board.flashers import pynrfjprog

    monkeypatch.setattr(pynrfjprog, "_load_highlevel", lambda: FakeHighLevel(missing="jlink"))


@pytest.fixture(autouse=True)
def station_without_nrfutil(monkeypatch):
    """No nRF Util on PATH (the default for every test), and `--flasher auto` chooses again."""
    from hilprov.board import flashers
    from hilprov.board.flashers import nrfutil

    monkeypatch.setattr(nrfutil, "find_nrfutil", lambda: None)
    flashers.forget()
    yield
    flashers.forget()


@pytest.fixture
def fake_nrfutil(tmp_path, monkeypatch):
    """The fake `nrfutil` (tests/unit/fake_nrfutil.py) first on PATH, and the one hilprov finds;
    configure its devices with `fake_nrfutil.configure(devices=[...])`."""
    from hilprov.board import flashers
    from hilprov.board.flashers import nrfutil

    fake = FakeNrfutil(tmp_path / "fake-nrfutil")
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(nrfutil, "find_nrfutil", lambda: shutil.which("nrfutil", path=fake.bin))
    flashers.forget()
    return fake
