"""Fuzzing the parsers a factory line feeds untrusted bytes to, with hypothesis.

* the endpoint config parser: only HilprovError escapes, and nothing is ever executed (an audit
  hook watches every event Python raises while parsing; a sentinel file must never appear);
* the SenML decoder: only SenmlError/HilprovError escapes, and what it returns is well typed;
* SMP framing on the host (SmpFileClient over a real pty to a noisy far end) and on the device
  (the frame assembler and the SMP server): never an unexpected exception, never a wrong answer;
* the virtual board on random frames over its pty: it answers or ignores, and still answers an
  echo afterwards.

Example counts are bounded (a few hundred at most) and deadlines are off: CI speed, no flakes.
"""

from __future__ import annotations

import base64
import logging
import os
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from smp import packet as smppacket
from smp.os_management import EchoWriteRequest

from hilprov.board.serial import SerialPort
from hilprov.board.smp import SmpFileClient
from hilprov.core.certs import generate_self_signed
from hilprov.core.config import EndpointConfig, load_config, parse_config
from hilprov.core.lwm2m import Objlink
from hilprov.core.plan import with_credentials
from hilprov.core.senml import VALUE_LABELS, Record, SenmlError, decode, encode_config
from hilprov.errors import HilprovError
from hilprov.sim.board import VirtualBoard
from hilprov.sim.factory_fs import MountTable, RamFs
from hilprov.sim.pty import PtyLink
from hilprov.sim.smp_server import CONTINUE, START, FrameAssembler, SmpServer, zephyr_tx_lines
from tests import CONFIGS
from tests.unit.test_senml import EXAMPLE_A

# Fuzzed configs like "1if" make ast.parse warn (SyntaxWarning) before it refuses them.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def note(outcome: str) -> None:
    """Count outcomes in hypothesis' statistics (--hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(outcome)


# -- the audit hook: proof that parsing runs no code ------------------------------------------
SENTINEL = Path(tempfile.gettempdir()) / f"hilprov-fuzz-sentinel-{os.getpid()}"
_watch: dict[int, list[tuple[str, tuple]]] = {}  # thread id -> events seen while watching


def _audit(event: str, args: tuple) -> None:
    events = _watch.get(threading.get_ident())
    if events is not None:
        events.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only inside `watching`


class watching:
    """Record every audit event this thread raises inside the `with` block."""

    def __enter__(self) -> list[tuple[str, tuple]]:
        self.events: list[tuple[str, tuple]] = []
        _watch[threading.get_ident()] = self.events
        return self.events

    def __exit__(self, *exc) -> None:
        _watch.pop(threading.get_ident(), None)


def forbidden(events: list[tuple[str, tuple]], text: str, source: str) -> list:
    """Every event except the one `compile` that ast.parse raises for exactly this text: that
    compile only builds a syntax tree (PyCF_ONLY_AST); running code would raise "exec"."""
    allowed = (text, text.encode("utf-8", "surrogatepass"))
    return [(name, args[:2]) for name, args in events
            if not (name == "compile" and args[0] in allowed and args[1] == source)]


def parse_watched(text: str) -> EndpointConfig | None:
    """parse_config under the audit hook: only HilprovError may escape, no event but the
    parse's own compile may happen, and the sentinel file must not appear."""
    source = "fuzz.cfg"
    with watching() as events:
        try:
            config = parse_config(text, source)
        except HilprovError:
            config = None
    assert forbidden(events, text, source) == []
    assert not SENTINEL.exists(), "parsing a config created the sentinel file"
    note("parsed" if config is not None else "refused")
    return config


ATTACKS = [
    f"__import__('os').system('touch {SENTINEL}')", f"open('{SENTINEL}', 'w')",
    f"(lambda: open('{SENTINEL}', 'w'))()", "().__class__.__base__.__subclasses__()",
    "exec('import os')", "eval('1+1')", "breakpoint()", "globals()", "__builtins__",
    "[x for x in ()]", "{**{}}", "f'{1}'", "lambda: 0", ".__class__", "__import__(", "open(",
    "lambda", "import os", "yield 1", "await x", "(x := 1)", "RID.Security.__class__",
    "OID.__dict__", "Objlink(open('x'), 1)", "Objlink(OID.Security, 0)", "print(1)",
]
TOKENS = ATTACKS + [
    "{", "}", ":", ",", "'", '"', "b'", "\\x00", "(", ")", "[", "]", "-", "+", "#", "\n",
    "1", "0", "65535", "1e309", "-0.0", "True", "None", "...", "'''", "OID.Security",
    "RID.Security.Mode", "RID.Server.Binding", "\x00", "\ud800", "é", " ",
]
BASE_CONFIGS = [(CONFIGS / name).read_text()
                for name in ("endpoint_cfg", "endpoint_cfg_cert", "endpoint_cfg_nosec")]


