"""Host-side validation: each rule of spec §4.2/§4.3 with an accepted and a refused case."""

import pytest

from hilprov.core.config import load_config, parse_config
from hilprov.core.lwm2m import Objlink
from hilprov.core.profile import errors, validate
from tests import CONFIGS

DROP = object()
SEC = {0: "coaps://eu.iot.avsystem.cloud:5684", 1: False, 2: 0, 3: b"id", 5: b"key", 10: 1}
SRV = {0: 1, 1: 86400, 6: False, 7: "U"}


def build(sec=None, srv=None, more=None, *, sec2=None, srv2=None) -> str:
    """Config text: the PSK sample with changes (DROP removes a resource)."""
    def merged(base, changes):
        out = dict(base)
        for rid, value in (changes or {}).items():
            if value is DROP:
                out.pop(rid, None)
            else:
                out[rid] = value
        return out

    tree = {0: {1: merged(SEC, sec)}, 1: {1: merged(SRV, srv)}}
    if sec2 is not None:
        tree[0][2] = merged(SEC, sec2)
    if srv2 is not None:
        tree[1][2] = merged(SRV, srv2)
    tree.update(more or {})
    return repr(tree)


def problems(text: str, profile: str = "anjay-zephyr"):
    return validate(parse_config(text, "cfg"), profile)


def error_texts(text: str, profile: str = "anjay-zephyr") -> list[str]:
    return [str(p) for p in errors(problems(text, profile))]


ACL_OK = {0: 1, 1: 1, 2: {1: 15}, 3: 1}

