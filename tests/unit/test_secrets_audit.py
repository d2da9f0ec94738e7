"""Secrets audit: provision with recognisable secrets, then search everything hilprov produced.

Secrets: a PSK key, the Coiote token, and every generated private key. The PSK identity is not a
secret and is not searched. They go through the CLI (ptool and hilprov, PSK and Certificate mode,
token from --token-file and from COIOTE_TOKEN, -v) and through the pytest plugin (a failing test,
junit XML with every log, DEBUG logging), plus failures on purpose (a token Coiote rejects, a
device rejection, validation and syntax errors around the PSK, a Coiote conflict). Then every
output is searched for every form of every secret (raw, hex, base64 at each alignment, PEM body
lines, and 10-byte windows so a truncated leak is caught too): stdout, stderr, every log
record, every file under the output and log directories, the junit XML, each records table
dumped column by column, exception texts, and repr()/str() of the public objects.

Allowed to hold a secret, and excluded by exact path (that is their job): the blob written by
`--output` (it is what goes to the device), the private key files `client_key.der`, and the
virtual device's persisted factory data `anjay_factory.cbor`. Those must be mode 0600.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hilprov.board.sim import SimBoard
from hilprov.cli import main, ptool_main
from hilprov.cloud.coiote import CoioteClient
from hilprov.core.certs import generate_self_signed
from hilprov.core.config import load_config, parse_config
from hilprov.core.senml import decode
from hilprov.errors import HilprovError
from hilprov.provisioning import FactoryProvisioning
from hilprov.sim.cloud import CloudView
from hilprov.sim.coiote_server import CoioteServer
from hilprov.sim.images import FINAL_IMAGE, INITIAL_IMAGE
from hilprov.station.flow import Timeouts
from hilprov.station.records import RecordStore, RecordWriter
from pytest_hilprov import support as hil
from tests import CONFIGS
from tests.unit.flowkit import make_flow, split

PSK_KEY = b"AUDIT-PSK-KEY-7f3a9c"
PSK_IDENTITY = b"audit-psk-identity"  # not a secret: Coiote lists it; never searched
TOKEN = "AUDIT-TOKEN-5b2e8d"
ENDPOINT = "anjay-zephyr-demo-351234567890123"
BOARD_IMEI = "351234567890124"  # the virtual board the CLI runs use, pinned
BOARD_ENDPOINT = f"anjay-zephyr-demo-{BOARD_IMEI}"
WINDOW = 10  # bytes: a leak of any 10 consecutive secret bytes counts
TIMEOUTS = Timeouts(ready=5, prompt=1, smp=1.0, result=10, restored=5, registered=5)

PSK_CONFIG = """{
    OID.Security: {1: {
        RID.Security.ServerURI: 'coaps://eu.iot.avsystem.cloud:5684',
        RID.Security.Bootstrap: False,
        RID.Security.Mode: 0,
        RID.Security.PKOrIdentity: %(identity)r,
        RID.Security.SecretKey: %(key)s,
        RID.Security.ShortServerID: 1,
    }},
    OID.Server: {1: {
        RID.Server.ShortServerID: 1, RID.Server.Lifetime: 86400,
        RID.Server.NotificationStoring: False, RID.Server.Binding: %(binding)r,
    }},%(extra)s
}
"""


def psk_config(key: str = repr(PSK_KEY), binding: str = "U", extra: str = "") -> str:
    return PSK_CONFIG % {"identity": PSK_IDENTITY, "key": key, "binding": binding,
                         "extra": extra}


# -- the search -----------------------------------------------------------------------------------
def _b64_cores(secret: bytes) -> list[bytes]:
    """The base64 characters that depend only on `secret`, at each of the 3 byte alignments:
    how the secret looks inside any larger base64 text (PEM, JSON, XML)."""
    cores = []
    for shift in range(3):
        text = base64.b64encode(bytes(shift) + secret + bytes(2))
        first = -(-8 * shift // 6)  # first character made only of secret bits
        last = (8 * (shift + len(secret))) // 6  # one past the last one
        cores.append(text[first:last])
    return cores


@dataclass
class Secret:
    name: str
    value: bytes
    extra: dict[str, bytes] = field(default_factory=dict)  # more forms (PEM lines...)
    windows: bool = True  # False when parts of the value are public (a key's public point)

    def forms(self) -> dict[str, bytes]:
        found = {"raw": self.value, "hex": self.value.hex().encode()}
        for n, core in enumerate(_b64_cores(self.value)):
            found[f"base64@{n}"] = core
        for start in range(0, len(self.value) - WINDOW + 1 if self.windows else 0):
            piece = self.value[start:start + WINDOW]
            found[f"raw[{start}:+{WINDOW}]"] = piece
            found[f"hex[{start}:+{WINDOW}]"] = piece.hex().encode()
        found.update(self.extra)
        return found


def private_key_secrets(key_der: bytes, cert_pem: bytes, name: str) -> list[Secret]:
    """A private key: its DER (raw, hex, base64), the PEM body lines of its PKCS#8 and
    traditional PEM forms, and the private scalar itself. PEM lines that also occur in the
    certificate (the public key is in both) are left out: the certificate is public."""
    key = serialization.load_der_private_key(key_der, password=None)
    lines: dict[str, bytes] = {}
    for fmt in ("PKCS8", "TraditionalOpenSSL"):
        pem = key.private_bytes(serialization.Encoding.PEM,
                                getattr(serialization.PrivateFormat, fmt),
                                serialization.NoEncryption())
        for n, line in enumerate(pem.splitlines()):
            if len(line) >= 16 and not line.startswith(b"-----") and line not in cert_pem:
                lines[f"PEM {fmt} line {n}"] = line
    scalar = key.private_numbers().private_value
    scalar_bytes = scalar.to_bytes((scalar.bit_length() + 7) // 8, "big")
    return [Secret(f"{name} (DER)", key_der, {"base64 (all)": base64.b64encode(key_der),
                                              **lines}, windows=False),
            Secret(f"{name} (private scalar)", scalar_bytes)]


def leaks(data: bytes | str, secrets: list[Secret]) -> list[str]:
    """Which forms of which secrets occur in `data` (hex compared case-insensitively)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    lower = data.lower()
    found = []
    for secret in secrets:
        for form, pattern in secret.forms().items():
            haystack = lower if form.startswith("hex") else data
            if (pattern.lower() if form.startswith("hex") else pattern) in haystack:
                found.append(f"{secret.name}: {form}")
                break
    return found


