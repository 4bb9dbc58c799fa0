"""What the plan-file and team-file fuzzing share: documents, renderings, the check.

Each case writes a file (TOML or JSON; valid syntax with wrong shapes and values, or
broken syntax, deep nesting, huge numbers, invalid UTF-8, path traversal in ids and
scopes) and loads it with :func:`~ap_actors.planning.load_plan_file` or
:func:`~ap_actors.team.load_team`. The loader returns a checked value or raises
:class:`~ap_actors.errors.ConfigError` with a one-line message; never another exception.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st

from ap_actors.errors import ConfigError
from ap_actors.events import Objective
from ap_actors.team import WorkerSpec
from tests.fuzz.strategies import BAD_UTF8, json_values, nasty_text

# The fields the loaders know (so the fuzzing follows the schema), plus the seeds' team.json
# names (type, log_path, name) that load_team maps onto ours.
OBJECTIVE_KEYS = [f.encode_name for f in msgspec.structs.fields(Objective)]
WORKER_KEYS = [f.encode_name for f in msgspec.structs.fields(WorkerSpec)] + [
    "type",
    "log_path",
    "name",
]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | nasty_text
values = json_values | st.lists(nasty_text, max_size=3)


def documents(top: list[str], item_keys: list[str], table: str) -> st.SearchStrategy[Any]:
    items = st.fixed_dictionaries(
        {},
        optional={k: values for k in item_keys},
    ) | st.dictionaries(nasty_text, values, max_size=3)
    return (
        st.fixed_dictionaries(
            {},
            optional={
                table: st.lists(items | values, max_size=4) | values,
                **{k: values for k in top},
                "unknown": values,
            },
        )
        | json_values
    )


def to_toml(value: Any) -> str:
    """A TOML rendering of ``value`` (JSON-ish inline values; may be invalid TOML)."""
    if not isinstance(value, dict):
        return json.dumps(value, allow_nan=True)
    lines = []
    for key, v in value.items():
        if isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            for item in v:
                lines.append(f"[[{key}]]")
                lines += [
                    f"{json.dumps(k)} = {json.dumps(x, allow_nan=True)}" for k, x in item.items()
                ]
        else:
            lines.insert(0, f"{json.dumps(key)} = {json.dumps(v, allow_nan=True)}")
    return "\n".join(lines)


@st.composite
def files(draw: st.DrawFn, doc: st.SearchStrategy[Any]) -> tuple[str, bytes]:
    """(suffix, bytes) of a config file: a document rendered, then maybe broken."""
    suffix = draw(st.sampled_from([".toml", ".json", ".json", ".yaml", ""]))
    value = draw(doc)
    text = json.dumps(value, allow_nan=True) if suffix != ".toml" else to_toml(value)
    data = text.encode()
    kind = draw(st.sampled_from(["as-is", "as-is", "cut", "bad-utf8", "deep", "huge", "raw"]))
    if kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "bad-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:]
    elif kind == "deep":
        n = draw(st.sampled_from([100, 2_000, 100_000]))
        inner = "[" * n + "]" * n
        data = (
            f'{{"workers": {inner}, "objectives": {inner}}}'
            if suffix != ".toml"
            else f"objectives = {inner}\nworkers = {inner}"
        ).encode()
    elif kind == "huge":
        number = "9" * draw(st.sampled_from([20, 5_000, 50_000]))
        data = (
            f'{{"max_attempts": {number}, "objectives": [{{"wave": {number}}}]}}'
            if suffix != ".toml"
            else f"max_attempts = {number}\n[[objectives]]\nwave = {number}"
        ).encode()
    elif kind == "raw":
        data = draw(st.binary(max_size=200))
    return suffix, data


def check_loader(load: Callable[[Path], Any], suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        path.write_bytes(data)
        try:
            load(path)
        except ConfigError as e:
            message = str(e)
            assert message.strip() and "\n" not in message, repr(message)
