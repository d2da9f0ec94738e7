"""The endpoint config parser: the seed syntax resolves, the rest is refused unevaluated."""

import ast
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilprov.core.config import ConfigSyntaxError, load_config, parse_config
from hilprov.core.lwm2m import Objlink
from hilprov.errors import ConfigError
from tests import CONFIGS
from tests.unit.spec_names import SPEC_OIDS, SPEC_RIDS


def parse(text: str):
    return parse_config(textwrap.dedent(text), "cfg")


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigSyntaxError) as info:
        parse(text)
    return info.value.problems


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,oid", sorted(SPEC_OIDS.items()))
def test_every_oid_name_of_the_spec_resolves(name, oid):
    config = parse(f"{{OID.{name}: {{0: {{1: 5}}}}}}")
    assert list(config.tree) == [oid]


@pytest.mark.parametrize("obj,name,rid", sorted(
    (obj, name, rid) for obj, names in SPEC_RIDS.items() for name, rid in names.items()))
def test_every_rid_name_of_the_spec_resolves(obj, name, rid):
    config = parse(f"{{OID.{obj}: {{0: {{RID.{obj}.{name}: 5}}}}}}")
    assert list(config.tree[SPEC_OIDS[obj]][0]) == [rid]


def test_plain_integers_work_for_oids_rids_and_iids():
    config = parse("{0: {1: {0: 'coap://x', 10: 1}}, 3303: {0: {5700: 1.5}}}")
    assert config.tree == {0: {1: {0: "coap://x", 10: 1}}, 3303: {0: {5700: 1.5}}}


def test_unknown_names_are_refused_with_a_suggestion():
    problems = refused("""\
        {OID.Securty: {1: {0: 'x'}},
         OID.Server: {1: {RID.Server.Lifetme: 5, RID.Nope.X: 1}}}""")
    assert problems[0] == "cfg:1:2: found unknown object name OID.Securty, expected a known " \
                         "name such as OID.Security"
    assert "cfg:2:19: found unknown resource name RID.Server.Lifetme" in problems[1]
    assert "RID.Server.Lifetime" in problems[1]
    assert problems[2].startswith("cfg:2:42: found unknown object name RID.Nope")


# -- the seed's syntax ----------------------------------------------------------------------------
def test_sample_config_parses_with_locations():
    config = load_config(CONFIGS / "endpoint_cfg")
    assert [e.path for e in config.entries()] == [
        (0, 1, 0), (0, 1, 1), (0, 1, 2), (0, 1, 3), (0, 1, 5), (0, 1, 10),
        (1, 1, 0), (1, 1, 1), (1, 1, 6), (1, 1, 7)]
    mode = config.entries()[2]
    assert mode.value == 0
    assert str(mode.location) == f"{CONFIGS / 'endpoint_cfg'}:9:13"


def test_values_of_every_supported_type():
    config = parse("""\
        {
            # a comment
            OID.Device: {
                0: {
                    RID.Device.Manufacturer: 'ACME' "-" 'Corp',   # implicit concatenation
                    RID.Device.BatteryLevel: -5,
                    RID.Device.ExtDevInfo: {0: Objlink(OID.ExtDevInfo, 0), 7: Objlink(66, 1)},
                    RID.Device.CurrentTime: 1.25,
                    18: b'\\x00\\xff',
                    19: True,
                    20: +3,
                },
            },
        }""")
    assert config.tree == {3: {0: {0: "ACME-Corp", 9: -5,
                                   22: {0: Objlink(33606, 0), 7: Objlink(66, 1)},
                                   13: 1.25, 18: b"\x00\xff", 19: True, 20: 3}}}


def test_oid_and_rid_names_can_be_values():
    config = parse("{2: {0: {RID.AccessControl.TargetOID: OID.Server, 1: RID.Server.Binding}}}")
    assert config.tree[2][0] == {0: 1, 1: 7}


def test_repeated_keys_keep_first_position_and_last_value_like_python():
    text = "{1: {1: {7: 'U', 1: 60, 7: 'UQ'}}, 0: {1: {0: 'a'}}, 1: {2: {0: 2}}}"
    config = parse(text)
    assert config.tree == {1: {2: {0: 2}}, 0: {1: {0: "a"}}}
    assert list(config.tree) == [1, 0]
    assert [p for p, _ in config.duplicates] == [(1, 1, 7), (1,)]


def test_empty_levels_are_kept_and_produce_no_entries():
    config = parse("{0: {}, 1: {1: {}}, 2: {0: {2: {}}}}")
    assert config.entries() == []


# -- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,found", [
    ("None", "found None"),
    ("[1, 2]", "found a list"),
    ("(1, 2)", "found a tuple"),
    ("{1, 2}", "found a set"),
    ("1 + 2", "found an arithmetic expression"),
    ("f'{1}'", "found an f-string"),
    ("lambda: 0", "found a lambda"),
    ("[x for x in ()]", "found a list comprehension"),
    ("open('/etc/passwd')", "found a call to 'open'"),
    ("Objlink(1)", "found Objlink with other than two positional arguments"),
    ("Objlink(oid=1, iid=2)", "found Objlink with other than two positional arguments"),
    ("os.system", "found the name 'os.system'"),
    ("OID.Security.__class__", "found attribute access 'OID.Security.__class__'"),
    ("x", "found the name 'x'"),
    ("{1: {2: 3}}", "found a dict nested below a resource instance"),
    ("1j", "found complex"),
    ("...", "found ellipsis"),
    ("'\\ud800'", "found a string with an unpaired surrogate"),
])
def test_unsupported_values_are_refused_with_position(value, found):
    problems = refused(f"{{0: {{1: {{0: {value}}}}}}}")
    assert len(problems) == 1
    assert problems[0].startswith("cfg:1:")
    assert found in problems[0]
    assert "expected" in problems[0]


