"""SenML CBOR: encode an endpoint config exactly as the seed tool does, and decode blobs back.

Encoding (spec §2): a definite array with one record per resource or resource instance, in file
order; each record is a definite 2-pair map, name (key 0, the absolute path) first, then the value
under its label. `cbor2.dumps` with default options gives the seed's bytes (shortest integers,
float64 for floats, which the seed itself refuses but Anjay reads as a number).
"""

from __future__ import annotations

import io
from typing import NamedTuple

import cbor2

from hilprov.core.config import EndpointConfig
from hilprov.core.lwm2m import Objlink, format_path, is_secret
from hilprov.errors import ConfigError

BASE_TIME, BASE_NAME, NAME, VALUE, STRING, BOOL, TIME, OPAQUE = -3, -2, 0, 2, 3, 4, 6, 8
OBJLNK = "vlo"
VALUE_LABELS = (VALUE, STRING, BOOL, OPAQUE, OBJLNK)
LABEL_NAMES = {BASE_TIME: "bt", BASE_NAME: "bn", NAME: "n", VALUE: "v", STRING: "vs", BOOL: "vb",
               TIME: "t", OPAQUE: "vd", OBJLNK: "vlo"}


class SenmlError(ConfigError):
    """A blob is not SenML CBOR of the kind Anjay reads."""


class Record(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """One SenML record: the full name (base name already applied), its value label and value."""

    name: str
    label: int | str
    value: object

    @property
    def label_name(self) -> str:
        return LABEL_NAMES.get(self.label, str(self.label))

    def __repr__(self) -> str:  # /0/x/5 (the PSK or private key) stays out of logs and reports
        value = (f"<{len(self.value)} bytes, hidden>"
                 if is_secret(self.name) and isinstance(self.value, bytes)
                 else repr(self.value))
        return f"Record(name={self.name!r}, label={self.label!r}, value={value})"


def label_for(value) -> int | str:
    """The SenML label for a config value; bool is tested before int, as in the seed."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return VALUE
    if isinstance(value, str):
        return STRING
    if isinstance(value, bytes):
        return OPAQUE
    if isinstance(value, Objlink):
        return OBJLNK
    raise ConfigError(f"unsupported value type {type(value).__name__}")


def config_records(config: EndpointConfig) -> list[Record]:
    records = []
    for entry in config.entries():
        label = label_for(entry.value)
        value = str(entry.value) if label == OBJLNK else entry.value
        records.append(Record(format_path(entry.path), label, value))
    return records


def encode_records(records: list[Record]) -> bytes:
    return cbor2.dumps([{NAME: r.name, r.label: r.value} for r in records])


def encode_config(config: EndpointConfig) -> bytes:
    """The provisioning blob: byte-identical to the seed tool for everything it can encode."""
    return encode_records(config_records(config))


def decode(blob: bytes) -> list[Record]:
    """Decode a SenML CBOR blob into records, refusing what Anjay's reader refuses.

    Resolves base names (`bn` is concatenated with `n` and persists into later records). Raises
    SenmlError with the record number and the reason. Definite vs indefinite lengths are not
    distinguished here; the virtual board models those quirks.
    """
    if not blob:
        raise SenmlError("empty blob: expected a CBOR array of SenML records")
    stream = io.BytesIO(blob)
    try:
        top = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, ValueError, RecursionError, MemoryError) as exc:
        raise SenmlError(f"not valid CBOR: {exc}") from None
    if stream.tell() != len(blob):
        raise SenmlError(f"{len(blob) - stream.tell()} extraneous bytes after the SenML array")
    if not isinstance(top, list):
        raise SenmlError(f"top level is {type(top).__name__}, expected an array of records")
    records = []
    base = ""
    for index, item in enumerate(top, start=1):
        record, base = _record(f"record {index}", item, base)
        records.append(record)
    return records


def _record(where: str, item, base: str) -> tuple[Record, str]:
    """One record with the base name in force applied, and the base name for the next one (a
    `bn` here replaces it)."""
    if not isinstance(item, dict):
        raise SenmlError(f"{where}: {type(item).__name__}, expected a map")
    for key in item:
        if key not in LABEL_NAMES:
            raise SenmlError(f"{where}: unsupported label {key!r}")
        if key in (BASE_TIME, TIME):
            raise SenmlError(f"{where}: label {LABEL_NAMES[key]} ({key}) is not accepted "
                             "by Anjay's reader")
    if BASE_NAME in item:
        if not isinstance(item[BASE_NAME], str):
            raise SenmlError(f"{where}: base name is not text")
        base = item[BASE_NAME]
    name = item.get(NAME, "")
    if not isinstance(name, str):
        raise SenmlError(f"{where}: name is {type(name).__name__}, expected text")
    if NAME not in item and BASE_NAME not in item:
        raise SenmlError(f"{where}: no name and no base name")
    labels = [k for k in item if k in VALUE_LABELS]
    if len(labels) != 1:
        raise SenmlError(f"{where}: {len(labels)} value labels, expected exactly one")
    label = labels[0]
    _check_value(where, label, item[label])
    return Record(base + name, label, item[label]), base


def _check_value(where: str, label, value) -> None:
    expected = {VALUE: (int, float), STRING: (str,), BOOL: (bool,), OPAQUE: (bytes,),
                OBJLNK: (str,)}[label]
    ok = isinstance(value, expected) and not (label == VALUE and isinstance(value, bool))
    if not ok:
        wanted = " or ".join(t.__name__ for t in expected)
        raise SenmlError(f"{where}: label {LABEL_NAMES[label]} carries {type(value).__name__}, "
                         f"expected {wanted}")