# (rule, accepted config, refused config, text expected in the refusal)
RULES = [
    # §4.2 write-time
    ("object must be installed", build(more={2: {0: ACL_OK}}),
     build(more={3: {0: {0: "ACME"}}}), "/3: object /3 (Device) does not exist on the device"),
    ("SMS resources not writable", build({14: "example.com"}), build({6: 1}),
     "/0/1/6: Security.SMSSecurityMode cannot be written during provisioning: SMS"),
    ("Security Mode RPK", build({2: 0}), build({2: 1}), "Raw Public Key mode (1) is not supported"),
    ("Security Mode value", build({2: 0}), build({2: 5}), "invalid Security Mode 5"),
    ("Security SSID range", build({10: 65535}, {0: 65535 + 65536 * 0 - 1}), build({10: 0}),
     "Security.ShortServerID = 0 is out of range; the device expects 1..65535"),
    ("Matching Type range", build({13: 3}), build({13: 4}), "MatchingType = 4 is out of range"),
    ("Certificate Usage range", build({15: 3}), build({15: 4}),
     "CertificateUsage = 4 is out of range; the device expects 0..3"),
    ("ACL is multiple", build(more={2: {0: ACL_OK}}), build(more={2: {0: {**ACL_OK, 2: 1}}}),
     "/2/0/2/65535: ACL for SSID 65535 names no Server"),
    ("ciphersuite range", build({16: {0: 65535}}), build({16: {0: 0}}),
     "/0/1/16/0: Security.DtlsTlsCiphersuite = 0 is out of range"),
    ("int32 range", build({11: 2**31 - 1}), build({11: 2**31}), "out of range"),
    ("opaque needs bytes", build({3: b"id"}), build({3: "id"}),
     "opaque resource; found text (value not shown) (write b'...'"),
    ("bool needs vb", build({1: False}), build({1: 0}), "Security.Bootstrap is a boolean resource"),
    ("string needs text", build({0: "coaps://a"}), build({0: b"coaps://a"}),
     "Security.ServerURI is a string resource"),
    ("integer needs an exact value", build({10: 1.0}), build({10: 1.5}),
     "needs an integer value; found float 1.5"),
    ("integer refuses text", build({10: 1}), build({10: "1"}), "is an integer resource"),
    ("Default Min Period >= 0", build(srv={2: 0}), build(srv={2: -1}),
     "DefaultMinPeriod = -1 is out of range"),
    ("Default Max Period >= 1", build(srv={3: 1}), build(srv={3: 0}),
     "DefaultMaxPeriod = 0 is out of range"),
    ("Disable Timeout >= 0", build(srv={5: 0}), build(srv={5: -1}), "DisableTimeout = -1"),
    ("binding 1.1 letters", build(srv={7: "TUN"}), build(srv={7: "UU"}), "incorrect binding"),
    ("binding 1.0 mode", build(srv={7: "UQS"}), build(srv={7: "QU"}), "incorrect binding"),
    ("binding case-sensitive", build(srv={7: ""}), build(srv={7: "u"}),
     "incorrect binding mode 'u'"),
    ("binding length", build(srv={7: "UQ"}), build(srv={7: "USTNUST"}), "incorrect binding"),
    ("retry count >= 1", build(srv={17: 1}), build(srv={17: 0}),
     "ServerCommunicationRetryCount = 0 is out of range"),
    ("sequence retry count >= 1", build(srv={20: 1}), build(srv={20: 0}),
     "ServerCommunicationSequenceRetryCount = 0"),
    ("preferred transport", build(srv={22: "T"}), build(srv={22: "TT"}),
     "incorrect Preferred Transport 'TT'"),
    ("Server RID 14 not writable in 3.11", build(srv={16: True}), build(srv={14: 5}),
     "Anjay 3.11 has no writable Initial Registration Delay Timer"),
    ("executables not writable", build(srv={12: 1700000000}), build(srv={4: 1}),
     "Server.Disable cannot be written during provisioning: it is executable"),
    ("Mute Send not writable", build(srv={11: 0}), build(srv={23: True}), "Mute Send"),
    ("AC target OID not 2", build(more={2: {0: ACL_OK}}),
     build(more={2: {0: {**ACL_OK, 0: 2}}}), "instances that target /2 itself"),
    ("AC target IID range", build(more={2: {0: {**ACL_OK, 1: 65535}}}),
     build(more={2: {0: {**ACL_OK, 1: 65536}}}), "TargetIID = 65536 is out of range"),
    ("AC owner range", build(more={2: {0: {**ACL_OK, 3: 65535}}}),
     build(more={2: {0: {**ACL_OK, 3: 0}}}), "Owner = 0 is out of range"),
    # §3 paths and values
    ("IDs up to 65534", build(more={2: {65534: {**ACL_OK}}}), build(more={2: {65535: ACL_OK}}),
     "ID 65535 is out of range"),
    # §4.3 Security
    ("Server URI mandatory", build({0: "coaps://x"}), build({0: DROP}),
     "/0/1: missing mandatory 'Server URI'"),
    ("SSID mandatory unless bootstrap", build(sec2={1: True, 10: DROP}), build({10: DROP}),
     "/0/1: missing mandatory 'Short Server ID'"),
    ("URI scheme known", build({0: "coaps+tcp://x"}), build({0: "https://x"}),
     "unsupported URI scheme in 'https://x'"),
    ("URI scheme case-insensitive", build({0: "COAPS://x"}), build({0: "coapz://x"}),
     "unsupported URI scheme"),
    ("NoSec needs coap", build({0: "coap://x", 2: 3, 3: DROP, 5: DROP}),
     build({0: "coaps://x", 2: 3}), "NoSec mode (3) needs a coap:// URI"),
    ("PSK needs coaps", build({0: "tel:+48123456"}), build({0: "coap://x"}),
     "PSK mode (0) needs a coaps:// URI"),
    ("PSK credentials", build({5: b"k"}), build({5: b""}),
     "/0/1/5: PSK mode needs a non-empty SecretKey"),
    ("Certificate credentials, /4 optional", build({2: 2, 3: b"\x30", 5: b"\x30"}),
     build({2: 2, 3: b"\x30", 5: DROP}), "/0/1/5: Certificate mode needs a non-empty SecretKey"),
    ("EST needs nothing", build({2: 4, 3: DROP, 5: DROP}), build({2: 0, 3: DROP, 5: DROP}),
     "/0/1/3: PSK mode needs a non-empty PKOrIdentity"),
    ("Matching Type 2 unsupported", build({13: 1}), build({13: 2}),
     "Matching Type 2 (SHA-384) is not supported"),
    ("one bootstrap account", build(sec2={1: True, 10: DROP}),
     build(more={0: {1: {**SEC, 1: True}, 2: {**SEC, 1: True}}}),
     "more than one Bootstrap-Server account"),
    ("(SSID, transport) unique", build(sec2={0: "coaps+tcp://x"}), build(sec2={}),
     "Short Server ID 1 over udp transport is also used by /0/1"),
    # §4.3 Server
    ("Server SSID mandatory", build(srv={0: 1}), build(srv={0: DROP}),
     "missing mandatory 'Short Server ID' (/1/x/0)"),
    ("Lifetime mandatory", build(srv={1: 0}), build(srv={1: DROP}), "missing mandatory 'Lifetime'"),
    ("Notification Storing mandatory", build(srv={6: True}), build(srv={6: DROP}),
     "missing mandatory 'Notification Storing'"),
    ("Binding mandatory", build(srv={7: "U"}), build(srv={7: DROP}), "missing mandatory 'Binding'"),
    ("Server SSID 1..65534", build({10: 65534}, {0: 65534}), build({10: 65535}, {0: 65535}),
     "invalid Short Server ID 65535 (as stored)"),
    ("Server SSID stored in 16 bits", build(srv={0: 65537}), build(srv={0: 65536}),
     "invalid Short Server ID 0 (as stored)"),
    ("Lifetime not negative", build(srv={1: 0}), build(srv={1: -1}), "Lifetime -1 is negative"),
    ("Server SSIDs unique", build(sec2={10: 2, 0: "coaps://b"}, srv2={0: 2}),
     build(srv2={}), "Short Server ID 1 is also used by /1/1"),
    # §4.3 Access Control
    ("AC target installed", build(more={2: {0: ACL_OK}}), build(more={2: {0: {**ACL_OK, 0: 5}}}),
     "target object /5 is not installed"),
    ("AC target instance exists", build(more={2: {0: {**ACL_OK, 1: 65535}}}),
     build(more={2: {0: {**ACL_OK, 1: 7}}}), "target /1/7 does not exist"),
    ("AC target once", build(more={2: {0: ACL_OK, 1: {**ACL_OK, 1: 65535}}}),
     build(more={2: {0: ACL_OK, 1: ACL_OK}}), "target /1/1 is already controlled by /2/0"),
    ("AC owner is a server SSID", build(more={2: {0: {**ACL_OK, 3: 1}}}),
     build(more={2: {0: {**ACL_OK, 3: 9}}}), "owner 9 is not the SSID of a Server instance"),
    ("AC ACL RIIDs are server SSIDs", build(more={2: {0: {**ACL_OK, 2: {0: 1, 1: 3}}}}),
     build(more={2: {0: {**ACL_OK, 2: {9: 1}}}}), "/2/0/2/9: ACL for SSID 9 names no Server"),
]


