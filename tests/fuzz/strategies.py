"""Hypothesis strategies for bad input: structured but wrong, and raw.

Structured-but-wrong values are valid msgpack or JSON with the wrong types, missing
or unknown fields, boundary and huge integers, NaN and infinities, very long strings,
path traversal and control characters in ids and paths, deep nesting. Raw values are
random bytes, truncated or mutated encodings, and invalid UTF-8 spliced into an
otherwise valid encoding.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from ap_actors.events import EVENT_TYPES

NASTY_STRINGS = [
    "",
    " ",
    "../../etc/passwd",
    "..",
    "/",
    "/etc/passwd",
    "~",
    "~nobody-such-user/x",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..\\..\\windows\\system32",
    "a\x00b",
    "\x00",
    "line\nbreak",
    "\r\n",
    "\u202etxt.exe",
    "\ufeff",
    "💥" * 3,
    "null",
    "NaN",
    "-1",
    "18446744073709551616",
    "<script>alert(1)</script>",
    "'; DROP TABLE events; --",
    "{scope}",
    "%s%s%n",
    "x" * 300,
    "x" * 70_000,
]
"""Strings that have broken programs before."""

BOUNDARY_INTS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**31),
    -(2**63),
]

nasty_text = st.sampled_from(NASTY_STRINGS) | st.text(max_size=40)
"""Ids, paths and names: the list above or any short text (surrogates excluded)."""

ints = st.sampled_from(BOUNDARY_INTS) | st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)

_scalars = (
    st.none()
    | st.booleans()
    | ints
    | floats
    | nasty_text
    | st.binary(max_size=32)
    | st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=8))
)

msgpack_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(nasty_text, inner, max_size=4)
        | st.dictionaries(ints | st.booleans(), inner, max_size=2)
    ),
    max_leaves=12,
)
"""Any msgpack value (ext types and non-string keys included)."""

_json_scalars = st.none() | st.booleans() | ints | floats | nasty_text
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (NaN and infinities included: Python's json reads them)."""

TAGS = sorted(EVENT_TYPES)
FIELDS = {tag: [f.name for f in msgspec.structs.fields(cls)] for tag, cls in EVENT_TYPES.items()}


def valid_event_map(event_id: str = "fuzz-ok") -> dict[str, Any]:
    return {
        "type": "worker_error",
        "id": event_id,
        "session_id": "fuzz",
        "ts": 1_767_225_600.0,
        "source": "fuzz",
        "worker_id": "w1",
        "error": "x",
    }


@st.composite
def event_maps(draw: st.DrawFn) -> dict[Any, Any]:
    """An event map with some fields right and some wrong, or entirely right."""
    tag = draw(st.sampled_from(TAGS) | nasty_text)
    names = FIELDS.get(tag, FIELDS["worker_error"])
    base = valid_event_map(draw(st.sampled_from(["fuzz-ok", "fuzz-2"]) | nasty_text))
    base["type"] = tag
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        base[name] = draw(msgpack_values | nasty_text)
    for name in draw(st.lists(st.sampled_from([*base, "type"]), max_size=2)):
        base.pop(name, None)
    if draw(st.booleans()):
        base[draw(nasty_text)] = draw(msgpack_values)
    return base


BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
_MARK = "@@fuzz-mark@@"


def _splice_bad_utf8(value: Any, bad: bytes) -> bytes:
    """Encode ``value`` with the first marker string replaced by invalid UTF-8."""
    data = msgspec.msgpack.encode(value)
    mark = msgspec.msgpack.encode(_MARK)
    replacement = bytes([0xA0 | len(bad)]) + bad
    return data.replace(mark, replacement, 1)


def deep(depth: int, container: bytes = b"\x91") -> bytes:
    """A msgpack value nested ``depth`` levels (arrays of one by default)."""
    return container * depth + b"\xc0"


@st.composite
def msgpack_payloads(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> bytes:
    """Bytes for a msgpack payload: ``valid`` encoded, or broken in one of many ways."""
    kind = draw(
        st.sampled_from(
            ["valid", "value", "raw", "truncated", "mutated", "bad-utf8", "deep", "huge-int"]
        )
    )
    if kind == "valid":
        return msgspec.msgpack.encode(draw(valid))
    if kind == "value":
        return msgspec.msgpack.encode(draw(msgpack_values))
    if kind == "raw":
        return draw(st.binary(max_size=256))
    encoded = msgspec.msgpack.encode(draw(valid))
    if kind == "truncated":
        return encoded[: draw(st.integers(0, max(len(encoded) - 1, 0)))]
    if kind == "mutated":
        data = bytearray(encoded)
        for _ in range(draw(st.integers(1, 4))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "bad-utf8":
        value = draw(valid)
        where = draw(st.sampled_from(["key", "value", "list"]))
        if isinstance(value, dict):
            value = dict(value)
            if where == "key":
                value[_MARK] = 1
            else:
                value[draw(st.sampled_from(sorted(map(str, value)) or ["x"]))] = _MARK
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            first = dict(value[0])
            first[_MARK if where == "key" else "id"] = _MARK
            value = [first, *value[1:]]
        else:
            value = [_MARK]
        return _splice_bad_utf8(value, draw(st.sampled_from(BAD_UTF8)))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1_000, 10_000, 100_000]))
        nest = deep(depth, draw(st.sampled_from([b"\x91", b"\x81\xa1k"])))
        return draw(
            st.sampled_from(
                [
                    nest,
                    b"\x91" + nest,
                    b"\x91\x82\xa4type\xacworker_error\xa1x" + nest,
                    b"\x81\xa5since" + nest,
                ]
            )
        )
    # huge-int: msgpack holds at most 64 bits; an int64 where a uint64 is expected etc.
    return draw(
        st.sampled_from(
            [
                b"\x91\x82\xa4type\xacworker_error\xa2ts\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
                b"\x91\x82\xa4type\xacworker_error\xa2id\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
                b"\x82\xa5since\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa5limit\xd3\x80\0\0\0\0\0\0\0",
                b"\x81\xa5since\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
            ]
        )
    )


frames_raw = st.lists(st.binary(max_size=64), min_size=1, max_size=5)
"""Any multipart message (ZeroMQ cannot send one of zero frames)."""