def dump_database(path: Path) -> str:
    """Every value of every column of every table, as text."""
    conn = sqlite3.connect(path)
    try:
        out = []
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the db
                out.append(repr(row))
        return "\n".join(out)
    finally:
        conn.close()


@dataclass
class Evidence:
    """Everything hilprov produced, and the files allowed to hold secrets (with why)."""

    texts: dict[str, str] = field(default_factory=dict)
    roots: list[Path] = field(default_factory=list)
    allowed: dict[Path, str] = field(default_factory=dict)
    databases: list[Path] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)

    def files(self) -> list[Path]:
        return sorted(p for root in self.roots for p in root.rglob("*")
                      if p.is_file() and p.resolve() not in self.allowed)

    def allow(self, path: Path, why: str) -> None:
        assert path.is_file(), f"expected {path} ({why})"
        self.allowed[path.resolve()] = why

    def assert_clean(self) -> None:
        problems = [f"{what}: {hit}" for what, text in self.texts.items()
                    for hit in leaks(text, self.secrets)]
        problems += [f"file {path}: {hit}" for path in self.files()
                     for hit in leaks(path.read_bytes(), self.secrets)]
        problems += [f"records {db}: {hit}" for db in self.databases
                     for hit in leaks(dump_database(db), self.secrets)]
        assert problems == []
        assert self.files(), "nothing was searched"

    def assert_allowed_files_are_private(self) -> None:
        for path, why in self.allowed.items():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path} ({why}) has mode {oct(mode)}, expected 0o600"


