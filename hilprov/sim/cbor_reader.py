"""A byte-exact model of the SenML-CBOR reader inside Anjay 3.11 (spec §3).

cbor2 cannot stand in for the device here: the device reads the blob with a streaming,
look-ahead CBOR decoder whose quirks decide whether a blob is accepted. The model keeps the same
shape so that the quirks fall out of the same mechanics instead of being special-cased:

* the decoder always holds the *header of the next item* (look-ahead); reading a value consumes
  it and immediately pre-reads the next header, counting it against the enclosing array/map;
* a definite container is closed only when the header after its last item is pre-read, so a
  break byte (``ff``) right after a definite map inside an indefinite array is an error (the
  device's "indefinite array of definite maps" bug);
* end of input between items is a clean finish, wherever it happens; inside an item it is an
  error ("SenML payload contains extraneous data" at close);
* tags are skipped, except tag 4 (decimal fraction) whose decoding double-counts an item and
  desynchronises the map that holds it;
* SenML labels ``bt`` (-3) and ``t`` (6) are accepted but their value is *not* skipped, so the
  value is then read as the next label;
* names, base names and labels are C strings of bounded size (24, 24 and 3 bytes) and stop at
  the first NUL byte; path segments are parsed with C ``strtol`` (leading blanks and a sign are
  tolerated).

The device is a 32-bit target, so ``size_t`` limits are 32-bit.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass, field

SIZE_MAX = 2**32 - 1
PTRDIFF_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_INDEFINITE = -1
_BREAK = 0xFF
_EXT_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}
_TAG_DECIMAL_FRACTION = 4

# Nesting allowed by the SenML reader: the outer array, a record map and one more level (a chunked
# string or the array of a decimal fraction).
MAX_SENML_CBOR_NEST_STACK_SIZE = 3
# sizeof("/65535/65535/65535/65535") - 1: the longest base name, name, or bn+n.
MAX_PATH_CHARS = 24
_OBJLNK_LABEL = b"vlo"
ID_INVALID = 65535


class DecoderState(enum.Enum):
    OK = "ok"
    FINISHED = "finished"
    ERROR = "error"


class ValueType(enum.Enum):
    NULL = "null"
    BOOL = "bool"
    UINT = "uint"
    NEGATIVE_INT = "negative int"
    FLOAT = "float"      # half or single precision
    DOUBLE = "double"    # double precision or a decimal fraction
    BYTE_STRING = "byte string"
    TEXT_STRING = "text string"
    ARRAY = "array"
    MAP = "map"


NUMERIC_TYPES = frozenset({ValueType.UINT, ValueType.NEGATIVE_INT, ValueType.FLOAT,
                           ValueType.DOUBLE})


@dataclass(frozen=True)
class Number:
    """A decoded CBOR number with the type the device keeps alongside it."""

    type: ValueType
    value: int | float


def _convertible_to_int(value: float, lo: int, hi_exclusive: int) -> bool:
    return math.isfinite(value) and value == math.trunc(value) and lo <= value < hi_exclusive


def number_to_i64(number: Number) -> int | None:
    """The device's integer view of a number: exact integers only, within int64."""
    if number.type is ValueType.UINT:
        return int(number.value) if number.value <= INT64_MAX else None
    if number.type is ValueType.NEGATIVE_INT:
        return int(number.value)
    if _convertible_to_int(float(number.value), -(2**63), 2**63):
        return int(number.value)
    return None


def number_to_u64(number: Number) -> int | None:
    """The device's unsigned view: negative CBOR integers are never accepted, -0.0 is."""
    if number.type is ValueType.UINT:
        return int(number.value)
    if number.type is ValueType.NEGATIVE_INT:
        return None
    if _convertible_to_int(float(number.value), 0, 2**64):
        return int(number.value)
    return None


@dataclass
class _Nest:
    type: ValueType
    all_items: int          # _INDEFINITE, or the number of items (2 per map pair)
    items_parsed: int = 0


