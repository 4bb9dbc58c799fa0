"""Log replay: decoding the LMDB log directly, and reading it through the replay endpoint."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path

import uvloop

from ap_actors.bus import Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import Event
from benchmarks.common import Row, median, row, spread, stamped_events, stream_of
from benchmarks.processes import JournalProcess

REPLAY_RECORDS = 200_000
REPLAY_FILL_BATCH = 5_000
REPLAY_REPS = 3
REPLAY_WORKERS = 8  # sessions of the filled events, as in the append run


def fill_log(path: Path, events: Sequence[Event]) -> float:
    """Append ``events`` with durability "none" in batches; return events/s."""
    start = time.perf_counter()
    with EventLog(path, durability="none") as elog:
        for i in range(0, len(events), REPLAY_FILL_BATCH):
            elog.append(events[i : i + REPLAY_FILL_BATCH])
        if elog.last_seq() != len(events):
            raise RuntimeError(f"filled {elog.last_seq()} records, expected {len(events)}")
    return len(events) / (time.perf_counter() - start)


def read_all(path: Path) -> float:
    """Decode every record with EventLog.read; return records/s."""
    start = time.perf_counter()
    with EventLog(path, readonly=True) as elog:
        n = sum(1 for _ in elog.read())
    seconds = time.perf_counter() - start
    if n != REPLAY_RECORDS:
        raise RuntimeError(f"read {n} records, expected {REPLAY_RECORDS}")
    return n / seconds


async def replay_all(bus: str, replay: str) -> float:
    """Read every record through the replay endpoint (no log_path); return records/s."""
    sub = Subscriber(bus, log_path=None, replay=replay)
    start = time.perf_counter()
    n = 0
    async with aclosing(stream_of(sub)) as stream:
        async for record in stream:
            n += 1
            if record.seq >= REPLAY_RECORDS:
                break
    seconds = time.perf_counter() - start
    if n != REPLAY_RECORDS:
        raise RuntimeError(f"replayed {n} records, expected {REPLAY_RECORDS}")
    return n / seconds


def bench_replay(tmp: Path) -> list[Row]:
    """Rows: ``EventLog.read`` and the replay endpoint, each over the same filled log."""
    state = tmp / "replay"
    log_dir = state / "eventlog"
    fill = fill_log(log_dir, stamped_events(REPLAY_RECORDS, REPLAY_WORKERS))
    direct = [read_all(log_dir) for _ in range(REPLAY_REPS)]
    with JournalProcess(state) as journal:
        ep = journal.endpoints
        remote = [uvloop.run(replay_all(ep["bus"], ep["replay"])) for _ in range(REPLAY_REPS)]
    shutil.rmtree(state, ignore_errors=True)
    return [
        row(
            "log replay, EventLog.read decoded",
            median(direct),
            "records/s",
            ">=",
            300_000,
            f"{spread(direct)}; {REPLAY_RECORDS:,} records; fill (append, durability"
            f" none, {REPLAY_FILL_BATCH:,}/batch) {fill:,.0f}/s",
        ),
        row(
            "replay endpoint via Subscriber (no log_path)",
            median(remote),
            "records/s",
            None,
            None,
            f"{spread(remote)}; journal process -> DEALER, decoded, uvloop",
        ),
    ]
