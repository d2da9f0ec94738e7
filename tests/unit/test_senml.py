"""SenML CBOR: the seed's exact bytes (spec §2 vectors) and a decoder that refuses like Anjay."""

import cbor2
import pytest

from hilprov.core.config import load_config, parse_config
from hilprov.core.senml import (
    BOOL,
    OBJLNK,
    OPAQUE,
    STRING,
    VALUE,
    Record,
    SenmlError,
    decode,
    encode_config,
)
from tests import CONFIGS

# Spec example A, one record per line as the spec prints it (fromhex skips the whitespace).
EXAMPLE_A = bytes.fromhex("""
8a
a200662f302f312f3003782263 6f6170733a2f2f65752e696f742e617673797374656d2e636c6f75643a35363834
a200662f302f312f3104f4
a200662f302f312f320200
a200662f302f312f3308557265672d746573742d70736b2d6964656e74697479
a200662f302f312f3508533378406d706c3350354b3533637233744b3379
a200672f302f312f31300201
a200662f312f312f300201
a200662f312f312f31021a00015180
a200662f312f312f3604f4
a200662f312f312f37036155
""")


def blob(text: str) -> bytes:
    return encode_config(parse_config(text, "t"))


def test_example_a_sample_psk_config_is_byte_identical():
    data = encode_config(load_config(CONFIGS / "endpoint_cfg"))
    assert len(data) == 192
    assert data == EXAMPLE_A


@pytest.mark.parametrize("text,hexbytes", [
    ("{OID.Server: {1: {RID.Server.ShortServerID: 1}}}", "81a200662f312f312f300201"),
    ("{2:{0:{2:{1:15}}}}", "81a200682f322f302f322f31020f"),
    ("{3:{0:{16:Objlink(66,0)}}}", "81a200672f332f302f313663766c6f6436363a30"),
])
def test_example_b_vectors(text, hexbytes):
    assert blob(text).hex() == hexbytes


def test_records_follow_file_order_not_sorted_order():
    records = decode(blob("{1: {1: {7: 'U', 0: 1}}, 0: {1: {10: 1, 0: 'coap://x'}}}"))
    assert [r.name for r in records] == ["/1/1/7", "/1/1/0", "/0/1/10", "/0/1/0"]


def test_each_value_type_gets_its_label():
    records = decode(blob("{3: {0: {0: 's', 1: b'o', 2: True, 3: -7, 4: 2.5, 5: Objlink(1, 2)}}}"))
    assert [(r.label, r.value) for r in records] == [
        (STRING, "s"), (OPAQUE, b"o"), (BOOL, True), (VALUE, -7), (VALUE, 2.5), (OBJLNK, "1:2")]


def test_bool_is_not_encoded_as_an_integer():
    assert blob("{1: {1: {6: False}}}").endswith(bytes([BOOL, 0xF4]))
    assert blob("{1: {1: {6: 0}}}").endswith(bytes([VALUE, 0x00]))


def test_floats_are_senml_numbers_in_float64():
    data = blob("{6: {0: {0: 50.0625}}}")
    assert data.endswith(bytes([VALUE]) + bytes.fromhex("fb4049080000000000"))
    assert decode(data)[0].value == 50.0625


def test_integers_use_the_shortest_form():
    data = blob("{1: {1: {1: 23, 2: 24, 3: -1, 5: 65536}}}")
    values = cbor2.loads(data)
    assert [r[2] for r in values] == [23, 24, -1, 65536]
    assert bytes.fromhex("a200662f312f312f310217") in data  # 23 in one byte
    assert bytes.fromhex("a200662f312f312f32021818") in data  # 24 needs the one-byte form
    assert bytes.fromhex("a200662f312f312f330220") in data  # -1 as major type 1, one byte


def test_multiple_instance_resources_give_one_record_per_instance():
    records = decode(blob("{0: {1: {16: {1: 49320, 0: 49188}}}}"))
    assert records == [Record("/0/1/16/1", VALUE, 49320), Record("/0/1/16/0", VALUE, 49188)]


def test_every_record_is_a_two_pair_map_name_first():
    for item in cbor2.loads(EXAMPLE_A):
        assert list(item)[0] == 0
        assert len(item) == 2


def test_empty_config_is_an_empty_array():
    assert blob("{}") == b"\x80"


# -- decoder --------------------------------------------------------------------------------------
def test_decode_round_trips_the_sample():
    records = decode(EXAMPLE_A)
    assert records[0] == Record("/0/1/0", STRING, "coaps://eu.iot.avsystem.cloud:5684")
    assert records[4] == Record("/0/1/5", OPAQUE, b"3x@mpl3P5K53cr3tK3y")
    assert len(records) == 10


def test_decode_applies_base_names_that_persist():
    data = cbor2.dumps([{-2: "/0/1/", 0: "0", 3: "coap://x"}, {0: "10", 2: 1},
                        {-2: "", 0: "/1/1/0", 2: 1}, {-2: "/1/1/7", 3: "U"}])
    assert [r.name for r in decode(data)] == ["/0/1/0", "/0/1/10", "/1/1/0", "/1/1/7"]


@pytest.mark.parametrize("data,message", [
    (b"", "empty blob"),
    (bytes.fromhex("a0"), "top level is dict"),
    (EXAMPLE_A + b"\x00", "1 extraneous bytes"),
    (EXAMPLE_A[:-3], "not valid CBOR"),
    (cbor2.dumps([5]), "record 1: int, expected a map"),
    (cbor2.dumps([{0: "/1/1/1", 2: 1, 6: 0}]), r"label t \(6\) is not accepted"),
    (cbor2.dumps([{-3: 0, 0: "/1/1/1", 2: 1}]), r"label bt \(-3\) is not accepted"),
    (cbor2.dumps([{0: "/1/1/1", 5: 1}]), "unsupported label 5"),
    (cbor2.dumps([{0: "/1/1/1", "vx": 1}]), "unsupported label 'vx'"),
    (cbor2.dumps([{0: "/1/1/1"}]), "0 value labels"),
    (cbor2.dumps([{0: "/1/1/1", 2: 1, 3: "x"}]), "2 value labels"),
    (cbor2.dumps([{2: 1}]), "no name and no base name"),
    (cbor2.dumps([{0: 5, 2: 1}]), "name is int"),
    (cbor2.dumps([{0: "/1/1/1", 2: "1"}]), "label v carries str, expected int or float"),
    (cbor2.dumps([{0: "/1/1/6", 2: True}]), "label v carries bool"),
    (cbor2.dumps([{0: "/0/1/3", 8: "id"}]), "label vd carries str, expected bytes"),
    (cbor2.dumps([{0: "/1/1/6", 4: 1}]), "label vb carries int, expected bool"),
])
def test_decode_refuses_malformed_blobs(data, message):
    with pytest.raises(SenmlError, match=message):
        decode(data)
