"""Provisioning blobs and what the device does with them (spec §3 and §4).

A data module: `CORPUS` is a list of `BlobCase(name, blob, expected_ok, expected_log)`, where
`expected_log` is a substring of one Anjay log line the device writes for that blob. The same
cases can be fed to the device model, to the virtual board over SMP (only `expected_ok` is
observable there, as result.txt "0"/"-1"), or to the host-side validator.

Blobs are built from hand-written CBOR where lengths and encodings matter, and with cbor2 where
they don't. Cases whose name starts with ``quirk_`` follow from Anjay's decoder design rather
than from a tested spec row.
"""

from __future__ import annotations

from typing import NamedTuple

import cbor2


class BlobCase(NamedTuple):
    name: str
    blob: bytes
    expected_ok: bool
    expected_log: str


OK_LOG = "Finished factory provisioning"
WRITE_FAILED = "Error occured during writing bootstrap information"
NO_CONTEXT = "Cannot create CBOR context"
EXTRANEOUS = "SenML payload contains extraneous data"

Record = tuple[str, "int | str", object]   # (path, SenML label, value)

URI = "coaps://eu.iot.avsystem.cloud:5684"
PSK_ID = b"reg-test-psk-identity"
PSK_KEY = b"3x@mpl3P5K53cr3tK3y"

# Spec §2 example A, record by record.
SECURITY_A: list[Record] = [
    ("/0/1/0", 3, URI), ("/0/1/1", 4, False), ("/0/1/2", 2, 0), ("/0/1/3", 8, PSK_ID),
    ("/0/1/5", 8, PSK_KEY), ("/0/1/10", 2, 1),
]
SERVER_A: list[Record] = [
    ("/1/1/0", 2, 1), ("/1/1/1", 2, 86400), ("/1/1/6", 4, False), ("/1/1/7", 3, "U"),
]
EXAMPLE_A_RECORDS = SECURITY_A + SERVER_A

EXAMPLE_A = bytes.fromhex(
    "8a"
    "a200662f302f312f3003782263"
    "6f6170733a2f2f65752e696f742e617673797374656d2e636c6f75643a35363834"
    "a200662f302f312f3104f4"
    "a200662f302f312f320200"
    "a200662f302f312f3308557265672d746573742d70736b2d6964656e74697479"
    "a200662f302f312f3508533378406d706c3350354b3533637233744b3379"
    "a200672f302f312f31300201"
    "a200662f312f312f300201"
    "a200662f312f312f31021a00015180"
    "a200662f312f312f3604f4"
    "a200662f312f312f37036155"
)
EXAMPLE_B_SERVER_SSID = bytes.fromhex("81a200662f312f312f300201")
EXAMPLE_B_ACL = bytes.fromhex("81a200682f322f302f322f31020f")
EXAMPLE_B_OBJLINK = bytes.fromhex("81a200672f332f302f313663766c6f6436363a30")


def record(path: str, label: int | str, value: object) -> bytes:
    """One record as the tool writes it: a definite map, name first."""
    return cbor2.dumps({0: path, label: value})


def blob(records: list[Record]) -> bytes:
    return cbor2.dumps([{0: path, label: value} for path, label, value in records])


def with_records(base: list[Record], replace: dict[str, tuple[int | str, object]] | None = None,
                 drop: tuple[str, ...] = (), add: list[Record] | None = None) -> bytes:
    """`base` with some values replaced, some paths dropped and records appended."""
    replace = replace or {}
    out: list[Record] = []
    for path, label, value in base:
        if path in drop:
            continue
        if path in replace:
            label, value = replace[path]
        out.append((path, label, value))
    return blob(out + (add or []))


def a_with(**kwargs: object) -> bytes:
    return with_records(EXAMPLE_A_RECORDS, **kwargs)  # type: ignore[arg-type]


def _text(value: str) -> bytes:
    return cbor2.dumps(value)


def _array(items: list[bytes]) -> bytes:
    return bytes([0x80 + len(items)]) + b"".join(items)


def _chunked_text(*chunks: str) -> bytes:
    return b"\x7f" + b"".join(_text(c) for c in chunks) + b"\xff"


def _chunked_bytes(*chunks: bytes) -> bytes:
    return b"\x5f" + b"".join(cbor2.dumps(c) for c in chunks) + b"\xff"


def _indefinite_map(body: bytes) -> bytes:
    return b"\xbf" + body + b"\xff"


def _map_body(path: str, label: int | str, value: object) -> bytes:
    """A record map's content (key/value pairs) without its header."""
    return cbor2.dumps(0) + _text(path) + cbor2.dumps(label) + cbor2.dumps(value)


def _a_records_raw() -> list[bytes]:
    return [record(path, label, value) for path, label, value in EXAMPLE_A_RECORDS]


def _a_bodies() -> list[bytes]:
    return [_map_body(*r) for r in EXAMPLE_A_RECORDS]


def _server_a_with_security(security: list[Record]) -> bytes:
    return blob(security + SERVER_A)


NOSEC_SECURITY: list[Record] = [("/0/1/0", 3, "coap://eu.iot.avsystem.cloud:5683"),
                                ("/0/1/2", 2, 3), ("/0/1/10", 2, 1)]
AC_RECORDS: list[Record] = [("/2/0/0", 2, 1), ("/2/0/1", 2, 1), ("/2/0/2/1", 2, 15),
                            ("/2/0/3", 2, 1)]


def _case(name: str, data: bytes, ok: bool, log: str) -> BlobCase:
    return BlobCase(name, data, ok, log)


