"""Unit tests are hermetic: what the host has installed, attached or exported never changes them.

* The J-Link library: no unit test loads the real one. By default a test sees a station without
  the SEGGER J-Link software (pynrfjprog is installed, its J-Link library cannot be opened); a test
  that needs a probe hands the driver its own fake. So a bench PC with J-Link and a board
  plugged in gives the same results, and its probe is never touched.
* SMP links: what the transport learned about a port (hilprov.board.smp_link) is forgotten
  before every test, since pty paths are reused and each test brings its own device.
* nRF Util: an `nrfutil` on the station's PATH is never found; a test that wants one puts the
  fake (tests/unit/fake_nrfutil.py) in place with the `fake_nrfutil` fixture.
* Environment: the variables the plugin and the CLI read (`HILPROV_*`, `COIOTE_TOKEN`, labgrid's
  `LG_*`) are removed for every test, so inner pytest runs and CLI calls see only what the test
  sets; each test has its own `XDG_STATE_HOME` (where unwritten records are kept).
* Modules hilprov imports on first use (requests, cryptography, pyserial, sqlite3, smp) are
  imported here once: pytester's in-process runs drop every module first imported inside them,
  and a second copy of requests' cookie jar class breaks the next session that uses the first.
* Inner pytest runs (pytester) leave out labgrid's own pytest plugin, as the outer run does: it
  allows one session per process, and beside pytest-embedded (also installed) it skips every
  test (both plugins define a `target` fixture). tests/unit/test_plugin_suite.py runs hilprov
  beside each of them on its own.
"""

from __future__ import annotations

import os
import shutil
import sqlite3  # noqa: F401 (see above: imported before any in-process inner run)

import cryptography.x509  # noqa: F401
import pytest
import requests  # noqa: F401
import serial  # noqa: F401
import smp.header  # noqa: F401

from tests.unit.fake_nrfutil import FakeNrfutil
from tests.unit.fake_pynrfjprog import FakeHighLevel

READ_BY_HILPROV = ("COIOTE_TOKEN", "LG_COORDINATOR", "LG_PLACE", "LG_ENV", "NRFUTIL_HOME")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch, tmp_path_factory):
    for name in list(os.environ):
        if name.startswith(("HILPROV_", "LG_")) or name in READ_BY_HILPROV:
            monkeypatch.delenv(name)
    # the records a run could not write are kept under it (hilprov.station.journal)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    """pytest's pytester, whose inner runs do not load labgrid's plugin (unless a test asks)."""
    for name in ("runpytest_inprocess", "runpytest_subprocess"):
        run = getattr(pytester, name)
        monkeypatch.setattr(pytester, name, _without_labgrid(run))
    return pytester


def _without_labgrid(run):
    def wrapped(*args, **kwargs):
        if "-p" in args and "labgrid" in args:  # the test loads it on purpose
            return run(*args, **kwargs)
        return run("-p", "no:labgrid", *args, **kwargs)
    return wrapped


@pytest.fixture(autouse=True)
def station_without_jlink(monkeypatch):
    """pynrfjprog as on a station without the J-Link software (the default for every test)."""
    from hilprov.board.flashers import pynrfjprog

    monkeypatch.setattr(pynrfjprog, "_load_highlevel", lambda: FakeHighLevel(missing="jlink"))


@pytest.fixture(autouse=True)
def _fresh_smp_links():
    from hilprov.board import smp_link

    smp_link.forget()


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


from tests.unit.pgserver import postgres_server, postgres_url  # noqa: E402, F401 (fixtures)
