"""Ingest frames fuzzed against a real journal process (DESIGN.md, "Wire protocol").

Each case sends one multipart message to the ingest endpoint; the answer is
``[b"ok", msgpack(seqs)]`` for a valid batch and otherwise
``[b"error", msgpack({"code", "message", "index"})]`` with a documented code (and
``[b"endpoints"]``, a remote worker's question, gets the journal's endpoints). The journal
stays up and keeps appending, its log holds no traceback, and the records appended
before the fuzzing are still the log's first records, byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec
import zmq
from hypothesis import event, example, given
from hypothesis import strategies as st

from ap_actors import protocol as P
from ap_actors.events import CODEC
from tests.fuzz.conftest import (
    FUZZ,
    assert_log_kept,
    journal_log_problems,
    log_records,
    run_cases,
    tried,
)
from tests.fuzz.strategies import (
    event_maps,
    frames_raw,
    msgpack_payloads,
    msgpack_values,
    valid_event_map,
)
from tests.integration.conftest import JournalProcess

WAIT_MS = 30_000  # a safety net: the journal answers in milliseconds

batches = st.lists(event_maps(), max_size=5) | st.lists(msgpack_values, max_size=3)
payloads = msgpack_payloads(batches)
other_frames = st.one_of(
    st.tuples(st.just(P.APPEND), payloads, st.binary(max_size=8)).map(list),
    st.tuples(st.sampled_from([b"APPEND", b"replay", b"ok", b"", b"append\x00"]), payloads).map(
        list
    ),
    st.just([P.APPEND]),
    frames_raw,
)
# Mostly well-framed requests: the payload is where the journal's validation lives.
frames = st.integers(0, 9).flatmap(
    lambda n: st.tuples(st.just(P.APPEND), payloads).map(list) if n < 7 else other_frames
)


def request(sock: zmq.Socket[bytes], frames: list[bytes]) -> list[bytes]:
    sock.send_multipart(frames)
    assert sock.poll(WAIT_MS), "the journal did not answer"
    return sock.recv_multipart()


def check_reply(frames: list[bytes], reply: list[bytes]) -> None:
    if len(frames) >= 1 and frames[0] == b"":
        # A REQ-style delimiter: the journal keeps it in the envelope.
        assert reply[0] == b""
        reply = reply[1:]
    try:
        batch: Any = msgspec.msgpack.decode(frames[1]) if len(frames) == 2 else None
    except Exception:
        batch = None
    assert len(reply) == 2, reply
    event(f"reply {reply[0]!r}")
    if frames in ([P.ENDPOINTS], [b"", P.ENDPOINTS]):  # a remote worker's question
        assert reply[0] == P.ENDPOINTS, reply
        assert set(msgspec.msgpack.decode(reply[1])) == {"ingest", "bus", "replay"}
        return
    if reply[0] == P.OK:
        seqs = msgspec.msgpack.decode(reply[1])
        assert frames[0] == P.APPEND and isinstance(batch, list)
        assert isinstance(seqs, list) and len(seqs) == len(batch)
        assert all(isinstance(s, int) and s >= 1 for s in seqs)
        return
    assert reply[0] == P.ERROR, reply
    err = msgspec.msgpack.decode(reply[1])
    assert set(err) == {"code", "message", "index"}, err
    event(f"code {err['code']}")
    assert err["code"] in P.ERROR_CODES and err["code"] != P.E_STORAGE, err
    assert isinstance(err["message"], str) and err["message"].strip(), err
    assert "\n" not in err["message"], err
    assert isinstance(err["index"], int) and err["index"] >= -1, err
    if isinstance(batch, list):
        assert err["index"] < len(batch), err


def test_bad_ingest_frames_get_a_documented_error_and_the_log_keeps_its_records(
    journal: JournalProcess,
) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(journal.ingest)
    try:
        seed = [valid_event_map(f"seed-{i}") for i in range(20)]
        assert request(sock, [P.APPEND, CODEC.encode(seed)])[0] == P.OK
        before = log_records(journal.log)

        @FUZZ
        @given(frames)
        @example([P.ENDPOINTS])  # found at 100,000 cases: the remote workers' question
        def property(frames: list[bytes]) -> None:
            tried("ingest")
            check_reply(frames, request(sock, frames))
            assert journal.proc.poll() is None, "the journal died"

        run_cases(property)
        # Still serving: a new valid event is appended after everything else.
        ok = request(sock, [P.APPEND, CODEC.encode([valid_event_map("after-fuzz")])])
        assert ok[0] == P.OK
        assert_log_kept(journal.log, before)
        assert journal_log_problems(journal) == []
    finally:
        sock.close()
