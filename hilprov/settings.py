"""Every setting of a provisioning run, declared once.

Each field of `Settings` is one setting. Its metadata (`Spec`) says how the command line and the
pytest plugin spell it, how a text value is parsed and checked, and its help. From this one table
come the CLI's argparse options, the plugin's options with their ini keys and environment
variables, the defaults, and the usage errors for bad values (which name the option as the user
wrote it and what it accepts). Adding an option is adding a field here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from hilprov.board import flashers
from hilprov.core import credentials, profile
from hilprov.errors import ConfigError, UsageError
from hilprov.samples import sample
from hilprov.station.steps import STEP_NAMES

if TYPE_CHECKING:  # building the command line imports neither the boards, plan nor flow
    from hilprov.board import registry
    from hilprov.core import plan
    from hilprov.station.flow import RunOptions

SEED = "seed-compatible options (ptool)"
MORE = "hilprov options"
BOARD = "board options (without them, only the blob is written)"

Kind = Literal["value", "flag", "list"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(UsageError):
    """A setting has a value it does not accept (exit 2; a pytest.UsageError in the plugin)."""


class Spec(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """How one setting is spelled and parsed. `parse(text)` returns the value or raises
    ValueError saying what is expected."""

    help: str
    cli: tuple[str, ...] = ()  # command-line flags; () = not on the command line
    pytest: str | None = None  # the plugin's option; None = not in the plugin
    metavar: str | None = None
    parse: Callable[[str], Any] = str
    kind: Kind = "value"
    group: str = MORE
    required_cli: bool = False
    pytest_default: Any = None  # the plugin's default, when it differs (None: the same)

    @property
    def ini(self) -> str | None:
        """The ini key: the option without dashes, prefixed `hil_` (`hil_board`)."""
        if self.pytest is None:
            return None
        name = self.pytest.lstrip("-").replace("-", "_")
        return name if name.startswith(("hil_", "coiote_")) else f"hil_{name}"

    @property
    def env(self) -> str | None:
        """The environment variable: `HILPROV_` and the option's name (`HILPROV_BOARD`)."""
        if self.pytest is None:
            return None
        name = self.pytest.lstrip("-").removeprefix("hil-").replace("-", "_").upper()
        return f"HILPROV_{name}"


def setting(default: Any, help: str, **spec: Any) -> Any:
    meta = {"spec": Spec(help=help, **spec)}
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