class CborDecoder:
    """Anjay's look-ahead CBOR decoder over a complete blob (end of blob = end of stream)."""

    def __init__(self, data: bytes, max_nesting: int = MAX_SENML_CBOR_NEST_STACK_SIZE,
                 log: list[str] | None = None) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._max_nesting = max_nesting
        self._stack: list[_Nest] = []
        self.state = DecoderState.OK
        self._type = ValueType.NULL
        self._major = 0
        self._info = 0
        self.log: list[str] = [] if log is None else log
        self._preprocess_next_value()

    # --- stream -----------------------------------------------------------------------------

    @property
    def bytes_consumed(self) -> int:
        return self._pos

    def _getch(self) -> int | None:
        if self._pos >= len(self._data):
            return None
        byte = self._data[self._pos]
        self._pos += 1
        return byte

    def _read(self, count: int) -> bytes | None:
        """All `count` bytes, or None (and the stream drained) when the input is shorter."""
        end = self._pos + count
        if end > len(self._data):
            self._pos = len(self._data)
            return None
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    # --- look-ahead -------------------------------------------------------------------------

    def _preprocess_next_value(self) -> None:
        data_must_follow = False
        while self.state is DecoderState.OK:
            byte = self._getch()
            if byte is None:
                self.state = DecoderState.ERROR if data_must_follow else DecoderState.FINISHED
                return
            if byte == _BREAK:
                top = self._stack[-1] if self._stack else None
                if (top is None or top.all_items != _INDEFINITE
                        or (top.type is ValueType.MAP and top.items_parsed % 2)):
                    self.state = DecoderState.ERROR
                else:
                    self._stack.pop()
                continue
            self._major, self._info = byte >> 5, byte & 0x1F
            if self._major == 6 and self._info != _TAG_DECIMAL_FRACTION:
                self._skip_tag()
                data_must_follow = True
                continue
            self._classify_item()
            break
        if self.state is DecoderState.ERROR:
            return
        while self._stack:
            top = self._stack[-1]
            if top.all_items == _INDEFINITE or top.all_items - top.items_parsed:
                top.items_parsed += 1
                return
            self._stack.pop()

    def _classify_item(self) -> None:
        major, info = self._major, self._info
        if major in (0, 1, 2, 3, 4, 5):
            self._type = (ValueType.UINT, ValueType.NEGATIVE_INT, ValueType.BYTE_STRING,
                          ValueType.TEXT_STRING, ValueType.ARRAY, ValueType.MAP)[major]
        elif major == 6:
            self._type = ValueType.DOUBLE  # tag 4: a decimal fraction follows
        elif info in (20, 21):
            self._type = ValueType.BOOL
        elif info == 22:
            self._type = ValueType.NULL
        elif info in (25, 26):
            self._type = ValueType.FLOAT
        elif info == 27:
            self._type = ValueType.DOUBLE
        else:
            self.log.append(f"DEBUG [cbor] unsupported simple type {info}")
            self.state = DecoderState.ERROR

    def _skip_tag(self) -> None:
        size = _EXT_SIZES.get(self._info)
        if size is not None and self._read(size) is None:
            self.state = DecoderState.ERROR

    def _parse_uint(self) -> int | None:
        """The header's argument. Additional info 28..31 is taken literally, as the device does."""
        size = _EXT_SIZES.get(self._info)
        if size is None:
            return self._info
        raw = self._read(size)
        if raw is None:
            self.state = DecoderState.ERROR
            return None
        return int.from_bytes(raw, "big")

    def _parse_size(self) -> int | None:
        value = self._parse_uint()
        return value if value is not None and value <= SIZE_MAX else None

    def _push_nested(self) -> bool:
        if len(self._stack) == self._max_nesting:
            self.log.append("DEBUG [cbor] too many nested structures, the limit is: "
                            f"{self._max_nesting}")
            self.state = DecoderState.ERROR
            return False
        kind = self._type
        if kind not in (ValueType.ARRAY, ValueType.MAP, ValueType.BYTE_STRING,
                        ValueType.TEXT_STRING):
            self.state = DecoderState.ERROR
            return False
        if kind in (ValueType.ARRAY, ValueType.MAP) and self._info != 31:
            size = self._parse_size()
            if size is None or size > SIZE_MAX // 2:
                self.state = DecoderState.ERROR
                return False
            if kind is ValueType.MAP:
                if size > PTRDIFF_MAX // 2:
                    self.state = DecoderState.ERROR
                    return False
                size *= 2
            self._stack.append(_Nest(kind, size))
        else:
            self._stack.append(_Nest(kind, _INDEFINITE))
        return True

    # --- public reading API (json_like_decoder) ---------------------------------------------

    def current_value_type(self) -> ValueType | None:
        return self._type if self.state is DecoderState.OK else None

    def nesting_level(self) -> int:
        return len(self._stack) if self.state is DecoderState.OK else 0

    def enter_array(self) -> bool:
        return self._enter(ValueType.ARRAY)

    def enter_map(self) -> bool:
        return self._enter(ValueType.MAP)

    def _enter(self, kind: ValueType) -> bool:
        if self.state is not DecoderState.OK or self._type is not kind or not self._push_nested():
            return False
        self._preprocess_next_value()
        return True

    def read_bool(self) -> bool | None:
        if self.state is not DecoderState.OK or self._type is not ValueType.BOOL:
            return None
        value = self._info == 21
        self._preprocess_next_value()
        return value

    def number(self) -> Number | None:
        if self.state is not DecoderState.OK:
            return None
        kind = self._type
        value: int | float | None
        if kind is ValueType.UINT:
            value = self._parse_uint()
            self._preprocess_next_value()
        elif kind is ValueType.NEGATIVE_INT:
            value = self._decode_negative_int()
        elif kind is ValueType.FLOAT:
            value = self._decode_float()
        elif kind is ValueType.DOUBLE:
            value = self._decode_double()
        else:
            return None
        return None if value is None else Number(kind, value)

    def _decode_negative_int(self) -> int | None:
        magnitude = self._parse_uint()
        if magnitude is None:
            return None
        if magnitude > INT64_MAX:
            self.state = DecoderState.ERROR
            return None
        self._preprocess_next_value()
        return -magnitude - 1

    def _decode_float(self) -> float | None:
        raw = self._read(2 if self._info == 25 else 4)
        if raw is None:
            self.state = DecoderState.ERROR
            return None
        value = struct.unpack(">e" if len(raw) == 2 else ">f", raw)[0]
        self._preprocess_next_value()
        return value

    def _decode_double(self) -> float | None:
        if self._major == 6:
            value = self._decode_decimal_fraction()
        else:
            raw = self._read(8)
            value = None if raw is None else struct.unpack(">d", raw)[0]
        if value is None:
            self.state = DecoderState.ERROR
            return None
        # The device pre-reads once more here, even after a decimal fraction that already did:
        # this is what desynchronises a record holding a tag-4 value.
        self._preprocess_next_value()
        return value

    def _decode_decimal_fraction(self) -> float | None:
        self._preprocess_next_value()
        array_level = self.nesting_level() + 1
        if not self.enter_array() or self.nesting_level() != array_level:
            return None
        exponent = self._integer_as_double()
        if exponent is None or self.nesting_level() != array_level:
            return None
        mantissa = self._integer_as_double()
        if mantissa is None or self.nesting_level() == array_level:
            return None
        try:
            scale = 10.0 ** exponent
        except OverflowError:
            scale = math.inf
        return mantissa * scale

    def _integer_as_double(self) -> float | None:
        number = self.number()
        if number is None or number.type not in (ValueType.UINT, ValueType.NEGATIVE_INT):
            return None
        return float(number.value)

    def read_bytes(self, capacity: int | None = None) -> bytes | None:
        """A byte or text string (definite or chunked), like the device's `bytes()` call.

        `capacity` models a fixed C buffer: a longer string fails and puts the decoder in error.
        """
        indefinite = self._info == 31
        available = 0
        message_finished = False
        initial_level = 0
        if indefinite:
            if not self._push_nested():
                self.state = DecoderState.ERROR
                return None
            initial_level = len(self._stack)
            step = self._next_chunk(initial_level)
            if step is None:
                return None
            message_finished, available = step
        else:
            size = self._string_size()
            if size is None:
                self.state = DecoderState.ERROR
                return None
            available = size
        out = bytearray()
        while not message_finished:
            if available:
                chunk = self._read(available)
                if chunk is None:
                    self.state = DecoderState.ERROR
                    return None
                out += chunk
                if capacity is not None and len(out) > capacity:
                    self.state = DecoderState.ERROR
                    return None
            if indefinite:
                step = self._next_chunk(initial_level)
                if step is None:
                    return None
                message_finished, available = step
            else:
                message_finished = True
                self._preprocess_next_value()
        return bytes(out)

    def _string_size(self) -> int | None:
        if self.state is not DecoderState.OK or self._type not in (ValueType.BYTE_STRING,
                                                                   ValueType.TEXT_STRING):
            return None
        return self._parse_size()

    def _next_chunk(self, initial_level: int) -> tuple[bool, int] | None:
        """(finished, size of the next chunk) inside a chunked string; None on error."""
        self._preprocess_next_value()
        if len(self._stack) != initial_level:
            return True, 0
        size = self._string_size()
        if size is None:
            self.state = DecoderState.ERROR
            return None
        return False, size


