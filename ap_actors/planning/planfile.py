"""The owner's plan file (``--plan plan.toml`` or ``plan.json``), read with line-precise errors.

:func:`load_plan_file` reads, converts and checks it; :class:`PlanSource` points an
error at the line and column of the offending key (TOML: the key inside the n-th
``[[objectives]]``/``[[contracts]]`` table; JSON: the member's key or the element).
:func:`plan_from_data` converts parsed TOML/JSON, also an agent's answer, to a
:class:`~ap_actors.planning.model.Plan`, rejecting unknown keys.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from ap_actors.events import Contract, Objective
from ap_actors.planning.checks import check_plan
from ap_actors.planning.model import KeyPath, Plan, PlanError
from ap_actors.team import Team, unreadable_reason

_FIELDS = {
    "objectives": [f.name for f in msgspec.structs.fields(Objective)],
    "contracts": [f.name for f in msgspec.structs.fields(Contract)],
}


class PlanSource:
    """The text a plan was read from, to point an error at the line of its key.

    Args:
        path: the file name shown in messages.
        text: the file's text.
        kind: ``"toml"`` (``[[objectives]]`` tables) or ``"json"``.
    """

    def __init__(self, path: str, text: str, kind: Literal["toml", "json"]) -> None:
        self.path, self.text, self.kind = path, text, kind
        self._json: dict[KeyPath, int] | None = None

    def locate(self, path: KeyPath) -> tuple[int, int]:
        """Return the 1-based (line, column) of ``path``, or of its nearest ancestor found.

        TOML: the key's line inside the n-th ``[[objectives]]``/``[[contracts]]`` table
        (an array element: its key's line), else the table's header, else line 1. JSON:
        the member's key, or the element's first character.
        """
        if self.kind == "json":
            if self._json is None:
                self._json = _json_positions(self.text)
            for n in range(len(path), -1, -1):
                if path[:n] in self._json:
                    return _line_col(self.text, self._json[path[:n]])
            return (1, 1)
        return _toml_locate(self.text.splitlines(), path)

    def error(self, path: KeyPath, message: str) -> PlanError:
        """Return a :class:`PlanError` ``FILE:LINE:COL: message`` for ``path``."""
        line, col = self.locate(path)
        return PlanError(
            f"{self.path}:{line}:{col}: {message}", file=self.path, line=line, column=col
        )


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_SCALAR = re.compile(r"[^,\]}\s]+")


def _json_positions(text: str) -> dict[KeyPath, int]:
    """Offsets of every member key and array element of valid JSON ``text``."""
    found: dict[KeyPath, int] = {}

    def skip(i: int) -> int:
        return _JSON_WS.match(text, i).end()  # type: ignore[union-attr]  # always matches

    def value(i: int, path: KeyPath) -> int:
        i = skip(i)
        found.setdefault(path, i)
        opening = text[i]
        if opening not in "{[":
            pattern = _JSON_STRING if opening == '"' else _JSON_SCALAR
            return pattern.match(text, i).end()  # type: ignore[union-attr]
        closing, i, n = ("}" if opening == "{" else "]"), skip(i + 1), 0
        while text[i] != closing:
            if opening == "{":
                key = _JSON_STRING.match(text, i)
                assert key is not None
                name = json.loads(key.group())
                found[(*path, name)] = i
                i = value(skip(key.end()) + 1, (*path, name))  # + 1: the ':'
            else:
                i = value(i, (*path, n))
                n += 1
            i = skip(i)
            i = skip(i + 1) if text[i] == "," else i
        return i + 1

    value(0, ())
    return found


_TOML_HEADER = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def _toml_locate(lines: list[str], path: KeyPath) -> tuple[int, int]:
    def key_at(start: int, end: int, key: str) -> tuple[int, int] | None:
        for i in range(start, end):
            m = re.match(rf"\s*(['\"]?){re.escape(key)}\1\s*=", lines[i])
            if m:
                return i + 1, len(lines[i]) - len(lines[i].lstrip()) + 1
        return None

    headers = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOML_HEADER.match(line))]
    first_header = headers[0][0] if headers else len(lines)
    if not path:
        return (1, 1)
    table = str(path[0])
    tables = [i for i, name in headers if name == table and lines[i].lstrip().startswith("[[")]
    if len(path) > 1 and isinstance(path[1], int) and path[1] < len(tables):
        start = tables[path[1]]
        end = next((i for i, _ in headers if i > start), len(lines))
        if len(path) > 2:
            found = key_at(start + 1, end, str(path[2]))
            if found:
                return found
        return start + 1, lines[start].index("[") + 1
    top = key_at(0, first_header, table)
    if top:
        return top
    return (tables[0] + 1, 1) if tables else (1, 1)


def plan_from_data(data: Any, fail: Callable[[KeyPath, str], PlanError]) -> Plan:
    """Convert parsed TOML/JSON to a :class:`Plan`; ``fail(path, message)`` makes errors."""
    if not isinstance(data, dict):
        raise fail((), 'a plan is an object with an "objectives" list; write one')
    for key in data:
        if key not in _FIELDS:
            raise fail((key,), f"unknown key {key!r}; a plan has only objectives and contracts")
    for table, allowed in _FIELDS.items():
        items = data.get(table)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            for key in item if isinstance(item, dict) else ():
                if key not in allowed:
                    raise fail(
                        (table, i, key),
                        f"{table}[{i}] has an unknown key {key!r}; the keys are"
                        f" {', '.join(allowed)}",
                    )
    try:
        return msgspec.convert(data, Plan)
    except msgspec.ValidationError as e:
        text, _, where = str(e).partition(" - at `$")
        path: KeyPath = tuple(
            int(index) if index else key
            for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", where.rstrip("`"))
        )
        dotted = where.rstrip("`").lstrip(".") or "the plan"
        expected = re.match(r"Expected `(.+?)`", text)
        if text.startswith("Object missing required field"):
            fix = "add it"
        elif expected:
            fix = f"write a value of type {expected.group(1)}"
        else:
            fix = "fix the value"
        raise fail(path, f"{dotted}: {text[0].lower()}{text[1:]}; {fix}") from e


def load_plan_file(path: Path, team: Team | None = None) -> Plan:
    """Read, validate and check the owner's plan file (``--plan plan.toml|plan.json``).

    Shape: ``[[objectives]]`` tables (TOML) or ``{"objectives": [...], "contracts":
    [...]}`` (JSON), with the keys of :class:`~ap_actors.events.Objective` (id, title,
    description, wave, scope_touch, scope_forbid, worker, depends_on, command,
    capabilities) and :class:`~ap_actors.events.Contract` (name, provider, consumers,
    description); any other key is an error.

    Raises:
        PlanError: missing or unreadable file, an extension other than .toml/.json, a
            syntax error, an unknown key, a wrong type or missing field, or a rule of
            :func:`check_plan`; one line, ``FILE:LINE:COL: what; how to fix``.
    """
    where = str(path)
    suffix = Path(path).suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(f"plan file {where}: use a .toml or .json file", file=where)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"plan file {where} does not exist; pass an existing --plan") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read plan file {where}: {e}; pass a readable UTF-8 file") from e
    kind: Literal["toml", "json"] = "json" if suffix == ".json" else "toml"
    source = PlanSource(where, text, kind)
    try:
        data = json.loads(text) if kind == "json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError(
            f"{where}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}; fix the syntax",
            file=where,
            line=e.lineno,
            column=e.colno,
        ) from e
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"(.*?) \(at line (\d+), column (\d+)\)$", str(e))
        if not m:
            raise PlanError(f"{where}: not valid TOML: {e}; fix the syntax", file=where) from e
        line, col = int(m.group(2)), int(m.group(3))
        raise PlanError(
            f"{where}:{line}:{col}: not valid TOML: {m.group(1)}; fix the syntax",
            file=where,
            line=line,
            column=col,
        ) from e
    except (ValueError, RecursionError) as e:  # Python's limits on int digits and nesting
        raise PlanError(f"{where}: {unreadable_reason(e)}; fix the file", file=where) from e
    plan = plan_from_data(data, source.error)
    check_plan(plan, team, source=source)
    return plan
