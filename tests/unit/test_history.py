"""The history checker finds each anomaly it names, and nothing on a correct history.

Logs are real LMDB environments written through :class:`EventLog`; the anomalies a
correct journal never produces (a duplicate id, a hole in the seqs) are forged in the
files with ``lmdb`` directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import lmdb
import msgspec

from ap_actors.eventlog import EventLog
from ap_actors.events import (
    CODEC,
    Event,
    RawRecord,
    RequestSubmitted,
    SessionCompleted,
    SessionFailed,
)
from ap_actors.history import HistoryWriter, check, read_history
from ap_actors.protocol import pack_seq

MakeEvent = Callable[..., Event]


def _log(tmp_path: Path, events: list[Event]) -> Path:
    path = tmp_path / "eventlog"
    with EventLog(path, durability="none") as log:
        log.append(events)
    return path


def _history(tmp_path: Path, *ops: tuple[str, list[str], dict]) -> Path:
    path = tmp_path / "client.jsonl"
    writer = HistoryWriter(path)
    for op, ids, extra in ops:
        writer.record(op, ids, **extra)
    writer.close()
    return path


def test_a_correct_history_is_clean(tmp_path: Path, make_event: MakeEvent) -> None:
    path = _log(tmp_path, [make_event(f"e{i}") for i in range(1, 6)])
    history = _history(
        tmp_path,
        ("invoke", ["e1", "e2"], {}),
        ("ok", ["e1", "e2"], {"seqs": [1, 2]}),
        ("invoke", ["e3"], {}),
        ("info", ["e3"], {"error": "timeout"}),  # unknown, and present: fine
        ("invoke", ["x9"], {}),
        ("info", ["x9"], {"error": "timeout"}),  # unknown, and absent: fine
        ("invoke", ["bad"], {}),
        ("fail", ["bad"], {"error": "invalid"}),
    )

    report = check(path, [history])

    assert report.clean, report.summary()
    assert (report.invoked, report.acked, report.failed) == (5, 2, 1)
    assert (report.indeterminate, report.indeterminate_present) == (2, 1)
    assert (report.records, report.last_seq) == (5, 5)


def test_an_acked_event_missing_or_at_another_seq_is_lost(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    path = _log(tmp_path, [make_event("e1"), make_event("e2")])
    history = _history(
        tmp_path,
        ("ok", ["e1", "e2", "e3"], {"seqs": [1, 3, 3]}),  # e2 is at 2; e3 is nowhere
    )

    report = check(path, [history])

    assert not report.clean
    assert (report.lost, report.lost_examples) == (2, ["e2", "e3"])


def test_an_id_at_two_seqs_is_duplicated_and_a_hole_is_a_gap(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    path = _log(tmp_path, [make_event(f"e{i}") for i in range(1, 6)])
    env = lmdb.open(str(path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        txn.delete(pack_seq(3), db=events)  # a hole at 3
        again = CODEC.encode(RawRecord(6, 0.0, msgspec.Raw(CODEC.encode(make_event("e2")))))
        txn.put(pack_seq(6), again, db=events)  # e2 appended twice
    env.close()

    report = check(path, [])

    assert (report.duplicated, report.duplicated_examples) == (1, ["e2"])
    assert (report.gaps, report.gap_examples) == (1, [3])
    assert not report.clean


def test_a_refused_event_found_in_the_log_is_reported(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    path = _log(tmp_path, [make_event("e1")])
    history = _history(tmp_path, ("invoke", ["e1"], {}), ("fail", ["e1"], {"error": "x"}))

    report = check(path, [history])

    assert (report.failed_present, report.failed_present_examples) == (1, ["e1"])


def test_sessions_must_end_and_a_failure_must_say_why(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    def submitted(sid: str) -> Event:
        return make_event(f"r-{sid}", cls=RequestSubmitted, session_id=sid, request="x", repo="/r")

    path = _log(
        tmp_path,
        [
            submitted("done"),
            make_event("c", cls=SessionCompleted, session_id="done"),
            submitted("failed"),
            make_event("f", cls=SessionFailed, session_id="failed", reason="objective o1 failed"),
            submitted("silent"),
            make_event("s", cls=SessionFailed, session_id="silent", reason=""),
            submitted("running"),
        ],
    )

    report = check(path, [])

    assert report.sessions == 4
    assert (report.sessions_unfinished, report.unfinished_examples) == (2, ["running", "silent"])


def test_an_invoke_without_an_outcome_is_unknown_and_a_torn_line_is_skipped(
    tmp_path: Path, make_event: MakeEvent
) -> None:
    path = _log(tmp_path, [make_event("e1")])
    history = _history(tmp_path, ("invoke", ["e1", "e2"], {}))
    with history.open("a") as f:
        f.write('{"op": "ok", "ids": ["e')  # the client died mid-line

    report = check(path, [history])

    assert report.clean
    assert (report.indeterminate, report.indeterminate_present, report.malformed_lines) == (
        2,
        1,
        1,
    )
    ops, malformed = read_history([history])
    assert [op["op"] for op in ops] == ["invoke"] and malformed == 1
    assert json.loads(history.read_text().splitlines()[0])["ids"] == ["e1", "e2"]
