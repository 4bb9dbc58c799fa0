"""The event log's by-type index: topic-filtered reads visit only matching records.

Every test uses a real LMDB environment in ``tmp_path``. What a filtered read returns
is checked against the plain answer (every record read and filtered by its type), for
logs written with the index, logs written before it existed, and logs an older writer
appended to after the index was built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from ap_actors.eventlog import EventLog
from ap_actors.events import Event, PlanApproved, WorkerError, WorkerMetrics, topic_of
from ap_actors.protocol import pack_seq

CHUNK = 1024  # eventlog._CHUNK

MakeEvent = Callable[..., Event]


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "eventlog"


def _mixed(make_event: MakeEvent, n: int, start: int = 1) -> list[Event]:
    """``n`` events cycling over four types, mostly ``worker_activity``."""
    out: list[Event] = []
    for i in range(start, start + n):
        if i % 7 == 0:
            out.append(make_event(f"e{i}", cls=WorkerError, worker_id="w", error="x"))
        elif i % 5 == 0:
            out.append(make_event(f"e{i}", cls=WorkerMetrics, worker_id="w"))
        elif i % 11 == 0:
            out.append(make_event(f"e{i}", cls=PlanApproved, plan_id="p", by="owner"))
        else:
            out.append(make_event(f"e{i}"))
    return out


def _expected(log: EventLog, prefixes: list[str], since: int = 0, until: int | None = None):
    """The answer without the index: every record, kept by its event type."""
    return [
        r.seq for r in log.read(since, until=until) if topic_of(r.event).startswith(tuple(prefixes))
    ]


def _seqs(log: EventLog, prefixes: list[str], since: int = 0, until: int | None = None):
    return [r.seq for r in log.read(since, until=until, topics=prefixes)]


def _drop_index(path: Path, *, keep_upto: int | None) -> None:
    """Make the log look written by an older writer.

    ``keep_upto=None``: a writer from before the index (no table, no marker). Otherwise
    the index holds only records up to ``keep_upto`` and says so, as when an older writer
    appended after a writer of this version had indexed the log.
    """
    env = lmdb.open(str(path), max_dbs=8)
    types = env.open_db(b"types")
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        if keep_upto is None:
            txn.drop(types, delete=True)
            txn.delete(b"types_upto", db=meta)
        else:
            cur = txn.cursor(db=types)
            doomed = [k for k in cur.iternext(values=False) if k[-8:] > pack_seq(keep_upto)]
            for key in doomed:
                txn.delete(key, db=types)
            txn.put(b"types_upto", pack_seq(keep_upto), db=meta)
    env.close()


CASES = [
    (["worker_"], 0, None),
    (["worker_error"], 0, None),
    (["worker_metrics", "plan_approved"], 0, None),
    (["worker_", "worker_error"], 0, None),  # overlapping prefixes: each record once
    (["worker_error", "worker_metrics"], 500, 2500),
    (["plan_"], 2 * CHUNK, None),
    (["session_"], 0, None),  # no such type
    (["w"], 3 * CHUNK - 5, 3 * CHUNK + 7),
]


@pytest.mark.parametrize(("prefixes", "since", "until"), CASES)
def test_a_filtered_read_through_the_index_equals_the_filtered_scan(
    path: Path, make_event: MakeEvent, prefixes: list[str], since: int, until: int | None
) -> None:
    # Each type spans several chunks, so the merge of truncated types is exercised.
    log = EventLog(path, durability="none")
    try:
        for start in range(1, 6 * CHUNK, 1000):
            log.append(_mixed(make_event, 1000, start))
        assert _seqs(log, prefixes, since, until) == _expected(log, prefixes, since, until)
    finally:
        log.close()


def test_a_limit_stops_an_indexed_read_after_that_many_records(
    path: Path, make_event: MakeEvent
) -> None:
    with EventLog(path, durability="none") as log:
        log.append(_mixed(make_event, 3 * CHUNK))
        every = _expected(log, ["worker_error", "worker_metrics"])
        read = log.read(topics=["worker_error", "worker_metrics"], since=every[3], limit=CHUNK)

        assert [r.seq for r in read] == every[4 : 4 + CHUNK]


def test_a_log_from_before_the_index_is_read_by_scanning_then_indexed_by_its_writer(
    path: Path, make_event: MakeEvent
) -> None:
    with EventLog(path, durability="none") as log:
        log.append(_mixed(make_event, 2000))
    _drop_index(path, keep_upto=None)

    with EventLog(path, readonly=True) as reader:
        assert _seqs(reader, ["worker_error"]) == _expected(reader, ["worker_error"])
    with EventLog(path, durability="none") as writer:  # indexes the 2,000 records
        writer.append(_mixed(make_event, 10, start=2001))
        assert _seqs(writer, ["worker_error"]) == _expected(writer, ["worker_error"])

    env = lmdb.open(str(path), max_dbs=8, readonly=True)
    with env.begin() as txn:
        indexed = txn.stat(env.open_db(b"types", txn=txn))["entries"]
        upto = txn.get(b"types_upto", db=env.open_db(b"meta", txn=txn))
    env.close()
    assert (indexed, upto) == (2010, pack_seq(2010))


def test_records_an_older_writer_appended_after_the_index_are_still_found(
    path: Path, make_event: MakeEvent
) -> None:
    with EventLog(path, durability="none") as log:
        log.append(_mixed(make_event, 3000))
    _drop_index(path, keep_upto=1234)  # records 1,235-3,000 are not in the index

    with EventLog(path, readonly=True) as reader:
        for prefixes, since in ((["worker_error"], 0), (["plan_", "worker_m"], 1500)):
            assert _seqs(reader, prefixes, since) == _expected(reader, prefixes, since)
    with EventLog(path, durability="none") as writer:  # completes the index
        assert _seqs(writer, ["worker_error"]) == _expected(writer, ["worker_error"])


def test_a_filtered_read_never_reads_the_records_of_other_types(
    path: Path, make_event: MakeEvent
) -> None:
    with EventLog(path, durability="none") as log:
        log.append(_mixed(make_event, 3000))
        wanted = _expected(log, ["worker_error", "plan_"])
        others = [r.seq for r in log.read() if r.seq not in set(wanted)]
    # Make every other record undecodable: a scan that decodes heads would now raise.
    env = lmdb.open(str(path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        for seq in others:
            txn.put(pack_seq(seq), b"\xc1 not msgpack", db=events)
    env.close()

    with EventLog(path, readonly=True) as reader:
        assert _seqs(reader, ["worker_error", "plan_"]) == wanted


def test_a_read_after_the_largest_seq_is_empty_whatever_the_filter(
    path: Path, make_event: MakeEvent
) -> None:
    with EventLog(path, durability="none") as log:
        log.append([make_event("e1", session_id="s1")])
        last = 2**64 - 1
        assert list(log.read_raw(last)) == []
        assert list(log.read_raw(last, session_id="s1")) == []
        assert list(log.read_raw(last, topics=["worker_"])) == []