def _reader_cases() -> list[BlobCase]:
    """Spec §3: what the SenML-CBOR reader accepts."""
    a_raw = _a_records_raw()
    bodies = _a_bodies()
    cases = [
        _case("example_a_192_bytes", EXAMPLE_A, True, OK_LOG),
        _case("example_a_rebuilt_with_cbor2", blob(EXAMPLE_A_RECORDS), True, OK_LOG),
        _case("empty_input", b"", False, NO_CONTEXT),
        _case("top_level_map", cbor2.dumps({0: "/1/1/0", 2: 1}), False, NO_CONTEXT),
        _case("top_level_uint", b"\x00", False, NO_CONTEXT),
        _case("top_level_text", _text("/1/1/0"), False, NO_CONTEXT),
        _case("empty_definite_array", b"\x80", True, OK_LOG),
        _case("indefinite_array_of_indefinite_maps",
              b"\x9f" + b"".join(_indefinite_map(b) for b in bodies) + b"\xff", True, OK_LOG),
        _case("definite_array_of_indefinite_maps",
              b"\x8a" + b"".join(_indefinite_map(b) for b in bodies), True, OK_LOG),
        _case("indefinite_array_of_definite_maps", b"\x9f" + b"".join(a_raw) + b"\xff", False,
              EXTRANEOUS),
        _case("indefinite_array_of_definite_maps_single_record",
              b"\x9f" + record("/1/1/0", 2, 1) + b"\xff", False, EXTRANEOUS),
        _case("chunked_text_uri",
              b"\x8a" + b"\xa2\x00" + _text("/0/1/0") + b"\x03"
              + _chunked_text("coaps://", "eu.iot.avsystem.cloud", ":5684")
              + b"".join(a_raw[1:]), True, OK_LOG),
        _case("chunked_text_name",
              b"\x8a" + b"".join(a_raw[:-1]) + b"\xa2\x00" + _chunked_text("/1/1", "/7")
              + b"\x03" + _text("U"), True, OK_LOG),
        _case("chunked_text_with_empty_chunk",
              b"\x8a" + b"".join(a_raw[:-1]) + b"\xa2\x00" + _text("/1/1/7") + b"\x03"
              + _chunked_text("", "U", ""), True, OK_LOG),
        _case("chunked_text_truncated_before_break",
              b"\x8a" + b"".join(a_raw[:-1]) + b"\xa2\x00" + _text("/1/1/7") + b"\x03"
              + b"\x7f" + _text("U"), False, EXTRANEOUS),
        _case("chunked_byte_string_psk_key",
              b"\x8a" + b"".join(a_raw[:4]) + b"\xa2\x00" + _text("/0/1/5") + b"\x08"
              + _chunked_bytes(PSK_KEY[:5], PSK_KEY[5:]) + b"".join(a_raw[5:]), True, OK_LOG),
        _case("tag_55799_self_describe", b"\xd9\xd9\xf7" + EXAMPLE_A, True, OK_LOG),
        _case("tag_32_on_uri_value",
              b"\x8a" + b"\xa2\x00" + _text("/0/1/0") + b"\x03\xd8\x20" + _text(URI)
              + b"".join(a_raw[1:]), True, OK_LOG),
        _case("tag_4_decimal_fraction_lifetime",
              b"\x8a" + b"".join(a_raw[:7]) + b"\xa2\x00" + _text("/1/1/1")
              + b"\x02\xc4\x82\x00\x1a\x00\x01\x51\x80" + b"".join(a_raw[8:]), False, EXTRANEOUS),
        _case("tag_without_content_at_end", EXAMPLE_A + b"\xc6", False, EXTRANEOUS),
        _case("trailing_zero_byte", EXAMPLE_A + b"\x00", False, EXTRANEOUS),
        _case("trailing_break_byte", EXAMPLE_A + b"\xff", False, EXTRANEOUS),
        _case("truncated_last_byte", EXAMPLE_A[:-1], False, EXTRANEOUS),
        _case("truncated_inside_uri", EXAMPLE_A[:30], False, EXTRANEOUS),
        _case("truncated_inside_record_name", EXAMPLE_A[:-17], False, EXTRANEOUS),
        _case("truncated_inside_uint32_lifetime",
              EXAMPLE_A[:EXAMPLE_A.index(bytes.fromhex("1a00015180")) + 3], False, EXTRANEOUS),
        _case("labels_value_before_name",
              cbor2.dumps([{label: value, 0: path} for path, label, value in EXAMPLE_A_RECORDS]),
              True, OK_LOG),
        _case("base_name_per_record",
              cbor2.dumps([{-2: path.rsplit("/", 1)[0] + "/", 0: path.rsplit("/", 1)[1],
                            label: value} for path, label, value in EXAMPLE_A_RECORDS]),
              True, OK_LOG),
        _case("base_name_persists_until_changed",
              cbor2.dumps([{-2: "/0/1/", 0: "0", 3: URI}, {0: "1", 4: False}, {0: "2", 2: 0},
                           {0: "3", 8: PSK_ID}, {0: "5", 8: PSK_KEY}, {0: "10", 2: 1},
                           {-2: "/1/1", 0: "/0", 2: 1}, {0: "/1", 2: 86400},
                           {0: "/6", 4: False}, {0: "/7", 3: "U"}]), True, OK_LOG),
        _case("base_name_reset_to_empty",
              cbor2.dumps([{-2: "/0/1/", 0: "0", 3: URI}, {-2: "", 0: "/0/1/1", 4: False}]
                          + [{0: p, lbl: v} for p, lbl, v in EXAMPLE_A_RECORDS[2:]]),
              True, OK_LOG),
        _case("base_name_only_full_path",
              _array(a_raw[:-1] + [cbor2.dumps({-2: "/1/1/7", 3: "U"})]), True, OK_LOG),
        _case("base_name_after_name_in_map",
              cbor2.dumps([{0: "0", -2: "/0/1/", 3: URI}, {-2: "", 0: "/0/1/1", 4: False}]
                          + [{0: p, lbl: v} for p, lbl, v in EXAMPLE_A_RECORDS[2:]]),
              True, OK_LOG),
        _case("base_time_label_fails",
              _array(a_raw[:-1] + [cbor2.dumps({-3: 0, 0: "/1/1/7", 3: "U"})]), False,
              "unsupported entry SenML Label -3 - ignoring"),
        _case("time_label_fails",
              _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7", 6: 0, 3: "U"})]), False,
              "unsupported entry SenML Label 6 - ignoring"),
        _case("time_label_float_value_fails",
              _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7", 3: "U", 6: 1.5})]), False,
              "unsupported entry SenML Label 6 - ignoring"),
    ]
    for label in (1, 5, 7, -1, -4, -5, -6, 9, 24):
        cases.append(_case(f"integer_label_{label}_fails",
                           _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7", label: "U"})]), False,
                           WRITE_FAILED))
    for label in ("vs", "n", "bn", "vlox", ""):
        cases.append(_case(f"text_label_{label or 'empty'}_fails",
                           _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7", label: "U"})]), False,
                           WRITE_FAILED))
    # cbor2 cannot write a map with a repeated key, so these are spelled out.
    name_u = b"\x00" + _text("/1/1/7")
    cases += [
        _case("duplicate_name_fails", _array(a_raw[:-1] + [b"\xa3" + name_u + name_u
                                                             + b"\x03" + _text("U")]),
              False, WRITE_FAILED),
        _case("duplicate_value_label_fails",
              _array(a_raw[:-1] + [b"\xa3" + name_u + b"\x03" + _text("U") + b"\x03"
                                   + _text("U")]), False, WRITE_FAILED),
        _case("duplicate_base_name_fails",
              _array(a_raw[:-1] + [b"\xa3\x21" + _text("/1/1/") + b"\x21" + _text("/1/1/")
                                   + b"\x03" + _text("U")]), False, WRITE_FAILED),
        _case("two_value_labels_fail",
              _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7", 3: "U", 2: 1})]), False,
              WRITE_FAILED),
        _case("record_without_value_fails",
              _array(a_raw[:-1] + [cbor2.dumps({0: "/1/1/7"})]), False, WRITE_FAILED),
        _case("record_without_name_or_base_name_fails",
              _array(a_raw[:-1] + [cbor2.dumps({3: "U"})]), False, WRITE_FAILED),
        _case("empty_map_record_fails", _array(a_raw + [b"\xa0"]), False, WRITE_FAILED),
    ]
    # Paths (spec §3 "Path syntax", "Path length").
    too_long = "absolute path is too long"
    path_cases = [
        ("path_without_leading_slash_fails", "1/1/7", False, WRITE_FAILED),
        ("path_with_trailing_slash_fails", "/1/1/7/", False, WRITE_FAILED),
        ("path_with_empty_segment_fails", "/1//7", False, WRITE_FAILED),
        ("path_with_hex_segment_fails", "/1/1/0x7", False, WRITE_FAILED),
        ("path_with_two_segments_fails", "/1/1", False,
         "Resource or Resource Instance path expected"),
        ("path_root_fails", "/", False, "Resource or Resource Instance path expected"),
        ("path_with_five_segments_fails", "/1/1/7/0/0", False, too_long),
        ("path_with_leading_zeros_ok", "/01/001/0007", True, OK_LOG),
        ("path_riid_on_single_instance_resource_ok", "/1/1/7/0", True, OK_LOG),
        ("path_of_24_characters_ok", "/1/1/" + "0" * 18 + "7", True, OK_LOG),
        ("path_of_25_characters_fails", "/1/1/" + "0" * 19 + "7", False, WRITE_FAILED),
        ("quirk_path_segment_with_plus_sign_ok", "/1/+1/7", True, OK_LOG),
        ("quirk_path_segment_with_leading_space_ok", "/1/ 1/7", True, OK_LOG),
        ("path_with_negative_segment_fails", "/1/-1/7", False, WRITE_FAILED),
    ]
    for name, path, ok, log in path_cases:
        cases.append(_case(name, _array(a_raw[:-1] + [record(path, 3, "U")]), ok, log))
    cases += [
        _case("quirk_path_segment_minus_zero_ok",
              blob(SECURITY_A + [(p.replace("/1/1/", "/1/-0/"), lbl, v)
                                 for p, lbl, v in SERVER_A]), True, OK_LOG),
        _case("path_segment_65534_ok",
              blob(SECURITY_A + [(p.replace("/1/1/", "/1/65534/"), lbl, v)
                                 for p, lbl, v in SERVER_A]), True, OK_LOG),
        _case("path_segment_65535_fails",
              blob(SECURITY_A + [(p.replace("/1/1/", "/1/65535/"), lbl, v)
                                 for p, lbl, v in SERVER_A]), False, WRITE_FAILED),
        _case("base_name_plus_name_25_characters_fails",
              _array(a_raw[:-1] + [cbor2.dumps({-2: "/1/1/", 0: "0" * 19 + "7", 3: "U"})]),
              False, "basename + path is longer than a maximum path length"),
        _case("base_name_plus_name_24_characters_ok",
              _array(a_raw[:-1] + [cbor2.dumps({-2: "/1/1/", 0: "0" * 18 + "7", 3: "U"})]),
              True, OK_LOG),
        _case("path_with_nul_byte_is_cut_at_nul",
              _array(a_raw[:-1] + [record("/1/1/7\x00junk", 3, "U")]), True, OK_LOG),
    ]
    return cases


