"""The journal process over real ZeroMQ sockets and a real LMDB log."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.bus import Emitter
from ap_actors.errors import RejectedError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, WorkerActivity, WorkerError, new_id
from tests.integration.conftest import FREE_PORTS, JournalProcess, start_journal


async def _request(endpoint: str, frames: list[bytes]) -> list[bytes]:
    ctx = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        await sock.send_multipart(frames)
        return await asyncio.wait_for(sock.recv_multipart(), 10)
    finally:
        sock.close()


def _error(reply: list[bytes]) -> dict[str, object]:
    assert reply[0] == P.ERROR, reply
    return msgspec.msgpack.decode(reply[1])


def _event_map(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "worker_error",
        "id": new_id(),
        "session_id": "s1",
        "ts": 1.0,
        "source": "test",
        "worker_id": "w1",
        "error": "x",
    }
    base.update(fields)
    return base


async def test_an_append_is_acknowledged_with_gap_free_seqs(journal: JournalProcess) -> None:
    reply = await _request(journal.ingest, [P.APPEND, CODEC.encode([_event_map(), _event_map()])])
    assert reply[0] == P.OK
    assert msgspec.msgpack.decode(reply[1]) == [1, 2]


async def test_a_duplicate_event_id_is_acknowledged_with_the_original_seq(
    journal: JournalProcess,
) -> None:
    event = WorkerError(id="dup-1", worker_id="w1", error="once", session_id="s1")
    async with Emitter(journal.ingest, source="test") as emitter:
        first = await emitter.emit(event)
        await emitter.emit(WorkerError(worker_id="w1", error="other"))
        again = await emitter.emit_many([event, event])
    assert again == [first, first]
    with EventLog(journal.log, readonly=True) as log:
        assert log.last_seq() == 2
        assert [r.event.id for r in log.read()].count("dup-1") == 1


@pytest.mark.parametrize(
    ("frames", "code", "index"),
    [
        ([P.APPEND, os.urandom(64)], P.E_NOT_MSGPACK, -1),
        ([P.APPEND, CODEC.encode({"not": "a list"})], P.E_NOT_MSGPACK, -1),
        (
            [P.APPEND, CODEC.encode([_event_map(), _event_map(type="no_such_event")])],
            P.E_UNKNOWN_TYPE,
            1,
        ),
        ([P.APPEND, CODEC.encode([_event_map(worker_id=42)])], P.E_INVALID_EVENT, 0),
        ([P.APPEND, CODEC.encode([_event_map(id="")])], P.E_INVALID_EVENT, 0),
        ([P.APPEND, CODEC.encode([_event_map() for _ in range(11)])], P.E_BATCH_TOO_LARGE, -1),
        ([P.APPEND, CODEC.encode([_event_map(error="x" * 5000)])], P.E_BATCH_TOO_LARGE, -1),
        ([b"delete", b"everything"], P.E_BAD_REQUEST, -1),
        ([P.APPEND], P.E_BAD_REQUEST, -1),
    ],
    ids=[
        "random-bytes",
        "map-not-list",
        "unknown-type",
        "wrong-field-type",
        "empty-id",
        "too-many-events",
        "too-many-bytes",
        "unknown-command",
        "missing-frame",
    ],
)
async def test_malformed_input_gets_the_documented_error_and_the_journal_keeps_running(
    tmp_path: Path, frames: list[bytes], code: str, index: int
) -> None:
    j = start_journal(
        tmp_path / "state",
        FREE_PORTS + "[eventlog]\nmax_batch_events = 10\nmax_batch_bytes = 4096\n",
    )
    try:
        err = _error(await _request(j.ingest, frames))
        assert err["code"] == code
        assert err["index"] == index
        assert err["message"]
        # Nothing of the refused batch was appended, and the journal still works.
        ok = await _request(j.ingest, [P.APPEND, CODEC.encode([_event_map()])])
        assert ok[0] == P.OK and msgspec.msgpack.decode(ok[1]) == [1]
        assert j.proc.poll() is None
    finally:
        j.proc.terminate()
        j.proc.wait(timeout=20)


async def test_the_emitter_fails_only_the_refused_event_of_a_coalesced_batch(
    journal: JournalProcess,
) -> None:
    async with Emitter(journal.ingest, source="test") as emitter:
        good = asyncio.ensure_future(emitter.emit(WorkerError(worker_id="w", error="ok")))
        bad = asyncio.ensure_future(
            emitter.emit(WorkerError(worker_id="w", error="bad", session_id="a\x00b"))
        )
        good2 = asyncio.ensure_future(emitter.emit(WorkerError(worker_id="w", error="ok2")))
        done = await asyncio.gather(good, bad, good2, return_exceptions=True)
    assert isinstance(done[1], RejectedError) and done[1].code == P.E_INVALID_EVENT
    assert sorted(x for x in done if isinstance(x, int)) == [1, 2]


def _emit_process(ingest: str, name: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def run() -> list[tuple[str, int]]:
        events = [
            WorkerActivity(
                id=f"{name}-{i}", worker_id=name, session_id=f"s-{name}", description=f"step {i}"
            )
            for i in range(count)
        ]
        async with Emitter(ingest, source=name, ack_timeout=10) as emitter:
            chunks = [events[i : i + 250] for i in range(0, count, 250)]
            seq_lists = await asyncio.gather(*(emitter.emit_many(c) for c in chunks))
        return [
            (e.id, s)
            for c, seqs in zip(chunks, seq_lists, strict=True)
            for e, s in zip(c, seqs, strict=True)
        ]

    queue.put(asyncio.run(run()))


def test_eight_concurrent_emitters_append_exactly_eighty_thousand_gap_free_records(
    journal: JournalProcess,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_emit_process, args=(journal.ingest, f"e{n}", 10_000, queue))
        for n in range(8)
    ]
    for p in procs:
        p.start()
    acked: dict[str, int] = {}
    for _ in procs:
        acked.update(queue.get(timeout=110))
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    assert len(acked) == 80_000
    assert sorted(acked.values()) == list(range(1, 80_001))
    with EventLog(journal.log, readonly=True) as log:
        assert log.last_seq() == 80_000
        stored = {r.event.id: r.seq for r in log.read()}
    assert stored == acked


async def test_replies_to_pipelined_batches_come_back_in_order_when_one_is_refused(
    journal: JournalProcess,
) -> None:
    # One event per batch and four batches in flight: the journal drains them together,
    # refuses the second, and must still answer the three in the order they came.
    async with Emitter(journal.ingest, source="test", max_batch_events=1) as emitter:
        results = await asyncio.gather(
            emitter.emit(WorkerError(worker_id="w", error="first")),
            emitter.emit(WorkerError(worker_id="w", error="bad", session_id="a\x00b")),
            emitter.emit(WorkerError(worker_id="w", error="third")),
            emitter.emit(WorkerError(worker_id="w", error="fourth")),
            return_exceptions=True,
        )
    assert results[0] == 1
    assert isinstance(results[1], RejectedError)
    assert results[2:] == [2, 3]
    with EventLog(journal.log, readonly=True) as log:
        assert [r.event.error for r in log.read()] == ["first", "third", "fourth"]


def test_a_second_journal_on_the_same_log_refuses_to_start(journal: JournalProcess) -> None:
    with pytest.raises(RuntimeError, match="another journal writing this event log") as caught:
        start_journal(journal.state_dir)
    assert f"pid {journal.proc.pid}" in str(caught.value)
    assert journal.proc.poll() is None  # the first one is untouched


async def test_an_endpoints_request_is_answered_with_the_bound_endpoints_in_order(
    journal: JournalProcess,
) -> None:
    ctx = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(journal.ingest)
    try:
        # Between two appends of the same client: each reply comes back in its place.
        await sock.send_multipart([P.APPEND, CODEC.encode([_event_map()])])
        await sock.send_multipart([P.ENDPOINTS])
        await sock.send_multipart([P.APPEND, CODEC.encode([_event_map()])])
        replies = [await asyncio.wait_for(sock.recv_multipart(), 10) for _ in range(3)]
    finally:
        sock.close()
    assert replies[0] == [P.OK, CODEC.encode([1])]
    assert replies[1][0] == P.ENDPOINTS and len(replies[1]) == 2
    assert msgspec.msgpack.decode(replies[1][1]) == {
        "ingest": journal.ingest,
        "bus": journal.bus,
        "replay": journal.replay,
    }
    assert replies[2] == [P.OK, CODEC.encode([2])]


async def test_an_endpoints_request_with_a_payload_is_a_bad_request(
    journal: JournalProcess,
) -> None:
    err = _error(await _request(journal.ingest, [P.ENDPOINTS, b"extra"]))
    assert err["code"] == P.E_BAD_REQUEST
