import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = REPO_ROOT / "configs"

# The real Zephyr MCUmgr servers (native_sim builds, shared/zephyr-smp/README.md), read once at
# import: tests/unit/conftest.py removes HILPROV_* variables for each test.
ZEPHYR_SMP = Path(os.environ.get("HILPROV_ZEPHYR_SMP")
                  or REPO_ROOT.parent / "shared" / "zephyr-smp")
