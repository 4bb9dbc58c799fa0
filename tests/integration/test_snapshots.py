"""Actor snapshots against a real journal and real LMDB files, in-process and supervised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ap_actors.bus import Emitter, Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    ActorStarted,
    Event,
    Objective,
    ObjectiveAssigned,
    PlanProposed,
    RequestSubmitted,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    derive_id,
    new_id,
)
from ap_actors.mesh import MeshInfo
from ap_actors.projections import Sessions
from ap_actors.snapshots import read_snapshot, write_snapshot
from tests.integration.conftest import JournalProcess, Mesh, start_journal, wait_for
from tests.support.snapshot_actors import SessionsKeeper


def _session(sid: str, activities: int) -> list[Event]:
    """A session's first events and its workers' activities."""
    objectives = [Objective(id=f"obj-{i}", title=f"objective {i}", wave=1) for i in (1, 2)]
    events: list[Event] = [
        RequestSubmitted(session_id=sid, request="Add JWT authentication", repo="/srv/app"),
        PlanProposed(session_id=sid, plan_id="p1", objectives=objectives),
        ObjectiveAssigned(session_id=sid, objective_id="obj-1", worker_id="w-a"),
        ObjectiveAssigned(session_id=sid, objective_id="obj-2", worker_id="w-b"),
    ]
    events += [
        WorkerActivity(
            session_id=sid,
            worker_id="w-a" if i % 2 else "w-b",
            objective_id="obj-1" if i % 2 else "obj-2",
            activity_type="tool_use",
            tool_name=("Edit", "Bash", "Read")[i % 3],
            description=f"step {i}",
        )
        for i in range(activities)
    ]
    return events


async def _emit_sessions(ingest: str, sessions: int, activities: int, tag: str = "") -> int:
    """Emit ``sessions`` interleaved sessions; return the seq of the last event."""
    streams = [_session(f"S{tag}{n}", activities) for n in range(sessions)]
    events = [e for batch in zip(*streams, strict=True) for e in batch]
    async with Emitter(ingest, source="test") as emitter:
        seqs = await emitter.emit_many(events)
    return seqs[-1]


def _fresh_fold(log_path: str, until: int | None = None) -> Sessions:
    with EventLog(log_path, readonly=True) as log:
        return Sessions().apply_records(log.read(until=until))


def _keeper(mesh: MeshInfo, state_dir: Path, **options: Any) -> SessionsKeeper:
    return SessionsKeeper("keeper", mesh, state_dir, options)


async def _started(actor: SessionsKeeper) -> asyncio.Task[None]:
    """Run ``actor`` until it is recovered; return its task."""
    ready = asyncio.Event()
    task = asyncio.create_task(actor.run(ready=ready.set))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        task.cancel()
        raise AssertionError(f"the actor did not recover: {task}")
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    """A clean stop, as SIGTERM does it: cancel the run."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _snapshot_taken_at_head(journal: JournalProcess, state_dir: Path) -> int:
    """Fold a log of 3 sessions with one actor, stop it cleanly; return the snapshot's seq."""
    head = await _emit_sessions(journal.ingest, sessions=3, activities=20)
    first = _keeper(journal.mesh(), state_dir)
    assert first.snapshot_seq == 0
    await _stop(await _started(first))
    snapshot = read_snapshot(first.snapshots.path)
    assert snapshot is not None and snapshot.seq == head == first.last_seq
    return head


# --- in-process -----------------------------------------------------------------------


async def test_after_a_clean_stop_an_actor_resumes_from_its_snapshot_and_equals_a_fresh_fold(
    journal: JournalProcess, tmp_path: Path
) -> None:
    saved = await _snapshot_taken_at_head(journal, tmp_path)
    head = await _emit_sessions(journal.ingest, sessions=2, activities=15, tag="b")

    second = _keeper(journal.mesh(), tmp_path)
    assert second.snapshot_seq == second.last_seq == saved  # loaded by the constructor
    task = await _started(second)
    assert second.last_seq == head
    assert second.state == _fresh_fold(journal.log)
    assert len(second.state.views) == 5
    await _stop(task)


