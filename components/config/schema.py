"""The engine that reads the key table (components/config/table.py): how a dataclass field becomes a config key,
what each type accepts, and the walk that turns raw config values into the table's dataclasses.

A field declared with `key(default, meaning, check)` is a key: its camelCase name is the key (`cluster_name` ->
`clusterName`), its annotation the type (`TYPES`), and a field whose type is another dataclass is an object key
whose fields are declared the same way (a `tuple[X, ...]` of one: a list of objects). Nothing here names a key of
this project: the table does, and the README writer and `parse()` read it through these functions.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import re
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Callable, NewType, Optional

import pulumi

from components.errors import ConfigError

REQUIRED = MISSING  # the default of a key that must be set

LocalPath = NewType("LocalPath", str)  # a path on this machine, ~ and $VARS expanded
FileText = NewType("FileText", str)  # set as a path relative to the project; the value is the file's text
MemoryMiB = NewType("MemoryMiB", int)  # set as a Kubernetes quantity (8Gi, 6000Mi); the value is in MiB
CpuMilli = NewType("CpuMilli", int)  # set as a Kubernetes quantity (4, 1500m); the value is in millicores


class Invalid(Exception):
    """Raised by a check or a type's conversion: what is wrong and the fix (the parser adds the key)."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


Check = Callable[[Any], None]  # takes a key's converted value; raises Invalid if it is wrong


def key(default: Any, meaning: str, check: Optional[Check] = None, example: str = "VALUE") -> Any:
    """One row of the table, as a dataclass field. `default`: REQUIRED, a value, or (for an object key) the
    object's dataclass, meaning "every field at its default". `example` is the value fix hints suggest."""
    meta = {"meaning": meaning, "check": check, "example": example}
    if isinstance(default, type):  # an object key: its dataclass
        return field(default_factory=default, metadata=meta)
    if isinstance(default, dict):  # a free-form object: a fresh copy for each StackConfig
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def ensure(ok: Any, dotted: str, problem: str, fix: str) -> None:
    """Raise ConfigError(dotted, problem, fix) unless `ok`: how a rule between keys refuses."""
    if not ok:
        raise ConfigError(dotted, problem, fix)


# Checks the table builds its own from.

def matches(pattern: str, what: str, fix: str) -> Check:
    regex = re.compile(pattern)

    def check(value: Any) -> None:
        if not (isinstance(value, str) and regex.match(value)):
            raise Invalid(f"'{value}' is not {what}", fix)
    return check


def one_of(choices: typing.Iterable[str], what: str) -> Check:
    def check(value: str) -> None:
        if value not in choices:
            raise Invalid(f"'{value}' is not {what}", f"use one of {', '.join(choices)}")
    return check


def between(low: int, high: int) -> Check:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise Invalid(f"{value} is out of range", f"use a number from {low} to {high}")
    return check


def each(check: Check) -> Check:
    def check_all(values: tuple) -> None:
        for value in values:
            check(value)
    return check_all


def base64_key(min_bytes: int, needs: str, file: str) -> Check:
    """A check of a base64 key of at least `min_bytes` bytes (`needs`: who needs that many; `file`: where it is)."""
    def check(text: str) -> None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("is not base64 text", f"set it from base64 -w0 {file}") from None
        if len(raw) < min_bytes:
            raise Invalid(f"decodes to {len(raw)} bytes, {needs} at least {min_bytes}",
                          f"use the cluster's real {file}")
    return check


# Types: what each annotation accepts and how the README names it.