@pytest.mark.parametrize("rule,accepted,refused,message", RULES, ids=[r[0] for r in RULES])
def test_rule_accepts_one_case_and_refuses_the_other(rule, accepted, refused, message):
    assert error_texts(accepted) == []
    texts = error_texts(refused)
    assert any(message in t for t in texts), texts


def test_every_problem_has_path_line_and_expectation():
    text = "{\n 0: {1: {\n  0: 'coap://x',\n  2: 1,\n  10: 1}},\n 7: {0: {0: 1}}}"
    found = errors(problems(text))
    assert [str(p) for p in found] == [
        "cfg:4:3: error: /0/1/2: Raw Public Key mode (1) is not supported by Anjay; use 0 (PSK), "
        "2 (Certificate), 3 (NoSec) or 4 (EST)",
        "cfg:6:2: error: /7: object /7 (ConnectivityStatistics) does not exist on the device: the "
        "initial image has only /0 Security, /1 Server and /2 Access Control",
    ]


def test_secret_values_are_never_echoed():
    texts = error_texts(build({5: "Sup3rS3cretPsk"}))
    assert texts and not any("Sup3rS3cretPsk" in t for t in texts)


def test_sample_configs_are_valid():
    for name in ("endpoint_cfg", "endpoint_cfg_nosec"):
        assert validate(load_config(CONFIGS / name)) == []


