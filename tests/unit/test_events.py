"""The event catalog and its codec: tags, round trips, ids, stamping, old records."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ap_actors.events import (
    CODEC,
    EVENT_TYPES,
    ActorStarted,
    Event,
    Objective,
    PlanProposed,
    RawRecord,
    Record,
    ScopeConflict,
    ScopeValidated,
    WorkerActivity,
    WorkerMetrics,
    derive_id,
    record_to_json,
    record_to_json_dict,
    stamp,
    topic_of,
)

FIXTURE_V1 = Path(__file__).parents[1] / "fixtures" / "records-v1.msgpack"

# DESIGN.md, "Events": the core catalog, whose names and fields must not change, plus the
# supervisor's lifecycle events (mesh-level, session_id "").
CATALOG: dict[str, set[str]] = {
    "request_submitted": {"request", "repo", "base_ref", "plan_file", "auto_approve", "team"},
    "analysis_completed": {
        "task_type",
        "modules",
        "entry_points",
        "test_dirs",
        "config_files",
        "coordination_points",
        "scope_strategy",
    },
    "plan_proposed": {"plan_id", "objectives", "contracts"},
    "scope_validated": {"plan_id", "valid", "conflicts"},
    "plan_approved": {"plan_id", "by", "reason"},
    "plan_rejected": {"plan_id", "by", "reason"},
    "wave_started": {"wave", "objective_ids"},
    "wave_completed": {"wave", "objective_ids"},
    "objective_assigned": {"objective_id", "worker_id", "attempt"},
    "worker_activity": {
        "worker_id",
        "objective_id",
        "activity_type",
        "tool_name",
        "description",
        "file_path",
        "exit_code",
    },
    "worker_metrics": {
        "worker_id",
        "tasks_completed",
        "tasks_failed",
        "tools_used",
        "files_modified",
        "uptime_seconds",
        "cpu_percent",
        "rss_bytes",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    },
    "worker_error": {"worker_id", "objective_id", "error"},
    "objective_completed": {
        "objective_id",
        "worker_id",
        "files_modified",
        "exit_code",
        "duration_s",
        "reason",
    },
    "objective_failed": {
        "objective_id",
        "worker_id",
        "files_modified",
        "exit_code",
        "duration_s",
        "reason",
    },
    "scope_violated": {"objective_id", "worker_id", "paths", "rule"},
    "session_completed": {"summary", "branch", "commit_message"},
    "session_failed": {"reason", "branch", "commit_message"},
    "session_cancelled": {"reason", "branch", "commit_message"},
    "report_written": {"kind", "path"},
    "actor_started": {"actor", "pid"},
    "actor_exited": {"actor", "pid", "exit_code"},
}
COMMON_FIELDS = {"id", "session_id", "ts", "source"}
OBJECTIVE_FIELDS = {
    "id",
    "title",
    "description",
    "wave",
    "scope_touch",
    "scope_forbid",
    "worker",
    "depends_on",
    "command",
}
CONFLICT_FIELDS = {"wave", "objective_a", "objective_b", "pattern_a", "pattern_b", "witness"}


# --- strategies: any valid value of an event type, built from its field types -------


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for every msgpack-representable value of the field type ``tp``.

    Not ``st.from_type``: it draws ints past 64 bits, which msgpack cannot hold, and passes
    msgspec's ``<factory>`` signature defaults (``list`` fields) to the constructor.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _for_struct(tp)
    if tp is str:
        return st.text(max_size=30)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**64 - 1)  # msgpack's integer range
    if tp is float:
        return st.floats(allow_nan=False)  # NaN != NaN would defeat the equality check
    if tp is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(a) for a in args))
    if origin is list:
        return st.lists(_for_type(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(_for_type(args[0]), _for_type(args[1]), max_size=4)
    raise NotImplementedError(f"no strategy for field type {tp!r}")


def _for_struct(cls: type[msgspec.Struct], **overrides: Any) -> st.SearchStrategy[Any]:
    fields = {f.name: _for_type(f.type) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **{**fields, **overrides})


ANY_EVENT = st.sampled_from(sorted(EVENT_TYPES)).flatmap(lambda tag: _for_struct(EVENT_TYPES[tag]))


def _simple(tp: Any) -> Any:
    """A fixed valid value of the field type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp(**{f.name: _simple(f.type) for f in msgspec.structs.fields(tp) if f.required})
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return _simple(args[0])
    return {str: "x", int: 1, float: 1.0, bool: True, list: [], dict: {}}[origin or tp]