def test_the_search_finds_every_form_of_a_planted_secret():
    """The audit can fail: each form a leak could take is found."""
    generated = generate_self_signed({"commonName": "x"}, None)
    key = private_key_secrets(generated.key_der, generated.cert_pem, "key")
    psk = [Secret("psk", PSK_KEY)]
    scalar = key[1].value
    pem = serialization.load_der_private_key(generated.key_der, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    for planted, secrets in [
        (b"x" + PSK_KEY + b"y", psk), (PSK_KEY.hex().upper(), psk),
        (json.dumps({"k": base64.b64encode(b"?" + PSK_KEY).decode()}), psk),
        (repr(PSK_KEY[:12]), psk), (pem.decode(), key), (generated.key_der.hex(), key),
        (base64.b64encode(b"ab" + generated.key_der), key), (scalar[5:20].hex(), key),
    ]:
        assert leaks(planted, secrets), planted
    assert leaks(generated.cert_pem + generated.cert_der, key) == []  # the public part is public
    assert leaks(PSK_IDENTITY + b"<20 bytes, hidden>", psk) == []


# -- the CLI -----------------------------------------------------------------------------------
class LogCapture(logging.Handler):
    """Every log record of every logger (formatted, with its arguments), at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {self.format(record)}")


@contextlib.contextmanager
def logging_state_kept():
    """The CLI reconfigures the `hilprov` loggers; put them back for the tests that follow."""
    names = ["", "hilprov", "hilprov.serial", "hilprov.sim", "hilprov.cloud.coiote", "pynrfjprog"]
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers),
                 logging.getLogger(n).propagate) for n in names}
    try:
        yield
    finally:
        for n, (level, handlers, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


@pytest.fixture(scope="module")
def cli_evidence(tmp_path_factory) -> Evidence:
    inputs = tmp_path_factory.mktemp("inputs")  # what the operator wrote: not hilprov output
    out = tmp_path_factory.mktemp("outputs")
    ev = Evidence(roots=[out], secrets=[Secret("PSK key", PSK_KEY),
                                        Secret("Coiote token", TOKEN.encode())])

    written: list[str] = []

    def write(name: str, text: str | bytes) -> Path:
        written.append(name)
        path = inputs / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    psk_cfg = write("psk_cfg", psk_config())
    token_file = write("token", TOKEN + "\n")
    server_der = write("server.der", generate_self_signed({"commonName": "srv"}, None).cert_der)
    captured = LogCapture()
    root = logging.getLogger()

    with contextlib.ExitStack() as stack:
        stack.enter_context(logging_state_kept())
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.chdir(out)
        patch.delenv("COIOTE_TOKEN", raising=False)
        root.addHandler(captured)
        root.setLevel(logging.DEBUG)
        stack.callback(root.removeHandler, captured)
        server = stack.enter_context(CoioteServer(token=TOKEN))
        other = stack.enter_context(CoioteServer(token="a-token-that-is-not-ours"))
        server_json = write("server.json", json.dumps(server.server_info()))
        other_json = write("other.json", json.dumps(other.server_info()))
        common = ["--records", str(out / "records.sqlite"), "--log-dir", str(out / "logs"), "-v",
                  "--reprovision"]  # one device, provisioned again and again

        def run(name: str, entry, argv: list[str], expect: int) -> None:
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = entry([str(a) for a in argv])
            ev.texts[f"{name} stdout"] = stdout.getvalue()
            ev.texts[f"{name} stderr"] = stderr.getvalue()
            assert code == expect, f"{name}: exit {code}\n{stderr.getvalue()[-3000:]}"

        board = ["--board", f"sim:{BOARD_IMEI}"]  # one device throughout
        run("ptool PSK, board, --token-file", ptool_main,
            ["-c", psk_cfg, "-s", server_json, "--token-file", token_file, *board, *common,
             "--json", "--output", out / "blob-psk.cbor"], 0)
        patch.setenv("COIOTE_TOKEN", TOKEN)
        run("hilprov provision PSK, board, COIOTE_TOKEN (already registered)", main,
            ["provision", "-c", psk_cfg, "-s", server_json, *board, *common], 0)
        run("ptool PSK, no board, COIOTE_TOKEN", ptool_main,
            ["-c", psk_cfg, "-e", BOARD_ENDPOINT, "-s", server_json, "-v",
             "--output", out / "blob-noboard.cbor"], 0)
        patch.delenv("COIOTE_TOKEN")
        run("ptool Certificate mode, board, replacing the PSK device", ptool_main,
            ["-c", CONFIGS / "endpoint_cfg_cert", "-C", CONFIGS / "cert_info.json",
             "-p", server_der, "-s", server_json, "--token-file", token_file, *board, *common,
             "--cert-dir", out / "cert", "--coiote-replace", "--output", out / "blob-cert.cbor"],
            0)
        run("ptool Certificate mode, no board", ptool_main,
            ["-c", CONFIGS / "endpoint_cfg_cert", "-C", CONFIGS / "cert_info.json", "-e",
             BOARD_ENDPOINT, "-p", server_der, "--cert-dir", out / "cert-noboard", "-v"], 0)
        run("token rejected by Coiote (401)", ptool_main,
            ["-c", psk_cfg, "-s", other_json, "--token-file", token_file, *board, *common], 6)
        server.inject(500, method="POST")  # the token works; the device creation fails
        run("Coiote fails while onboarding (500)", ptool_main,
            ["-c", psk_cfg, "-s", server_json, "--token-file", token_file, *board, *common], 6)
        run("device rejects the configuration", ptool_main,
            ["-c", write("rejected_cfg", psk_config(extra="\n    3: {0: {0: 'ACME'}},")),
             "--profile", "lwm2m", *board, *common], 9)
        run("validation error in a config holding the PSK", ptool_main,
            ["-c", write("invalid_cfg", psk_config(binding="x")), "-v"], 4)
        run("PSK key given as text", main,
            ["validate", write("text_key_cfg", psk_config(key=repr(PSK_KEY.decode())))], 4)
        run("PSK bytes in the wrong place (syntax)", ptool_main,
            ["-c", write("misplaced_cfg", psk_config(key=f"Objlink({PSK_KEY!r}, 1)")), "-v"],
            3)
        run("PSK bytes used as a key (syntax)", ptool_main,
            ["-c", write("key_cfg", psk_config().replace("RID.Security.SecretKey", repr(PSK_KEY))
                         .replace(repr(PSK_KEY) + ": " + repr(PSK_KEY), repr(PSK_KEY) + ": 1")),
             "-v"], 3)
        run("decode the blob", main, ["decode", out / "blob-psk.cbor", "-v"], 0)
        run("decode the blob as JSON", main, ["decode", out / "blob-cert.cbor", "--json"], 0)
        run("records as JSON", main, ["records", "--records", out / "records.sqlite",
                                      "--format", "json"], 0)
        run("records table", main, ["records", "--records", out / "records.sqlite"], 0)
        ev.texts["every log record"] = "\n".join(captured.lines)

    ev.databases.append(out / "records.sqlite")
    assert sorted(p.name for p in inputs.iterdir()) == sorted(written), "wrote into the inputs"
    for blob in ("blob-psk.cbor", "blob-noboard.cbor", "blob-cert.cbor", "SenMLCBOR"):
        ev.allow(out / blob, "the blob --output writes: it goes to the device")
    for key_file in sorted(out.rglob("client_key.der")):
        ev.allow(key_file, "the private key file")
        cert_pem = (key_file.parent / "client_cert.crt").read_bytes()
        ev.secrets += private_key_secrets(key_file.read_bytes(), cert_pem, str(key_file))
    assert len([p for p in ev.allowed if p.name == "client_key.der"]) == 2
    assert PSK_KEY in (out / "blob-psk.cbor").read_bytes()  # the run really used the secret
    return ev


def test_cli_output_logs_files_and_records_hold_no_secret(cli_evidence):
    cli_evidence.assert_clean()


def test_cli_key_files_and_blobs_are_0600(cli_evidence):
    cli_evidence.assert_allowed_files_are_private()


def test_cli_really_produced_what_is_searched(cli_evidence):
    """The runs did what the audit assumes: logs, records rows and a certificate exist, and the
    failures are the ones provoked."""
    texts = cli_evidence.texts
    assert "401" in texts["token rejected by Coiote (401) stderr"]
    assert "device rejected" in texts["device rejects the configuration stderr"]
    assert "/1/1/7: incorrect binding mode" in \
        texts["validation error in a config holding the PSK stderr"]
    assert "found bytes (20 bytes, value not shown)" in \
        texts["PSK bytes in the wrong place (syntax) stderr"]
    assert "<20 bytes, hidden; --show-secrets to print>" in texts["decode the blob stdout"]
    rows = json.loads(texts["records as JSON stdout"])
    assert len(rows) >= 5 and {r["outcome"] for r in rows} >= {"registered", "failed"}
    logs = [p for p in cli_evidence.files() if p.suffix == ".log"]
    assert logs and any("Device ready for provisioning." in p.read_text() for p in logs)


# -- the library's public objects --------------------------------------------------------------
def test_reprs_and_exception_texts_hold_no_secret(tmp_path):
    ev = Evidence(roots=[tmp_path / "out"], secrets=[Secret("PSK key", PSK_KEY),
                                                     Secret("Coiote token", TOKEN.encode())])
    (tmp_path / "out").mkdir()
    cfg = tmp_path / "psk_cfg"
    cfg.write_text(psk_config())
    shown: dict[str, object] = {}
    with CoioteServer(token=TOKEN) as server, CoioteServer(token="not-ours") as other:
        (tmp_path / "server.json").write_text(json.dumps(server.server_info()))
        fp = FactoryProvisioning(cfg, ENDPOINT, tmp_path / "server.json", TOKEN)
        blob = fp.serialize()
        shown.update(fp=fp, config=fp.config, entries=fp.config.entries(), records=decode(blob),
                     parsed=parse_config(psk_config(), "cfg"), loaded=load_config(cfg))

        client = CoioteClient(server.url, TOKEN, timeout=2.0, max_attempts=1)
        board = SimBoard("sim", state_dir=tmp_path / "state", cloud=CloudView(server.url, TOKEN))
        store = RecordStore(tmp_path / "out" / "records.sqlite")
        writer = RecordWriter(store)
        options = {"endpoint_cfg": cfg, "initial_hex": INITIAL_IMAGE, "final_hex": FINAL_IMAGE,
                   "timeouts": TIMEOUTS}
        try:
            flow = make_flow(board, client=client, token=TOKEN, observers=[writer],
                             log_dir=tmp_path / "out", **options)
            result = flow.run()
        finally:
            board.close()
        assert result.outcome == "registered", result.error
        shown.update(result=result, as_dict=result.as_dict(), options=split(**options),
                     flow=flow, cloud=flow.cloud, client=client,
                     server=server, writer=writer, store=store, steps=result.steps,
                     endpoint=hil.Endpoint(result.endpoint, result.security_mode, None, result,
                                           flow.build.blob),
                     build=flow.build, plan=flow.plan,
                     generated=generate_self_signed({"commonName": "x"}, ENDPOINT))

        errors: list[HilprovError] = []

        def expect_error(action) -> None:
            with pytest.raises(HilprovError) as info:
                action()
            errors.append(info.value)

        rejecting = CoioteClient(other.url, TOKEN, max_attempts=1)
        expect_error(lambda: rejecting.register_device(ENDPOINT, "/embedded/", "psk",
                                                       PSK_IDENTITY, PSK_KEY))
        # The endpoint exists with our PSK: registering it with another key is a conflict.
        expect_error(lambda: client.register_device(ENDPOINT, "/embedded/", "psk", PSK_IDENTITY,
                                                    b"another-key"))
        other.add_device({"properties": {"endpointName": "ep2"}, "domain": "/embedded/",
                          "securityMode": "psk", "dtlsIdentity": "id2",
                          "dtlsPsk": {"HexadecimalPsk": "00"}})
        other_client = CoioteClient(other.url, "not-ours", max_attempts=1)
        expect_error(lambda: other_client.register_device("ep2", "/embedded/", "psk",
                                                          PSK_IDENTITY, PSK_KEY))
        bad = tmp_path / "bad_cfg"
        bad.write_text(psk_config(binding="x"))
        expect_error(lambda: FactoryProvisioning(bad, ENDPOINT).check())
        expect_error(lambda: parse_config(psk_config(key=f"Objlink({PSK_KEY!r}, 1)"), "cfg"))
        expect_error(lambda: CoioteClient(server.url, TOKEN, timeout=0.5, max_attempts=1)
                     .get_device("no-such-device"))
        rejecting.close()
        other_client.close()
        client.close()

    for name, obj in shown.items():
        ev.texts[f"repr({name})"] = repr(obj)
        ev.texts[f"str({name})"] = str(obj)
    for n, exc in enumerate(errors):
        ev.texts[f"error {n} ({type(exc).__name__})"] = "\n".join(
            [str(exc), repr(exc), repr(exc.args), repr(vars(exc))])
    assert [e.exit_code for e in errors] == [6, 6, 6, 4, 3, 6]
    ev.databases.append(store.path)
    ev.assert_clean()


# -- the pytest plugin -------------------------------------------------------------------------
PLUGIN_TESTS = """
import pytest

@pytest.mark.hil
def test_psk(provisioned_endpoint):
    print("endpoint:", provisioned_endpoint, provisioned_endpoint.result.as_dict())

@pytest.mark.hil
def test_cert(provision):
    endpoint = provision(endpoint_cfg="configs/endpoint_cfg_cert",
                         cert_info="configs/cert_info.json", server_cert="configs/server.der",
                         replace_cloud_device=True)
    print("endpoint:", endpoint)
    print("key file:", [p for p in endpoint.result.written if p.endswith("client_key.der")][0])
    assert endpoint.ok, endpoint.result.error

@pytest.mark.hil
def test_that_fails_and_shows_everything(provision, dut):
    endpoint = provision(replace_cloud_device=True)
    dut.write(b"\\n")
    dut.expect_exact("uart:~$", timeout=5)
    assert endpoint.result.outcome == "failed"
"""


def test_pytest_plugin_output_junit_logs_and_records_hold_no_secret(pytester, monkeypatch):
    configs = pytester.path / "configs"  # the operator's inputs: not searched
    configs.mkdir()
    (configs / "endpoint_cfg").write_text(psk_config())
    (configs / "endpoint_cfg_cert").write_text((CONFIGS / "endpoint_cfg_cert").read_text())
    (configs / "cert_info.json").write_text((CONFIGS / "cert_info.json").read_text())
    (configs / "server.der").write_bytes(generate_self_signed({"commonName": "s"}, None).cert_der)
    pytester.makepyfile(test_plugin_audit=PLUGIN_TESTS)
    out = pytester.path / "out"
    junit = out / "junit.xml"
    with CoioteServer(token=TOKEN) as server:
        (configs / "server.json").write_text(json.dumps(server.server_info()))
        monkeypatch.setenv("COIOTE_TOKEN", TOKEN)
        result = pytester.runpytest(
            "--board", "sim", "--coiote-server", "configs/server.json",
            "--hil-endpoint-cfg", "configs/endpoint_cfg",
            "--hil-logdir", str(out / "logs"), "--hil-records", str(out / "records.sqlite"),
            f"--junitxml={junit}", "-o", "junit_logging=all", "--log-level=DEBUG", "-rA", "-v")
    result.assert_outcomes(passed=2, failed=1)
    made = {p.name for p in pytester.path.iterdir()} - {"configs", "test_plugin_audit.py", "out"}
    assert made <= {".pytest_cache", "__pycache__"}, f"hilprov wrote outside its dirs: {made}"

    ev = Evidence(roots=[out], texts={"pytest stdout": result.stdout.str(),
                                      "pytest stderr": result.stderr.str()},
                  databases=[out / "records.sqlite"],
                  secrets=[Secret("PSK key", PSK_KEY), Secret("Coiote token", TOKEN.encode())])
    # The device's private key and the virtual board's flash (which holds its keys) lived in a
    # private temporary directory, never under the log directory CI uploads; it is gone now.
    assert not list(out.rglob("client_key.der")) and not list(out.rglob("anjay_factory.cbor"))
    key_file = Path(re.search(r"key file: (\S+)", result.stdout.str()).group(1))
    assert "hilprov-secrets-" in str(key_file) and not key_file.exists()  # removed at the end
    ev.assert_clean()

    xml = junit.read_text()  # the audit searched a junit that really holds the failure and logs
    assert "test_that_fails_and_shows_everything" in xml and "Endpoint(name=" in xml
    assert re.search(r"DEBUG +hilprov", xml), "DEBUG log records should be in the junit XML"
    assert "serial log" in xml