def _coupling_cases() -> list[BlobCase]:
    """Spec §3 "Value/label coupling" and "Resource type vs value"."""
    def lifetime(label: int | str, value: object) -> bytes:
        return a_with(replace={"/1/1/1": (label, value)})

    half_one = bytes.fromhex("f93c00")          # 1.0 as a half float
    single_86400 = bytes.fromhex("fa47a8c000")  # 86400.0 as a single float
    raw = _a_records_raw()
    return [
        _case("label_v_with_text_fails", lifetime(2, "86400"), False, WRITE_FAILED),
        _case("label_v_with_bool_fails", lifetime(2, True), False, WRITE_FAILED),
        _case("label_v_with_null_fails", lifetime(2, None), False, WRITE_FAILED),
        _case("label_v_with_bytes_fails", lifetime(2, b"\x01"), False, WRITE_FAILED),
        _case("label_vs_with_int_fails", a_with(replace={"/1/1/7": (3, 1)}), False,
              WRITE_FAILED),
        _case("label_vlo_with_int_fails", a_with(replace={"/1/1/7": ("vlo", 1)}), False,
              WRITE_FAILED),
        _case("label_vb_with_int_fails", a_with(replace={"/1/1/6": (4, 0)}), False,
              WRITE_FAILED),
        _case("label_vd_with_text_fails", a_with(replace={"/0/1/3": (8, "id")}), False,
              WRITE_FAILED),
        _case("double_float_exact_integer_ok", lifetime(2, 86400.0), True, OK_LOG),
        _case("double_float_fraction_fails", lifetime(2, 86400.5), False, WRITE_FAILED),
        _case("double_float_infinity_fails", lifetime(2, float("inf")), False, WRITE_FAILED),
        _case("single_float_exact_integer_ok",
              _array(raw[:7] + [b"\xa2\x00" + _text("/1/1/1") + b"\x02" + single_86400]
                     + raw[8:]), True, OK_LOG),
        _case("half_float_server_ssid_ok",
              _array(raw[:6] + [b"\xa2\x00" + _text("/1/1/0") + b"\x02" + half_one] + raw[7:]),
              True, OK_LOG),
        _case("half_float_fraction_fails",
              _array(raw[:6] + [b"\xa2\x00" + _text("/1/1/0") + b"\x02"
                                + bytes.fromhex("f93e00")] + raw[7:]), False, WRITE_FAILED),
        _case("int_resource_int32_max_ok", lifetime(2, 2**31 - 1), True, OK_LOG),
        _case("int_resource_above_int32_fails", lifetime(2, 2**31), False, WRITE_FAILED),
        _case("int_resource_below_int32_fails", lifetime(2, -(2**31) - 1), False,
              WRITE_FAILED),
        _case("int_resource_uint64_max_fails", lifetime(2, 2**64 - 1), False, WRITE_FAILED),
        _case("uint_resource_uint32_max_ok", a_with(add=[("/1/1/18", 2, 2**32 - 1)]), True,
              OK_LOG),
        _case("uint_resource_above_uint32_fails", a_with(add=[("/1/1/18", 2, 2**32)]), False,
              WRITE_FAILED),
        _case("uint_resource_negative_fails", a_with(add=[("/1/1/18", 2, -1)]), False,
              WRITE_FAILED),
        _case("uint_resource_negative_zero_float_ok", a_with(add=[("/1/1/18", 2, -0.0)]), True,
              OK_LOG),
        _case("string_resource_with_bytes_fails", a_with(replace={"/0/1/0": (8, URI.encode())}),
              False, WRITE_FAILED),
        _case("string_resource_with_int_fails", a_with(replace={"/0/1/0": (2, 5684)}), False,
              WRITE_FAILED),
        _case("opaque_resource_with_text_identity_fails",
              a_with(replace={"/0/1/3": (3, PSK_ID.decode())}), False, WRITE_FAILED),
        _case("bool_resource_with_v_1_fails", a_with(replace={"/0/1/1": (2, 1)}), False,
              WRITE_FAILED),
        _case("bool_resource_with_v_0_fails", a_with(replace={"/1/1/6": (2, 0)}), False,
              WRITE_FAILED),
        _case("quirk_string_resource_under_vlo_label_ok",
              a_with(replace={"/1/1/7": ("vlo", "U")}), True, OK_LOG),
        _case("quirk_label_as_half_float_zero_ok",
              _array(raw[:-1] + [b"\xa2\xf9\x00\x00" + _text("/1/1/7") + b"\x03" + _text("U")]),
              True, OK_LOG),
        _case("large_certificate_3000_bytes_ok",
              _server_a_with_security([("/0/1/0", 3, URI), ("/0/1/2", 2, 2),
                                       ("/0/1/3", 8, b"\x30" * 3000), ("/0/1/5", 8, b"\x30" * 121),
                                       ("/0/1/10", 2, 1)]), True, OK_LOG),
    ]