def _minimal(cls: type[Event]) -> Event:
    return _simple(cls)  # type: ignore[no-any-return]


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# --- the catalog ----------------------------------------------------------------------


def test_every_catalog_event_of_the_design_exists_with_its_snake_case_tag() -> None:
    missing = set(CATALOG) - set(EVENT_TYPES)

    assert not missing, f"catalog events missing from EVENT_TYPES: {sorted(missing)}"


@pytest.mark.parametrize("tag", sorted(CATALOG))
def test_a_catalog_event_keeps_the_fields_of_the_design(tag: str) -> None:
    names = {f.name for f in msgspec.structs.fields(EVENT_TYPES[tag])}

    assert names >= CATALOG[tag] | COMMON_FIELDS


def test_objectives_and_scope_conflicts_keep_the_fields_of_the_design() -> None:
    assert {f.name for f in msgspec.structs.fields(Objective)} >= OBJECTIVE_FIELDS
    assert {f.name for f in msgspec.structs.fields(ScopeConflict)} >= CONFLICT_FIELDS


@pytest.mark.parametrize("tag", sorted(EVENT_TYPES))
def test_every_tag_is_the_snake_case_name_of_its_class_and_its_bus_topic(tag: str) -> None:
    cls = EVENT_TYPES[tag]
    event = _minimal(cls)

    assert cls.__struct_config__.tag == tag
    assert _snake_case(cls.__name__) == tag
    assert topic_of(event) == tag
    assert msgspec.msgpack.decode(CODEC.encode(event))["type"] == tag


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(EVENT_TYPES))
@settings(max_examples=40)
@given(data=st.data())
def test_every_event_type_round_trips_through_the_codec(tag: str, data: st.DataObject) -> None:
    event = data.draw(_for_struct(EVENT_TYPES[tag]))

    decoded = CODEC.decode_event(CODEC.encode(event))

    assert type(decoded) is EVENT_TYPES[tag]
    assert decoded == event


@given(event=ANY_EVENT, seq=st.integers(1, 2**64 - 1), appended_at=st.floats(0, 4e9))
def test_an_event_round_trips_through_a_record_as_the_log_writes_it(
    event: Event, seq: int, appended_at: float
) -> None:
    record = Record(seq, appended_at, event)  # type: ignore[arg-type]
    stored = CODEC.encode(RawRecord(seq, appended_at, msgspec.Raw(CODEC.encode(event))))

    assert CODEC.decode_record(CODEC.encode(record)) == record
    assert CODEC.decode_record(stored) == record
    assert stored == CODEC.encode(record)


@given(event=ANY_EVENT, seq=st.integers(1, 2**64 - 1), appended_at=st.floats(0, 4e9))
def test_record_to_json_is_the_json_of_record_to_json_dict_byte_for_byte(
    event: Event, seq: int, appended_at: float
) -> None:
    record = Record(seq, appended_at, event)  # type: ignore[arg-type]

    assert record_to_json(record) == CODEC.to_json(record_to_json_dict(record))


def test_record_to_json_of_every_version_1_record() -> None:
    for data in _fixture_v1():
        record = CODEC.decode_record(data)
        assert record_to_json(record) == CODEC.to_json(record_to_json_dict(record))


@given(event=_for_struct(WorkerActivity))
def test_a_worker_activity_round_trips(event: WorkerActivity) -> None:
    assert CODEC.decode_event(CODEC.encode(event)) == event


@given(event=_for_struct(WorkerMetrics))
def test_worker_metrics_with_any_counters_round_trip(event: WorkerMetrics) -> None:
    assert CODEC.decode_event(CODEC.encode(event)) == event


@given(
    event=_for_struct(
        PlanProposed, objectives=st.lists(_for_struct(Objective), min_size=1, max_size=4)
    )
)
def test_a_plan_with_objectives_round_trips(event: PlanProposed) -> None:
    decoded = CODEC.decode_event(CODEC.encode(event))

    assert decoded == event
    assert all(type(o) is Objective for o in decoded.objectives)  # type: ignore[attr-defined]


