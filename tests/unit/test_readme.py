"""The README's Quick start is what CI runs, and it names only commands and options that exist."""

import re

from hilprov.cli.parsers import build_parser, build_ptool_parser
from tests import REPO_ROOT


def quick_start() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_lines_and_ci_runs_the_second():
    lines = quick_start()
    assert len(lines) == 2
    assert "ptool -c configs/endpoint_cfg --board sim" in lines[0]
    assert lines[1] in (REPO_ROOT / ".ci" / "run").read_text().splitlines()


def test_every_ptool_flag_in_the_quick_start_exists():
    args = quick_start()[0].split("ptool ", 1)[1].split()
    parsed = build_ptool_parser().parse_args(args)
    assert parsed.endpoint_cfg == "configs/endpoint_cfg" and parsed.board == ["sim"]


def test_every_hilprov_subcommand_in_the_readme_exists():
    text = (REPO_ROOT / "README.md").read_text()
    named = set(re.findall(r"`hilprov ([\w-]+)", text))
    choices = set(build_parser()._subparsers._group_actions[0].choices)
    assert named <= choices, named - choices


def test_every_option_of_the_settings_table_is_in_the_readme():
    from hilprov import settings

    text = (REPO_ROOT / "README.md").read_text()
    for field in settings.fields():
        spec = field.metadata["spec"]
        for flag in (*spec.cli[-1:], *([spec.pytest] if spec.pytest else [])):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), \
                f"{flag} ({field.name}) is not documented"


def test_every_fixture_of_the_plugin_is_in_the_readme():
    from pytest_hilprov import fixtures

    text = (REPO_ROOT / "README.md").read_text()
    names = [name for name in dir(fixtures) if name.startswith(("hil_", "provisioned", "coiote"))
             and callable(getattr(fixtures, name))]
    assert len(names) >= 10
    for name in names:
        assert f"`{name}`" in text or f"`{name}` (alias" in text, f"fixture {name} undocumented"
