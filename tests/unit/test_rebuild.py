"""A sessions actor's rebuild: its chunked fold from the log files equals the fold of the
projection, seq checks included, and a record this version cannot decode is skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from ap_actors.actors.sessions import SessionsActor
from ap_actors.errors import SequenceError
from ap_actors.eventlog import EventLog, Prepared
from ap_actors.events import CODEC, Event, Record, RequestSubmitted, WorkerActivity
from ap_actors.mesh import MeshInfo
from ap_actors.projections import Sessions
from tests.unit.test_snapshots import session_logs

_NOWHERE = "ipc:///nonexistent/socket"


def _actor(log: Path, cls: type[SessionsActor] = SessionsActor) -> SessionsActor:
    """A sessions actor on the log at ``log``: none there means nothing to restore."""
    mesh = MeshInfo(_NOWHERE, _NOWHERE, _NOWHERE, None, 0, str(log))
    return cls("reporter", mesh, log.parent / "state")


@given(records=session_logs(), data=st.data())
@settings(max_examples=100, deadline=None)
def test_a_sessions_actor_folding_records_in_chunks_equals_the_projections_fold(
    records: list[Record], data: st.DataObject
) -> None:
    actor = _actor(Path("/nonexistent/eventlog"))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(records)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(records)], strict=True):
        actor._fold_many(records[start:end])
    expected = Sessions().apply_records(records)
    assert actor.state == expected
    # Snapshots and the dashboard's JSON see the order of dicts too.
    assert CODEC.encode(actor.state) == CODEC.encode(expected)
    assert actor.last_seq == len(records)


def test_a_record_folded_out_of_seq_order_raises_after_folding_the_ones_before_it() -> None:
    actor = _actor(Path("/nonexistent/eventlog"))
    event = WorkerActivity(session_id="S1", worker_id="w", description="step")
    records = [Record(seq, 1.0, event) for seq in (1, 2, 2, 3)]
    with pytest.raises(SequenceError, match="record 2 folded after 2"):
        actor._fold_many(records)
    assert actor.last_seq == 2
    assert actor.state == Sessions().apply_records(records[:2])


async def test_a_rebuild_from_the_log_files_skips_a_record_this_version_cannot_decode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Long enough for several of the log's read chunks, the newer record in the second.
    known: list[Event] = [
        RequestSubmitted(id="r", session_id="S1", request="Add login", repo="/srv/app")
    ]
    known += [
        WorkerActivity(
            id=f"a{i}",
            session_id="S1",
            worker_id=f"w{i % 2}",
            tool_name=("Edit", "Bash", None)[i % 3],
            description=f"step {i}",
        )
        for i in range(2_500)
    ]
    newer = {"type": "worker_dreamed", "id": "n1", "session_id": "S1", "x": 1}
    log_dir = tmp_path / "eventlog"
    with EventLog(log_dir) as log:
        log.append(known[:1_500])
        log.append_prepared([Prepared(b"n1", b"S1", b"worker_dreamed", CODEC.encode(newer))])
        log.append(known[1_500:])
    actor = _actor(log_dir)
    with caplog.at_level(logging.WARNING, logger="ap_actors.actor"):
        covered = await actor._fold_history()
    assert actor._files is not None
    actor._files.close()
    seqs = [*range(1, 1_501), *range(1_502, 2_503)]
    expected = Sessions().apply_records(
        Record(seq, 1.0, event) for seq, event in zip(seqs, known, strict=True)
    )
    assert covered == actor.last_seq == 2_502
    assert actor.state == expected
    (warning,) = caplog.records  # one, for the one record skipped
    assert warning.getMessage().startswith("record 1501 skipped, this version cannot decode it")


class _Counting(SessionsActor):
    """A sessions actor whose own apply_record also counts the records it folds."""

    folded = 0

    def apply_record(self, state: Sessions, record: Record) -> Sessions:
        self.folded += 1
        return super().apply_record(state, record)


def test_a_sessions_actor_with_its_own_apply_record_folds_through_it() -> None:
    actor = _actor(Path("/nonexistent/eventlog"), _Counting)
    assert isinstance(actor, _Counting)
    event = WorkerActivity(session_id="S1", worker_id="w", description="step")
    records = [Record(seq, 1.0, event) for seq in (1, 2, 3)]
    actor._fold_many(records)
    assert actor.folded == 3
    assert actor.state == Sessions().apply_records(records)
