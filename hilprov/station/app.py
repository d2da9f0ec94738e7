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
REG_REJECTED = re.compile(r"server responded with (.+?) \(expected 2\.01 Created\)")

READY_OR_ALREADY = re.compile(READY.replace(".", r"\.") + "|" + ALREADY)
RESTORED_OR_NOT = re.compile(re.escape(RESTORED) + r" (\S+)|" + re.escape(NO_FACTORY_DATA))
REGISTERED_OR_REJECTED = re.compile(re.escape(REGISTERED) + "|" + REG_REJECTED.pattern)
