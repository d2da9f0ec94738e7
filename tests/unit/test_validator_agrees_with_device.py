"""Two independent implementations must agree: the host validator (hilprov.core.profile) and the
virtual board's model of Anjay 3.11 (hilprov.sim.anjay) give the same verdict on every config.

A config the host accepts must be one the device accepts, and a config the host refuses must be
one the device refuses: otherwise either a factory line loses devices to false alarms, or a device
is flashed with a blob it rejects.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hilprov.core.config import parse_config
from hilprov.core.profile import errors, validate
from hilprov.core.senml import encode_config
from hilprov.sim.anjay import factory_provision
from tests.unit.test_profile import RULES, SEC, SRV


def verdicts(text: str):
    config = parse_config(text, "cfg")
    host = errors(validate(config))
    device = factory_provision(encode_config(config), now=0)
    return host, device


def assert_agree(text: str) -> None:
    host, device = verdicts(text)
    assert (not host) == device.ok, (
        f"\nconfig: {text}\nhost: {[str(p) for p in host] or 'accepts'}"
        f"\ndevice: {'accepts' if device.ok else device.reason}")


def test_rule_cases_get_the_same_verdict_from_both():
    for _rule, accepted, refused, _message in RULES:
        assert_agree(accepted)
        assert_agree(refused)


def test_sample_configs_get_the_same_verdict(tmp_path):
    from tests import CONFIGS

    for name in ("endpoint_cfg", "endpoint_cfg_nosec", "endpoint_cfg_cert"):
        assert_agree((CONFIGS / name).read_text())


# Values near the edges of what the device accepts, for any resource.
_values = st.sampled_from([
    0, 1, 2, 3, 4, 5, -1, 65534, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 1.0, 1.5,
    True, False, "", "U", "UQ", "u", "T", "TT", "US", "coap://a:5683", "coaps://a:5684",
    "coaps+tcp://a", "tel:+4812", "http://a", b"", b"id", b"key",
])
_security_rids = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17])
_server_rids = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 14, 16, 17, 18, 20, 22, 23])
_ac_rids = st.sampled_from([0, 1, 2, 3, 4])


def _mutated(base: dict, rids, draw) -> dict:
    out = dict(base)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        rid = draw(rids)
        if draw(st.booleans()) and rid in out:
            del out[rid]
        elif rid in (16, 2) and draw(st.booleans()):
            out[rid] = {draw(st.sampled_from([0, 1, 2, 65535])): draw(_values)}
        else:
            out[rid] = draw(_values)
    return out


@st.composite
def configs(draw) -> str:
    tree: dict = {0: {1: _mutated(SEC, _security_rids, draw)},
                  1: {1: _mutated(SRV, _server_rids, draw)}}
    sometimes = st.sampled_from([True, False, False, False])
    if draw(sometimes):
        tree[0][2] = _mutated({**SEC, 1: True, 10: 2}, _security_rids, draw)
    if draw(sometimes):
        tree[1][2] = _mutated({**SRV, 0: 2}, _server_rids, draw)
    if draw(sometimes):
        acl = {0: draw(st.sampled_from([1, 1, 1, 0, 2, 5])),
               1: draw(st.sampled_from([1, 1, 65535, 2])),
               2: {draw(st.sampled_from([1, 1, 0, 9])): 15}, 3: draw(st.sampled_from([1, 1, 9]))}
        tree[2] = {0: _mutated(acl, _ac_rids, draw)}
    if draw(st.integers(0, 9)) == 0:
        tree[draw(st.sampled_from([3, 5, 7]))] = {0: {0: 1}}
    return repr(tree)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_generated_configs_get_the_same_verdict(text):
    assert_agree(text)
