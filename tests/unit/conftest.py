"""Unit tests are hermetic: what the host has installed, attached or exported never changes them.

* The J-Link library: no unit test loads the real one. By default a test sees a station without
  the SEGGER J-Link software (pynrfjprog is installed, its J-Link library cannot be opened); a test
  that needs a probe hands the driver its own fake. So a bench PC with J-Link and a board
  plugged in gives the same results, and its probe is never touched.
* SMP links: what the transport learned about a port (hilprov.board.smp_link) is forgotten
  before every test, since pty paths are reused and each test brings its own device.
* Environment: the variables the plugin and the CLI read (`HILPROV_*`, `COIOTE_TOKEN`, labgrid's
  `LG_*`) are removed for every test, so inner pytest runs and CLI calls see only what the test
  sets.
"""

from __future__ import annotations

import os

import pytest

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
    from hilprov.board import nordic

    monkeypatch.setattr(nordic, "_load_highlevel", lambda: FakeHighLevel(missing="jlink"))


@pytest.fixture(autouse=True)
def _fresh_smp_links():
    from hilprov.board import smp_link

    smp_link.forget()
