"""Snapshots: the Sessions state round trip, the file format, the log's identity."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import lmdb
import msgspec
import pytest
from hypothesis import given, settings

from ap_actors.eventlog import EventLog, Snapshot
from ap_actors.events import (
    CODEC,
    CancelRequested,
    Event,
    MergeConflicted,
    PlanRevised,
    Record,
    ReportWritten,
    ScopeConflict,
    ScopeValidated,
    ScopeViolated,
    TranscriptRead,
    WorkerError,
)
from ap_actors.projections import Sessions
from ap_actors.snapshots import MAGIC, read_snapshot, unusable, write_snapshot
from tests.unit.test_projections import GLUE, LOGIN, TOKENS, ev, generated_session

# --- the Sessions state: snapshot + the rest == the fold from zero ------------------

_EXTRA = [
    lambda: ev(WorkerError, 50, worker_id="w-a", error="rate limited", objective_id="obj-1"),
    lambda: ev(ReportWritten, 60, kind="plan", path="/srv/docs/plans/p1.md"),
    lambda: ev(CancelRequested, 70, reason="owner changed their mind"),
    lambda: ev(ScopeViolated, 40, objective_id="obj-1", worker_id="w-b", paths=["setup.py"]),
    lambda: ev(TranscriptRead, 45, objective_id="obj-1", worker_id="w-a", lines=12),
    lambda: ev(MergeConflicted, 80, wave=1, objective_id="obj-2", paths=["web/login/a.js"]),
    lambda: ev(
        ScopeValidated,
        8,
        plan_id="p1",
        valid=False,
        conflicts=[
            ScopeConflict(
                wave=1,
                objective_a="obj-1",
                objective_b="obj-2",
                pattern_a="src/",
                pattern_b="src/a/",
                witness="src/a/x",
            )
        ],
        resolving=True,
    ),
    lambda: ev(PlanRevised, 9, plan_id="p2", revises="p1", objectives=[TOKENS, LOGIN, GLUE]),
]


@st.composite
def session_logs(draw: st.DrawFn) -> list[Record]:
    """Records of one to three sessions (any interleaving, odd events sprinkled in) and of
    the mesh (no session), in seq order."""
    streams: list[list[Event]] = []
    for n in range(draw(st.integers(1, 3))):
        setup_and_objectives, end = draw(generated_session())
        sid = f"S{n}"
        own = [*itertools.chain(*setup_and_objectives), end]
        own += [make() for make in draw(st.lists(st.sampled_from(_EXTRA), max_size=4))]
        streams.append([msgspec.structs.replace(e, session_id=sid) for e in own])
    streams.append([ev(WorkerError, 1, session="", worker_id="w-z", error="mesh-level")])
    slots = draw(st.permutations([i for i, s in enumerate(streams) for _ in s]))
    cursors = [iter(s) for s in streams]
    events = [next(cursors[i]) for i in slots]
    return [Record(seq=i, appended_at=1.0, event=e) for i, e in enumerate(events, 1)]


@given(records=session_logs(), data=st.data())
@settings(max_examples=150, deadline=None)
def test_a_sessions_snapshot_plus_the_records_after_it_equals_the_fold_from_zero(
    records: list[Record], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(records)))
    before = Sessions().apply_records(records[:cut])
    # What SessionsActor's encode_state / decode_state do, through the file's Snapshot.
    snapshot = Snapshot("reporter", cut, 1, CODEC.encode(before), 1.0, "id", "kind")
    decoded = msgspec.msgpack.decode(CODEC.encode(snapshot), type=Snapshot)
    restored = msgspec.msgpack.decode(decoded.state, type=Sessions)
    assert restored == before
    assert restored.apply_records(records[cut:]) == Sessions().apply_records(records)


# --- the file -----------------------------------------------------------------------


def _snapshot(**changes: Any) -> Snapshot:
    base = Snapshot("reporter", 42, 1, CODEC.encode(Sessions()), 1.5, "log-a", "mod:Reporter")
    return msgspec.structs.replace(base, **changes)


def test_a_snapshot_file_round_trips_and_replaces_the_previous_one_atomically(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snapshots" / "reporter.snap"
    assert read_snapshot(path) is None
    write_snapshot(path, _snapshot(seq=1))
    size = write_snapshot(path, _snapshot())
    assert read_snapshot(path) == _snapshot()
    assert path.stat().st_size == size
    assert path.read_bytes().startswith(MAGIC)
    assert [p.name for p in path.parent.iterdir()] == ["reporter.snap"]  # no temp file left


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "checksum"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0x01]), "checksum"),
        (lambda b: b[:5], "too short"),
        (lambda b: b"", "too short"),
        (lambda b: b"NOTSNAP\n" + b[8:], "not a snapshot"),
    ],
    ids=["truncated", "a flipped bit", "a stub", "empty", "another file"],
)
def test_a_damaged_snapshot_file_is_refused_with_the_reason(
    tmp_path: Path, damage: Any, message: str
) -> None:
    path = tmp_path / "reporter.snap"
    write_snapshot(path, _snapshot())
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        read_snapshot(path)


def test_a_snapshot_is_unusable_for_another_actor_version_or_log_or_beyond_the_head() -> None:
    args: dict[str, Any] = dict(
        name="reporter", kind="mod:Reporter", version=1, log_id="log-a", head=42
    )
    assert unusable(_snapshot(), **args) is None
    assert "version 1" in str(unusable(_snapshot(), **{**args, "version": 2}))
    assert "another log" in str(unusable(_snapshot(log_id="log-b"), **args))
    assert "beyond" in str(unusable(_snapshot(seq=43), **args))
    assert "not mod:Reporter 'broadcaster'" in str(
        unusable(_snapshot(), **{**args, "name": "broadcaster"})
    )
    assert "not mod:Other" in str(unusable(_snapshot(), **{**args, "kind": "mod:Other"}))


# --- the log's identity -------------------------------------------------------------


def test_a_log_gets_an_id_when_created_that_reopening_keeps_and_readers_see(
    tmp_path: Path,
) -> None:
    with EventLog(tmp_path / "a", durability="none") as writer:
        first = writer.log_id()
    assert len(first) == 32 and int(first, 16) >= 0
    with EventLog(tmp_path / "a", durability="none") as writer:
        assert writer.log_id() == first
    with EventLog(tmp_path / "a", readonly=True) as reader:
        assert reader.log_id() == first
    with EventLog(tmp_path / "b", durability="none") as other:
        assert other.log_id() != first


def test_a_log_from_before_ids_has_none_until_its_writer_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "old"
    env = lmdb.open(str(path), max_dbs=4)  # the layout before the meta table
    for name in (b"events", b"ids", b"sessions", b"snapshots"):
        env.open_db(name)
    env.close()
    with EventLog(path, readonly=True) as reader:
        assert reader.log_id() == ""
        # A journal (another process: LMDB allows one handle per process) opens it.
        code = f"from ap_actors.eventlog import EventLog; print(EventLog({str(path)!r}).log_id())"
        given_id = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert len(given_id) == 32
        assert reader.log_id() == given_id
