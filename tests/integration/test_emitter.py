"""The emitter against a slow, a killed and a frozen journal: when it sends a batch again."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.bus import Emitter
from ap_actors.errors import BusError
from ap_actors.eventlog import EventLog
from ap_actors.events import WorkerActivity
from tests.integration.conftest import start_journal


class _LogSignal(logging.Handler):
    """Sets ``seen`` once ``count`` records of the emitter's logger contain ``needle``."""

    def __init__(self, needle: str, count: int = 1) -> None:
        super().__init__(logging.WARNING)
        self.needle = needle
        self.count = count
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.count -= 1
            if self.count <= 0:
                self.seen.set()


@pytest.fixture
def log_signal() -> Iterator[Callable[..., _LogSignal]]:
    """Return a factory of :class:`_LogSignal` handlers, attached for the test."""
    logger = logging.getLogger("ap_actors.emitter")
    handlers: list[_LogSignal] = []

    def make(needle: str, count: int = 1) -> _LogSignal:
        handlers.append(_LogSignal(needle, count))
        logger.addHandler(handlers[-1])
        return handlers[-1]

    yield make
    for handler in handlers:
        logger.removeHandler(handler)


def _ids(frames: list[bytes]) -> list[str]:
    """The event ids of an append request as a ROUTER receives it."""
    _identity, command, payload = frames
    assert command == P.APPEND
    return [e["id"] for e in msgspec.msgpack.decode(payload)]


def _event(event_id: str) -> WorkerActivity:
    return WorkerActivity(id=event_id, worker_id="w", description="x")


async def test_a_slow_journal_receives_each_batch_once_however_late_it_acks(
    tmp_path: Path, log_signal: Callable[..., _LogSignal]
) -> None:
    # The journal's side of the protocol, acking when the test says so.
    router = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{tmp_path}/ingest"
    router.bind(endpoint)
    slow = log_signal("the journal is slow", count=3)
    emitter = Emitter(endpoint, source="test", ack_timeout=0.02)
    try:
        first = asyncio.ensure_future(emitter.emit(_event("a")))
        frames = await router.recv_multipart()
        assert _ids(frames) == ["a"]
        await router.send_multipart([frames[0], P.OK, msgspec.msgpack.encode([1])])
        assert await first == 1  # connected: the ZeroMQ handshake is done
        late = asyncio.ensure_future(emitter.emit(_event("b")))
        frames = await router.recv_multipart()
        assert _ids(frames) == ["b"]
        await slow.seen.wait()  # three ack timeouts went by: 0.02 s, 0.04 s, 0.08 s
        assert not late.done()
        await router.send_multipart([frames[0], P.OK, msgspec.msgpack.encode([2])])
        assert await late == 2
        # One connection delivers in order: a resend of "b" would come before "c".
        last = asyncio.ensure_future(emitter.emit(_event("c")))
        again = await router.recv_multipart()
        assert _ids(again) == ["c"] and again[0] == frames[0]
        await router.send_multipart([again[0], P.OK, msgspec.msgpack.encode([3])])
        assert await last == 3
        assert emitter.resends == 0 and emitter.timeouts >= 3
    finally:
        await emitter.close()
        router.close()


async def test_a_journal_killed_and_restarted_mid_stream_gets_every_event_once(
    tmp_path: Path,
) -> None:
    j = start_journal(tmp_path / "state")
    # Small batches, four in flight, eight producers: the kill finds batches on the wire
    # and in the socket's queue.
    emitter = Emitter(j.ingest, source="test", max_batch_events=20, max_in_flight=4)
    acked: dict[str, int] = {}
    enough = asyncio.Event()
    restarted = asyncio.Event()

    async def produce(n: int) -> None:
        after_restart = 0
        for b in range(1000):
            events = [_event(f"p{n}-{b}-{i}") for i in range(20)]
            seqs = await emitter.emit_many(events)
            acked.update((e.id, s) for e, s in zip(events, seqs, strict=True))
            if len(acked) >= 1_000:
                enough.set()
            if restarted.is_set():
                after_restart += 1
                if after_restart == 5:
                    return

    producers = asyncio.gather(*(produce(n) for n in range(8)))
    j2 = None
    try:
        await enough.wait()
        j.proc.kill()
        j.proc.wait()
        j2 = start_journal(tmp_path / "state", ingest=j.ingest, bus=j.bus, replay=j.replay)
        restarted.set()
        await producers
    finally:
        await emitter.close()
        if j2 is not None:
            j2.proc.terminate()
            j2.proc.wait(timeout=20)
    assert emitter.resends >= 1  # the dropped connection was noticed, not timed out
    with EventLog(j.log, readonly=True) as log:
        records = list(log.read())
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    stored = {r.event.id: r.seq for r in records}
    assert len(stored) == len(records)  # no event twice
    assert stored == acked  # every acked event is there, at the acked seq


async def test_a_frozen_journal_counts_as_gone_once_heartbeats_go_unanswered(
    tmp_path: Path, log_signal: Callable[..., _LogSignal]
) -> None:
    j = start_journal(tmp_path / "state")
    dropped = log_signal("the connection to the journal dropped")
    # The ack timeout is far away: only the heartbeats can tell that it is gone.
    emitter = Emitter(
        j.ingest, source="test", ack_timeout=600, heartbeat_ivl=0.05, heartbeat_timeout=0.3
    )
    try:
        assert await emitter.emit(_event("before")) == 1
        os.kill(j.proc.pid, signal.SIGSTOP)
        try:
            frozen = asyncio.ensure_future(emitter.emit(_event("frozen")))
            await dropped.seen.wait()
        finally:
            os.kill(j.proc.pid, signal.SIGCONT)
        assert await frozen == 2
        assert emitter.resends >= 1
    finally:
        await emitter.close()
        j.proc.terminate()
        j.proc.wait(timeout=20)
    with EventLog(j.log, readonly=True) as log:
        assert [(r.seq, r.event.id) for r in log.read()] == [(1, "before"), (2, "frozen")]


async def test_with_max_attempts_an_emit_to_no_journal_fails_after_that_many_ack_timeouts(
    tmp_path: Path,
) -> None:
    emitter = Emitter(f"ipc://{tmp_path}/nobody", source="test", ack_timeout=0.01, max_attempts=3)
    try:
        with pytest.raises(BusError, match="after 3 ack timeouts; is the mesh running"):
            await emitter.emit(_event("lost"))
        assert emitter.timeouts == 3 and emitter.resends == 2  # never connected: resent
    finally:
        await emitter.close()