def _json(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass
    return raw


def _string(raw: Any, _project_dir: str) -> str:
    if isinstance(raw, (dict, list)):
        raise Invalid(f"{json.dumps(raw)} is not a single value", "give a string")
    return str(raw)


def _integer(raw: Any, _project_dir: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Invalid(f"'{raw}' is not a whole number", "use a whole number") from None


def _boolean(raw: Any, _project_dir: str) -> bool:
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if not isinstance(raw, bool):
        raise Invalid(f"'{raw}' is not true or false", "use true or false")
    return raw


def _list(raw: Any, _project_dir: str) -> tuple:
    value = _json(raw)
    if not isinstance(value, list):
        raise Invalid(f"{raw!r} is not a list", "give a list: pulumi config set --path KEY[0] VALUE")
    return tuple(value)


def _object(raw: Any, _project_dir: str) -> dict:
    value = _json(raw)
    if not isinstance(value, dict):
        raise Invalid("must be an object", "set its fields with pulumi config set --path KEY.FIELD VALUE")
    return value


def _local_path(raw: Any, project_dir: str) -> str:
    path = os.path.expanduser(os.path.expandvars(_string(raw, project_dir)))
    if "$" in path:
        raise Invalid(f"'{path}' names an unset environment variable",
                      "export it (scripts/env.sh sets SCI_CACHE) or give a plain path")
    return path


def _file_text(raw: Any, project_dir: str) -> str:
    path = _string(raw, project_dir)
    try:
        with open(os.path.join(project_dir, path), encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Invalid(f"cannot read '{path}': {e.strerror}", "give the file's path relative to the project") from None


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def _quantity(raw: Any, fix: str) -> float:
    """A Kubernetes quantity (a number with an optional suffix) as a plain number."""
    match = _QUANTITY.match(str(raw).strip())
    if not match or float(match.group(1)) <= 0:
        raise Invalid(f"'{raw}' is not a positive Kubernetes quantity", fix)
    return float(match.group(1)) * _FACTORS[match.group(2) or ""]


def _memory(raw: Any, _project_dir: str) -> int:
    fix = "give a memory size such as 8Gi or 6000Mi"
    if str(raw).strip().endswith("m"):
        raise Invalid(f"'{raw}' is in thousandths of a byte", fix)
    return int(_quantity(raw, fix) // 2 ** 20)


def _cpu(raw: Any, _project_dir: str) -> int:
    return round(_quantity(raw, "give CPUs such as 4 or 1500m") * 1000)


# annotation -> (name in the README, conversion of the raw value, what the README says of it if not obvious);
# an object key's dataclass is "object".
TYPES: dict[Any, tuple[str, Callable[[Any, str], Any], str]] = {
    str: ("string", _string, ""),
    int: ("integer", _integer, ""),
    bool: ("boolean", _boolean, ""),
    tuple: ("list", _list, ""),
    dict: ("object", _object, ""),  # free-form: passed through as given
    LocalPath: ("path", _local_path, "`~` and `$VARS` are expanded"),
    FileText: ("file", _file_text, "a path relative to the project, read when the stack runs"),
    MemoryMiB: ("memory", _memory, "a Kubernetes quantity such as `8Gi`"),
    CpuMilli: ("cpu", _cpu, "a Kubernetes quantity such as `4` or `1500m`"),
    pulumi.Output: ("secret string", _string, "set it with `pulumi config set --secret`"),
}


# Reading the table.

def element(f: Field) -> Optional[type]:
    """The dataclass of a list of objects (tuple[User, ...]), else None."""
    args = typing.get_args(f.type)
    return args[0] if kind(f) is tuple and args and is_dataclass(args[0]) else None


def kind(f: Field) -> Any:
    """The type a field's annotation names: Optional[X] -> X, tuple[str, ...] -> tuple, a dataclass as is."""
    hint = f.type
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def keys_of(cls: type) -> dict[str, Field]:
    """An object's keys (its fields declared with key()) by config name, in the table's order."""
    return {_camel(f.name): f for f in fields(cls) if "meaning" in f.metadata}


def required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def how_to_set(root: type, dotted: str) -> str:
    """The `pulumi config set` command for a key of the table `root` such as `images.registry` (for an object key:
    for its first required field), with the table's example value."""
    cls, f = root, None
    for name in dotted.split("."):
        f = keys_of(cls)[name.split("[")[0]]  # users[0] -> users
        cls = element(f) if "[" in name else kind(f)
    if is_dataclass(cls):
        first = next((name for name, sub in keys_of(cls).items() if required(sub)), None)
        return how_to_set(root, f"{dotted}.{first}") if first else f"pulumi config set --path {dotted}.FIELD VALUE"
    flags = "--secret " * (cls is pulumi.Output) + "--path " * ("." in dotted)
    return f"pulumi config set {flags}{dotted} {f.metadata['example']}"


# Parsing: raw config values in, the table's dataclasses out.

@dataclass(frozen=True)
class _Parser:
    root: type  # the table's top dataclass, for the fix hints
    secret_keys: typing.AbstractSet[str]
    project_dir: str

    def object(self, cls: type, obj: dict, prefix: str) -> Any:
        known = keys_of(cls)
        for name in obj:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                what = "field" if prefix else "key"
                fix = (f"did you mean '{prefix}{close[0]}'?" if close
                       else f"remove it; known {what}s: {', '.join(known)}")
                raise ConfigError(f"{prefix}{name}", f"unknown {what}", fix)
        return cls(**{f.name: self.value(f, obj.get(name), prefix + name) for name, f in known.items()})

    def value(self, f: Field, raw: Any, dotted: str) -> Any:
        cls = kind(f)
        if raw is None or raw == "":
            ensure(not required(f), dotted, "is missing", how_to_set(self.root, dotted))
            if not is_dataclass(cls) or f.default_factory is MISSING:
                return f.default if f.default_factory is MISSING else f.default_factory()
            raw = {}  # an object key left out: every field at its default
        try:
            if is_dataclass(cls):
                return self.object(cls, _object(raw, self.project_dir), dotted + ".")
            if element(f):
                return tuple(self.object(element(f), _object(item, self.project_dir), f"{dotted}[{i}].")
                             for i, item in enumerate(_list(raw, self.project_dir)))
            if cls is pulumi.Output and dotted.split(".")[0] not in self.secret_keys:
                raise Invalid("is stored in plain text in the stack file", how_to_set(self.root, dotted))
            value = TYPES[cls][1](raw, self.project_dir)
            if f.metadata["check"]:
                f.metadata["check"](value)
        except Invalid as e:
            raise ConfigError(dotted, e.problem, e.fix.replace("KEY", dotted)) from None
        return pulumi.Output.secret(value) if cls is pulumi.Output else value


def parse_table(root: type, values: dict[str, Any], secret_keys: typing.AbstractSet[str], project_dir: str) -> Any:
    """`root` (the table's top dataclass) made from raw config values: every key converted by its type and checked
    by its own check; unknown keys refused (with the closest known one), missing required ones named with how to set
    them, secret-typed ones refused unless in `secret_keys` (set with --secret). Rules between keys are not here."""
    return _Parser(root, secret_keys, project_dir).object(root, values, "")
