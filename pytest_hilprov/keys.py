"""Where the plugin keeps its per-run and per-test objects (pytest stash keys)."""

import pytest

from hilprov.settings import Settings

SETTINGS_KEY = pytest.StashKey[Settings]()
PORT_KEY = pytest.StashKey[object]()
ENDPOINT_KEY = pytest.StashKey[object]()