def _write_cases() -> list[BlobCase]:
    """Spec §4.1/§4.2: the write phase."""
    cases = [
        _case("object_5_not_found", a_with(add=[("/5/0/1", 3, "coap://fw")]), False,
              "Object not found: 5"),
        _case("object_3_not_found_in_initial_image", a_with(add=[("/3/0/0", 3, "ACME")]), False,
              "Object not found: 3"),
        _case("example_b_objlink_not_found", EXAMPLE_B_OBJLINK, False, "Object not found: 3"),
        _case("duplicate_path_last_wins_ok",
              a_with(replace={"/1/1/1": (2, -5)}, add=[("/1/1/1", 2, 86400)]), True, OK_LOG),
        _case("duplicate_path_last_wins_fails",
              a_with(add=[("/1/1/1", 2, -5)]), False, "Lifetime value is negative: -5"),
        _case("riid_on_security_uri_ignored_ok",
              a_with(drop=("/0/1/0",), add=[("/0/1/0/0", 3, URI)]), True, OK_LOG),
        _case("security_mode_omitted_defaults_to_psk_ok", a_with(drop=("/0/1/2",)), True,
              OK_LOG),
        _case("bootstrap_omitted_defaults_to_false_ok", a_with(drop=("/0/1/1",)), True, OK_LOG),
        _case("security_mode_1_rpk_fails", a_with(replace={"/0/1/2": (2, 1)}), False,
              "Raw Public Key mode not supported"),
        _case("security_mode_5_fails", a_with(replace={"/0/1/2": (2, 5)}), False,
              "Invalid Security Mode"),
        _case("security_mode_negative_fails", a_with(replace={"/0/1/2": (2, -1)}), False,
              "Invalid Security Mode"),
        _case("security_ssid_0_fails", a_with(replace={"/0/1/10": (2, 0)}), False,
              WRITE_FAILED),
        _case("security_ssid_65535_ok", a_with(replace={"/0/1/10": (2, 65535)}), True, OK_LOG),
        _case("security_ssid_65536_fails", a_with(replace={"/0/1/10": (2, 65536)}), False,
              WRITE_FAILED),
        _case("server_ssid_65537_truncated_to_1_ok", a_with(replace={"/1/1/0": (2, 65537)}),
              True, OK_LOG),
        _case("server_ssid_65536_truncated_to_0_fails", a_with(replace={"/1/1/0": (2, 65536)}),
              False, "/1/1: invalid 'Short Server ID' resource value: 0"),
        _case("server_ssid_65535_fails", a_with(replace={"/1/1/0": (2, 65535)}), False,
              "/1/1: invalid 'Short Server ID' resource value: 65535"),
        _case("server_ssid_minus_1_wraps_to_65535_fails", a_with(replace={"/1/1/0": (2, -1)}),
              False, "/1/1: invalid 'Short Server ID' resource value: 65535"),
        _case("server_ssid_0_fails", a_with(replace={"/1/1/0": (2, 0)}), False,
              "/1/1: invalid 'Short Server ID' resource value: 0"),
        _case("server_ssid_65534_ok", blob(
            [r if r[0] != "/0/1/10" else ("/0/1/10", 2, 65534) for r in SECURITY_A]
            + [r if r[0] != "/1/1/0" else ("/1/1/0", 2, 65534) for r in SERVER_A]), True,
            OK_LOG),
        _case("server_ssid_above_int32_fails", a_with(replace={"/1/1/0": (2, 2**31)}), False,
              WRITE_FAILED),
        _case("server_retry_count_0_fails", a_with(add=[("/1/1/17", 2, 0)]), False,
              "Server Communication Retry Count cannot be 0"),
        _case("server_sequence_retry_count_0_fails", a_with(add=[("/1/1/20", 2, 0)]), False,
              "Server Sequence Communication Retry Count cannot be 0"),
        _case("server_default_max_period_0_fails", a_with(add=[("/1/1/3", 2, 0)]), False,
              WRITE_FAILED),
        _case("server_default_min_period_negative_fails", a_with(add=[("/1/1/2", 2, -1)]),
              False, WRITE_FAILED),
        _case("server_disable_timeout_negative_fails", a_with(add=[("/1/1/5", 2, -1)]), False,
              WRITE_FAILED),
        _case("server_optional_resources_ok", a_with(add=[
            ("/1/1/2", 2, 0), ("/1/1/3", 2, 300), ("/1/1/5", 2, 86400), ("/1/1/11", 2, 300),
            ("/1/1/12", 2, -5), ("/1/1/16", 4, True), ("/1/1/17", 2, 5), ("/1/1/18", 2, 60),
            ("/1/1/19", 2, 86400), ("/1/1/20", 2, 1), ("/1/1/22", 3, "U")]), True, OK_LOG),
        _case("security_optional_resources_ok", a_with(add=[
            ("/0/1/4", 8, b"\x30\x82"), ("/0/1/11", 2, 1), ("/0/1/12", 2, 0), ("/0/1/13", 2, 3),
            ("/0/1/14", 3, "eu.iot.avsystem.cloud"), ("/0/1/15", 2, 3),
            ("/0/1/16/0", 2, 0xC0A8), ("/0/1/16/1", 2, 0x00AE)]), True, OK_LOG),
        _case("security_matching_type_4_fails", a_with(add=[("/0/1/13", 2, 4)]), False,
              WRITE_FAILED),
        _case("security_certificate_usage_4_fails", a_with(add=[("/0/1/15", 2, 4)]), False,
              WRITE_FAILED),
        _case("security_ciphersuite_0_fails", a_with(add=[("/0/1/16/0", 2, 0)]), False,
              "TLS-NULL-WITH-NULL-NULL cipher is not allowed"),
        _case("security_ciphersuite_65536_fails", a_with(add=[("/0/1/16/0", 2, 65536)]), False,
              "Ciphersuite ID > 65535 is not allowed"),
        _case("server_initial_registration_delay_14_fails", a_with(add=[("/1/1/14", 2, 0)]),
              False, WRITE_FAILED),
    ]
    for rid, label, value in ((4, 2, 0), (8, 2, 0), (9, 2, 0), (10, "vlo", "11:0"),
                              (13, 2, 1), (15, 4, False), (21, 4, True), (23, 4, False),
                              (99, 2, 1)):
        cases.append(_case(f"server_rid_{rid}_not_writable",
                           a_with(add=[(f"/1/1/{rid}", label, value)]), False, WRITE_FAILED))
    for rid, label, value in ((6, 2, 1), (7, 8, b"k"), (8, 8, b"k"), (9, 3, "+48"),
                              (17, 2, 1), (99, 2, 1)):
        cases.append(_case(f"security_rid_{rid}_not_writable",
                           a_with(add=[(f"/0/1/{rid}", label, value)]), False, WRITE_FAILED))
    cases.append(_case("access_control_rid_4_not_writable",
                       a_with(add=AC_RECORDS + [("/2/0/4", 2, 1)]), False, WRITE_FAILED))
    # Binding grammar (spec §4.2).
    for binding in ("U", "UQ", "S", "SQ", "US", "UQS", "T", "N", "UT", "TU", "UTSN", "NSTU", ""):
        cases.append(_case(f"binding_{binding or 'empty'}_ok",
                           a_with(replace={"/1/1/7": (3, binding)}), True, OK_LOG))
    for binding in ("u", "uq", "QU", "UU", "UQQ", "X", "UQSN", "UQT", "UTSNUTSN"):
        cases.append(_case(f"binding_{binding}_fails",
                           a_with(replace={"/1/1/7": (3, binding)}), False, WRITE_FAILED))
    cases += [
        _case("preferred_transport_T_ok", a_with(add=[("/1/1/22", 3, "T")]), True, OK_LOG),
        _case("preferred_transport_two_chars_fails", a_with(add=[("/1/1/22", 3, "UT")]), False,
              WRITE_FAILED),
        _case("preferred_transport_X_fails", a_with(add=[("/1/1/22", 3, "X")]), False,
              "Incorrect Preferred Transport: X"),
        _case("preferred_transport_lowercase_fails", a_with(add=[("/1/1/22", 3, "u")]), False,
              "Incorrect Preferred Transport: u"),
        _case("preferred_transport_empty_fails", a_with(add=[("/1/1/22", 3, "")]), False,
              "Incorrect Preferred Transport: "),
    ]
    return cases


