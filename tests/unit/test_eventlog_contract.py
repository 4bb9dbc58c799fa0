"""The event log's contract, run against every durability setting.

Every test uses a real LMDB environment in ``tmp_path``. ``EventLogContract`` holds the
tests; each ``TestEventLog*`` subclass provides ``open_log``, a factory that opens an
:class:`EventLog` with its durability and closes whatever it opened at teardown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ap_actors.errors import EventLogError
from ap_actors.eventlog import EventLog, Prepared, Snapshot
from ap_actors.events import (
    CODEC,
    Event,
    PlanApproved,
    WorkerError,
    WorkerMetrics,
    topic_of,
)
from ap_actors.protocol import pack_seq

MIB = 1024 * 1024
CHUNK = 1024  # eventlog._CHUNK: records per read transaction

OpenLog = Callable[..., EventLog]
MakeEvent = Callable[..., Event]


class _Opener:
    """Opens event logs under one directory with one durability; closes them all."""

    def __init__(self, root: Path, durability: str) -> None:
        self.path = root / "eventlog"
        self.durability = durability
        self.opened: list[EventLog] = []

    def __call__(self, path: Path | None = None, **kwargs: Any) -> EventLog:
        kwargs.setdefault("durability", self.durability)
        log = EventLog(path or self.path, **kwargs)
        self.opened.append(log)
        return log

    def close_all(self) -> None:
        for log in reversed(self.opened):
            log.close()


def _opener(tmp_path: Path, durability: str) -> Iterator[_Opener]:
    opener = _Opener(tmp_path, durability)
    try:
        yield opener
    finally:
        opener.close_all()


def _ids(records: Any) -> list[str]:
    return [r.event.id for r in records]


def _seqs(records: Any) -> list[int]:
    return [r.seq for r in records]


def _prepare(event: Event) -> Prepared:
    return Prepared(
        event.id.encode(), event.session_id.encode(), topic_of(event).encode(), CODEC.encode(event)
    )


# Runs in another process: reads the whole log again and again while the test appends,
# checking each pass is a gap-free prefix, until it has seen `target` records.
_READER = textwrap.dedent(
    """
    import json, sys
    from ap_actors.eventlog import EventLog
    from ap_actors.events import CODEC

    path, target, map_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    log = EventLog(path, readonly=True, map_size=map_size)
    first_map = log.map_size()
    print("ready", flush=True)
    while True:
        n = 0
        for seq, data in log.read_raw():
            record = CODEC.decode_record(data)
            n += 1
            if seq != n or record.seq != n or record.event.id != f"e{n}":
                print(json.dumps({"error": f"record {n}: seq {seq}, {record.event.id}"}))
                sys.exit(1)
        if n >= target:
            break
    print(json.dumps({"first_map": first_map, "last_map": log.map_size(),
                      "last_seq": log.last_seq()}), flush=True)
    log.close()
    """
)


class EventLogContract:
    """What every event log configuration must do. Subclasses provide ``open_log``."""

    @pytest.fixture
    def open_log(self, tmp_path: Path) -> Iterator[OpenLog]:
        raise NotImplementedError  # provided by each subclass

    @pytest.fixture
    def log(self, open_log: OpenLog) -> EventLog:
        return open_log()

    # --- appending ------------------------------------------------------------------

    def test_an_empty_log_has_last_seq_zero_and_no_records(self, log: EventLog) -> None:
        assert log.last_seq() == 0
        assert list(log.read()) == []
        assert log.get(1) is None
        assert log.session_ids() == []

    def test_appends_get_gap_free_seqs_from_one_in_order(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        first = [make_event(f"e{i}") for i in range(1, 4)]
        second = [make_event(f"e{i}") for i in range(4, 6)]

        assert log.append(first) == [1, 2, 3]
        assert log.append(second) == [4, 5]
        assert log.last_seq() == 5
        for seq, event in enumerate(first + second, start=1):
            record = log.get(seq)
            assert record is not None
            assert record.seq == seq
            assert record.event == event
        assert log.get(0) is None
        assert log.get(6) is None

    def test_an_append_stamps_every_record_of_the_batch_with_appended_at(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event("e1"), make_event("e2")], now=1_800_000_000.5)

        assert [r.appended_at for r in log.read()] == [1_800_000_000.5, 1_800_000_000.5]

    def test_an_empty_batch_appends_nothing(self, log: EventLog) -> None:
        assert log.append([]) == []
        assert log.last_seq() == 0

    def test_a_duplicate_event_id_is_acknowledged_with_the_original_seq(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event("a"), make_event("b")])

        again = make_event("a", description="a restarted actor reacting again")
        assert log.append([make_event("c"), again]) == [3, 1]
        assert log.last_seq() == 3
        assert _ids(log.read()) == ["a", "b", "c"]
        original = log.get(1)
        assert original is not None
        assert original.event == make_event("a")
        assert log.seq_of("a") == 1
        assert log.seq_of("never-appended") is None

    def test_a_duplicate_inside_one_batch_is_appended_once(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        batch = [make_event("a"), make_event("b"), make_event("a"), make_event("b")]

        seqs, appended = log.append_prepared([_prepare(e) for e in batch])

        assert seqs == [1, 2, 1, 2]
        assert [seq for seq, *_ in appended] == [1, 2]
        assert _ids(log.read()) == ["a", "b"]

    def test_append_prepared_returns_the_records_exactly_as_stored(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event("old")])
        events = [
            make_event("e2", session_id="s1"),
            make_event("e3", cls=PlanApproved, plan_id="p1", by="owner"),
        ]

        seqs, appended = log.append_prepared([_prepare(e) for e in events], now=1_800_000_000.0)

        assert seqs == [2, 3]
        assert [(seq, topic, key) for seq, topic, _, key in appended] == [
            (2, b"worker_activity", pack_seq(2)),
            (3, b"plan_approved", pack_seq(3)),
        ]
        stored = dict(log.read_raw(since=1))
        for (seq, _, raw_record, _), event in zip(appended, events, strict=True):
            assert raw_record == stored[seq]
            record = CODEC.decode_record(raw_record)
            assert record == log.get(seq)
            assert (record.seq, record.appended_at, record.event) == (
                seq,
                1_800_000_000.0,
                event,
            )

    def test_a_read_only_log_refuses_to_append_or_save_snapshots(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        open_log().append([make_event("e1")])
        reader = open_log(readonly=True)

        with pytest.raises(EventLogError, match="read-only"):
            reader.append([make_event("e2")])
        with pytest.raises(EventLogError, match="read-only"):
            reader.save_snapshot(Snapshot("s", 1, 1, b"", 1.0))

    # --- reading --------------------------------------------------------------------

    def test_a_range_read_excludes_since_and_includes_until(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event(f"e{i}") for i in range(1, 11)])

        assert _seqs(log.read()) == list(range(1, 11))
        assert _seqs(log.read(since=3)) == list(range(4, 11))
        assert _seqs(log.read(since=3, until=6)) == [4, 5, 6]
        assert _seqs(log.read(until=2)) == [1, 2]
        assert _seqs(log.read(since=3, limit=2)) == [4, 5]
        assert _seqs(log.read(since=8, limit=5)) == [9, 10]
        assert _seqs(log.read(since=10)) == []
        assert _seqs(log.read(since=4, until=4)) == []
        assert _seqs(log.read(until=100)) == list(range(1, 11))

    def test_a_limit_of_zero_reads_nothing(self, log: EventLog, make_event: MakeEvent) -> None:
        log.append([make_event("e1"), make_event("e2")])

        assert list(log.read(limit=0)) == []

    def test_read_raw_yields_each_seq_with_the_record_bytes(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event(f"e{i}") for i in range(1, 4)])

        raw = list(log.read_raw())

        assert [seq for seq, _ in raw] == [1, 2, 3]
        assert [CODEC.decode_record(data) for _, data in raw] == list(log.read())

    def test_a_session_read_returns_that_session_s_events_in_seq_order(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        sessions = ["s1", "s2", "", "s1", "s10", "s1", "", "s2", "s1"]
        log.append([make_event(f"e{i}", session_id=s) for i, s in enumerate(sessions, 1)])

        assert _seqs(log.read(session_id="s1")) == [1, 4, 6, 9]
        assert _seqs(log.read(session_id="s2")) == [2, 8]
        assert _seqs(log.read(session_id="s10")) == [5]
        assert _seqs(log.read(session_id="s1", since=1, until=6)) == [4, 6]
        assert _seqs(log.read(session_id="s1", since=4, limit=1)) == [6]
        assert _seqs(log.read(session_id="unknown")) == []
        assert all(r.event.session_id == "s1" for r in log.read(session_id="s1"))

    def test_events_without_a_session_are_not_in_the_session_index(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append([make_event("mesh", session_id=""), make_event("e2", session_id="s1")])

        assert _seqs(log.read(session_id="")) == []
        assert log.session_ids() == ["s1"]
        assert _seqs(log.read()) == [1, 2]

    def test_a_topic_prefix_read_keeps_only_matching_event_types(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        log.append(
            [
                make_event("e1"),
                make_event("e2", cls=PlanApproved, plan_id="p1", by="owner"),
                make_event("e3", cls=WorkerMetrics, worker_id="w1"),
                make_event("e4", cls=WorkerError, worker_id="w1", error="boom"),
                make_event("e5", cls=PlanApproved, plan_id="p2", by="auto"),
            ]
        )

        assert _seqs(log.read(topics=["worker_"])) == [1, 3, 4]
        assert _seqs(log.read(topics=["worker_metrics"])) == [3]
        assert _seqs(log.read(topics=["plan_approved", "worker_error"])) == [2, 4, 5]
        assert _seqs(log.read(topics=["worker_"], since=1, limit=1)) == [3]
        assert _seqs(log.read(topics=["session_"])) == []
        assert _seqs(log.read(topics=[])) == [1, 2, 3, 4, 5]

    def test_session_topic_and_range_filters_combine(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        approved = {"cls": PlanApproved, "plan_id": "p", "by": "owner"}
        log.append(
            [
                make_event("e1", session_id="s1"),
                make_event("e2", session_id="s2"),
                make_event("e3", session_id="s1", **approved),
                make_event("e4", session_id="s1"),
                make_event("e5", session_id="s1"),
                make_event("e6", session_id="s1"),
            ]
        )

        read = log.read(session_id="s1", topics=["worker_"], since=1, until=5, limit=5)
        assert _seqs(read) == [4, 5]
        read = log.read(session_id="s1", topics=["worker_"], limit=2)
        assert _seqs(read) == [1, 4]

    def test_reads_cross_the_chunk_boundary_without_losing_or_repeating_records(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        n = 3 * CHUNK - 72  # 3,000: two full chunks and a partial one
        log.append(
            [
                make_event(f"e{i}", session_id="s" if i % 2 else "t")
                if i % 3
                else make_event(f"e{i}", cls=WorkerError, worker_id="w", error="x")
                for i in range(1, n + 1)
            ]
        )

        assert _seqs(log.read()) == list(range(1, n + 1))
        assert _ids(log.read()) == [f"e{i}" for i in range(1, n + 1)]
        assert _seqs(log.read(since=CHUNK - 1, until=2 * CHUNK + 1)) == list(
            range(CHUNK, 2 * CHUNK + 2)
        )
        assert _seqs(log.read(since=10, limit=2 * CHUNK)) == list(range(11, 2 * CHUNK + 11))
        odd_not_3 = [i for i in range(1, n + 1) if i % 2 and i % 3]
        assert _seqs(log.read(session_id="s")) == odd_not_3
        assert _seqs(log.read(session_id="s", since=odd_not_3[499])) == odd_not_3[500:]
        assert _seqs(log.read(topics=["worker_error"])) == list(range(3, n + 1, 3))

    def test_a_session_read_crosses_the_chunk_boundary(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        n = 2 * CHUNK + 5
        log.append([make_event(f"e{i}", session_id="s") for i in range(1, n + 1)])

        assert _seqs(log.read(session_id="s")) == list(range(1, n + 1))
        assert _seqs(log.read(session_id="s", since=CHUNK)) == list(range(CHUNK + 1, n + 1))

    def test_session_ids_lists_each_session_once_sorted(
        self, log: EventLog, make_event: MakeEvent
    ) -> None:
        sessions = ["b", "a", "ab", "a-b", "", "b", "a", "session 2", "session 10", "é"]
        log.append([make_event(f"e{i}", session_id=s) for i, s in enumerate(sessions)])

        assert log.session_ids() == ["a", "a-b", "ab", "b", "session 10", "session 2", "é"]

    # --- growth, handles, reopening -------------------------------------------------

    def test_a_full_map_grows_instead_of_failing(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        log = open_log(map_size=MIB)
        body = "x" * 10_000
        for batch in range(10):
            log.append(
                [make_event(f"e{batch}-{i}", description=body) for i in range(50)]
            )  # ~5 MB in all

        assert log.map_size() > MIB
        assert log.size_bytes() > 4 * MIB
        records = list(log.read())
        assert _seqs(records) == list(range(1, 501))
        assert all(r.event.description == body for r in records)  # type: ignore[attr-defined]

    def test_a_batch_larger_than_the_whole_map_is_appended_whole(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        log = open_log(map_size=MIB)

        seqs = log.append([make_event(f"e{i}", description="y" * 50_000) for i in range(80)])

        assert seqs == list(range(1, 81))
        assert log.map_size() >= 4 * MIB
        assert len(list(log.read())) == 80

    def test_a_read_only_log_sees_the_writer_s_appends(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        writer = open_log()
        writer.append([make_event("e1", session_id="s")])
        reader = open_log(readonly=True)

        assert reader.last_seq() == 1
        writer.append([make_event("e2", session_id="s")])
        assert reader.last_seq() == 2
        assert _ids(reader.read(session_id="s")) == ["e1", "e2"]
        assert reader.seq_of("e2") == 2

    def test_opening_a_missing_log_read_only_says_how_to_fix_it(
        self, open_log: OpenLog, tmp_path: Path
    ) -> None:
        with pytest.raises(EventLogError, match=r"no event log at .*(ap up|--state-dir)"):
            open_log(tmp_path / "nowhere", readonly=True)
        assert not (tmp_path / "nowhere").exists()

    def test_reopening_keeps_every_record_and_continues_the_seqs(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        log = open_log(map_size=MIB)
        log.append(
            [make_event(f"e{i}", session_id="s", description="z" * 5_000) for i in range(400)]
        )
        log.save_snapshot(Snapshot("fold", 400, 1, b"state", 1.0))
        log.close()

        log = open_log(map_size=MIB)

        assert log.last_seq() == 400
        assert log.append([make_event("e0"), make_event("new")]) == [1, 401]
        assert len(list(log.read(session_id="s"))) == 400
        assert _seqs(log.read(since=398)) == [399, 400, 401]
        assert log.load_snapshot("fold") == Snapshot("fold", 400, 1, b"state", 1.0)

    def test_closing_one_of_two_handles_on_a_directory_leaves_the_other_working(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        writer = open_log()
        reader = open_log(readonly=True)
        writer.append([make_event("e1")])
        reader.close()
        reader.close()  # closing twice is harmless

        assert writer.append([make_event("e2")]) == [2]
        assert _ids(writer.read()) == ["e1", "e2"]

        again = open_log(readonly=True)
        writer.close()
        assert _ids(again.read()) == ["e1", "e2"]

    def test_two_writers_on_one_directory_in_one_process_share_the_seq_counter(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        first = open_log()
        second = open_log()

        assert first.append([make_event("e1")]) == [1]
        assert second.append([make_event("e2")]) == [2]
        assert _ids(first.read()) == ["e1", "e2"]

    def test_opening_for_writing_while_a_read_only_handle_is_open_is_refused(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        writer = open_log()
        writer.append([make_event("e1")])
        writer.close()
        reader = open_log(readonly=True)

        with pytest.raises(EventLogError, match="read-only in this process"):
            open_log()
        assert _ids(reader.read()) == ["e1"]

    def test_a_reader_in_another_process_follows_appends_while_the_map_grows(
        self, open_log: OpenLog, make_event: MakeEvent
    ) -> None:
        log = open_log(map_size=MIB)
        log.append([make_event("e1")])
        batches, per_batch, body = 40, 25, "r" * 8_000  # ~8 MB: the map doubles 3+ times
        target = 1 + batches * per_batch
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, str(log.path), str(target), str(MIB)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdout is not None
            assert reader.stderr is not None
            assert reader.stdout.readline() == "ready\n", reader.stderr.read()
            seq = 1
            for _ in range(batches):
                events = [
                    make_event(f"e{seq + i}", description=body) for i in range(1, per_batch + 1)
                ]
                seq = log.append(events)[-1]
            out, err = reader.communicate(timeout=60)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()

        assert reader.returncode == 0, out + err
        result = json.loads(out)
        assert log.map_size() >= 8 * MIB
        assert result["first_map"] == MIB
        assert result["last_map"] >= 8 * MIB  # it adopted the grown map
        assert result["last_seq"] == target

    # --- snapshots ------------------------------------------------------------------

    def test_a_snapshot_round_trips(self, log: EventLog) -> None:
        snapshot = Snapshot("scheduler", 42, 3, CODEC.encode({"sessions": ["s1"]}), 1.5)

        log.save_snapshot(snapshot)

        assert log.load_snapshot("scheduler") == snapshot

    def test_saving_a_snapshot_again_replaces_it(self, log: EventLog) -> None:
        log.save_snapshot(Snapshot("scheduler", 1, 1, b"old", 1.0))
        log.save_snapshot(Snapshot("projection", 5, 1, b"other", 1.0))

        log.save_snapshot(Snapshot("scheduler", 9, 2, b"new", 2.0))

        assert log.load_snapshot("scheduler") == Snapshot("scheduler", 9, 2, b"new", 2.0)
        assert log.load_snapshot("projection") == Snapshot("projection", 5, 1, b"other", 1.0)

    def test_loading_a_missing_snapshot_returns_none(self, log: EventLog) -> None:
        assert log.load_snapshot("never-saved") is None

    def test_a_snapshot_larger_than_the_map_grows_it(self, open_log: OpenLog) -> None:
        log = open_log(map_size=MIB)
        snapshot = Snapshot("big", 1, 1, b"s" * (3 * MIB), 1.0)

        log.save_snapshot(snapshot)

        assert log.load_snapshot("big") == snapshot


class TestEventLogFsync(EventLogContract):
    @pytest.fixture
    def open_log(self, tmp_path: Path) -> Iterator[OpenLog]:
        yield from _opener(tmp_path, "fsync")


class TestEventLogNoSync(EventLogContract):
    @pytest.fixture
    def open_log(self, tmp_path: Path) -> Iterator[OpenLog]:
        yield from _opener(tmp_path, "none")


def test_an_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="durability must be one of"):
        EventLog(tmp_path / "eventlog", durability="sometimes")  # type: ignore[arg-type]
    assert not (tmp_path / "eventlog").exists()


def test_opening_the_log_frees_the_reader_slot_of_a_killed_reader(tmp_path: Path) -> None:
    # LMDB resets its reader table when a process opens an environment nobody else has
    # open, so the journal (here: this process) keeps it open while the reader dies.
    path = tmp_path / "log"
    with EventLog(path) as writer:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from ap_actors.eventlog import EventLog\n"
                f"log = EventLog({str(path)!r}, readonly=True)\n"
                "txn = log._begin()  # a read transaction held open: a reader slot in use\n"
                "print('holding', flush=True)\n"
                "sys.stdin.read()\n",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        holder.kill()
        holder.communicate(timeout=20)
        opened = subprocess.run(
            [
                sys.executable,
                "-c",
                "from ap_actors.eventlog import EventLog\n"
                f"print(EventLog({str(path)!r}, readonly=True).stale_readers_cleared)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert opened.stdout.strip() == "1"
        assert writer.last_seq() == 0
