"""What the station knows about the Anjay Zephyr client application (spec §5): its `/factory`
files, the log lines of its two images and the limits of its provisioning file. The board and
SMP layers stay generic; only the flow uses these."""

from __future__ import annotations

import re

PROVISION_FILE = "/factory/provision.cbor"
RESULT_FILE = "/factory/result.txt"
ENDPOINT_FILE = "/factory/endpoint.txt"
PROVISION_WRITE_LIMIT = 512  # one write > 512 B fails with ENOSPC (spec §5.3)

READY = "Device ready for provisioning."
ALREADY = "Factory provisioning information already present"
PROMPT = "uart:~$ "
RESTORED = "persistence: Anjay restored from"
NO_FACTORY_DATA = "Couldn't restore Anjay from anjay_factory"
REGISTERED = "registration successful"
_REJECTED = r"server responded with (.+?) \(expected 2\.01 Created\)"
_PATTERNS = {  # compiled on first use (a run without a board waits for no log line)
    "REG_REJECTED": lambda: _REJECTED,
    "READY_OR_ALREADY": lambda: READY.replace(".", r"\.") + "|" + ALREADY,
    "RESTORED_OR_NOT": lambda: re.escape(RESTORED) + r" (\S+)|" + re.escape(NO_FACTORY_DATA),
    "REGISTERED_OR_REJECTED": lambda: re.escape(REGISTERED) + "|" + _REJECTED,
}


def __getattr__(name: str) -> re.Pattern[str]:
    """`REG_REJECTED`, `READY_OR_ALREADY`, `RESTORED_OR_NOT`, `REGISTERED_OR_REJECTED`: the
    log lines the flow waits for, as compiled patterns."""
    if name not in _PATTERNS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    pattern = globals()[name] = re.compile(_PATTERNS[name]())
    return pattern
