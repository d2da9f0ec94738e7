"""Read an endpoint configuration file safely.

The seed tool `eval`s the file. Here the file is parsed into a Python AST and walked with a
whitelist: dict literals, int/str/bytes/bool/float constants (with a leading minus), the names
`OID.<Object>` and `RID.<Object>.<Resource>`, `Objlink(oid, iid)`, and the per-device forms
`EndpointName()` and `RandomKey(N)` (hilprov.core.credentials). Nothing is evaluated, so a
config that tries to run code is refused with `file:line:col` before anything happens.

The result keeps Python dict semantics (file order; a repeated key keeps its first position and
takes its last value) so that the SenML blob is byte-identical to the seed tool's.
"""

from __future__ import annotations

import ast
import bisect
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from hilprov.core import lwm2m
from hilprov.core.credentials import EndpointName, RandomKey
from hilprov.core.files import read_text
from hilprov.core.lwm2m import Objlink, is_secret
from hilprov.core.text import LIMIT, elide, shown
from hilprov.errors import ConfigError

Scalar = bool | int | float | str | bytes | Objlink | EndpointName | RandomKey
Path4 = tuple[int, ...]

_EXPECTED_VALUE = ("an int, str, bytes, bool, float, Objlink(oid, iid), EndpointName(), "
                   "RandomKey(N) or {riid: value}")
_CALLS = "Objlink(oid, iid), EndpointName() or RandomKey(N)"


class Location(NamedTuple):  # not a dataclass: 4x cheaper to make at import (start-up)
    """Where a value is in its config file (for messages)."""

    source: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}"


def _shown(value, secret: bool) -> str:
    return f"<{len(value)} bytes, hidden>" if secret and isinstance(value, bytes) else repr(value)


class Entry(NamedTuple):
    """One resource (3-part path) or resource instance (4-part path) with its value."""

    path: Path4
    value: Scalar
    location: Location | None

    def __repr__(self) -> str:  # the secret key stays out of logs and test reports
        return (f"Entry(path={self.path!r}, value={_shown(self.value, is_secret(self.path))}, "
                f"location={self.location!r})")