@pytest.mark.parametrize("text,found", [
    ("[1]", "found a list, expected one dict literal"),
    ("{True: {0: {0: 1}}}", "found bool True, expected object ID"),
    ("{0: {'1': {0: 1}}}", "found str '1', expected instance ID"),
    ("{0: {1.0: {0: 1}}}", "found float 1.0, expected instance ID"),
    ("{0: [1]}", "found a list, expected a dict of instances"),
    ("{0: {1: 5}}", "found int 5, expected a dict of resources"),
    ("{RID.Security.Mode: {1: {0: 1}}}", "RID.Security.Mode used as object ID"),
    ("{0: {1: {OID.Server: 1}}}", "OID.Server used as resource ID"),
    ("{**x}", "found a ** dict unpacking"),
    ("{0: {1: {0: 1}}} + {}", "found an arithmetic expression"),
])
def test_structure_errors(text, found):
    problems = refused(text)
    assert found in problems[0]


def test_syntax_errors_give_file_line_and_column():
    problems = refused("{\n  0: {1: {0: 'x',,}}\n}")
    assert problems[0].startswith("cfg:2:")
    assert "invalid syntax" in problems[0]


def test_every_problem_is_reported_at_once():
    problems = refused("{0: {1: {0: None, 1: x, 2: open()}}, 9: {0: {0: []}}}")
    assert len(problems) == 4


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.cfg: cannot read endpoint config"):
        load_config(tmp_path / "missing.cfg")
    binary = tmp_path / "bin.cfg"
    binary.write_bytes(b"{0: {1: {0: '\xff'}}}")
    with pytest.raises(ConfigError, match=r"bin\.cfg: endpoint config is not UTF-8"):
        load_config(binary)
    nul = tmp_path / "nul.cfg"
    nul.write_text("{0: {1: {0: 1}}}\x00")
    with pytest.raises(ConfigError, match="NUL byte"):
        load_config(nul)


def test_deep_nesting_is_refused_not_crashing():
    with pytest.raises(ConfigError):
        parse("{" * 5000 + "}" * 5000)


# -- configs that try to run code -----------------------------------------------------------------
MALICIOUS = [
    "__import__('os').system('touch {marker}')",
    "open('{marker}', 'w').write('x')",
    "OID.__class__.__init__.__globals__['__builtins__']['exec']"
    "(\"open('{marker}','w')\")",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "(lambda: open('{marker}', 'w'))()",
    "Objlink(__import__('os').system('touch {marker}'), 0)",
    "exec(\"open('{marker}','w')\")",
    "eval(\"open('{marker}','w')\")",
    "compile('open(\"{marker}\",\"w\")', 'x', 'exec')",
    "f\"{{open('{marker}', 'w')}}\"",
    "(m := open('{marker}', 'w'))",
    "breakpoint()",
]


@pytest.mark.parametrize("payload", MALICIOUS)
def test_configs_that_try_to_run_code_are_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "ran"
    cfg = tmp_path / "evil_cfg"
    cfg.write_text("{0: {1: {0: " + payload.format(marker=marker) + "}}}")
    with pytest.raises(ConfigSyntaxError) as info:
        load_config(cfg)
    assert str(cfg) in info.value.problems[0]
    assert not marker.exists()


def test_top_level_code_outside_the_dict_is_a_syntax_error(tmp_path):
    marker = tmp_path / "ran"
    cfg = tmp_path / "evil_cfg"
    cfg.write_text(f"import os; os.system('touch {marker}')\n{{}}")
    with pytest.raises(ConfigSyntaxError, match="invalid syntax"):
        load_config(cfg)
    assert not marker.exists()


# -- same semantics as Python for benign literals -------------------------------------------------
_scalars = st.one_of(st.integers(-2**40, 2**40), st.booleans(), st.text(max_size=8),
                     st.binary(max_size=8))
_ids = st.integers(0, 70000)
_resources = st.dictionaries(_ids, st.one_of(_scalars, st.dictionaries(_ids, _scalars,
                                                                        max_size=3)), max_size=4)
_config = st.dictionaries(_ids, st.dictionaries(_ids, _resources, max_size=3), max_size=3)


@settings(max_examples=150, deadline=None)
@given(_config, st.data())
def test_parsed_tree_equals_python_semantics(config, data):
    text = repr(config)
    # repeat a random key to exercise dict semantics (first position, last value)
    if config and data.draw(st.booleans()):
        key = next(iter(config))
        text = text[:-1] + f", {key}: {{}}" + "}"
    expected = ast.literal_eval(text)
    parsed = parse_config(text, "gen")
    assert parsed.tree == expected
    assert [list(o) for o in parsed.tree.values()] == [list(o) for o in expected.values()]