@given(
    event=_for_struct(
        ScopeValidated, conflicts=st.lists(_for_struct(ScopeConflict), min_size=1, max_size=4)
    )
)
def test_a_scope_validation_with_conflicts_round_trips(event: ScopeValidated) -> None:
    decoded = CODEC.decode_event(CODEC.encode(event))

    assert decoded == event
    assert all(type(c) is ScopeConflict for c in decoded.conflicts)  # type: ignore[attr-defined]


@given(events=st.lists(ANY_EVENT, max_size=5))
def test_a_batch_of_events_round_trips_and_splits_into_each_event_s_bytes(
    events: list[Event],
) -> None:
    payload = CODEC.encode(events)

    assert CODEC.decode_events(payload) == events
    assert [bytes(raw) for raw in CODEC.split_batch(payload)] == [CODEC.encode(e) for e in events]


# --- forward and backward compatibility -----------------------------------------------


def test_an_unknown_extra_field_is_ignored_when_decoding() -> None:
    event = WorkerActivity(id="e1", ts=1.0, source="w", worker_id="worker-1")
    newer = {**msgspec.to_builtins(event), "added_in_v9": {"nested": [1, 2]}, "zz": None}

    assert CODEC.decode_event(msgspec.msgpack.encode(newer)) == event


def test_a_missing_required_field_fails_validation() -> None:
    with pytest.raises(msgspec.ValidationError, match="worker_id"):
        CODEC.decode_event(msgspec.msgpack.encode({"type": "worker_activity", "id": "e1"}))


def test_a_mistyped_field_fails_validation() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.pid"):
        CODEC.decode_event(
            msgspec.msgpack.encode({"type": "actor_started", "actor": "journal", "pid": "41"})
        )


def test_an_unknown_type_fails_validation() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.type"):
        CODEC.decode_event(msgspec.msgpack.encode({"type": "worker_teleported", "id": "e1"}))


def _fixture_v1() -> list[bytes]:
    return msgspec.msgpack.decode(FIXTURE_V1.read_bytes(), type=list[bytes])


def test_every_record_written_by_version_1_still_decodes() -> None:
    records = [CODEC.decode_record(data) for data in _fixture_v1()]

    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert set(CATALOG) <= {topic_of(r.event) for r in records}
    for record, data in zip(records, _fixture_v1(), strict=True):
        head = CODEC.decode_head(data)
        assert (head.seq, head.event.type) == (record.seq, topic_of(record.event))
        assert head.event.session_id == record.event.session_id


def test_version_1_records_keep_their_field_values() -> None:
    by_tag = {topic_of(r.event): r.event for r in map(CODEC.decode_record, _fixture_v1())}
    session = "01KAS3Z7M2QK8E4W9T1V6Y0R5N"

    started = by_tag["actor_started"]
    assert isinstance(started, ActorStarted)
    assert (started.actor, started.pid, started.session_id) == ("journal", 41_234, "")
    plan = by_tag["plan_proposed"]
    assert isinstance(plan, PlanProposed)
    assert plan.session_id == session
    assert [o.id for o in plan.objectives] == ["obj-1", "obj-2"]
    assert plan.objectives[0].scope_touch == ["src/auth/**", "tests/auth/**"]
    assert plan.objectives[1].depends_on == ["obj-1"]
    assert plan.contracts[0].provider == "obj-1"
    validated = by_tag["scope_validated"]
    assert isinstance(validated, ScopeValidated)
    assert validated.valid is False
    assert validated.conflicts[0].witness == "src/auth/a.py"
    metrics = by_tag["worker_metrics"]
    assert isinstance(metrics, WorkerMetrics)
    assert metrics.tools_used == {"exec_command": 7, "apply_patch": 2}
    assert (metrics.rss_bytes, metrics.cost_usd) == (187_432_960, 0.4275)
    activity = by_tag["worker_activity"]
    assert isinstance(activity, WorkerActivity)
    assert (activity.activity_type, activity.exit_code, activity.file_path) == ("command", 1, None)
    assert by_tag["request_submitted"].ts == 1_767_225_602.0


# --- ids and stamping -------------------------------------------------------------------