def _other_version(monkeypatch: pytest.MonkeyPatch, path: Path, journal: JournalProcess) -> str:
    monkeypatch.setattr(SessionsKeeper, "snapshot_version", 2)
    return "state version 1, this actor's is 2"


def _other_log(monkeypatch: pytest.MonkeyPatch, path: Path, journal: JournalProcess) -> str:
    with EventLog(journal.log, readonly=True) as log:
        log_id = log.log_id()
    other = start_journal(path.parent.parent / "other")  # a log of its own
    try:
        with EventLog(other.log, readonly=True) as log:
            other_id = log.log_id()
        assert other_id != log_id
        snapshot = read_snapshot(path)
        assert snapshot is not None
        write_snapshot(path, msgspec.structs.replace(snapshot, log_id=other_id))
    finally:
        other.proc.terminate()
        other.proc.wait(timeout=20)
    return "folded from another log"


def _beyond_head(monkeypatch: pytest.MonkeyPatch, path: Path, journal: JournalProcess) -> str:
    snapshot = read_snapshot(path)
    assert snapshot is not None
    write_snapshot(path, msgspec.structs.replace(snapshot, seq=snapshot.seq + 10))
    return "beyond the log's last seq"


def _corrupt(monkeypatch: pytest.MonkeyPatch, path: Path, journal: JournalProcess) -> str:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "checksum mismatch"


def _undecodable_state(monkeypatch: pytest.MonkeyPatch, path: Path, journal: JournalProcess) -> str:
    snapshot = read_snapshot(path)
    assert snapshot is not None
    state = msgspec.msgpack.encode({"views": {"S0": {"status": "no such status"}}})
    write_snapshot(path, msgspec.structs.replace(snapshot, state=state))
    return "its state does not decode"


@pytest.mark.parametrize(
    "spoil",
    [_other_version, _other_log, _beyond_head, _corrupt, _undecodable_state],
    ids=["another version", "another log", "seq beyond the head", "corrupt", "bad state"],
)
async def test_an_unusable_snapshot_is_ignored_with_a_log_line_and_the_actor_folds_from_zero(
    journal: JournalProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[pytest.MonkeyPatch, Path, JournalProcess], str],
) -> None:
    await _snapshot_taken_at_head(journal, tmp_path)
    path = tmp_path / "snapshots" / "keeper.snap"
    reason = spoil(monkeypatch, path, journal)
    head = await _emit_sessions(journal.ingest, sessions=1, activities=5, tag="b")

    with caplog.at_level(logging.WARNING, logger="ap_actors"):
        actor = _keeper(journal.mesh(), tmp_path)
    assert actor.snapshot_seq == actor.last_seq == 0
    (line,) = [r.getMessage() for r in caplog.records if "snapshot" in r.getMessage()]
    assert line.startswith("snapshot ignored, folding from seq 0: ") and reason in line
    task = await _started(actor)
    assert actor.last_seq == head
    assert actor.state == _fresh_fold(journal.log)
    await _stop(task)
    # The clean stop replaced the unusable snapshot with a good one.
    snapshot = read_snapshot(path)
    assert (
        snapshot is not None
        and snapshot.seq == head
        and snapshot.version == (SessionsKeeper.snapshot_version)
    )


