"""Section 10: the config parser and the validator on one-line configs of 10^4 to 10^6 entries
(Access Control instances of 1000 ACL entries each, `--profile lwm2m`). Linear means the time
per entry stays flat as the config grows; the target compares 10^6 entries with 10^5."""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Target, median
from hilprov.core import profile
from hilprov.core.config import parse_config

SIZES = (10_000, 100_000, 1_000_000)
PER_INSTANCE = 1000
LINEAR_LIMIT = 1.5  # time per entry at 10^6 over that at 10^5


def acl_config(entries: int) -> str:
    """A valid config on one line: `entries` ACL entries over Access Control instances."""
    acl = ", ".join(f"{short_id}: 15" for short_id in range(1, PER_INSTANCE + 1))
    instances = (f"{n}: {{0: 3, 1: {n}, 2: {{{acl}}}, 3: 1}}"
                 for n in range(entries // PER_INSTANCE))
    return "{2: {" + ", ".join(instances) + "}}"


def config_scaling(work: Path, runs: int) -> tuple[list[dict], list[Target], list[str]]:
    rows = []
    for entries in SIZES:
        text = acl_config(entries)
        parse, validate = [], []
        for _ in range(runs if entries < SIZES[-1] else 1):
            start = time.process_time()
            config = parse_config(text, "bench")
            parsed = time.process_time()
            problems = profile.validate(config, "lwm2m")
            parse.append(parsed - start)
            validate.append(time.process_time() - parsed)
            if problems:
                raise AssertionError(f"the bench config has problems: {problems[:3]}")
        total = median(parse) + median(validate)
        rows.append({"entries": entries, "characters": len(text),
                     "parse_s": round(median(parse), 3), "validate_s": round(median(validate), 3),
                     "us_per_entry": round(total / entries * 1e6, 3)})
    per_entry = {row["entries"]: row["us_per_entry"] for row in rows}
    ratio = per_entry[SIZES[-1]] / per_entry[SIZES[-2]]
    targets = [Target("config parse + validate: time per entry, 10^6 vs 10^5 entries", ratio,
                      LINEAR_LIMIT, "x", note="1.0 = linear; a quadratic parser gives ~10")]
    notes = [f"CPU time (process_time), median of {runs} runs (10^6: one run); one line, "
             f"{PER_INSTANCE} ACL entries per Access Control instance, profile lwm2m"]
    return rows, targets, notes