def _access_control_cases() -> list[BlobCase]:
    def ac(*records: Record, replace: dict[str, tuple[int | str, object]] | None = None,
           drop: tuple[str, ...] = ()) -> bytes:
        return with_records(EXAMPLE_A_RECORDS + AC_RECORDS, replace=replace, drop=drop,
                            add=list(records))

    return [
        _case("access_control_ok", ac(), True, OK_LOG),
        _case("access_control_acl_riid_0_ok", ac(("/2/0/2/0", 2, 1)), True, OK_LOG),
        _case("access_control_target_instance_65535_ok", ac(replace={"/2/0/1": (2, 65535)}),
              True, OK_LOG),
        _case("access_control_owner_65535_ok", ac(replace={"/2/0/3": (2, 65535)}), True,
              OK_LOG),
        _case("access_control_target_object_2_fails", ac(replace={"/2/0/0": (2, 2)}), False,
              WRITE_FAILED),
        _case("access_control_target_object_0_fails", ac(replace={"/2/0/0": (2, 0)}), False,
              WRITE_FAILED),
        _case("access_control_target_object_65535_fails", ac(replace={"/2/0/0": (2, 65535)}),
              False, WRITE_FAILED),
        _case("access_control_target_instance_65536_fails",
              ac(replace={"/2/0/1": (2, 65536)}), False, WRITE_FAILED),
        _case("access_control_owner_0_fails", ac(replace={"/2/0/3": (2, 0)}), False,
              WRITE_FAILED),
        _case("access_control_target_object_not_installed_fails",
              ac(replace={"/2/0/0": (2, 3), "/2/0/1": (2, 0)}), False,
              "Validation failed for target: /3/0"),
        _case("access_control_target_instance_missing_fails", ac(replace={"/2/0/1": (2, 7)}),
              False, "Validation failed for target: /1/7"),
        _case("access_control_target_iid_never_written_fails", ac(drop=("/2/0/1",)), False,
              "Validation failed for target: /1/-1"),
        _case("access_control_duplicate_target_fails",
              ac(("/2/1/0", 2, 1), ("/2/1/1", 2, 1)), False,
              "Validation failed for target: /1/1"),
        _case("access_control_owner_unknown_ssid_fails", ac(replace={"/2/0/3": (2, 2)}), False,
              "Validation failed: invalid SSID: 2"),
        _case("access_control_acl_unknown_ssid_fails", ac(("/2/0/2/7", 2, 1)), False,
              "Validation failed: invalid SSID: 7"),
        _case("access_control_acl_without_riid_fails", ac(("/2/0/2", 2, 1)), False,
              "Validation failed: invalid SSID: 65535"),
        _case("access_control_acl_ssid_matches_security_only_fails",
              ac(("/0/2/0", 3, URI), ("/0/2/3", 8, PSK_ID), ("/0/2/5", 8, PSK_KEY),
                 ("/0/2/10", 2, 9), ("/2/0/2/9", 2, 1)), False,
              "Validation failed: invalid SSID: 9"),
        _case("example_b_acl_alone_fails", EXAMPLE_B_ACL, False,
              "Validation failed for target: /0/-1"),
    ]