async def test_a_snapshot_is_taken_every_n_folded_records_and_holds_the_state_at_its_seq(
    journal: JournalProcess, tmp_path: Path
) -> None:
    actor = _keeper(journal.mesh(), tmp_path, snapshot_every=10)
    task = await _started(actor)
    assert not actor.snapshots.path.exists()  # nothing folded yet
    ready_at = actor.last_seq
    await _emit_sessions(journal.ingest, sessions=2, activities=12)
    sub = Subscriber(journal.bus, log_path=journal.log, topics=["worker_metrics"])
    async with Emitter(journal.ingest, source="test") as emitter:
        error = await emitter.emit(WorkerError(session_id="S0", worker_id="w-a", error="x"))
        await wait_for(sub, lambda r: r.event.source == "keeper")
    await sub.close()
    assert actor.last_seq >= error
    await actor.snapshots.written()  # the write in flight, if any
    snapshot = read_snapshot(actor.snapshots.path)
    assert snapshot is not None and ready_at + 10 <= snapshot.seq <= actor.last_seq
    restored = msgspec.msgpack.decode(snapshot.state, type=Sessions)
    assert restored == _fresh_fold(journal.log, until=snapshot.seq)
    await _stop(task)
    snapshot = read_snapshot(actor.snapshots.path)
    assert snapshot is not None and snapshot.seq == actor.last_seq


# --- supervised processes -------------------------------------------------------------

KEEPER = """
[actors.keeper]
class = "tests.support.snapshot_actors:SessionsKeeper"
options = {{ state_file = "{state_file}", snapshot_every = 100000 }}
"""


async def test_a_supervised_actor_restarted_resumes_from_its_snapshot_and_never_reacts_twice(
    mesh_factory: Any, tmp_path: Path
) -> None:
    state_file = tmp_path / "keeper.json"
    mesh: Mesh = mesh_factory(KEEPER.format(state_file=state_file))
    info = mesh.up()
    sub = Subscriber.connect(mesh.state_dir, topics=["actor_", "worker_metrics"])
    stream = aiter(sub)
    errors: list[WorkerError] = []

    async def error_answered(n: int) -> int:
        """Emit a worker_error, wait for the keeper's answer; return the error's seq."""
        error = WorkerError(id=new_id(), session_id="S0", worker_id="w-a", error=f"{n}")
        async with Emitter(info.ingest, source="test") as emitter:
            seq = await emitter.emit(error)
        errors.append(error)
        await wait_for(
            stream, lambda r: isinstance(r.event, WorkerMetrics) and r.event.source == "keeper"
        )
        return seq

    async def restarted(sig: signal.Signals, restarts: int) -> dict[str, Any]:
        os.kill(mesh.pid_of("keeper"), sig)
        await wait_for(
            stream,
            lambda r: (
                isinstance(r.event, ActorStarted)
                and r.event.actor == "keeper"
                and r.event.restarts == restarts
            ),
        )
        dump: dict[str, Any] = json.loads(state_file.read_text())  # written before ready
        return dump

    try:
        await _emit_sessions(info.ingest, sessions=3, activities=30)
        first_error = await error_answered(1)

        # SIGTERM: a clean stop saves the state; the restart starts from it.
        dump = await restarted(signal.SIGTERM, 1)
        saved = dump["snapshot_seq"]
        assert saved >= first_error and dump["last_seq"] >= saved
        assert dump["reacted"] == []

        # SIGKILL after a reaction: no snapshot of it; the restart starts from the same
        # snapshot, folds the error that followed it as history and does not answer it.
        await _emit_sessions(info.ingest, sessions=1, activities=10, tag="b")
        second_error = await error_answered(2)
        assert second_error > saved
        dump = await restarted(signal.SIGKILL, 2)
        assert dump["snapshot_seq"] == saved
        assert dump["reacted"] == []
        assert dump["last_seq"] > second_error

        third_error = await error_answered(3)
        dump = json.loads(state_file.read_text())
        assert dump["reacted"] == [errors[2].id]
        assert dump["last_seq"] >= third_error
        fresh = _fresh_fold(info.log, until=dump["last_seq"])
        assert dump["state"] == json.loads(json.dumps(msgspec.to_builtins(fresh)))
        assert fresh.views["S0"].workers["w-a"].errors == 3
        # One answer per error, ever: ids derived from each cause, none twice.
        with EventLog(info.log, readonly=True) as log:
            answers = [r.event for r in log.read(topics=["worker_metrics"])]
        assert [a.id for a in answers if a.source == "keeper"] == [
            derive_id(e.id, "keeper", 0) for e in errors
        ]
    finally:
        await sub.close()
