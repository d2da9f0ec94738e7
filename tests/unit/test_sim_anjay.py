"""The device model: Anjay 3.11 factory provisioning on the Zephyr initial image (spec §3–§5)."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilprov.sim.anjay import (
    ProvisionOutcome,
    binding_valid,
    factory_provision,
    registration_outcome,
)
from hilprov.sim.cbor_reader import (
    CborDecoder,
    DecoderState,
    Number,
    SenmlError,
    SenmlReader,
    ValueType,
    number_to_i64,
    number_to_u64,
    parse_absolute_path,
)
from tests.unit.blob_corpus import (
    AC_RECORDS,
    CASES_BY_NAME,
    CORPUS,
    EXAMPLE_A,
    EXAMPLE_A_RECORDS,
    NOSEC_SECURITY,
    OK_LOG,
    PSK_ID,
    PSK_KEY,
    SECURITY_A,
    SERVER_A,
    URI,
    BlobCase,
    a_with,
    blob,
)

NOW = 1_700_000_000
ENDPOINT = "anjay-zephyr-demo-351234567890123"


def provision(data: bytes) -> ProvisionOutcome:
    return factory_provision(data, now=NOW)


def has_line(outcome: ProvisionOutcome, text: str) -> bool:
    return any(text in line for line in outcome.log)


# --- the corpus: verdict and log line for every rule of spec §3 and §4 -------------------------

@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus_case(case: BlobCase) -> None:
    outcome = provision(case.blob)
    assert outcome.ok is case.expected_ok, outcome.reason
    assert has_line(outcome, case.expected_log), outcome.log
    assert outcome.result_text == ("0" if case.expected_ok else "-1")
    if case.expected_ok:
        assert outcome.errno_name is None
        assert outcome.log[-2:] == ["TRACE [anjay] Bootstrap Sequence finished",
                                    "INFO [anjay_factory_provision] Finished factory provisioning"]
        assert set(outcome.objects) == {0, 1, 2}
    else:
        assert outcome.objects == {}
        assert outcome.errno_name in {"ENOMEM", "EPROTO", "EBADMSG"}
        assert not has_line(outcome, OK_LOG)


def test_corpus_covers_both_verdicts_and_is_large() -> None:
    assert len(CORPUS) > 200
    assert {case.expected_ok for case in CORPUS} == {True, False}


# Each failure class ends with its own line and errno (spec §4.1 steps 3–5).
@pytest.mark.parametrize("name, errno_name, last_line", [
    ("empty_input", "ENOMEM", "ERROR [anjay_factory_provision] Cannot create CBOR context"),
    ("top_level_map", "ENOMEM", "ERROR [anjay_factory_provision] Cannot create CBOR context"),
    ("object_5_not_found", "EPROTO", "ERROR [anjay_factory_provision] Error occured during "
                                     "writing bootstrap information"),
    ("trailing_zero_byte", "EPROTO", "ERROR [anjay_factory_provision] Error occured during "
                                     "writing bootstrap information"),
    ("security_without_uri_fails", "EBADMSG", "ERROR [anjay_factory_provision] Could not apply "
                                              "bootstrap information"),
])
def test_failure_class_errno_and_final_line(name: str, errno_name: str, last_line: str) -> None:
    outcome = provision(CASES_BY_NAME[name].blob)
    assert outcome.errno_name == errno_name
    assert outcome.log[-1] == last_line


def test_validation_failure_logs_in_device_order() -> None:
    outcome = provision(CASES_BY_NAME["security_without_uri_fails"].blob)
    assert outcome.log[-4:] == [
        "WARNING [security] /0/1: missing mandatory 'Server URI' resource value",
        "ERROR [anjay] Validation failed for /0",
        "WARNING [anjay] Bootstrap configuration is invalid, rejecting",
        "ERROR [anjay_factory_provision] Could not apply bootstrap information",
    ]


def test_unsupported_scheme_is_logged_before_incorrect_protocol() -> None:
    outcome = provision(CASES_BY_NAME["uri_scheme_http_fails"].blob)
    first = next(i for i, line in enumerate(outcome.log) if "unsupported URI scheme" in line)
    second = next(i for i, line in enumerate(outcome.log) if "Incorrect protocol" in line)
    assert first < second


def test_extraneous_data_line_comes_before_the_write_error() -> None:
    outcome = provision(CASES_BY_NAME["trailing_zero_byte"].blob)
    assert outcome.log[-2:] == [
        "WARNING [senml_in] SenML payload contains extraneous data",
        "ERROR [anjay_factory_provision] Error occured during writing bootstrap information",
    ]


def test_cbor_context_failure_writes_no_write_error_line() -> None:
    outcome = provision(b"")
    assert outcome.log == ["ERROR [anjay_factory_provision] Cannot create CBOR context"]


def test_record_that_stops_early_leaves_extraneous_data_warning_only_when_data_is_left() -> None:
    single = provision(blob([("/5/0/0", 2, 1)]))
    assert not has_line(single, "extraneous")
    early = provision(blob([("/5/0/0", 2, 1)] + EXAMPLE_A_RECORDS))
    assert has_line(early, "SenML payload contains extraneous data")


# Readable reasons: which record, what was expected (model-specific, beyond the Anjay log).
@pytest.mark.parametrize("name, reason", [
    ("opaque_resource_with_text_identity_fails",
     "record 4 (/0/1/3): /0/1/3 needs a byte string (label vd), got a text string"),
    ("object_5_not_found", "record 11 (/5/0/1): object /5 is not installed"),
    ("int_resource_above_int32_fails", "/1/1/1 = 2147483648 does not fit a 32-bit signed"),
    ("double_float_fraction_fails", "/1/1/1 needs an exact integer"),
    ("binding_u_fails", "Binding 'u' is not valid"),
    ("binding_UTSNUTSN_fails", "/1/1/7 is 8 bytes long; the device keeps at most 7"),
    ("path_with_five_segments_fails", "it has more than 4 segments"),
    ("path_segment_65535_fails", "ID 65535 is outside 0..65534"),
    ("base_name_plus_name_25_characters_fails", "bn + n is 25 characters"),
    ("record_without_value_fails", "got no value"),
    ("record_without_name_or_base_name_fails", "record without a name (n)"),
    ("time_label_fails", "does not skip the value of a bt/t label"),
    ("trailing_zero_byte", "record 11: after the end of the top-level array"),
    ("server_initial_registration_delay_14_fails", "Anjay 3.11 has no Initial Registration"),
    ("two_bootstrap_security_instances_fail", "both Bootstrap-Server accounts"),
    ("security_duplicate_ssid_coap_and_coaps_fails", "both use Short Server ID 1 over UDP"),
    ("server_duplicate_ssid_fails", "/1/1 and /1/2 both use Short Server ID 1"),
    ("access_control_acl_unknown_ssid_fails", "refers to SSID 7"),
    ("empty_input", "empty or its top-level item is not a CBOR array"),
])
def test_reason_names_the_record_and_the_rule(name: str, reason: str) -> None:
    assert reason in provision(CASES_BY_NAME[name].blob).reason


# --- committed objects: what the final image restores ------------------------------------------

def test_example_a_commits_the_expected_objects() -> None:
    outcome = provision(EXAMPLE_A)
    assert outcome.objects == {
        0: {1: {0: URI, 1: False, 2: 0, 3: PSK_ID, 5: PSK_KEY, 10: 1}},
        1: {1: {0: 1, 1: 86400, 6: False, 7: "U", 12: NOW}},
        2: {},
    }
    assert outcome.bytes_consumed == len(EXAMPLE_A) == 192


def test_security_records_before_their_ssid_log_the_harmless_error() -> None:
    outcome = provision(EXAMPLE_A)
    assert outcome.ok
    # Five Security records (/0/1/0 .. /0/1/5) precede /0/1/10.
    assert outcome.log.count("ERROR [anjay] could not get Short Server ID from /0/1/10") == 5


def test_empty_array_commits_empty_objects() -> None:
    outcome = provision(b"\x80")
    assert outcome.ok and outcome.objects == {0: {}, 1: {}, 2: {}}


def test_server_ssid_is_stored_truncated_to_16_bits() -> None:
    outcome = provision(CASES_BY_NAME["server_ssid_65537_truncated_to_1_ok"].blob)
    assert outcome.objects[1][1][0] == 1


def test_duplicate_path_keeps_the_last_value() -> None:
    outcome = provision(a_with(add=[("/1/1/1", 2, 3600), ("/0/1/0", 3, "coaps://other:5684")]))
    assert outcome.objects[1][1][1] == 3600
    assert outcome.objects[0][1][0] == "coaps://other:5684"


def test_riid_on_single_instance_resource_is_ignored() -> None:
    outcome = provision(CASES_BY_NAME["riid_on_security_uri_ignored_ok"].blob)
    assert outcome.objects[0][1][0] == URI


def test_omitted_mode_and_bootstrap_take_their_defaults() -> None:
    outcome = provision(a_with(drop=("/0/1/1", "/0/1/2")))
    assert outcome.objects[0][1][1] is False and outcome.objects[0][1][2] == 0


def test_access_control_instance_is_committed_with_acl() -> None:
    outcome = provision(blob(EXAMPLE_A_RECORDS + AC_RECORDS + [("/2/1/0", 2, 1),
                                                               ("/2/1/1", 2, 65535)]))
    assert outcome.ok, outcome.reason
    assert outcome.objects[2] == {0: {0: 1, 1: 1, 2: {1: 15}, 3: 1},
                                  1: {0: 1, 1: 65535, 3: 65535}}


def test_ciphersuites_are_kept_per_resource_instance() -> None:
    outcome = provision(a_with(add=[("/0/1/16/3", 2, 0xC0A8), ("/0/1/16", 2, 0x00AE)]))
    assert outcome.objects[0][1][16] == {3: 0xC0A8, 65535: 0x00AE}


def test_tls_alert_code_is_stored_as_uint8_and_last_bootstrapped_is_overwritten() -> None:
    outcome = provision(a_with(add=[("/1/1/11", 2, 300), ("/1/1/12", 2, -5)]))
    assert outcome.ok
    assert outcome.objects[1][1][11] == 300 & 0xFF
    assert outcome.objects[1][1][12] == NOW


def test_nul_in_a_text_value_ends_the_c_string() -> None:
    outcome = provision(a_with(replace={"/1/1/7": (3, "U\x00Q")}))
    assert outcome.ok and outcome.objects[1][1][7] == "U"


def test_outcome_repr_never_shows_keys() -> None:
    outcome = provision(EXAMPLE_A)
    assert PSK_KEY.decode() not in repr(outcome)
    assert PSK_ID.decode() not in repr(outcome)


def test_failed_outcome_consumed_fewer_bytes_than_sent_when_it_stops_early() -> None:
    data = blob([("/5/0/0", 2, 1)] + EXAMPLE_A_RECORDS)
    assert provision(data).bytes_consumed < len(data)


def test_model_is_deterministic_for_a_given_clock() -> None:
    first, second = provision(EXAMPLE_A), provision(EXAMPLE_A)
    assert (first.ok, first.log, first.objects) == (second.ok, second.log, second.objects)


# Robustness: the virtual board must answer "-1" to any garbage, never crash.
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_give_an_outcome(data: bytes) -> None:
    outcome = factory_provision(data, now=NOW)
    assert outcome.result_text in ("0", "-1")
    assert outcome.ok == (outcome.result_text == "0")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(EXAMPLE_A) - 1), st.integers(0, 255))
def test_mutated_example_a_gives_an_outcome(position: int, byte: int) -> None:
    data = bytearray(EXAMPLE_A)
    data[position] = byte
    outcome = factory_provision(bytes(data), now=NOW)
    assert outcome.result_text in ("0", "-1")
    if not outcome.ok:
        assert outcome.objects == {}


# --- the reader on its own ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (b"/0/1/10", (0, 1, 10)),
    (b"/1/1/7/0", (1, 1, 7, 0)),
    (b"/01/001/0007", (1, 1, 7)),
    (b"/65534/0/0", (65534, 0, 0)),
    (b"/", ()),
    (b"/1/+1/7", (1, 1, 7)),
    (b"/1/\t1/7", (1, 1, 7)),
    (b"/65535/0/0", None),
    (b"/1/-1/7", None),
    (b"/1//7", None),
    (b"/1/1/7/", None),
    (b"1/1/7", None),
    (b"", None),
    (b"/1/1/7/0/0", None),
    (b"/1/1x/7", None),
    (b"/99999999999/0/0", None),
])
def test_path_parser(text: bytes, expected: tuple[int, ...] | None) -> None:
    assert parse_absolute_path(text)[0] == expected


@pytest.mark.parametrize("number, as_i64, as_u64", [
    (Number(ValueType.UINT, 5), 5, 5),
    (Number(ValueType.UINT, 2**63), None, 2**63),
    (Number(ValueType.NEGATIVE_INT, -1), -1, None),
    (Number(ValueType.FLOAT, 1.0), 1, 1),
    (Number(ValueType.FLOAT, 1.5), None, None),
    (Number(ValueType.DOUBLE, -0.0), 0, 0),
    (Number(ValueType.DOUBLE, -3.0), -3, None),
    (Number(ValueType.DOUBLE, float("nan")), None, None),
    (Number(ValueType.DOUBLE, 2.0**63), None, 2**63),
])
def test_number_conversions(number: Number, as_i64: int | None, as_u64: int | None) -> None:
    assert number_to_i64(number) == as_i64
    assert number_to_u64(number) == as_u64


@pytest.mark.parametrize("encoded, expected", [
    ("f93c00", 1.0),            # half
    ("f97bff", 65504.0),        # largest half
    ("f90001", 2.0**-24),       # smallest half subnormal
    ("fa47a8c000", 86400.0),    # single
    ("fb40f5180000000000", 86400.0),  # double
])
def test_float_widths(encoded: str, expected: float) -> None:
    decoder = CborDecoder(bytes.fromhex(encoded))
    number = decoder.number()
    assert number is not None and number.value == expected
    assert decoder.state is DecoderState.FINISHED


def test_header_argument_28_is_taken_literally_like_the_device() -> None:
    number = CborDecoder(b"\x1c").number()
    assert number is not None and number.value == 28


def test_undefined_simple_value_is_a_decoder_error() -> None:
    assert CborDecoder(b"\xf7").state is DecoderState.ERROR


def test_nesting_deeper_than_three_levels_is_refused() -> None:
    reader = SenmlReader.open(cbor2.dumps([{0: "/1/1/1", 2: [[1]]}]))
    with pytest.raises(SenmlError):
        reader.next_record()


def test_reader_yields_records_then_none() -> None:
    reader = SenmlReader.open(EXAMPLE_A)
    paths = []
    while (record := reader.next_record()) is not None:
        paths.append(record.path)
    assert paths == [tuple(int(p) for p in path.strip("/").split("/"))
                     for path, _label, _value in EXAMPLE_A_RECORDS]
    reader.close()
    assert reader.log == []


def test_reader_refuses_a_payload_that_is_not_an_array() -> None:
    with pytest.raises(SenmlError):
        SenmlReader.open(b"\xa0")


def test_binding_grammar() -> None:
    assert all(binding_valid(b) for b in ("U", "UQ", "S", "SQ", "US", "UQS", "T", "N", "TN", ""))
    assert not any(binding_valid(b) for b in ("u", "QU", "UU", "UQT", "X", "Q"))


# --- the final image: does it register? (spec §4.3 "not validated", §5.6) ---------------------

def outcome_for(data: bytes):
    provisioned = provision(data)
    assert provisioned.ok, provisioned.reason
    return registration_outcome(provisioned.objects, ENDPOINT)


def test_example_a_registers_over_coaps_with_psk() -> None:
    result = outcome_for(EXAMPLE_A)
    assert result.registers
    assert (result.server_uri, result.security_mode) == (URI, 0)
    assert ENDPOINT in result.reason


def test_nosec_over_coap_registers() -> None:
    result = outcome_for(blob(NOSEC_SECURITY + SERVER_A))
    assert result.registers and result.security_mode == 3


def test_truncated_server_ssid_still_matches_security() -> None:
    assert outcome_for(CASES_BY_NAME["server_ssid_65537_truncated_to_1_ok"].blob).registers


def test_servers_in_other_instances_match_by_ssid() -> None:
    assert outcome_for(CASES_BY_NAME["server_and_security_in_other_instances_ok"].blob).registers


@pytest.mark.parametrize("name, reason", [
    ("empty_definite_array", "empty configuration"),
    ("ssid_mismatch_ok", "Server /1/1 (SSID 2) has no non-bootstrap Security instance"),
    ("server_without_security_ok", "has no non-bootstrap Security instance with Short Server ID"),
    ("security_without_server_ok", "no Server instance (/1) was provisioned"),
    ("bootstrap_security_without_ssid_ok", "Bootstrap-Server account"),
    ("uri_scheme_coap_tcp_with_nosec_ok", "TCP transport"),
    ("uri_scheme_tel_with_psk_ok", "SMS transport"),
    ("uri_scheme_coaps_nidd_with_psk_ok", "NIDD transport"),
    ("uri_scheme_coaps_with_est_ok", "EST"),
])
def test_provisioned_but_never_registers(name: str, reason: str) -> None:
    result = outcome_for(CASES_BY_NAME[name].blob)
    assert not result.registers
    assert reason in result.reason
    assert result.server_uri is None and result.security_mode is None


def test_ssid_mismatch_names_the_orphan_security_instance_too() -> None:
    result = outcome_for(CASES_BY_NAME["ssid_mismatch_ok"].blob)
    assert "Security /0/1 (SSID 1) has no Server instance with Short Server ID 1" in result.reason


def test_uri_without_host_never_registers() -> None:
    result = outcome_for(a_with(replace={"/0/1/0": (3, "coaps://")}))
    assert not result.registers and "has no host" in result.reason


def test_failed_provisioning_leaves_nothing_to_register_with() -> None:
    result = registration_outcome(provision(b"").objects, ENDPOINT)
    assert not result.registers
    assert "no provisioning data was persisted" in result.reason


def test_one_usable_server_out_of_two_is_enough() -> None:
    data = blob(SECURITY_A + SERVER_A + [(p.replace("/1/1/", "/1/2/"), lbl, 2 if p == "/1/1/0"
                                          else v) for p, lbl, v in SERVER_A])
    result = outcome_for(data)
    assert result.registers and result.server_uri == URI


def test_empty_endpoint_name_never_registers() -> None:
    result = registration_outcome(provision(EXAMPLE_A).objects, "")
    assert not result.registers and "endpoint name" in result.reason




def test_invalid_utf8_text_is_accepted_like_the_device_and_stays_serialisable() -> None:
    sni = b"\xa2\x00" + cbor2.dumps("/0/1/14") + b"\x03" + b"\x62\xff\xfe"  # text, not UTF-8
    outcome = provision(b"\x8b" + EXAMPLE_A[1:] + sni)
    assert outcome.ok, outcome.reason
    assert outcome.objects[0][1][14] == "\ufffd\ufffd"
    assert cbor2.loads(cbor2.dumps(outcome.objects)) == outcome.objects