# -- warnings: accepted by the device, but it can never register ----------------------------------
@pytest.mark.parametrize("text,message", [
    (build({10: 2}), "Security /0/1 has Short Server ID 2 but no Server instance has it"),
    (build(srv2={0: 7}), "Server /1/2 (SSID 7) has no Security instance with that Short Server ID"),
    ("{}", "the configuration is empty"),
    (repr({0: {1: SEC}}), "there is no Server instance"),
    (build({0: {0: "coaps://x"}}), "single-instance resource: the device ignores"),
    (build({16: 49320}), "the device stores a single value as resource instance 65535"),
    (build({2: DROP}), "the device assumes 0 (PSK)"),
    (build(srv={0: 65537}), "stored truncated to 16 bits as 1"),
    ("{0: {1: {RID.Server.Lifetime: False, 0: 'coaps://x', 2: 0, 3: b'i', 5: b'k', 10: 1}}, "
     "1: {1: {0: 1, 1: 60, 6: False, 7: 'U'}}}",
     "RID.Server.Lifetime names a Server resource but is used in object /0 (Security)"),
])
def test_accepted_but_never_registers_gives_warnings_not_errors(text, message):
    found = problems(text)
    assert errors(found) == []
    assert any(message in str(p) and p.severity == "warning" for p in found), found


def test_repeated_keys_warn():
    found = problems("{0: {1: {10: 1}}, 0: " + repr({1: SEC}) + ", 1: " + repr({1: SRV}) + "}")
    assert [str(p) for p in found] == [
        "cfg:1:19: warning: /0: appears more than once in the file; only the last value is used"]


# -- the lwm2m profile ----------------------------------------------------------------------------
def test_lwm2m_profile_accepts_every_object_of_the_table():
    text = build(more={3: {0: {0: "ACME", 13: 1700000000, 22: {0: Objlink(33606, 0)}}},
                       3303: {0: {5700: 21.5, 5701: "Cel"}}, 33605: {0: {14: 1, 13: True}}})
    assert error_texts(text, "lwm2m") == []
    assert "object /3 (Device) does not exist" in error_texts(text)[0]


@pytest.mark.parametrize("more,message", [
    ({12345: {0: {0: 1}}}, "object /12345 is not in the LwM2M object table"),
    ({3: {0: {99: 1}}}, "object Device has no resource 99"),
    ({3: {0: {4: 1}}}, "Device.Reboot is executable and has no value"),
    ({3303: {0: {5700: "hot"}}}, "Temperature.SensorValue is float; found string 'hot'"),
    ({3: {0: {22: Objlink(1, 0)}}}, "Device.ExtDevInfo expects {riid: value}"),
    ({3: {0: {9: 1.5}}}, "Device.BatteryLevel is integer; found float 1.5"),
    ({3: {0: {13: "now"}}}, "Device.CurrentTime is time"),
    ({33607: {0: {1: -1}}}, "IpPing.Repetitions is unsigned; found integer -1"),
    ({3: {0: {2: b"sn"}}}, "Device.SerialNumber is string; found bytes"),
    ({3347: {0: {5500: 1}}}, "PushButton.DigitalInputState is boolean; found integer 1"),
    ({3: {0: {22: {0: "1:2"}}}}, "Device.ExtDevInfo is objlnk"),
    ({3: {0: {22: {0: Objlink(65536, 0)}}}}, "Objlink(65536, 0) is out of range"),
])
def test_lwm2m_profile_checks_types(more, message):
    texts = error_texts(build(more=more), "lwm2m")
    assert any(message in t for t in texts), texts