# --- SenML layer ------------------------------------------------------------------------------

class Label(enum.IntEnum):
    BASE_TIME = -3
    BASE_NAME = -2
    NAME = 0
    VALUE = 2
    VALUE_STRING = 3
    VALUE_BOOL = 4
    TIME = 6
    VALUE_OPAQUE = 8
    OBJLNK = 100  # the text label "vlo"


_NUMERIC_LABELS = frozenset({-3, -2, 0, 2, 3, 4, 6, 8})
_VALUE_LABELS = frozenset({Label.VALUE, Label.VALUE_STRING, Label.VALUE_BOOL,
                           Label.VALUE_OPAQUE, Label.OBJLNK})


@dataclass
class CachedValue:
    """The value of the current record, as cached by the device before the write handler runs."""

    type: ValueType | None = None   # None: the record carried no value
    value: bool | bytes | Number | None = None


@dataclass
class SenmlRecord:
    path: tuple[int, ...]
    path_text: str
    value: CachedValue = field(default_factory=CachedValue)


@dataclass
class _RecordBody:
    name: bytes = b""
    value: CachedValue = field(default_factory=CachedValue)
    seen: set[str] = field(default_factory=set)
    ignored_label: bool = False


class SenmlError(Exception):
    """The reader refused the payload; `reason` says why in user terms."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_C_SPACES = b" \t\n\v\f\r"


def _strtol(text: bytes, start: int) -> tuple[int, int] | None:
    """C `strtol(text + start, &end, 10)` on a 32-bit `long`: (value, end) or None if no digits
    or out of range (ERANGE)."""
    i = start
    while i < len(text) and text[i] in _C_SPACES:
        i += 1
    negative = False
    if i < len(text) and text[i] in b"+-":
        negative = text[i] == ord("-")
        i += 1
    digits_start = i
    while i < len(text) and 0x30 <= text[i] <= 0x39:
        i += 1
    if i == digits_start:
        return None
    value = int(text[digits_start:i])
    value = -value if negative else value
    if not -(2**31) <= value <= 2**31 - 1:
        return None
    return value, i


def parse_absolute_path(text: bytes) -> tuple[tuple[int, ...] | None, str]:
    """The device's path parser: '/'-separated decimal IDs 0..65534, at most 4 of them.

    Returns (ids, "") or (None, why the path was refused).
    """
    if not text or text[0] != ord("/"):
        return None, "it must start with '/'"
    if text == b"/":
        return (), ""
    ids: list[int] = []
    i = 0
    while i < len(text):
        if text[i] != ord("/"):
            return None, "IDs must be decimal numbers separated by '/'"
        i += 1
        if len(ids) >= 4:
            return None, "it has more than 4 segments"
        parsed = _strtol(text, i)
        if parsed is None:
            return None, "a segment is empty or not a decimal number"
        if not 0 <= parsed[0] < ID_INVALID:
            return None, f"ID {parsed[0]} is outside 0..65534"
        ids.append(parsed[0])
        i = parsed[1]
    return tuple(ids), ""


def _c_string(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


class SenmlReader:
    """Anjay's SenML input context over `CborDecoder`: one record at a time, like Write-Composite.

    Create it with `open()`; it raises SenmlError when the payload does not start with an array
    (the device's "Cannot create CBOR context").
    """

    def __init__(self, decoder: CborDecoder, log: list[str] | None = None) -> None:
        self.decoder = decoder
        self.log: list[str] = decoder.log if log is None else log
        self._basename = b""

    @classmethod
    def open(cls, data: bytes, log: list[str] | None = None) -> SenmlReader:
        log = [] if log is None else log
        decoder = CborDecoder(data, log=log)
        if not decoder.enter_array():
            raise SenmlError("the payload is empty or its top-level item is not a CBOR array")
        return cls(decoder, log)

    def next_record(self) -> SenmlRecord | None:
        """The next record, or None at the end of the payload. Raises SenmlError."""
        decoder = self.decoder
        if decoder.state is DecoderState.FINISHED:
            return None
        outer = decoder.nesting_level()
        if not decoder.enter_map():
            where = "after the end of the top-level array, " if outer == 0 else ""
            raise SenmlError(where + self._unexpected("a SenML record (a CBOR map)"))
        body = _RecordBody()
        try:
            self._read_record_body(outer, body)
        except SenmlError as exc:
            if body.ignored_label:
                raise SenmlError(exc.reason + " (the device does not skip the value of a bt/t "
                                 "label and reads that value as the next label)") from None
            raise
        name, cached = body.name, body.value
        if decoder.state is DecoderState.ERROR:
            raise SenmlError("malformed CBOR inside a SenML record")
        full = self._basename + name
        if len(full) > MAX_PATH_CHARS:
            self.log.append("DEBUG [senml_in] basename + path is longer than a maximum path "
                            "length")
            raise SenmlError(f"bn + n is {len(full)} characters; the device allows at most "
                             f"{MAX_PATH_CHARS}")
        text = full.decode("utf-8", "backslashreplace")
        if not full:
            raise SenmlError("record without a name (n) while no base name (bn) is set")
        path, why = parse_absolute_path(full)
        if path is None:
            if why == "it has more than 4 segments":
                self.log.append("DEBUG [senml_in] absolute path is too long")
            raise SenmlError(f"invalid path '{text}': {why}")
        if len(path) < 3:
            self.log.append(f"DEBUG [senml_in] path {text} inappropriate for this context, "
                            "Resource or Resource Instance path expected")
            raise SenmlError(f"path '{text}' does not name a resource (/OID/IID/RID[/RIID])")
        return SenmlRecord(path, text, cached)

    def close(self) -> None:
        """End of parsing: logs what the device logs when data was left unread or broken."""
        if self.decoder.state is not DecoderState.FINISHED:
            self.log.append("WARNING [senml_in] SenML payload contains extraneous data")

    def _read_record_body(self, outer: int, body: _RecordBody) -> None:
        """Labels and values until the record map closes (or the input ends)."""
        while self.decoder.nesting_level() >= outer + 1:
            label = self._read_label()
            if label is Label.NAME:
                self._once(body.seen, "name")
                body.name = self._short_string(MAX_PATH_CHARS, "the name (n)")
            elif label in _VALUE_LABELS:
                self._once(body.seen, "value")
                body.value = self._read_value(label)
            elif label is Label.BASE_NAME:
                self._once(body.seen, "base name")
                self._basename = self._short_string(MAX_PATH_CHARS, "the base name (bn)")
            else:
                # bt / t: accepted, but the value is NOT skipped (the device's behaviour).
                body.ignored_label = True
                self.log.append(f"DEBUG [senml_in] unsupported entry SenML Label {int(label)}"
                                " - ignoring")

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _once(seen: set[str], what: str) -> None:
        if what in seen:
            raise SenmlError(f"duplicated SenML {what} in one record")
        seen.add(what)

    def _unexpected(self, expected: str) -> str:
        kind = self.decoder.current_value_type()
        if self.decoder.state is DecoderState.ERROR:
            return f"malformed CBOR where {expected} was expected"
        if kind is None:
            return f"unexpected end of data where {expected} was expected"
        return f"found a CBOR {kind.value} where {expected} was expected"

    def _short_string(self, capacity: int, what: str) -> bytes:
        raw = self.decoder.read_bytes(capacity)
        if raw is None:
            raise SenmlError(f"{what} is not a text of at most {capacity} bytes")
        return _c_string(raw)

    def _read_label(self) -> Label:
        decoder = self.decoder
        kind = decoder.current_value_type()
        if kind is None:
            raise SenmlError(self._unexpected("a SenML label"))
        if kind is ValueType.TEXT_STRING:
            raw = decoder.read_bytes(len(_OBJLNK_LABEL))
            if raw is None or _c_string(raw) != _OBJLNK_LABEL:
                raise SenmlError("unsupported SenML text label (only \"vlo\" is known)")
            return Label.OBJLNK
        number = decoder.number()
        label = None if number is None else number_to_i64(number)
        if number is not None and label is None and number.type is not ValueType.UINT:
            self.log.append("WARNING [json_like_decoder] expected int, got something else "
                            "instead")
        if label is None:
            raise SenmlError("a SenML label must be an integer or the text \"vlo\"")
        if label not in _NUMERIC_LABELS:
            raise SenmlError(f"unsupported SenML label {label}")
        return Label(label)

    def _read_value(self, label: Label) -> CachedValue:
        decoder = self.decoder
        kind = decoder.current_value_type()
        if kind is None:
            raise SenmlError(self._unexpected("a SenML value"))
        if label is Label.VALUE_OPAQUE:
            if kind is not ValueType.BYTE_STRING:
                raise SenmlError(f"label vd (8) needs a byte string, got a CBOR {kind.value}")
            return CachedValue(kind, self._all_bytes())
        if kind is ValueType.BYTE_STRING:
            raise SenmlError(f"a byte string is only allowed under vd (8), not label "
                             f"{_label_text(label)}")
        if kind is ValueType.TEXT_STRING:
            if label not in (Label.VALUE_STRING, Label.OBJLNK):
                raise SenmlError(f"a text value needs label vs (3) or vlo, not "
                                 f"{_label_text(label)}")
            return CachedValue(kind, self._all_bytes())
        if kind is ValueType.BOOL:
            if label is not Label.VALUE_BOOL:
                raise SenmlError(f"a boolean needs label vb (4), not {_label_text(label)}")
            value = decoder.read_bool()
            if value is None:
                raise SenmlError("malformed boolean")
            return CachedValue(kind, value)
        if label is not Label.VALUE:
            raise SenmlError(f"a CBOR {kind.value} value is not allowed under label "
                             f"{_label_text(label)}")
        number = decoder.number()
        if number is None:
            raise SenmlError(f"label v (2) needs a number, got a CBOR {kind.value}")
        return CachedValue(kind, number)

    def _all_bytes(self) -> bytes:
        raw = self.decoder.read_bytes()
        if raw is None:
            raise SenmlError("truncated or malformed string value")
        return raw


def _label_text(label: Label) -> str:
    names = {Label.VALUE: "v (2)", Label.VALUE_STRING: "vs (3)", Label.VALUE_BOOL: "vb (4)",
             Label.VALUE_OPAQUE: "vd (8)", Label.OBJLNK: "vlo"}
    return names.get(label, str(int(label)))
