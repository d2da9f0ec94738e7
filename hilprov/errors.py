"""One exception hierarchy for the whole library.

Every error a user can cause is a :class:`HilprovError` subclass with its own exit code, so the CLI
can print one line and exit with a documented status, and scripts can tell failures apart. Messages
never carry secrets (tokens, PSKs, private keys): callers build them from names and paths only.
"""

from __future__ import annotations

import signal


class HilprovError(Exception):
    """Base of every error hilprov raises on purpose."""

    exit_code = 1
    kind = "error"


class UsageError(HilprovError):
    """Options that contradict each other or a value an option does not take (exit 2)."""

    exit_code = 2
    kind = "usage error"


class ConfigError(HilprovError):
    """An input file or argument cannot be read or parsed (endpoint config, JSON, key files)."""

    exit_code = 3
    kind = "configuration error"


class EndpointMismatchError(ConfigError):
    """`-e` names a different endpoint than the device reports."""

    exit_code = 3
    kind = "endpoint mismatch"


class ValidationError(HilprovError):
    """The configuration parses but the device profile would reject it; carries every problem."""

    exit_code = 4
    kind = "validation failed"

    def __init__(self, problems, source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        count = len(self.problems)
        plural = "s" if count != 1 else ""
        super().__init__(f"{where}{count} problem{plural} the device would reject")


class CertificateError(HilprovError):
    """A certificate or key cannot be made, loaded, or does not match its pair."""

    exit_code = 5
    kind = "certificate error"


class CloudError(HilprovError):
    """Coiote answered with an error, or could not be reached within the retry budget."""

    exit_code = 6
    kind = "cloud error"

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None,
                 server_error: str | None = None) -> None:
        self.status = status
        self.endpoint = endpoint
        self.server_error = server_error
        super().__init__(message)


class BoardError(HilprovError):
    """The board, its probe or its serial port misbehaved (flash, reset, expected log line)."""

    exit_code = 7
    kind = "board error"


class JLinkMissingError(BoardError):
    """The SEGGER J-Link / nrfjprog libraries cannot be loaded on this station."""


class NrfutilMissingError(BoardError):
    """nRF Util (`nrfutil` with its `device` command) is not installed on this station."""


class ExpectTimeout(BoardError):
    """A log line did not appear in time; the message shows the tail and the log path."""


class TransferError(BoardError):
    """An SMP file transfer failed after its retries."""

    exit_code = 8
    kind = "transfer error"


class DeviceRejectedError(HilprovError):
    """The device reported a failed provisioning (`/factory/result.txt` is not `0`)."""

    exit_code = 9
    kind = "device rejected"


class AlreadyProvisionedError(HilprovError):
    """The initial image found factory data already present and halted."""

    exit_code = 10
    kind = "already provisioned"


class EndpointBusyError(AlreadyProvisionedError):
    """Another attempt (another station, another board) is provisioning this endpoint now."""

    kind = "endpoint busy"


class NotRegisteredError(HilprovError):
    """The final image restored the configuration but did not register in time."""

    exit_code = 11
    kind = "not registered"


class RecordsError(HilprovError):
    """The device-records database cannot be written or read."""

    exit_code = 12
    kind = "records error"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the run stops where it is (exit 128 + the signal number)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @classmethod
    def of(cls, exc: BaseException) -> Interrupted:
        """`exc` as an Interrupted (a plain KeyboardInterrupt is SIGINT)."""
        return exc if isinstance(exc, Interrupted) else cls(signal.SIGINT)


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it with the log)",
    UsageError.exit_code: "usage error (bad or contradicting options)",
    ConfigError.exit_code: "configuration error (unreadable or unparsable input)",
    ValidationError.exit_code: "validation failed (the device would reject the configuration)",
    CertificateError.exit_code: "certificate error",
    CloudError.exit_code: "cloud error (Coiote)",
    BoardError.exit_code: "board error (probe, flashing, serial port, expected log line)",
    TransferError.exit_code: "transfer error (SMP file transfer)",
    DeviceRejectedError.exit_code: "device rejected the configuration",
    AlreadyProvisionedError.exit_code: "device already provisioned",
    NotRegisteredError.exit_code: "restored but did not register",
    RecordsError.exit_code: "records database error",
}
INTERRUPTED_CODES = "130/143  interrupted by SIGINT (Ctrl-C) / SIGTERM; the attempt is recorded"