class ConfigSyntaxError(ConfigError):
    """The config file is not a well-formed endpoint configuration; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


@dataclass(repr=False)  # its own __repr__
class EndpointConfig:
    """The parsed `{OID: {IID: {RID: value | {RIID: value}}}}` tree with source locations."""

    tree: dict = field(default_factory=dict)
    source: str = "<config>"
    locations: dict[Path4, Location] = field(default_factory=dict)
    # (path, location) of every key that appeared more than once at its level; the last one wins.
    duplicates: list[tuple[Path4, Location]] = field(default_factory=list)
    # RID.<Object>.<Name> used under a different object than <Object>: path -> object name used.
    rid_namespaces: dict[Path4, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the values, with the secret key hidden
        values = ", ".join(f"{e.path}: {_shown(e.value, is_secret(e.path))}"
                           for e in self.entries())
        return f"EndpointConfig(source={self.source!r}, values={{{values}}})"

    def entries(self) -> list[Entry]:
        """Every value in file order, one per SenML record."""
        out: list[Entry] = []
        for oid, instances in self.tree.items():
            for iid, resources in instances.items():
                for rid, value in resources.items():
                    if isinstance(value, dict):
                        for riid, inner in value.items():
                            path = (oid, iid, rid, riid)
                            out.append(Entry(path, inner, self.locations.get(path)))
                    else:
                        path = (oid, iid, rid)
                        out.append(Entry(path, value, self.locations.get(path)))
        return out

    def instances(self, oid: int) -> dict[int, dict]:
        return self.tree.get(oid, {})

    def location(self, path: Path4) -> Location | None:
        """The closest known location: the path itself, else its nearest parent."""
        for n in range(len(path), 0, -1):
            loc = self.locations.get(tuple(path[:n]))
            if loc:
                return loc
        return None

    def set_resource(self, oid: int, iid: int, rid: int, value: Scalar) -> None:
        """Set a value as the seed does (`inst[rid] = value`): an existing key keeps its place."""
        self.tree.setdefault(oid, {}).setdefault(iid, {})[rid] = value

    def copy(self) -> EndpointConfig:
        def clone(node):
            return {k: clone(v) for k, v in node.items()} if isinstance(node, dict) else node

        return EndpointConfig(clone(self.tree), self.source, dict(self.locations),
                              list(self.duplicates), dict(self.rid_namespaces))


def load_config(path: str | Path) -> EndpointConfig:
    """Read and parse an endpoint config file; raises ConfigError naming the file."""
    return parse_config(read_text(path, "endpoint config"), str(path))


def parse_config(text: str, source: str = "<config>") -> EndpointConfig:
    """Parse config text. Raises ConfigSyntaxError listing every problem found."""
    return _Parser(text, source).parse()


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.lines = text.splitlines()
        self.source = source
        self.problems: list[str] = []
        self.config = EndpointConfig(source=source)
        self._wide: dict[int, tuple[list[int], list[int]]] = {}

    # -- reporting -------------------------------------------------------------------------------
    def loc(self, node: ast.AST) -> Location:
        line = getattr(node, "lineno", 1)
        byte_col = getattr(node, "col_offset", 0)
        return Location(self.source, line, self._char_column(line, byte_col) + 1)

    def _char_column(self, line: int, byte_col: int) -> int:
        """The character index of a UTF-8 byte offset in `line`, in O(log n): the AST counts
        bytes, messages count characters; re-encoding the line per node would be quadratic."""
        wide = self._wide.get(line)
        if wide is None:
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            wide = self._wide[line] = _wide_chars(text)
        offsets, extra = wide
        before = bisect.bisect_left(offsets, byte_col)
        return byte_col - (extra[before - 1] if before else 0)

    def problem(self, node: ast.AST, found: str, expected: str) -> None:
        self.problems.append(f"{self.loc(node)}: found {elide(found)}, expected "
                             f"{elide(expected, 2 * LIMIT)}")

    # -- entry -----------------------------------------------------------------------------------
    def parse(self) -> EndpointConfig:
        if "\x00" in self.text:
            raise ConfigSyntaxError([f"{self.source}:1:1: found a NUL byte, expected text"])
        try:
            with warnings.catch_warnings():  # "invalid escape sequence": Python's own nag
                warnings.simplefilter("ignore")
                tree = ast.parse(self.text, filename=self.source, mode="eval")
        except SyntaxError as exc:
            line, col = exc.lineno or 1, exc.offset or 1
            raise ConfigSyntaxError(
                [f"{self.source}:{line}:{col}: found invalid syntax ({exc.msg}), "
                 "expected one dict literal {OID: {IID: {RID: value}}}"]) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ConfigSyntaxError(
                [f"{self.source}:1:1: found unparsable text ({type(exc).__name__}), "
                 "expected one dict literal {OID: {IID: {RID: value}}}"]) from None
        body = tree.body
        if not isinstance(body, ast.Dict):
            self.problem(body, describe(body), "one dict literal {OID: {IID: {RID: value}}}")
        else:
            self.objects(body)
        if self.problems:
            raise ConfigSyntaxError(self.problems)
        return self.config

    # -- levels ----------------------------------------------------------------------------------
    def items(self, node: ast.Dict, what: str):
        """Yield (key_node, value_node) pairs; refuses `**spread` entries."""
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                self.problem(value, "a ** dict unpacking", what)
                continue
            yield key, value

    def store(self, container: dict, key: int, value, path: Path4, node: ast.AST) -> None:
        loc = self.loc(node)
        if key in container:
            self.config.duplicates.append((path, loc))
        container[key] = value
        self.config.locations[path] = loc

    def objects(self, node: ast.Dict) -> None:
        for key, value in self.items(node, "OID: {IID: {...}} entries"):
            oid = self.key(key, "object ID (an int or OID.<Name>)", allow_oid=True)
            instances = self.dict_of(value, "a dict of instances {IID: {RID: value}}")
            if oid is None or instances is None:
                continue
            tree: dict = {}
            self.store(self.config.tree, oid, tree, (oid,), key)
            for ikey, ivalue in self.items(instances, "IID: {RID: value} entries"):
                iid = self.key(ikey, "instance ID (an int)")
                resources = self.dict_of(ivalue, "a dict of resources {RID: value}")
                if iid is None or resources is None:
                    continue
                inst: dict = {}
                self.store(tree, iid, inst, (oid, iid), ikey)
                self.resources(oid, iid, inst, resources)

    def resources(self, oid: int, iid: int, inst: dict, node: ast.Dict) -> None:
        for rkey, rvalue in self.items(node, "RID: value entries"):
            rid = self.key(rkey, "resource ID (an int or RID.<Object>.<Name>)", allow_rid=True)
            if rid is None:
                continue
            path = (oid, iid, rid)
            namespace = self._rid_object(rkey)
            if namespace is not None:
                self.config.rid_namespaces[path] = namespace
            else:
                self.config.rid_namespaces.pop(path, None)
            if isinstance(rvalue, ast.Dict):
                multi: dict = {}
                for mkey, mvalue in self.items(rvalue, "RIID: value entries"):
                    riid = self.key(mkey, "resource instance ID (an int)")
                    if isinstance(mvalue, ast.Dict):
                        self.problem(mvalue, "a dict nested below a resource instance",
                                     "a single value per resource instance")
                        continue
                    value = self.scalar(mvalue)
                    if riid is None or value is _INVALID:
                        continue
                    self.store(multi, riid, value, path + (riid,), mkey)
                self.store(inst, rid, multi, path, rkey)
            else:
                value = self.scalar(rvalue)
                if value is not _INVALID:
                    self.store(inst, rid, value, path, rkey)

    # -- pieces ----------------------------------------------------------------------------------
    def dict_of(self, node: ast.AST, expected: str) -> ast.Dict | None:
        if isinstance(node, ast.Dict):
            return node
        self.problem(node, describe(node), expected)
        return None

    def key(self, node: ast.AST, expected: str, allow_oid=False, allow_rid=False) -> int | None:
        value = self.integer(node, expected, allow_names=allow_oid or allow_rid)
        if value is None:
            return None
        if isinstance(node, ast.Attribute):
            is_rid = _dotted(node)[0] == "RID"
            if (is_rid and not allow_rid) or (not is_rid and not allow_oid):
                self.problem(node, f"{'.'.join(_dotted(node))} used as {expected.split(' (')[0]}",
                             expected)
                return None
        return value

    def integer(self, node: ast.AST, expected: str, allow_names: bool = True) -> int | None:
        """An int literal (optionally negative) or, if allowed, an OID/RID name."""
        if isinstance(node, ast.Attribute) and allow_names:
            return self.name(node)
        number = _number(node)
        if isinstance(number, int) and not isinstance(number, bool):
            return number
        self.problem(node, describe(node), expected)
        return None

    def name(self, node: ast.Attribute) -> int | None:
        parts = _dotted(node)
        if parts is None:
            self.problem(node, describe(node), "OID.<Object> or RID.<Object>.<Resource>")
            return None
        if any(p.startswith("__") for p in parts):
            self.problem(node, f"attribute access '{'.'.join(parts)}'",
                         "OID.<Object> or RID.<Object>.<Resource>")
            return None
        if parts[0] == "OID" and len(parts) == 2:
            oid = lwm2m.oid_by_name(parts[1])
            if oid is None:
                self.problem(node, f"unknown object name OID.{parts[1]}",
                             _suggest("OID.", parts[1], lwm2m.OBJECTS_BY_NAME))
            return oid
        if parts[0] == "RID" and len(parts) == 3:
            obj = lwm2m.OBJECTS_BY_NAME.get(parts[1])
            if obj is None:
                self.problem(node, f"unknown object name RID.{parts[1]}",
                             _suggest("RID.", parts[1], lwm2m.OBJECTS_BY_NAME))
                return None
            rid = lwm2m.rid_by_name(parts[1], parts[2])
            if rid is None:
                names = {r.name for r in obj.resources.values() if not r.hidden}
                self.problem(node, f"unknown resource name RID.{parts[1]}.{parts[2]}",
                             _suggest(f"RID.{parts[1]}.", parts[2], names))
            return rid
        self.problem(node, f"the name '{'.'.join(parts)}'",
                     "OID.<Object> or RID.<Object>.<Resource>")
        return None

    def _rid_object(self, node: ast.AST) -> str | None:
        parts = _dotted(node) if isinstance(node, ast.Attribute) else None
        return parts[1] if parts and parts[0] == "RID" and len(parts) == 3 else None

    def scalar(self, node: ast.AST):
        if isinstance(node, ast.Attribute):
            value = self.name(node)
            return _INVALID if value is None else value
        if isinstance(node, ast.Call):
            return self.call(node)
        number = _number(node)
        if number is not None:
            return number
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            if isinstance(node.value, str):
                try:
                    node.value.encode("utf-8")
                except UnicodeEncodeError:
                    self.problem(node, "a string with an unpaired surrogate", "valid UTF-8 text")
                    return _INVALID
            return node.value
        if isinstance(node, ast.Constant) and node.value is None:
            self.problem(node, "None", _EXPECTED_VALUE)
            return _INVALID
        self.problem(node, describe(node), _EXPECTED_VALUE)
        return _INVALID

    def call(self, node: ast.Call):
        """The whitelisted calls: Objlink(oid, iid), EndpointName(), RandomKey(N)."""
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name == "EndpointName":
            if node.args or node.keywords:
                self.problem(node, "EndpointName with arguments", "EndpointName()")
                return _INVALID
            return EndpointName()
        if name == "RandomKey":
            return self.random_key(node)
        if name != "Objlink":
            self.problem(node, f"a call to {_callee(node)}", f"{_CALLS} or a literal value")
            return _INVALID
        if node.keywords or len(node.args) != 2:
            self.problem(node, "Objlink with other than two positional arguments",
                         "Objlink(oid, iid)")
            return _INVALID
        oid = self.integer(node.args[0], "an object ID (an int or OID.<Name>) in Objlink")
        iid = self.integer(node.args[1], "an instance ID (an int) in Objlink", allow_names=False)
        if oid is None or iid is None:
            return _INVALID
        return Objlink(oid, iid)

    def random_key(self, node: ast.Call):
        if node.keywords or len(node.args) > 1:
            self.problem(node, "RandomKey with other than one size argument", "RandomKey(N)")
            return _INVALID
        if not node.args:
            return RandomKey()
        size = self.integer(node.args[0], "a key size in bytes in RandomKey(N)",
                            allow_names=False)
        if size is None:
            return _INVALID
        try:
            return RandomKey(size)
        except ConfigError as exc:
            self.problem(node, str(exc).split(":")[0], str(exc).split(": ", 1)[1])
            return _INVALID


_INVALID = object()


def _wide_chars(text: str) -> tuple[list[int], list[int]]:
    """Byte offsets of the non-ASCII characters of `text`, and the running total of the extra
    bytes they take in UTF-8 (nothing to store for an ASCII line)."""
    offsets: list[int] = []
    extra: list[int] = []
    if text.isascii():
        return offsets, extra
    position = total = 0
    for char in text:
        size = len(char.encode("utf-8", "surrogatepass"))
        if size > 1:
            offsets.append(position)
            total += size - 1
            extra.append(total)
        position += size
    return offsets, extra


def _number(node: ast.AST):
    """The value of an int/float/bool literal, with an optional unary minus or plus, else None."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return None  # "-True" is arithmetic, not a literal
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return sign * node.value
    return None


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _callee(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return f"'{node.func.id}'"
    dotted = _dotted(node.func)
    return f"'{'.'.join(dotted)}'" if dotted else "an expression"


def _suggest(prefix: str, name: str, choices) -> str:
    import difflib  # only for a misspelt name

    close = difflib.get_close_matches(name, list(choices), n=1) if len(name) <= LIMIT else []
    if close:
        return f"a known name such as {prefix}{close[0]}"
    return f"one of the names in the spec's {prefix.split('.')[0]} table"


_NODE_NAMES = {
    ast.Lambda: "a lambda", ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension",
    ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string", ast.BinOp: "an arithmetic expression",
    ast.BoolOp: "a boolean expression", ast.Compare: "a comparison", ast.IfExp: "an if-expression",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set", ast.Subscript: "a subscript",
    ast.Starred: "a starred expression", ast.NamedExpr: "an assignment expression",
    ast.Await: "an await", ast.Yield: "a yield", ast.YieldFrom: "a yield",
}


def describe(node: ast.AST) -> str:
    """A short human description of an AST node for error messages."""
    if isinstance(node, ast.Name):
        return f"the name '{node.id}'"
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        return f"the attribute '{'.'.join(dotted)}'" if dotted else "an attribute access"
    if isinstance(node, ast.Call):
        return f"a call to {_callee(node)}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bytes):  # identities, keys, certificates: never echoed
            return f"bytes ({len(node.value)} bytes, value not shown)"
        return f"{type(node.value).__name__} {shown(node.value, 60)}"
    if isinstance(node, ast.UnaryOp):
        return "a unary expression"
    if isinstance(node, ast.Dict):
        return "a dict"
    return _NODE_NAMES.get(type(node), f"a {type(node).__name__} expression")
