"""Bus frames fuzzed into a real :class:`~ap_actors.bus.Subscriber` (DESIGN.md, "Wire protocol").

The subscriber reads a real journal's log and listens to a bus played by the test (an
XPUB socket, so the test knows when the subscription is in place). Before each genuine
``[topic, seq8, record]`` message the test publishes malformed ones: wrong frame counts,
seq frames that are not 8 bytes, stale seqs with any bytes as the record, any topic.
The subscriber skips them (a warning each), raises nothing, and delivers the genuine
record next: once, in order, equal to the log's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import msgspec
import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st

from ap_actors import protocol as P
from ap_actors.bus import Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Record
from tests.fuzz.conftest import FUZZ, Portal, assert_log_kept, log_records, run_cases, tried
from tests.fuzz.strategies import event_maps, msgpack_payloads, nasty_text, valid_event_map
from tests.integration.conftest import JournalProcess

WAIT_S = 30.0  # a safety net: a record reaches the subscriber in milliseconds

records = st.fixed_dictionaries(
    {"seq": st.integers(0, 2**64 - 1), "appended_at": st.floats(), "event": event_maps()}
)
record_bytes = msgpack_payloads(records)
topics = st.sampled_from([b"worker_error", b"", b"worker_"]) | nasty_text.map(lambda t: t.encode())


@st.composite
def malformed(draw: st.DrawFn) -> tuple[list[bytes], int | None]:
    """One bus message the subscriber must skip, and for a stale seq how far back it is
    from the last one delivered (the seq is filled in then: strategies see no state)."""
    kind = draw(st.sampled_from(["frames", "seq-length", "stale"]))
    if kind == "frames":
        n = draw(st.sampled_from([1, 2, 4, 5]))
        return draw(st.lists(st.binary(max_size=16), min_size=n, max_size=n)), None
    if kind == "seq-length":
        seq = draw(st.binary(max_size=12).filter(lambda b: len(b) != 8))
        return [draw(topics), seq, draw(record_bytes)], None
    back = draw(st.integers(0, 3) | st.integers(0, 2**64 - 1))
    return [draw(topics), b"", draw(record_bytes)], back


class Bus:
    """The test's side: an XPUB the subscriber connects to, and an ingest client."""

    def __init__(self, journal: JournalProcess) -> None:
        ctx = zmq.Context.instance()
        self.xpub = ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.bind("tcp://127.0.0.1:*")
        self.url = self.xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.ingest = ctx.socket(zmq.DEALER)
        self.ingest.setsockopt(zmq.LINGER, 0)
        self.ingest.connect(journal.ingest)
        self.log = EventLog(journal.log, readonly=True)

    def append(self, event_id: str) -> list[bytes]:
        """Append one event through the journal; return its genuine bus message."""
        self.ingest.send_multipart([P.APPEND, CODEC.encode([valid_event_map(event_id)])])
        assert self.ingest.poll(int(WAIT_S * 1000)), "the journal did not answer"
        reply = self.ingest.recv_multipart()
        assert reply[0] == P.OK, reply
        (seq,) = msgspec.msgpack.decode(reply[1])
        ((_, data),) = list(self.log.read_raw(seq - 1, until=seq))
        return [b"worker_error", P.pack_seq(seq), data]

    def close(self) -> None:
        self.log.close()
        self.xpub.close()
        self.ingest.close()


@pytest.fixture
def bus(journal: JournalProcess) -> Iterator[Bus]:
    b = Bus(journal)
    yield b
    b.close()


def _follow(
    journal: JournalProcess, bus: Bus
) -> tuple[Subscriber, Callable[[], Coroutine[Any, Any, Record]]]:
    """A subscriber of the fake bus from the log's end, and a coroutine function that
    returns its next record (or times out after ``WAIT_S``)."""
    sub = Subscriber(bus.url, log_path=journal.log, idle_check_s=3_600, since=bus.log.last_seq())
    stream: AsyncIterator[Record] = aiter(sub)

    async def next_record() -> Record:
        async with asyncio.timeout(WAIT_S):
            return await anext(stream)

    return sub, next_record


def test_malformed_bus_messages_are_skipped_and_the_next_genuine_record_arrives(
    journal: JournalProcess, bus: Bus, portal: Portal
) -> None:
    sub, next_record = _follow(journal, bus)

    first = asyncio.run_coroutine_threadsafe(next_record(), portal.loop)
    assert bus.xpub.poll(int(WAIT_S * 1000)), "the subscriber did not subscribe"
    assert bus.xpub.recv() == b"\x01"  # subscribed to every topic
    genuine = bus.append("first")
    bus.xpub.send_multipart(genuine)
    assert first.result(WAIT_S).event.id == "first"
    before = log_records(journal.log)

    @FUZZ
    @given(st.lists(malformed(), min_size=1, max_size=4))
    def property(messages: list[tuple[list[bytes], int | None]]) -> None:
        tried("bus")
        for message, back in messages:
            if back is not None:
                message[1] = P.pack_seq(max(0, sub.last_seq - back))
            bus.xpub.send_multipart(message)
        genuine = bus.append(f"g-{sub.last_seq + 1}")
        bus.xpub.send_multipart(genuine)
        record = portal.run(next_record())
        assert record.seq == P.unpack_seq(genuine[1]) == sub.last_seq
        assert record == CODEC.decode_record(genuine[2])

    try:
        run_cases(property)
    finally:
        portal.run(sub.close())
    assert_log_kept(journal.log, before)


def test_a_bus_message_with_a_seq_beyond_the_log_is_not_delivered(
    journal: JournalProcess, bus: Bus, portal: Portal
) -> None:
    sub, next_record = _follow(journal, bus)

    try:
        first = asyncio.run_coroutine_threadsafe(next_record(), portal.loop)
        assert bus.xpub.poll(int(WAIT_S * 1000)) and bus.xpub.recv() == b"\x01"
        genuine = bus.append("beyond-first")
        bus.xpub.send_multipart(genuine)
        last = first.result(WAIT_S).seq
        second = bus.append("beyond-second")  # in the log before the forged message
        forged = msgspec.structs.replace(CODEC.decode_record(genuine[2]), seq=last + 1_000)
        bus.xpub.send_multipart([b"worker_error", P.pack_seq(last + 1_000), CODEC.encode(forged)])
        bus.xpub.send_multipart(second)
        assert portal.run(next_record()).seq == last + 1  # read from the log
        # The log ends at last + 1: the forged seq is ignored (it was delivered once, and
        # every genuine seq up to last + 1,000 was then skipped).
        bus.xpub.send_multipart(bus.append("beyond-third"))
        record = portal.run(next_record())
        assert record.seq == last + 2, f"delivered seq {record.seq}, not in the log"
    finally:
        portal.run(sub.close())
