"""The states a step and an attempt can be in: one definition, used by the flow, the records (their
SQL is built from these values) and every report."""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How an attempt ended (or that it has not ended yet)."""

    IN_PROGRESS = "in progress"
    REGISTERED = "registered"  # the production image registered with the LwM2M server
    PROVISIONED = "provisioned"  # the device accepted the configuration; no final image here
    BUILT = "built"  # no board: the blob was written
    STOPPED = "stopped"  # --until ended the run before the device accepted a configuration
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM during the attempt
    ABANDONED = "abandoned"  # the process died mid-attempt (kill -9, a crash, power loss)

    @property
    def ok(self) -> bool:
        return self in SUCCESSES

    @classmethod
    def successes(cls) -> tuple[Outcome, ...]:
        return SUCCESSES


SUCCESSES = (Outcome.REGISTERED, Outcome.PROVISIONED, Outcome.BUILT, Outcome.STOPPED)
PROVISIONS = (Outcome.REGISTERED, Outcome.PROVISIONED)
"""The outcomes after which the unit holds its configuration: the line provisions it once."""


def sql_list(values) -> str:
    """`'a', 'b'` for an SQL IN (...) list of enum values (which never contain a quote)."""
    return ", ".join(f"'{value}'" for value in values)
