"""Replay requests fuzzed against a real journal process (DESIGN.md, "Wire protocol").

Each case sends one multipart message to the replay endpoint. A valid request is
answered with ``[b"record", seq8, record]`` frames in seq order after ``since``, at most
``limit`` of them, then ``[b"end", seq8, seq8]``; anything else gets
``[b"error", msgpack({"code", "message", "index"})]``. The journal stays up, still
answers a valid replay and still appends, and its log does not change.
"""

from __future__ import annotations

import msgspec
import zmq
from hypothesis import given
from hypothesis import strategies as st

from ap_actors import protocol as P
from ap_actors.actors.journal import ReplayRequest
from ap_actors.events import CODEC, EVENT_TYPES
from tests.fuzz.conftest import (
    FUZZ,
    assert_log_kept,
    journal_log_problems,
    log_records,
    run_cases,
    tried,
)
from tests.fuzz.strategies import (
    BOUNDARY_INTS,
    frames_raw,
    msgpack_payloads,
    msgpack_values,
    nasty_text,
    valid_event_map,
)
from tests.integration.conftest import JournalProcess

WAIT_MS = 30_000  # a safety net: the journal answers in milliseconds

_maybe = st.none() | msgpack_values
requests = st.fixed_dictionaries(
    {},
    optional={
        "since": st.sampled_from(BOUNDARY_INTS) | st.integers(-5, 60) | _maybe,
        "limit": st.sampled_from([*BOUNDARY_INTS, 100_000, 100_001]) | st.integers(-2, 60) | _maybe,
        "topics": st.lists(st.sampled_from(sorted(EVENT_TYPES)) | nasty_text, max_size=3) | _maybe,
        "session_id": st.sampled_from(["s1", "s2"]) | nasty_text | _maybe,
        "extra": msgpack_values,
    },
)
payloads = msgpack_payloads(requests)
other_frames = st.one_of(
    st.tuples(st.just(P.REPLAY), payloads, st.binary(max_size=8)).map(list),
    st.tuples(st.sampled_from([b"REPLAY", b"append", b"", b"record"]), payloads).map(list),
    st.just([P.REPLAY]),
    frames_raw,
)
frames = st.integers(0, 9).flatmap(
    lambda n: st.tuples(st.just(P.REPLAY), payloads).map(list) if n < 7 else other_frames
)


def replay(sock: zmq.Socket[bytes], frames: list[bytes]) -> list[list[bytes]]:
    """Send a request; return the reply's messages up to ``end`` or ``error``."""
    sock.send_multipart(frames)
    messages: list[list[bytes]] = []
    while True:
        assert sock.poll(WAIT_MS), f"the journal did not finish its answer: {messages[-2:]}"
        msg = sock.recv_multipart()
        if frames[0] == b"":
            assert msg[0] == b""
            msg = msg[1:]
        messages.append(msg)
        if msg[0] != P.RECORD:
            return messages


def check_answer(frames: list[bytes], messages: list[list[bytes]], last: int) -> None:
    *records, final = messages
    if final[0] == P.ERROR:
        assert not records and len(final) == 2, messages
        err = msgspec.msgpack.decode(final[1])
        assert set(err) == {"code", "message", "index"}, err
        assert err["code"] in P.ERROR_CODES and err["code"] != P.E_STORAGE, err
        assert isinstance(err["message"], str) and err["message"].strip(), err
        assert "\n" not in err["message"], err
        return
    assert final[0] == P.END and len(final) == 3, final
    # What the journal read (it skips unknown keys unread, whatever their bytes).
    req = msgspec.msgpack.decode(frames[1], type=ReplayRequest)
    since, limit = req.since, req.limit
    seqs = [P.unpack_seq(r[1]) for r in records]
    assert all(len(r) == 3 for r in records)
    assert seqs == sorted(set(seqs)) and all(since < s <= last for s in seqs)
    assert len(seqs) <= limit
    for seq, (_, _, data) in zip(seqs, records, strict=True):
        assert CODEC.decode_record(data).seq == seq
    covered, end_last = P.unpack_seq(final[1]), P.unpack_seq(final[2])
    assert end_last == last and (not seqs or covered >= seqs[-1])


def test_bad_replay_requests_get_a_documented_error_and_the_journal_keeps_serving(
    journal: JournalProcess,
) -> None:
    ctx = zmq.Context.instance()
    ingest = ctx.socket(zmq.DEALER)
    sock = ctx.socket(zmq.DEALER)
    for s, url in ((ingest, journal.ingest), (sock, journal.replay)):
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)
    try:
        seed = [valid_event_map(f"seed-{i}") | {"session_id": f"s{i % 3}"} for i in range(50)]
        ingest.send_multipart([P.APPEND, CODEC.encode(seed)])
        assert ingest.poll(WAIT_MS) and ingest.recv_multipart()[0] == P.OK
        before = log_records(journal.log)

        @FUZZ
        @given(frames)
        def property(frames: list[bytes]) -> None:
            tried("replay")
            check_answer(frames, replay(sock, frames), len(before))
            assert journal.proc.poll() is None, "the journal died"

        run_cases(property)
        everything = replay(sock, [P.REPLAY, CODEC.encode({"since": 0})])
        assert [P.unpack_seq(m[1]) for m in everything[:-1]] == list(range(1, 51))
        ingest.send_multipart([P.APPEND, CODEC.encode([valid_event_map("after-fuzz")])])
        assert ingest.poll(WAIT_MS) and ingest.recv_multipart()[0] == P.OK
        assert_log_kept(journal.log, before)
        assert journal_log_problems(journal) == []
    finally:
        sock.close()
        ingest.close()