@st.composite
def mutated_config(draw) -> str:
    """A valid config with random insertions, deletions and replacements of characters and
    tokens (including code that would run if the file were eval'ed)."""
    text = draw(st.sampled_from(BASE_CONFIGS))
    piece = st.one_of(st.sampled_from(TOKENS), st.text(max_size=4))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert":
            text = text[:at] + draw(piece) + text[at:]
        else:
            end = min(len(text), at + draw(st.integers(1, 12)))
            text = text[:at] + (draw(piece) if kind == "replace" else "") + text[end:]
    return text


def test_the_audit_hook_sees_code_running_and_the_sentinel_check_works():
    """The checks below would catch an eval: executing code raises "exec", opening raises
    "open", and a created sentinel is noticed."""
    text = f"open({str(SENTINEL)!r}, 'w').close()"
    with watching() as events:
        exec(compile(text, "fuzz.cfg", "exec"))  # noqa: S102 - proving the detector works
    try:
        names = [name for name, _ in forbidden(events, text, "fuzz.cfg")]
        assert "exec" in names and "open" in names
        assert SENTINEL.exists()
    finally:
        SENTINEL.unlink(missing_ok=True)


@pytest.mark.parametrize("attack", ATTACKS,  # ids without the sentinel's pid: xdist-stable
                         ids=[a.replace(str(SENTINEL), "SENTINEL") for a in ATTACKS])
def test_each_attack_alone_is_refused_and_runs_nothing(attack):
    text = "{0: {1: {0: " + attack + "}}}"
    if attack == "Objlink(OID.Security, 0)":
        assert parse_watched(text) is not None  # the one call the format allows
    else:
        assert parse_watched(text) is None


@FUZZ
@given(st.text(max_size=400))
def test_config_parser_on_arbitrary_text(text):
    parse_watched(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_config_parser_on_token_soup(text):
    parse_watched(text)


@settings(FUZZ, max_examples=300)
@given(mutated_config())
def test_config_parser_on_mutated_valid_configs(text):
    config = parse_watched(text)
    if config is not None:  # what parses holds only plain values, never an object with code
        for entry in config.entries():
            assert type(entry.value) in (bool, int, float, str, bytes, Objlink), entry


def test_config_files_that_are_not_utf8_are_a_config_error(tmp_path):
    path = tmp_path / "cfg"
    path.write_bytes(b"{0: {1: {0: '\xff'}}}")
    with pytest.raises(HilprovError, match="not UTF-8"):
        load_config(path)


# -- SenML -------------------------------------------------------------------------------------
def _cert_blob() -> bytes:
    config = load_config(CONFIGS / "endpoint_cfg_cert")
    server = generate_self_signed({"commonName": "server"}, None)
    endpoint = generate_self_signed({"commonName": "endpoint"}, None)
    return encode_config(with_credentials(config, server.cert_der, endpoint.cert_der,
                                          endpoint.key_der))


BLOBS = [EXAMPLE_A, _cert_blob()]
_EXPECTED_TYPES = {0: str, 2: (int, float), 3: str, 4: bool, 8: bytes, "vlo": str}


def decode_checked(blob: bytes) -> list[Record] | None:
    """senml.decode: only SenmlError (a HilprovError) may escape; what it returns is typed."""
    try:
        records = decode(blob)
    except SenmlError:
        note("refused")
        return None
    note("decoded")
    for record in records:
        assert isinstance(record.name, str) and record.label in VALUE_LABELS
        assert isinstance(record.value, _EXPECTED_TYPES[record.label])
        assert not (record.label == 2 and isinstance(record.value, bool))
    return records


@FUZZ
@given(st.binary(max_size=300))
def test_senml_decoder_on_arbitrary_bytes(blob):
    decode_checked(blob)


@st.composite
def mutated_blob(draw) -> bytes:
    blob = bytearray(draw(st.sampled_from(BLOBS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(blob)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        if kind == "flip" and at < len(blob):
            blob[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            blob[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete":
            del blob[at:at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del blob[at:]
        else:
            blob[at:at] = blob[max(0, at - 20):at]
    return bytes(blob)


@settings(FUZZ, max_examples=300)
@given(mutated_blob())
def test_senml_decoder_on_mutated_valid_blobs(blob):
    decode_checked(blob)


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                    st.text(max_size=8), st.binary(max_size=8), st.just(cbor2.undefined))
_cbor_value = st.recursive(
    _scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-10, 10), st.text(max_size=3)), inner, max_size=4),
        st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 3, 4, 5, 24, 25, 28, 29, 30, 32, 35,
                                                  258, 260, 261, 55799, 40001]), inner)),
    max_leaves=12)