def test_derive_id_is_deterministic_and_differs_by_cause_actor_and_index() -> None:
    base = derive_id("01KAS3Z7M2QK8E4W9T1V6Y0R5N", "scheduler", 0)

    assert base == derive_id("01KAS3Z7M2QK8E4W9T1V6Y0R5N", "scheduler", 0)
    assert re.fullmatch(r"[0-9a-f]{32}", base)
    others = {
        derive_id("01KAS3Z7M2QK8E4W9T1V6Y0R5M", "scheduler", 0),
        derive_id("01KAS3Z7M2QK8E4W9T1V6Y0R5N", "reporter", 0),
        derive_id("01KAS3Z7M2QK8E4W9T1V6Y0R5N", "scheduler", 1),
    }
    assert base not in others
    assert len(others) == 3


@given(
    a=st.tuples(st.text(), st.text(), st.integers(0, 10**6)),
    b=st.tuples(st.text(), st.text(), st.integers(0, 10**6)),
)
def test_derive_id_does_not_confuse_where_one_part_ends_and_the_next_begins(
    a: tuple[str, str, int], b: tuple[str, str, int]
) -> None:
    # NUL separates the parts, so ("ab", "c") and ("a", "bc") differ; ids never hold NUL.
    assume(a != b and "\x00" not in a[0] + a[1] + b[0] + b[1])

    assert derive_id(*a) != derive_id(*b)


def test_stamp_fills_an_empty_id_ts_and_source() -> None:
    event = WorkerActivity(worker_id="worker-1")

    stamped = stamp(event, source="worker-1", now=1_800_000_000.0)

    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", stamped.id)  # a ULID
    assert (stamped.ts, stamped.source) == (1_800_000_000.0, "worker-1")
    assert msgspec.structs.replace(stamped, id="", ts=0.0, source="") == event
    assert stamp(event).id != stamp(event).id


def test_stamp_keeps_an_id_ts_and_source_already_set() -> None:
    event = WorkerActivity(id="e1", ts=5.0, source="cli", worker_id="worker-1")

    assert stamp(event, source="worker-1", now=9.0) is event


def test_stamp_without_a_source_leaves_the_source_empty_and_uses_the_clock() -> None:
    stamped = stamp(WorkerActivity(id="e1", worker_id="worker-1"))

    assert stamped.source == ""
    assert stamped.id == "e1"
    assert stamped.ts > 1_700_000_000


# --- record shapes --------------------------------------------------------------------


def test_record_to_json_dict_is_flat_with_seq_appended_at_type_and_fields() -> None:
    plan = PlanProposed(
        id="e1",
        session_id="s1",
        ts=2.0,
        source="planner",
        plan_id="plan-1",
        objectives=[Objective(id="obj-1", title="Do it", scope_touch=["src/**"])],
    )

    out = record_to_json_dict(Record(7, 3.5, plan))

    assert list(out)[:3] == ["seq", "appended_at", "type"]
    assert out == {
        "seq": 7,
        "appended_at": 3.5,
        "type": "plan_proposed",
        "id": "e1",
        "session_id": "s1",
        "ts": 2.0,
        "source": "planner",
        "plan_id": "plan-1",
        "objectives": [
            {
                "id": "obj-1",
                "title": "Do it",
                "description": "",
                "wave": 1,
                "scope_touch": ["src/**"],
                "scope_forbid": [],
                "worker": "",
                "depends_on": [],
                "command": None,
                "capabilities": [],
            }
        ],
        "contracts": [],
    }
    assert msgspec.json.decode(CODEC.to_json(out)) == out


def test_decode_head_reads_the_type_and_session_without_the_event_body() -> None:
    event = WorkerActivity(id="e1", session_id="s1", ts=1.0, source="w", worker_id="worker-1")
    record = CODEC.encode(Record(12, 1.0, event))

    head = CODEC.decode_head(record)

    assert (head.seq, head.event.type, head.event.session_id) == (12, "worker_activity", "s1")


def test_decode_head_reads_a_record_whose_body_the_codec_does_not_know() -> None:
    future = {"seq": 3, "appended_at": 1.0, "event": {"type": "worker_teleported", "to": [1]}}
    data = msgspec.msgpack.encode(future)

    head = CODEC.decode_head(data)

    assert (head.seq, head.event.type, head.event.session_id) == (3, "worker_teleported", "")
    with pytest.raises(msgspec.ValidationError):
        CODEC.decode_record(data)
