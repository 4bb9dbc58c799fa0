"""The actor base in-process against a real journal: folding, reaction ids, recovery."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ap_actors.bus import Emitter, Subscriber
from ap_actors.errors import SequenceError
from ap_actors.eventlog import EventLog
from ap_actors.events import Record, WorkerActivity, WorkerError, WorkerMetrics
from tests.integration.conftest import JournalProcess
from tests.support.actors import Counter


def _counter(journal: JournalProcess, tmp_path: Path) -> Counter:
    return Counter(
        "counter", journal.mesh(), tmp_path, {"state_file": str(tmp_path / "state.json")}
    )


def _record(seq: int, event: Any) -> Record:
    return Record(seq=seq, appended_at=1.0, event=event)


async def test_folding_a_record_out_of_order_raises_a_sequence_error(
    journal: JournalProcess, tmp_path: Path
) -> None:
    actor = _counter(journal, tmp_path)
    actor.fold(_record(5, WorkerActivity(worker_id="w")))
    with pytest.raises(SequenceError):
        actor.fold(_record(5, WorkerActivity(worker_id="w")))
    with pytest.raises(SequenceError):
        actor.fold(_record(3, WorkerActivity(worker_id="w")))
    assert actor.state["activities"] == {"w": 1}
    await actor.emitter.close()


async def test_a_restarted_actor_reacting_again_to_the_same_cause_appends_nothing_twice(
    journal: JournalProcess, tmp_path: Path
) -> None:
    cause = _record(1, WorkerError(id="cause-1", worker_id="w", error="x", session_id="s9"))
    for _incarnation in range(2):
        actor = _counter(journal, tmp_path)
        actor.fold(cause)
        actor._cause = cause.event  # what the run loop does around react()
        await actor.react(cause)
        await actor.emitter.close()
    with EventLog(journal.log, readonly=True) as log:
        records = list(log.read(topics=["worker_metrics"]))
        seqs = [r.seq for r in records]
    assert len(seqs) == 1
    (metrics,) = records
    assert isinstance(metrics.event, WorkerMetrics)
    assert metrics.event.session_id == "s9" and metrics.event.source == "counter"


async def test_an_actor_recovers_from_the_log_then_reacts_only_to_live_events(
    journal: JournalProcess, tmp_path: Path
) -> None:
    async with Emitter(journal.ingest, source="test") as emitter:
        await emitter.emit_many(
            [WorkerActivity(worker_id=f"w{i % 2}") for i in range(50)]
            + [WorkerError(worker_id="w0", error="old")]
        )
        actor = _counter(journal, tmp_path)
        ready = asyncio.Event()
        task = asyncio.create_task(actor.run(ready=ready.set))
        await asyncio.wait_for(ready.wait(), 30)
        recovered = json.loads((tmp_path / "state.json").read_text())
        assert recovered["last_seq"] == 51
        assert recovered["state"]["activities"] == {"w0": 25, "w1": 25}
        # The history's error got no reaction; a live one does.
        sub = Subscriber(journal.bus, log_path=journal.log, topics=["worker_metrics"])
        stream = aiter(sub)
        await emitter.emit(WorkerError(worker_id="w0", error="new"))
        reaction = await asyncio.wait_for(anext(stream), 30)
        await stream.aclose()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert isinstance(reaction.event, WorkerMetrics) and reaction.event.tasks_failed == 2
    with EventLog(journal.log, readonly=True) as log:
        assert [r.seq for r in log.read(topics=["worker_metrics"])] == [reaction.seq]