_record = st.dictionaries(st.sampled_from([-3, -2, 0, 1, 2, 3, 4, 6, 8, "vlo", "n", -1]),
                          _cbor_value, max_size=4)


@FUZZ
@given(st.one_of(st.lists(_record, max_size=5), _cbor_value))
def test_senml_decoder_on_random_cbor_structures(value):
    try:
        blob = cbor2.dumps(value)
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError):
        assume(False)  # not encodable in the first place
    decode_checked(blob)


def test_senml_decoder_survives_deep_nesting_and_huge_lengths():
    for blob in (b"\x81" * 100_000, b"\x9f" * 100_000, b"\x9b" + b"\xff" * 8,
                 b"\xbb" + b"\xff" * 8, b"\x5b" + b"\x7f" + b"\xff" * 7):
        assert decode_checked(blob) is None


# -- SMP framing: the device side ---------------------------------------------------------------
_marker = st.sampled_from([START, CONTINUE, b"", b"\x06", b"\x04"])
_b64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
               max_size=130).map(str.encode)
_garbage_line = st.one_of(
    st.builds(lambda m, body: m + body + b"\n", _marker,
              st.one_of(_b64, st.binary(max_size=130).map(lambda b: b.replace(b"\n", b"")))),
    st.integers(1000, 1100).map(lambda n: START + b"A" * n + b"\n"))  # an endless "frame"