# -- value parsers (each raises ValueError saying what it expects) --------------------------------
def one_of(choices: Callable[[], Sequence[str]] | Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        allowed = choices() if callable(choices) else choices
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text
    return parse


def _positive(convert: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {what}") from None
        if not value > 0:
            raise ValueError(f"{text} is not a positive number")
        return value
    parse.__name__ = f"positive {what}"
    return parse


positive_int = _positive(int, "a whole number")
positive_seconds = _positive(float, "a number of seconds")


def board_spec(text: str) -> str:
    try:
        from hilprov.board import registry

        return registry.check_spec(text.strip())
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(f"--board {text.strip()}: ")) from None


def psk_identity(text: str) -> str:
    return credentials.parse_identity(text).text


def psk_key(text: str) -> str:
    credentials.parse_key(text)
    return text


def records_target(text: str) -> Path | str:
    from hilprov.station import target

    return target.parse_target(text)


def station_name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise ValueError(f"{text!r} is not a station name (1 to 64 printable characters)")
    return name


def flag_value(text: str) -> bool:
    folded = str(text).strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a yes/no value (1, true, yes, on / 0, false, no, off)")


@dataclass(repr=False)  # its own __repr__ (no token)
class Settings:
    """One provisioning run's settings (the CLI's, or a pytest session's)."""

    # -- the seed tool's options ----------------------------------------------------------------
    endpoint_cfg: Path | None = setting(
        None, "endpoint configuration to load on the device", cli=("-c", "--endpoint_cfg"),
        pytest="--hil-endpoint-cfg", metavar="FILE", parse=Path, group=SEED, required_cli=True,
        pytest_default=sample("endpoint_cfg_line"))
    endpoint_name: str | None = setting(
        None, "endpoint name (default: the name the board reports)", cli=("-e", "--URN"),
        metavar="NAME", group=SEED)
    server: Path | None = setting(
        None, "Coiote server information (url, port, domain)", cli=("-s", "--server"),
        pytest="--coiote-server", metavar="JSON", parse=Path, group=SEED)
    token: str | None = setting(
        None, "Coiote access token (prefer COIOTE_TOKEN or --token-file: argv is visible to "
        "other users)", cli=("-t", "--token"), metavar="TOKEN", group=SEED)
    cert_info: Path | None = setting(
        None, "cert_info.json: generate a self-signed endpoint certificate", cli=("-C", "--cert"),
        pytest="--hil-cert-info", metavar="JSON", parse=Path, group=SEED)
    endpoint_key: Path | None = setting(
        None, "endpoint private key (DER or PEM); ignored with -C", cli=("-k", "--pkey"),
        metavar="FILE", parse=Path, group=SEED)
    endpoint_cert: Path | None = setting(
        None, "endpoint certificate (DER or PEM); ignored with -C", cli=("-r", "--pcert"),
        metavar="FILE", parse=Path, group=SEED)
    server_cert: Path | None = setting(
        None, "server certificate (DER or PEM)", cli=("-p", "--scert"),
        pytest="--hil-server-cert", metavar="FILE", parse=Path, group=SEED)
    # -- hilprov's own ----------------------------------------------------------------------------
    psk_identity: str | None = setting(
        None, "give every device its own PSK identity (/0/x/3): {endpoint} and {imei} expand, "
        "anything else is literal, e.g. '{endpoint}'", cli=("--psk-identity",),
        pytest="--hil-psk-identity", metavar="TEMPLATE", parse=psk_identity)
    psk_key: str | None = setting(
        None, "give every device its own PSK key (/0/x/5): random = 16 bytes from a secure "
        "source, random:N = N bytes", cli=("--psk-key",), pytest="--hil-psk-key",
        metavar="random[:N]", parse=psk_key)
    secrets_out: Path | None = setting(
        None, "save each device's generated secrets (PSK key, private key) here: one file per "
        "endpoint, mode 0600, in a 0700 directory", cli=("--secrets-out",),
        pytest="--hil-keep-secrets", metavar="DIR", parse=Path)
    output: Path | None = setting(
        None, "where to write the blob (default: ./SenMLCBOR; with a board, only when given)",
        cli=("--output",), metavar="PATH", parse=Path)
    profile: str = setting(
        profile.DEFAULT_PROFILE, "device profile to validate against (default: %(default)s)",
        cli=("--profile",), pytest="--hil-profile", metavar="NAME",
        parse=one_of(profile.PROFILES))
    token_file: Path | None = setting(
        None, "read the Coiote token from FILE", cli=("--token-file",), metavar="FILE",
        parse=Path)
    cert_dir: Path = setting(
        Path("cert"), "where -C writes certificate files (default: ./cert; with a board: "
        "./cert/<endpoint>)", cli=("--cert-dir",), metavar="DIR", parse=Path)
    # -- boards ---------------------------------------------------------------------------------
    board: list[str] = setting(
        [], "J-Link serial number of an nRF board, 'sim' for a virtual board, or "
        "labgrid:PLACE for a board on a labgrid place; repeat to provision several boards at "
        "once", cli=("--board",), pytest="--board",
        metavar="SNR|sim|labgrid:PLACE", parse=board_spec, kind="list", group=BOARD)
    lg_coordinator: str | None = setting(
        None, "labgrid coordinator of labgrid:PLACE boards (default: $LG_COORDINATOR, else "
        "127.0.0.1:20408)", cli=("--lg-coordinator",), pytest="--hil-lg-coordinator",
        metavar="HOST[:PORT]", group=BOARD)
    port: str | None = setting(
        None, "serial port (any pyserial URL); alone: a device already running the initial "
        "image (no flashing)", cli=("--port",), pytest="--hil-port", metavar="PORT",
        group=BOARD)
    baudrate: int = setting(
        115200, "serial baud rate (default: %(default)s)", cli=("--baudrate",),
        pytest="--hil-baudrate", metavar="B", parse=positive_int, group=BOARD)
    image_dir: Path | None = setting(
        None, "directory holding initial.hex and final.hex (virtual boards have their own)",
        cli=("--image-dir",), pytest="--hil-image-dir", metavar="DIR", parse=Path, group=BOARD)
    initial_hex: Path | None = setting(
        None, "initial (provisioning) image", cli=("--initial-hex",), metavar="FILE", parse=Path,
        group=BOARD)
    final_hex: Path | None = setting(
        None, "final (production) image", cli=("--final-hex",), metavar="FILE", parse=Path,
        group=BOARD)
    force_endpoint: bool = setting(
        False, "use -e even if the device reports another endpoint name (the production "
        "image still registers under the device's own name)",
        cli=("--force-endpoint",), kind="flag", group=BOARD)
    until: str | None = setting(
        None, f"stop after this step ({', '.join(STEP_NAMES)})", cli=("--until",),
        metavar="STEP", parse=one_of(STEP_NAMES), group=BOARD)
    no_final: bool = setting(
        False, "stop after the device accepted the configuration and was onboarded (the same "
        "as --until onboard)", cli=("--no-final",), kind="flag", group=BOARD)
    no_erase: bool = setting(
        False, "flash the initial image without a chip erase (a device that was provisioned "
        "before then refuses as 'already provisioned')", cli=("--no-erase",), kind="flag",
        group=BOARD)
    coiote_replace: bool = setting(
        False, "delete the endpoint's existing Coiote device before onboarding "
        "(re-provisioning in another security mode)", cli=("--coiote-replace",), kind="flag",
        group=BOARD)
    flasher: str = setting(
        flashers.DEFAULT_FLASHER, "how J-Link boards are flashed: nrfutil (nRF Util), "
        "pynrfjprog, or auto: nRF Util when `nrfutil` with its device command is on PATH, else "
        "pynrfjprog (default: %(default)s; the choice is shown with -v and recorded)",
        cli=("--flasher",), pytest="--hil-flasher", metavar="TOOL",
        parse=one_of(flashers.FLASHERS), group=BOARD)
    verify: str = setting(
        flashers.DEFAULT_VERIFY, "how each flash of a J-Link board is checked: hash (the chip "
        "hashes its flash), read (read it all back) or none (default: %(default)s)",
        cli=("--verify",), pytest="--hil-verify", metavar="HOW",
        parse=one_of(flashers.VERIFY_MODES), group=BOARD)
    records: Path | str = setting(
        Path("hilprov-records.sqlite"), "device records database: a SQLite file (PATH or "
        "sqlite:///PATH) or a line's PostgreSQL (postgresql://HOST[:PORT]/DB; the password in "
        "PGPASSWORD or ~/.pgpass) (default: %(default)s)", cli=("--records",),
        pytest="--hil-records", metavar="PATH|URL", parse=records_target, group=BOARD)
    station: str | None = setting(
        None, "this station's name in the records (default: the host name)",
        cli=("--station",), pytest="--hil-station", metavar="NAME", parse=station_name,
        group=BOARD)
    reprovision: bool = setting(
        False, "provision a unit the records show provisioned already (the line otherwise "
        "refuses a second provisioning of an endpoint)", cli=("--reprovision",),
        pytest="--hil-reprovision", kind="flag", group=BOARD, pytest_default=True)
    log_dir: Path = setting(
        Path("hilprov-logs"), "serial logs, one file per board and run (default: %(default)s)",
        cli=("--log-dir",), pytest="--hil-logdir", metavar="DIR", parse=Path, group=BOARD)
    sim_state: Path | None = setting(
        None, "virtual boards: keep their flash (it holds the device's keys) in DIR/<board> "
        "(default: in memory, or a private temporary directory under pytest)",
        cli=("--sim-state",), pytest="--hil-sim-state", metavar="DIR", parse=Path, group=BOARD)
    emulate_baud: bool = setting(
        False, "virtual boards: bytes take their wire time at the baud rate",
        cli=("--emulate-baud",), pytest="--hil-emulate-baud", kind="flag", group=BOARD)
    json: bool = setting(
        False, "print a machine-readable summary on stdout at the end", cli=("--json",),
        kind="flag", group=BOARD)
    require_board: bool = setting(
        False, "fail (instead of skip) hil tests when no board is given",
        pytest="--hil-require-board", kind="flag")
    allow_destructive: bool = setting(
        False, "run tests marked destructive (they erase the device) on real boards; virtual "
        "boards always allow them", pytest="--hil-allow-destructive", kind="flag")
    expect_timeout: float = setting(
        30.0, "seconds hil_dut.expect waits when a test gives no timeout (default 30)",
        pytest="--hil-expect-timeout", metavar="SECONDS", parse=positive_seconds)

    def __repr__(self) -> str:  # the token stays out of logs and reports
        from hilprov.station import target

        shown = {f.name: getattr(self, f.name) for f in fields() if f.name != "token"}
        shown["records"] = target.display(self.records)  # a URL's password stays out
        return f"Settings({shown}, token={'<set>' if self.token else None})"

    # -- what the run is made of ------------------------------------------------------------------
    @property
    def has_board(self) -> bool:
        return bool(self.board) or self.port is not None

    @property
    def all_sim(self) -> bool:
        from hilprov.board import registry

        return bool(self.board) and all(registry.kind_of(b).name == "sim" for b in self.board)

    def inputs(self, front: str = "cli", **overrides: Any) -> plan.Inputs:
        """The plan's inputs; messages name the options of `front` ("cli" or "pytest")."""
        from hilprov.core import plan

        values = {"endpoint_cfg": self.endpoint_cfg, "profile": self.profile,
                  "cert_info": self.cert_info, "server_cert": self.server_cert,
                  "endpoint_cert": self.endpoint_cert, "endpoint_key": self.endpoint_key,
                  "psk_identity": self.psk_identity, "psk_key": self.psk_key}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return plan.Inputs(flags=flag_names(front), **values)

    def images(self) -> tuple[Path | None, Path | None]:
        """(initial, final) from --initial-hex/--final-hex, else --image-dir; checked."""
        initial, final = self.initial_hex, self.final_hex
        if self.image_dir is not None:
            if not Path(self.image_dir).is_dir():
                raise ConfigError(f"--image-dir {self.image_dir}: not a directory")
            initial = initial or Path(self.image_dir) / "initial.hex"
            final = final or Path(self.image_dir) / "final.hex"
        for which, path in (("initial-hex", initial), ("final-hex", final)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{path}: firmware image not found (--{which} / --image-dir)")
        return initial, final

    def run_options(self, **overrides: Any) -> RunOptions:
        from hilprov.station.flow import RunOptions

        initial, final = self.images()
        values = {"initial_hex": initial, "final_hex": final, "erase": not self.no_erase,
                  "endpoint_name": self.endpoint_name, "force_endpoint": self.force_endpoint,
                  "until": self.until or ("onboard" if self.no_final else None),
                  "output": self.output, "cert_dir": self.cert_dir,
                  "secrets_out": self.secrets_out, "replace_cloud_device": self.coiote_replace,
                  "reprovision": self.reprovision}
        values.update(overrides)
        return RunOptions(**values)

    def board_options(self, **overrides: Any) -> registry.BoardOptions:
        from hilprov.board import registry

        values = {"port": self.port, "baudrate": self.baudrate,
                  "emulate_baud": self.emulate_baud, "state_root": self.sim_state,
                  "lg_coordinator": self.lg_coordinator, "flasher": self.flasher,
                  "verify": self.verify}
        values.update(overrides)
        return registry.BoardOptions(**values)


def fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(Settings)


def spec(name: str) -> Spec:
    return Settings.__dataclass_fields__[name].metadata["spec"]


def default(name: str) -> Any:
    """The setting's default in the plugin (its own default, when it has one)."""
    f = Settings.__dataclass_fields__[name]
    own = f.metadata["spec"].pytest_default
    return own if own is not None else _default(f)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def flag_names(front: str) -> Mapping[str, str]:
    """How `front` ("cli" or "pytest") spells each setting, e.g. server_cert -> "-p FILE"."""
    names = {}
    for f in fields():
        s = f.metadata["spec"]
        cli = (f"{s.cli[0]} {s.metavar}" if s.metavar else s.cli[0]) if s.cli else None
        if front == "pytest" and s.pytest:
            names[f.name] = s.pytest
        elif front == "pytest" and cli:  # no pytest option: say whose option it is
            names[f.name] = f"ptool's {cli}"
        elif front == "cli" and cli:
            names[f.name] = cli
    return names


# -- the command line ----------------------------------------------------------------------------
def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting that has command-line flags, in its group. Values stay text here (checked
    by their parser, so a bad one is a usage error naming the flag); `from_cli` converts."""
    groups: dict[str, Any] = {}
    for f in fields():
        s = f.metadata["spec"]
        if not s.cli:
            continue
        if s.group not in groups:
            groups[s.group] = parser.add_argument_group(s.group)
        kwargs: dict[str, Any] = {"dest": f.name, "help": s.help}
        if s.kind == "flag":
            kwargs["action"] = "store_true"
        else:
            kwargs.update(metavar=s.metavar, type=checked(s.parse))
            if s.kind == "list":
                kwargs.update(action="append", default=[])
            if s.required_cli:
                kwargs["required"] = True
            elif s.kind == "value":
                kwargs["default"] = _cli_text(_default(f))
        groups[s.group].add_argument(*s.cli, **kwargs)


def checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse `type` that checks the text with `parse` but keeps it as text."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    check.__name__ = getattr(parse, "__name__", "value")
    return check


def _cli_text(value: Any) -> Any:
    return str(value) if isinstance(value, Path | int) and not isinstance(value, bool) else value


def from_cli(namespace: argparse.Namespace) -> Settings:
    """Settings from parsed command-line arguments (absent flags keep their defaults)."""
    values = {}
    for f in fields():
        s = f.metadata["spec"]
        if not s.cli:
            continue
        raw = getattr(namespace, f.name, None)
        values[f.name] = _convert(f, s, raw) if raw not in (None, []) else _default(f)
    return Settings(**values)


def _convert(f: dataclasses.Field, s: Spec, raw: Any) -> Any:
    if s.kind == "flag":
        return bool(raw)
    if s.kind == "list":
        return [s.parse(item) for item in raw]
    return s.parse(raw) if isinstance(raw, str) else raw


# -- the pytest plugin ----------------------------------------------------------------------------
def pytest_settings() -> list[tuple[str, Spec]]:
    return [(f.name, f.metadata["spec"]) for f in fields() if f.metadata["spec"].pytest]


def from_sources(cli: Mapping[str, Any], ini: Mapping[str, Any],
                 environ: Mapping[str, str] = os.environ) -> Settings:
    """The plugin's settings: the option if given, else its environment variable, else its ini
    key, else the default. SettingError names the source of a bad value."""
    values: dict[str, Any] = {}
    for f in fields():
        s = f.metadata["spec"]
        if s.pytest is None:
            continue
        value, source = _pick(s, cli.get(f.name), ini.get(f.name), environ)
        if value is None:
            default = s.pytest_default
            values[f.name] = _default(f) if default is None else default
            continue
        try:
            values[f.name] = _parse_source(s, value)
        except ValueError as exc:
            raise SettingError(f"{s.pytest}: {exc} (from {source})") from None
    return Settings(**values)


def _pick(s: Spec, cli: Any, ini: Any, environ: Mapping[str, str]) -> tuple[Any, str]:
    if cli is not None and cli != []:  # False too: --no-hil-x was given
        return cli, s.pytest
    if environ.get(s.env, "").strip():
        raw = environ[s.env]
        return ([b for b in raw.split(",") if b.strip()] if s.kind == "list" else raw), s.env
    if ini not in (None, [], ""):
        return ini, f"ini {s.ini}"
    return None, ""


def _parse_source(s: Spec, value: Any) -> Any:
    if s.kind == "flag":
        return value if isinstance(value, bool) else flag_value(value)
    if s.kind == "list":
        items = value if isinstance(value, list | tuple) else [value]
        return [s.parse(str(item).strip()) for item in items if str(item).strip()]
    return s.parse(str(value))