def _validation_cases() -> list[BlobCase]:
    """Spec §4.3: validation at Bootstrap Finish, including what is NOT validated."""
    nosec = [("/0/1/2", 2, 3)]

    def security(uri: str, mode: int, keys: bool = True) -> bytes:
        recs: list[Record] = [("/0/1/0", 3, uri), ("/0/1/2", 2, mode), ("/0/1/10", 2, 1)]
        if keys:
            recs += [("/0/1/3", 8, PSK_ID), ("/0/1/5", 8, PSK_KEY)]
        return _server_a_with_security(recs)

    incorrect = "due to security configuration (coap:// instead of coaps:// or vice versa?)"
    return [
        _case("example_b_server_ssid_alone_fails", EXAMPLE_B_SERVER_SSID, False,
              "/1/1: missing mandatory 'Binding' resource value"),
        _case("security_without_uri_fails", a_with(drop=("/0/1/0",)), False,
              "/0/1: missing mandatory 'Server URI' resource value"),
        _case("security_without_ssid_fails", a_with(drop=("/0/1/10",)), False,
              "/0/1: missing mandatory 'Short Server ID' resource value"),
        _case("bootstrap_security_without_ssid_ok",
              blob([("/0/0/0", 3, "coaps://bs.example:5684"), ("/0/0/1", 4, True),
                    ("/0/0/3", 8, PSK_ID), ("/0/0/5", 8, PSK_KEY)]), True, OK_LOG),
        _case("two_bootstrap_security_instances_fail",
              blob([(f"/0/{i}/{r}", lbl, v) for i in (0, 1) for r, lbl, v in
                    ((0, 3, "coaps://bs.example:5684"), (1, 4, True), (3, 8, PSK_ID),
                     (5, 8, PSK_KEY))]), False, "Validation failed for /0"),
        _case("uri_scheme_http_fails", security("http://eu.iot.avsystem.cloud", 0), False,
              "unsupported URI scheme: http://eu.iot.avsystem.cloud"),
        _case("uri_scheme_http_incorrect_protocol", security("http://eu.iot.avsystem.cloud", 0),
              False, "/0/1: Incorrect protocol in Server Uri 'http://eu.iot.avsystem.cloud' "
              + incorrect),
        _case("uri_empty_fails", security("", 0), False, "unsupported URI scheme: "),
        _case("uri_scheme_uppercase_ok", security("COAPS://eu.iot.avsystem.cloud:5684", 0),
              True, OK_LOG),
        _case("uri_scheme_coap_with_psk_fails", security("coap://eu.iot.avsystem.cloud", 0),
              False, "/0/1: Incorrect protocol in Server Uri 'coap://eu.iot.avsystem.cloud'"),
        _case("uri_scheme_coaps_with_nosec_fails", security(URI, 3, keys=False), False,
              f"/0/1: Incorrect protocol in Server Uri '{URI}'"),
        _case("uri_scheme_coap_with_nosec_ok", blob(NOSEC_SECURITY + SERVER_A), True, OK_LOG),
        _case("uri_scheme_coap_tcp_with_nosec_ok",
              security("coap+tcp://eu.iot.avsystem.cloud:5683", 3, keys=False), True, OK_LOG),
        _case("uri_scheme_coaps_tcp_with_psk_ok",
              security("coaps+tcp://eu.iot.avsystem.cloud:5684", 0), True, OK_LOG),
        _case("uri_scheme_coap_nidd_with_nosec_ok", security("coap+nidd://apn", 3, keys=False),
              True, OK_LOG),
        _case("uri_scheme_coaps_nidd_with_psk_ok", security("coaps+nidd://apn", 0), True,
              OK_LOG),
        _case("uri_scheme_tel_with_psk_ok", security("tel:+48123456789", 0), True, OK_LOG),
        _case("uri_scheme_tel_with_nosec_ok", security("tel:+48123456789", 3, keys=False), True,
              OK_LOG),
        _case("uri_scheme_coapsx_fails", security("coapsx://host", 0), False,
              "unsupported URI scheme: coapsx://host"),
        _case("uri_scheme_coaps_with_est_ok", security(URI, 4, keys=False), True, OK_LOG),
        _case("uri_scheme_coap_with_est_fails", security("coap://host", 4, keys=False), False,
              "Incorrect protocol in Server Uri 'coap://host'"),
        _case("psk_without_identity_fails", a_with(drop=("/0/1/3",)), False,
              "/0/1: security credentials not fully configured"),
        _case("psk_without_key_fails", a_with(drop=("/0/1/5",)), False,
              "/0/1: security credentials not fully configured"),
        _case("psk_with_empty_key_fails", a_with(replace={"/0/1/5": (8, b"")}), False,
              "/0/1: security credentials not fully configured"),
        _case("cert_without_server_certificate_ok", security(URI, 2), True, OK_LOG),
        _case("cert_without_private_key_fails",
              _server_a_with_security([("/0/1/0", 3, URI), ("/0/1/2", 2, 2),
                                       ("/0/1/3", 8, b"cert"), ("/0/1/10", 2, 1)]), False,
              "/0/1: security credentials not fully configured"),
        _case("cert_with_junk_certificate_ok",
              _server_a_with_security([("/0/1/0", 3, URI), ("/0/1/2", 2, 2),
                                       ("/0/1/3", 8, b"not a certificate"),
                                       ("/0/1/4", 8, b"junk"), ("/0/1/5", 8, b"not a key"),
                                       ("/0/1/10", 2, 1)]), True, OK_LOG),
        _case("matching_type_2_fails", a_with(add=[("/0/1/13", 2, 2)]), False,
              "/0/1: SHA-384 Matching Type is not supported"),
        _case("matching_type_3_ok", a_with(add=[("/0/1/13", 2, 3)]), True, OK_LOG),
        _case("security_duplicate_ssid_same_transport_fails",
              blob(SECURITY_A + [(p.replace("/0/1/", "/0/2/"), lbl, v) for p, lbl, v in
                                 SECURITY_A] + SERVER_A), False, "Validation failed for /0"),
        _case("security_duplicate_ssid_coap_and_coaps_fails",
              blob(SECURITY_A + [("/0/2/0", 3, "coap://eu.iot.avsystem.cloud"),
                                 ("/0/2/2", 2, 3), ("/0/2/10", 2, 1)] + SERVER_A), False,
              "Validation failed for /0"),
        _case("security_same_ssid_udp_and_tcp_ok",
              blob(SECURITY_A + [("/0/2/0", 3, "coaps+tcp://eu.iot.avsystem.cloud"),
                                 ("/0/2/3", 8, PSK_ID), ("/0/2/5", 8, PSK_KEY),
                                 ("/0/2/10", 2, 1)] + SERVER_A), True, OK_LOG),
        _case("server_without_ssid_fails", a_with(drop=("/1/1/0",)), False,
              "/1/1: missing mandatory 'Short Server ID' resource value"),
        _case("server_without_binding_fails", a_with(drop=("/1/1/7",)), False,
              "/1/1: missing mandatory 'Binding' resource value"),
        _case("server_without_lifetime_fails", a_with(drop=("/1/1/1",)), False,
              "/1/1: missing mandatory 'Lifetime' resource value"),
        _case("server_without_notification_storing_fails", a_with(drop=("/1/1/6",)), False,
              "/1/1: missing mandatory 'Notification Storing when disabled or offline' "
              "resource value"),
        _case("server_lifetime_0_ok", a_with(replace={"/1/1/1": (2, 0)}), True, OK_LOG),
        _case("server_lifetime_negative_fails", a_with(replace={"/1/1/1": (2, -1)}), False,
              "/1/1: Lifetime value is negative: -1"),
        _case("server_duplicate_ssid_fails",
              blob(EXAMPLE_A_RECORDS + [(p.replace("/1/1/", "/1/2/"), lbl, v)
                                        for p, lbl, v in SERVER_A]), False,
              "Validation failed for /1"),
        _case("validation_failure_is_rejected", a_with(drop=("/0/1/0",)), False,
              "Bootstrap configuration is invalid, rejecting"),
        # Not validated [tested]: these succeed, the device just never registers.
        _case("ssid_mismatch_ok", a_with(replace={"/1/1/0": (2, 2)}), True, OK_LOG),
        _case("server_without_security_ok", blob(SERVER_A), True, OK_LOG),
        _case("security_without_server_ok", blob(SECURITY_A), True, OK_LOG),
        _case("nosec_security_only_ok", blob(NOSEC_SECURITY + nosec), True, OK_LOG),
        _case("server_and_security_in_other_instances_ok",
              blob([(p.replace("/0/1/", "/0/7/"), lbl, v) for p, lbl, v in SECURITY_A]
                   + [(p.replace("/1/1/", "/1/0/"), lbl, v) for p, lbl, v in SERVER_A]), True,
              OK_LOG),
    ]