def _packet(op: int, version: int, flags: int, group: int, seq: int, cmd: int, body: bytes,
            length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return struct.pack(">BBHHBB", (version << 3) | op, flags, length, group, seq, cmd) + body


_names = st.sampled_from(["/lfs1/f", "/lfs1/g", "/lfs1/", "/lfs1/a/b", "/factory/endpoint.txt",
                          "/nope/x", "", "x" * 70, "/lfs1/" + "é" * 30])
_lfs_names = st.integers(0, 3).flatmap(lambda n: st.sampled_from(["/lfs1/f", "/lfs1/g"])
                                        if n else _names)
_field = st.one_of(_scalar, _names, st.lists(st.integers(), max_size=3))


def _maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly (7 in 8) a valid value for the field, sometimes anything. (Not one_of: that
    flattens `_field`'s branches and would pick a valid value only rarely.)"""
    return st.integers(0, 7).flatmap(lambda n: valid if n else _field)


# (op, group, cmd) -> the fields that command takes
_COMMANDS = {
    (2, 0, 0): {"d": _maybe(st.text(max_size=20))},  # echo
    (0, 0, 6): {},  # MCUmgr parameters
    (2, 8, 0): {"off": _maybe(st.sampled_from([0, 0, 0, 1, 8, 300])),
                "data": _maybe(st.binary(max_size=300)),
                "name": _maybe(_lfs_names), "len": _maybe(st.integers(0, 600))},  # upload
    (0, 8, 0): {"off": _maybe(st.sampled_from([0, 0, 0, 1, 8, 300])),
                "name": _maybe(_lfs_names)},  # download
    (0, 8, 1): {"name": _maybe(_lfs_names)},  # status
}


@st.composite
def smp_request(draw) -> bytes:
    """A well-formed SMP v2 request for a command the device knows, with mostly valid fields
    (a field may be missing or of the wrong type)."""
    op, group, cmd = draw(st.sampled_from(sorted(_COMMANDS)))
    fields = _COMMANDS[(op, group, cmd)]
    body = draw(st.fixed_dictionaries(fields))
    if fields and draw(st.integers(0, 7)) == 0:
        del body[draw(st.sampled_from(sorted(fields)))]  # sometimes a field is missing
    return _packet(op, 1, 0, group, draw(st.integers(0, 255)), cmd, cbor2.dumps(body))


@st.composite
def raw_smp_packet(draw) -> bytes:
    """An SMP packet with a random header (biased to the groups the device knows) and body."""
    body = draw(st.one_of(st.dictionaries(st.sampled_from(["off", "data", "name", "len", "d"]),
                                          _field).map(cbor2.dumps),
                          _cbor_value.map(cbor2.dumps), st.binary(max_size=64)))
    length = draw(st.one_of(st.none(), st.none(), st.integers(0, 0xFFFF)))  # None: right
    op = draw(st.sampled_from([0, 2, 0, 2, 1, 3, 4, 7]))  # mostly requests (read, write)
    version = draw(st.sampled_from([1, 1, 0, 2, 3]))  # mostly SMP v2, some v1 and unknown
    group = draw(st.sampled_from([0, 8, 8, 1, 9, 63, 64, 0xFFFF]))
    return _packet(op, version, draw(st.integers(0, 255)), group, draw(st.integers(0, 255)),
                   draw(st.integers(0, 10)), body, length)


def smp_packet() -> st.SearchStrategy[bytes]:
    return st.one_of(smp_request(), raw_smp_packet())


def fresh_server() -> SmpServer:
    mounts = MountTable()
    mounts.mount("/lfs1", RamFs(capacity=64 * 1024))
    return SmpServer(mounts, buf_size=2048)


@FUZZ
@given(st.lists(st.one_of(_garbage_line, smp_packet().map(
    lambda p: b"".join(zephyr_tx_lines(p)))), max_size=8))
def test_device_frame_assembler_never_fails_and_recovers_on_the_next_frame(chunks):
    assembler = FrameAssembler(2048)
    for chunk in chunks:
        for line in chunk.splitlines(keepends=True):
            packet = assembler.feed(line)
            assert packet is None or isinstance(packet, bytes)
    good = _packet(2, 1, 0, 0, 7, 0, cbor2.dumps({"d": "ok"}))
    lines = list(smppacket.encode(good, line_length=128))
    assert [assembler.feed(line) for line in lines][-1] == good


@settings(FUZZ, max_examples=300)
@given(st.lists(smp_packet(), min_size=1, max_size=6))
def test_device_smp_server_answers_or_ignores_every_packet(packets):
    server = fresh_server()  # one server for the sequence: upload contexts carry over
    for packet in packets:
        response = server.handle(packet)
        if len(packet) < 8 or packet[0] & 0x07 not in (0, 2):
            assert response is None  # too short, or not a request: servers stay silent
            note("ignored")
            continue
        assert response is not None, "a request always gets an answer (maybe an error)"
        op, _flags, length, group, seq, cmd = struct.unpack(">BBHHBB", response[:8])
        assert (op & 0x07, group, seq, cmd) == (
            (packet[0] & 0x07) + 1, *struct.unpack(">HBB", packet[4:8]))
        assert length == len(response) - 8
        body = cbor2.loads(response[8:])
        assert isinstance(body, dict)
        if "rc" in body or "err" in body:
            note("error answer")
        else:
            note(f"success: op {packet[0] & 0x07} group {group} cmd {cmd}")


# -- SMP framing: the host side -----------------------------------------------------------------
def _parse_frame_never_fails(frame: bytes) -> None:
    reply = SmpFileClient._parse_frame(frame)
    assert reply is None or (isinstance(reply.body, dict) and reply.frame == frame)


@FUZZ
@given(st.one_of(st.binary(max_size=64), smp_packet()))
def test_host_frame_parser_never_fails(frame):
    _parse_frame_never_fails(frame)


class NoisyDevice:
    """The far end of a real pty: answers each FS status request with `answer`, after writing
    `noise` (garbage lines, then well-framed responses with other sequence numbers)."""

    def __init__(self) -> None:
        self.link = PtyLink(self._rx)
        self.assembler = FrameAssembler(2048)
        self.pending = b""
        self.answer = 0
        self.noise: list[bytes] = []
        self.stale: list[int] = []

    def _rx(self, segment: bytes) -> None:
        self.pending += segment
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            packet = self.assembler.feed(line + b"\n")
            if packet is not None:
                self._answer(packet)

    def _answer(self, packet: bytes) -> None:
        op, _flags, _length, group, seq, cmd = struct.unpack(">BBHHBB", packet[:8])
        version = (op >> 3) & 0x03

        def response(body: dict, seq: int = seq) -> bytes:
            return _packet((op & 0x07) + 1, version, 0, group, seq, cmd, cbor2.dumps(body))

        if (group, cmd) == (0, 6):
            self.link.write(b"".join(zephyr_tx_lines(response({"buf_size": 2048,
                                                               "buf_count": 4}))))
            return
        out = list(self.noise)
        for offset in self.stale:  # a right-looking answer to another request: must be skipped
            out += zephyr_tx_lines(response({"len": 999_999}, (seq + offset) % 256))
        out += zephyr_tx_lines(response({"len": self.answer}))
        self.link.write(b"".join(out))


@pytest.fixture(scope="module")
def noisy():
    device = NoisyDevice()
    port = SerialPort(device.link.open(), 115200)
    try:
        yield device, SmpFileClient(port, timeout=3.0, retries=1)
    finally:
        port.close()
        device.link.close()


@FUZZ
@given(st.lists(_garbage_line, max_size=6), st.lists(st.integers(1, 255), max_size=3),
       st.integers(0, 2**32))
def test_host_client_finds_its_answer_behind_garbage_and_stale_frames(noisy, noise, stale,
                                                                      answer):
    device, client = noisy
    device.noise, device.stale, device.answer = noise, stale, answer
    assert client.status("/lfs1/f") == answer
    assert client.timeouts == 0


# -- the virtual board over its pty ------------------------------------------------------------
class ErrorLog(logging.Handler):
    """Collects the virtual board's error logs: its threads log a crash instead of dying."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def board_port():
    errors = ErrorLog()
    logging.getLogger("hilprov.sim").addHandler(errors)
    board = VirtualBoard(None, name="fuzz")
    port = SerialPort(board.start(power_on=False), 115200)  # the console open before the boot
    try:
        board.reset()
        port.expect_exact("uart:~$", 10)
        yield board, port, errors
    finally:
        port.close()
        board.stop()
        logging.getLogger("hilprov.sim").removeHandler(errors)


def echo_answered(port: SerialPort, text: str, seq: int, timeout: float = 3.0) -> bool:
    """Send an SMP echo of `text`; True once its answer arrives. Every other frame (answers to
    the random requests, which may be echoes with this sequence number too) is skipped."""
    for line in smppacket.encode(bytes(EchoWriteRequest(d=text, sequence=seq)), 128):
        port.write_smp_line(line)
    deadline = time.monotonic() + timeout
    decoder = None
    while time.monotonic() < deadline:
        line = port.read_smp_line(0.1)
        if line is None:
            continue
        if line.startswith(START):
            decoder = smppacket.decode()
            next(decoder)
        if decoder is None:
            continue
        try:
            decoder.send(line)
            continue
        except StopIteration as done:
            frame = bytes(done.value)
        except Exception:  # noqa: BLE001 - a garbled frame is skipped, as a client does
            decoder = None
            continue
        decoder = None
        if frame[0] & 0x07 == 3 and frame[4:8] == struct.pack(">HBB", 0, seq, 0) \
                and cbor2.loads(frame[8:]) == {"r": text}:
            return True
    return False


@settings(FUZZ, max_examples=100)
@given(st.lists(st.one_of(
    _garbage_line,
    smp_packet().filter(lambda p: b"provision" not in p and b"result" not in p).map(
        lambda p: b"".join(smppacket.encode(p, line_length=128)))), min_size=1, max_size=6),
    st.integers(0, 255))
def test_virtual_board_answers_an_echo_after_random_frames(board_port, chunks, seq):
    board, port, errors = board_port
    for chunk in chunks:
        for line in chunk.splitlines(keepends=True):
            port.write(line)
    port.write(b"\n")  # a partial frame must not swallow the echo (smp-notes §6.3)
    text = base64.b64encode(os.urandom(6)).decode()
    assert echo_answered(port, text, seq), f"no echo answer; device stats {board.stats}"
    assert errors.messages == []  # e.g. "SMP request handling failed" from the work thread
