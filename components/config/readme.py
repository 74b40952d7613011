"""The README's generated sections, made from the code so that they cannot drift from it: the configuration table
(every key of components/config/table.py with its type, default and meaning) and the list of the chart settings
the program owns (components/chart_values.OWNED). `python -m components.config --readme` rewrites them; a unit
test holds the README to them."""

from __future__ import annotations

import json
import typing
from dataclasses import MISSING, Field, is_dataclass
from pathlib import Path
from typing import Optional

from components.chart_values import owned_list
from components.config.schema import TYPES, element, keys_of, kind, required
from components.config.table import StackConfig

README = Path(__file__).resolve().parents[2] / "README.md"
COMMAND = "python -m components.config --readme"


def rows(cls: Optional[type] = None, prefix: str = "") -> typing.Iterator[tuple[str, Field]]:
    """Every key and field of the table as (dotted name, dataclass field), in the table's order."""
    for name, f in keys_of(cls or StackConfig).items():
        yield prefix + name, f
        if is_dataclass(kind(f)):
            yield from rows(kind(f), f"{prefix}{name}.")
        elif element(f):
            yield from rows(element(f), f"{prefix}{name}[].")


def type_name(f: Field) -> str:
    cls = kind(f)
    return "object" if is_dataclass(cls) else "list of objects" if element(f) else TYPES[cls][0]


def readme_table() -> str:
    """The Markdown table of every key and field."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {type_name(f)} | {_show_default(f)} | {f.metadata['meaning']} |" for name, f in rows()]
    lines += ["", "Types: " + " ".join(f"`{name}`: {doc}." for name, _, doc in TYPES.values() if doc)]
    return "\n".join(lines)


def _show_default(f: Field) -> str:
    if required(f):
        return "required"
    if f.default is None or is_dataclass(f.default_factory):
        return ""
    value = f.default if f.default_factory is MISSING else f.default_factory()
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


# (name, the module it is made from, what makes it): each lies between its markers (readme_markers()).
README_SECTIONS = (("config table", "components/config/table.py", readme_table),
                   ("owned chart settings", "components/chart_values.py", owned_list))


def readme_markers(name: str, source: str) -> tuple[str, str]:
    return (f"<!-- BEGIN {name}: made from {source} by `{COMMAND}` -->",
            f"<!-- END {name} -->")


def readme_with_tables(text: str) -> str:
    """`text` (the README) with each of README_SECTIONS made anew between its markers."""
    for name, source, make in README_SECTIONS:
        begin, end = readme_markers(name, source)
        start, stop = text.index(begin) + len(begin), text.index(end)
        text = f"{text[:start]}\n{make()}\n{text[stop:]}"
    return text


def write_readme() -> None:
    """Rewrite README.md's generated sections."""
    README.write_text(readme_with_tables(README.read_text()))
