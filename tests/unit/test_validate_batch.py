"""The journal's validation of an ``append`` payload (``validate_batch``).

A refused batch raises ``DecodeError`` with a machine-readable ``code`` of the wire
protocol and the ``index`` of the offending event (-1 for the batch as a whole); the
journal turns it into an ``error`` reply, so nothing else may escape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_actors import protocol as P
from ap_actors.errors import DecodeError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, EVENT_TYPES, Event, PlanApproved
from ap_actors.ingest import validate_batch

MAX_EVENTS = 100
MAX_BYTES = 64 * 1024

MakeEvent = Callable[..., Event]


def _map(event: Event, **changes: Any) -> dict[str, Any]:
    """The event map of ``event`` with fields changed (``...`` removes a field)."""
    out = msgspec.to_builtins(event)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not ...}


def _refused(payload: bytes, **limits: int) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        validate_batch(
            payload, limits.get("max_events", MAX_EVENTS), limits.get("max_bytes", MAX_BYTES)
        )
    assert info.value.code in P.ERROR_CODES
    return info.value


def _refused_maps(maps: list[Any]) -> DecodeError:
    return _refused(msgspec.msgpack.encode(maps))


@pytest.fixture
def good(make_event: MakeEvent) -> dict[str, Any]:
    """A valid event map."""
    return _map(make_event("e-good", session_id="s1"))


# --- valid batches --------------------------------------------------------------------


def test_a_valid_batch_becomes_prepared_events_in_order(make_event: MakeEvent) -> None:
    events = [
        make_event("e1", session_id="s1"),
        make_event("e2", cls=PlanApproved, plan_id="plan-1", by="owner"),
    ]

    prepared = validate_batch(CODEC.encode(events), MAX_EVENTS, MAX_BYTES)

    assert [(p.id, p.session_id, p.topic) for p in prepared] == [
        (b"e1", b"s1", b"worker_activity"),
        (b"e2", b"", b"plan_approved"),
    ]
    assert [CODEC.decode_event(p.raw) for p in prepared] == events


def test_an_event_s_bytes_are_kept_exactly_as_received(good: dict[str, Any]) -> None:
    # Fields this version does not know are stored too, for the versions that do.
    maps = [{**good, "added_later": [1, "two"]}, good]
    payload = msgspec.msgpack.encode(maps)

    prepared = validate_batch(payload, MAX_EVENTS, MAX_BYTES)

    assert [p.raw for p in prepared] == [msgspec.msgpack.encode(m) for m in maps]
    assert msgspec.msgpack.decode(prepared[0].raw)["added_later"] == [1, "two"]


def test_an_empty_batch_is_valid() -> None:
    assert validate_batch(msgspec.msgpack.encode([]), MAX_EVENTS, MAX_BYTES) == []


def test_a_batch_at_the_limits_is_accepted(good: dict[str, Any]) -> None:
    payload = msgspec.msgpack.encode([good] * 3)

    assert len(validate_batch(payload, max_events=3, max_bytes=len(payload))) == 3


def test_an_id_of_255_characters_and_a_session_of_200_are_accepted(
    good: dict[str, Any],
) -> None:
    event = {**good, "id": "i" * 255, "session_id": "s" * 200}

    (prepared,) = validate_batch(msgspec.msgpack.encode([event]), MAX_EVENTS, MAX_BYTES)

    assert (prepared.id, prepared.session_id) == (b"i" * 255, b"s" * 200)


# --- refused batches ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # a byte msgpack never uses
        b"\x93\x01\x02",  # a list cut short
        b"\x90\x90",  # trailing bytes after the list
        b"\xde\xad\xbe\xef not msgpack",
        b"",
    ],
)
def test_bytes_that_are_not_msgpack_are_refused_as_not_msgpack(payload: bytes) -> None:
    error = _refused(payload)

    assert (error.code, error.index) == (P.E_NOT_MSGPACK, -1)


@pytest.mark.parametrize("payload", [{"type": "worker_activity"}, "events", 42, None])
def test_msgpack_that_is_not_a_list_is_refused_as_not_msgpack(payload: Any) -> None:
    error = _refused(msgspec.msgpack.encode(payload))

    assert (error.code, error.index) == (P.E_NOT_MSGPACK, -1)


def test_an_unknown_type_is_refused_with_its_index(good: dict[str, Any]) -> None:
    error = _refused_maps([good, good, {**good, "type": "worker_teleported"}, good])

    assert (error.code, error.index) == (P.E_UNKNOWN_TYPE, 2)
    assert "event 2" in str(error)


def test_an_event_without_a_type_is_refused_as_unknown_type(good: dict[str, Any]) -> None:
    error = _refused_maps([good, _map_without(good, "type")])

    assert (error.code, error.index) == (P.E_UNKNOWN_TYPE, 1)


def test_a_mistyped_field_is_refused_as_invalid_event_with_its_index(
    good: dict[str, Any],
) -> None:
    error = _refused_maps([good, {**good, "worker_id": 7}])

    assert (error.code, error.index) == (P.E_INVALID_EVENT, 1)
    assert "worker_id" in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("activity_type", "dancing"),  # a field whose name ends in "type"
        ("exit_code", "0"),
        ("ts", "yesterday"),
    ],
)
def test_a_field_outside_its_type_is_invalid_even_when_its_name_ends_in_type(
    good: dict[str, Any], field: str, value: Any
) -> None:
    error = _refused_maps([{**good, field: value}])

    assert (error.code, error.index) == (P.E_INVALID_EVENT, 0)


def test_a_missing_required_field_is_refused_as_invalid_event(good: dict[str, Any]) -> None:
    analysis = {"type": "analysis_completed", "id": "a", "ts": 1.0, "source": "analyst"}

    assert _refused_maps([_map_without(good, "worker_id")]).code == P.E_INVALID_EVENT
    error = _refused_maps([good, analysis])  # task_type is missing
    assert (error.code, error.index) == (P.E_INVALID_EVENT, 1)


def test_an_element_that_is_not_a_map_is_refused_as_invalid_event(
    good: dict[str, Any],
) -> None:
    error = _refused_maps([good, ["worker_activity"]])

    assert (error.code, error.index) == (P.E_INVALID_EVENT, 1)


@pytest.mark.parametrize(
    "changes",
    [
        {"id": ""},
        {"id": ...},
        {"id": "i" * 256},
        {"source": ""},
        {"source": ...},
        {"ts": 0.0},
        {"ts": -1.0},
        {"ts": ...},
        {"ts": float("nan")},
        {"session_id": "s\x00"},
        {"session_id": "s" * 201},
    ],
    ids=repr,
)
def test_an_event_the_emitter_did_not_stamp_properly_is_refused_as_invalid_event(
    make_event: MakeEvent, changes: dict[str, Any]
) -> None:
    bad = _map(make_event("e2", session_id="s"), **changes)

    error = _refused_maps([_map(make_event("e1")), bad])

    assert (error.code, error.index) == (P.E_INVALID_EVENT, 1)


def test_a_batch_with_too_many_events_is_refused_as_too_large(good: dict[str, Any]) -> None:
    error = _refused(msgspec.msgpack.encode([good] * 4), max_events=3)

    assert (error.code, error.index) == (P.E_BATCH_TOO_LARGE, -1)


def test_a_batch_with_too_many_bytes_is_refused_before_it_is_decoded() -> None:
    error = _refused(b"\xc1" * 101, max_bytes=100)

    assert (error.code, error.index) == (P.E_BATCH_TOO_LARGE, -1)


def test_a_refused_event_s_bytes_are_kept_on_the_error(good: dict[str, Any]) -> None:
    bad = {**good, "type": "worker_teleported"}

    error = _refused_maps([good, bad])

    assert error.raw == msgspec.msgpack.encode(bad)


# --- inputs that must not crash the journal -------------------------------------------


def _batch_of_one_map(fields: dict[str, Any], raw_key: bytes, raw_value: bytes) -> bytes:
    """msgpack ``[{**fields, raw_key: raw_value}]``, the last pair given as raw msgpack."""
    pairs = b"".join(
        msgspec.msgpack.encode(k) + msgspec.msgpack.encode(v) for k, v in fields.items()
    )
    return b"\x91" + bytes([0x80 | (len(fields) + 1)]) + pairs + raw_key + raw_value


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("tag"),
        pytest.param("value"),
        pytest.param("unknown key"),
    ],
)
def test_a_string_that_is_not_utf8_is_refused(where: str) -> None:
    fields = {"id": "e", "ts": 1.0, "source": "s", "worker_id": "w", "type": "worker_error"}
    not_utf8 = b"\xa1\xff"  # a 1-byte str holding 0xff
    payload = {
        "tag": _batch_of_one_map(_map_without(fields, "type"), b"\xa4type", not_utf8),
        "unknown key": _batch_of_one_map({**fields, "error": "e"}, not_utf8, b"\x01"),
        "value": _batch_of_one_map(fields, b"\xa5error", not_utf8),
    }[where]

    error = _refused(payload)

    assert error.code in (P.E_NOT_MSGPACK, P.E_INVALID_EVENT)
    assert error.index == 0


def test_deeply_nested_msgpack_is_refused() -> None:
    payload = b"\x91" * 10_000 + b"\xc0"  # [[[...[nil]...]]]

    error = _refused(payload, max_bytes=1 << 20)

    assert error.code == P.E_NOT_MSGPACK


@pytest.mark.parametrize("field", ["id", "session_id"])
def test_every_event_validate_batch_accepts_can_be_appended(
    tmp_path: Path, good: dict[str, Any], field: str
) -> None:
    wide = "\U0001f600" * (128 if field == "id" else 126)  # 4 bytes per character
    payload = msgspec.msgpack.encode([{**good, field: wide}])
    try:
        prepared = validate_batch(payload, MAX_EVENTS, MAX_BYTES)
    except DecodeError as e:
        assert e.code == P.E_INVALID_EVENT
        return

    with EventLog(tmp_path / "eventlog", durability="none") as log:
        assert log.append_prepared(prepared)[0] == [1]


@settings(max_examples=300)
@given(payload=st.binary(max_size=200))
def test_arbitrary_bytes_raise_nothing_but_decode_error(payload: bytes) -> None:
    try:
        prepared = validate_batch(payload, MAX_EVENTS, MAX_BYTES)
    except DecodeError as e:
        assert e.code in P.ERROR_CODES
        assert e.index >= -1
    else:
        for item in prepared:
            CODEC.decode_event(item.raw)


_FIELD_NAMES = sorted({f.name for cls in EVENT_TYPES.values() for f in msgspec.structs.fields(cls)})
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.sampled_from(sorted(EVENT_TYPES)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_EVENT_MAPS = st.dictionaries(
    st.sampled_from(["type", *_FIELD_NAMES]) | st.text(max_size=8), _VALUES, max_size=8
)


@settings(max_examples=300)
@given(maps=st.lists(_EVENT_MAPS | _VALUES, max_size=4))
def test_any_list_of_msgpack_values_is_accepted_whole_or_refused_with_an_index(
    maps: list[Any],
) -> None:
    try:
        prepared = validate_batch(msgspec.msgpack.encode(maps), MAX_EVENTS, MAX_BYTES)
    except DecodeError as e:
        assert e.code in (P.E_UNKNOWN_TYPE, P.E_INVALID_EVENT)
        assert 0 <= e.index < len(maps)
    else:
        assert len(prepared) == len(maps)


def _map_without(event_map: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event_map.items() if k != field}
