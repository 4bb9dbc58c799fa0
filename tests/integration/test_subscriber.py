"""Catch-up subscriptions against a real journal: history, live, gaps, filters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ap_actors.bus import Emitter, Subscriber
from ap_actors.config import eventlog_dir
from ap_actors.eventlog import EventLog, Prepared
from ap_actors.events import CODEC, Record, WorkerActivity, WorkerError
from tests.integration.conftest import FREE_PORTS, JournalProcess, start_journal


def _subscriber(j: JournalProcess, source: str, **kwargs: Any) -> Subscriber:
    return Subscriber(j.bus, log_path=j.log if source == "log" else None, replay=j.replay, **kwargs)


def _activities(n: int, session: str = "s1", start: int = 0, pad: int = 0) -> list[WorkerActivity]:
    return [
        WorkerActivity(
            worker_id="w1", session_id=session, description=f"step {start + i}" + "." * pad
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("source", ["log", "replay"])
async def test_a_late_subscriber_gets_the_whole_history_then_live_events_without_duplicates(
    journal: JournalProcess, source: str, closing: list[Any]
) -> None:
    emitter = Emitter(journal.ingest, source="test")
    closing.append(emitter)
    await emitter.emit_many(_activities(1_500))
    sub = _subscriber(journal, source)
    seen: list[int] = []
    async for record in sub:
        seen.append(record.seq)
        if record.seq == 1_500:
            assert sub.head == 1_500
            await emitter.emit_many(_activities(700, start=1_500))
        if record.seq == 2_200:
            break
    assert seen == list(range(1, 2_201))


@pytest.mark.parametrize("source", ["log", "replay"])
async def test_a_subscriber_with_a_tiny_high_water_mark_fills_the_gap_from_the_log(
    tmp_path: Path, source: str, closing: list[Any]
) -> None:
    # A bus that queues 10 messages per subscriber and a subscriber that holds 1: while
    # the consumer is paused, ZeroMQ drops most of a 5,000-event burst of 20 MB (more
    # than the loopback socket buffers hold).
    j = start_journal(tmp_path / "state", FREE_PORTS + "bus_hwm = 10\n")
    try:
        emitter = Emitter(j.ingest, source="test")
        closing.append(emitter)
        await emitter.emit(WorkerActivity(worker_id="w1", description="first"))
        sub = _subscriber(j, source, rcvhwm=1)
        stream = aiter(sub)
        first: Record = await anext(stream)
        assert first.seq == 1
        # The consumer does not read while the burst is appended and published.
        await emitter.emit_many(_activities(5_000, pad=4_000))
        seqs = [first.seq]
        while seqs[-1] < 5_001:
            seqs.append((await anext(stream)).seq)
        await stream.aclose()
        assert seqs == list(range(1, 5_002))
        assert sub.gaps_filled >= 1
    finally:
        j.proc.terminate()
        j.proc.wait(timeout=20)


@pytest.mark.parametrize("source", ["log", "replay"])
async def test_topic_and_session_filters_deliver_exactly_the_matching_records_in_order(
    journal: JournalProcess, source: str, closing: list[Any]
) -> None:
    emitter = Emitter(journal.ingest, source="test")
    closing.append(emitter)
    events: list[Any] = []
    for i in range(600):
        session = f"s{i % 3}"
        if i % 5 == 0:
            events.append(WorkerError(worker_id="w", error=f"e{i}", session_id=session))
        else:
            events.append(WorkerActivity(worker_id="w", description=f"a{i}", session_id=session))
    seqs = await emitter.emit_many(events[:300])
    sub = _subscriber(journal, source, topics=["worker_err"], session_id="s1")
    got: list[int] = []
    expected_history = [
        s
        for s, e in zip(seqs, events[:300], strict=True)
        if isinstance(e, WorkerError) and e.session_id == "s1"
    ]
    async for record in sub:
        assert isinstance(record.event, WorkerError) and record.event.session_id == "s1"
        got.append(record.seq)
        if record.seq == expected_history[-1]:
            live = await emitter.emit_many(events[300:])
            expected = expected_history + [
                s
                for s, e in zip(live, events[300:], strict=True)
                if isinstance(e, WorkerError) and e.session_id == "s1"
            ]
        if len(got) > len(expected_history) and got[-1] == expected[-1]:
            break
    assert got == expected


@pytest.mark.parametrize("source", ["log", "replay"])
async def test_a_subscriber_survives_a_journal_restart_and_misses_nothing(
    tmp_path: Path, source: str, closing: list[Any]
) -> None:
    j = start_journal(tmp_path / "state")
    emitter = Emitter(j.ingest, source="test", ack_timeout=1.0)
    closing.append(emitter)
    await emitter.emit_many(_activities(10))
    sub = _subscriber(j, source, idle_check_s=0.1)
    stream = aiter(sub)
    for expected in range(1, 11):
        assert (await anext(stream)).seq == expected
    j.proc.kill()
    j.proc.wait()
    # While the journal is down the subscriber keeps checking the tail (and, without
    # the log files, asks the replay endpoint again until it answers).
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not pending.done()
    # Same endpoints again: clients reconnect by themselves.
    j2 = start_journal(tmp_path / "state", ingest=j.ingest, bus=j.bus, replay=j.replay)
    try:
        await emitter.emit_many(_activities(10, start=10))
        assert (await pending).seq == 11
        for expected in range(12, 21):
            assert (await anext(stream)).seq == expected
        await stream.aclose()
    finally:
        j2.proc.terminate()
        j2.proc.wait(timeout=20)


@pytest.mark.parametrize("source", ["log", "replay"])
async def test_a_record_this_version_cannot_decode_is_skipped_and_the_stream_goes_on(
    tmp_path: Path, source: str, closing: list[Any]
) -> None:
    # As written by a newer mesh: an event type this version does not know, between two
    # it knows. Appended behind the journal's validation, straight into the log.
    state = tmp_path / "state"
    newer = {"type": "worker_dreamed", "id": "n1", "ts": 1.0, "source": "future", "x": 1}
    known = [WorkerActivity(id=f"k{i}", worker_id="w", ts=1.0, source="t") for i in (1, 2)]
    items = [
        Prepared(b"k1", b"", b"worker_activity", CODEC.encode(known[0])),
        Prepared(b"n1", b"", b"worker_dreamed", CODEC.encode(newer)),
        Prepared(b"k2", b"", b"worker_activity", CODEC.encode(known[1])),
    ]
    with EventLog(eventlog_dir(state)) as log:
        assert log.append_prepared(items)[0] == [1, 2, 3]
    j = start_journal(state)
    try:
        emitter = Emitter(j.ingest, source="test")
        closing.append(emitter)
        sub = _subscriber(j, source)
        stream = aiter(sub)
        assert [(await anext(stream)).event.id for _ in range(2)] == ["k1", "k2"]
        await emitter.emit(WorkerActivity(id="live", worker_id="w"))
        assert (await anext(stream)).event.id == "live"
        await stream.aclose()
    finally:
        j.proc.terminate()
        j.proc.wait(timeout=20)


def test_a_record_nested_deeper_than_the_decoder_follows_is_skipped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ap_actors.subscriber import _decode

    deep = b"\x83\xa3seq\x07\xabappended_at\xcb" + b"\x00" * 8 + b"\xa5event" + b"\x91" * 100_000
    assert _decode(7, deep + b"\xc0") is None
    assert "record 7 skipped" in caplog.text