def _quirk_cases() -> list[BlobCase]:
    """Behaviour that follows from Anjay's look-ahead decoder (end of input = end of data)."""
    raw = _a_records_raw()
    return [
        _case("quirk_array_declares_more_records_than_sent",
              bytes([0x8b]) + b"".join(raw), True, OK_LOG),
        _case("quirk_truncated_at_record_boundary",
              _array(raw + [record("/1/1/18", 2, 60)])[:-len(record("/1/1/18", 2, 60))], True,
              OK_LOG),
        _case("quirk_records_after_definite_array_are_read",
              bytes([0x89]) + b"".join(raw), True, OK_LOG),
        _case("quirk_indefinite_array_without_break", b"\x9f" + b"".join(raw), True, OK_LOG),
        _case("quirk_lone_indefinite_array_header", b"\x9f", True, OK_LOG),
        _case("quirk_lone_definite_array_header", b"\x8a", True, OK_LOG),
        _case("quirk_time_label_resynchronises",
              _array(raw[:-1] + [b"\xa3\x06\x00" + _text("/1/1/7") + b"\x03" + _text("U")
                                 + b"\x06"]), True, OK_LOG),
    ]


CORPUS: list[BlobCase] = (_reader_cases() + _coupling_cases() + _write_cases()
                          + _access_control_cases() + _validation_cases() + _quirk_cases())

CASES_BY_NAME: dict[str, BlobCase] = {case.name: case for case in CORPUS}
assert len(CASES_BY_NAME) == len(CORPUS), "duplicate case names"
