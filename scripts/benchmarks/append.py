"""Durable append throughput: 8 emitters through the journal, against raw LMDB and SQLite.

The three run interleaved rep by rep (journal, raw LMDB, SQLite, then the next rep), so
drift on the machine hits all three alike.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb
import msgspec
import psutil

from ap_actors.bus import Emitter
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Event, RawRecord, WorkerActivity, new_id, topic_of
from ap_actors.protocol import pack_seq
from benchmarks.common import Row, activity, median, row, spread, stamped_events
from benchmarks.machine import busy_share
from benchmarks.processes import (
    JournalProcess,
    Result,
    collect,
    join_all,
    pass_barrier,
    spawn_context,
    start_worker,
)

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

EMITTERS = 8
EVENTS_PER_EMITTER = 25_000
EMIT_CHUNK = 250  # events per emit_many call
EMIT_WINDOW = 8  # emit_many calls in flight per emitter
APPEND_REPS = 5
RAW_LMDB_BATCH = 1_000
SQLITE_EVENTS = 5_000


# --- through the journal ------------------------------------------------------------


async def emit_load(ingest: str, index: int, count: int, barrier: Barrier) -> Result:
    """One emitter process: warm up, wait at ``barrier``, emit ``count`` events, report."""
    session = new_id()
    events = [activity(index, n, session) for n in range(count)]
    parts = [events[i : i + EMIT_CHUNK] for i in range(0, count, EMIT_CHUNK)]
    emitter = Emitter(ingest, source=f"bench-emitter-{index}")
    await emitter.emit(activity(index, -1, session))  # connected, journal warm
    barrier.wait()
    window = asyncio.Semaphore(EMIT_WINDOW)

    async def send(part: list[WorkerActivity]) -> list[int]:
        async with window:
            return await emitter.emit_many(part)

    cpu0, start = time.process_time(), time.monotonic()
    acked = await asyncio.gather(*(send(p) for p in parts))
    end, cpu1 = time.monotonic(), time.process_time()
    seqs = [s for part in acked for s in part]
    resends = emitter.resends
    await emitter.close()
    return {
        "index": index,
        "start": start,
        "end": end,
        "cpu": cpu1 - cpu0,
        "acked": len(seqs),
        "distinct": len(set(seqs)),
        "resends": resends,
    }


@dataclass
class AppendRun:
    """One rep of the journal run."""

    rate: float  # events/s
    seconds: float
    journal_cpu: float  # journal CPU seconds / wall seconds
    emitters_cpu: float  # sum of emitter CPU seconds / wall seconds
    machine_busy: float  # share of all cores busy (not idle, not iowait) during the run
    resends: int


def run_journal_append(tmp: Path, rep: int) -> AppendRun:
    """8 emitter processes append through a fresh journal (fsync on); verify the count."""
    ctx = spawn_context()
    state = tmp / f"append-{rep}"
    barrier = ctx.Barrier(EMITTERS + 1)
    results = ctx.Queue()
    with JournalProcess(state) as journal:
        ingest = journal.endpoints["ingest"]
        procs = [
            start_worker(
                ctx, f"emitter-{i}", results, emit_load, ingest, i, EVENTS_PER_EMITTER, barrier
            )
            for i in range(EMITTERS)
        ]
        pass_barrier(barrier, procs)
        cpu0, machine0 = journal.cpu_seconds(), psutil.cpu_times()
        out = collect(results, procs)
        cpu1, machine1 = journal.cpu_seconds(), psutil.cpu_times()
        join_all(procs)
        log_dir = Path(journal.endpoints["log"])
    total = EMITTERS * EVENTS_PER_EMITTER
    for o in out:
        if o["acked"] != EVENTS_PER_EMITTER or o["distinct"] != EVENTS_PER_EMITTER:
            raise RuntimeError(f"emitter {o['index']}: {o['distinct']} distinct seqs acked")
    with EventLog(log_dir, readonly=True) as elog:
        stored = elog.last_seq()
    expected = total + EMITTERS  # + one warm-up event per emitter
    if stored != expected:
        raise RuntimeError(f"the log holds {stored} events, expected {expected}")
    wall = max(o["end"] for o in out) - min(o["start"] for o in out)
    shutil.rmtree(state, ignore_errors=True)
    return AppendRun(
        total / wall,
        wall,
        (cpu1 - cpu0) / wall,
        sum(o["cpu"] for o in out) / wall,
        busy_share(machine0, machine1),
        sum(o["resends"] for o in out),
    )


# --- references: raw LMDB, SQLite ---------------------------------------------------


@dataclass
class StoredItem:
    """One event as the event log stores it: four keys and the record."""

    key: bytes  # seq, 8 bytes
    record: bytes  # msgpack record
    event_id: bytes
    session_key: bytes  # session id + NUL + seq
    type_key: bytes  # event type + NUL + seq
    session_id: str
    raw: bytes  # the event map


def stored_items(events: Sequence[Event]) -> list[StoredItem]:
    """The rows the event log would write for ``events``, pre-encoded."""
    now = time.time()
    out: list[StoredItem] = []
    for seq, e in enumerate(events, 1):
        raw = CODEC.encode(e)
        key = pack_seq(seq)
        out.append(
            StoredItem(
                key,
                CODEC.encode(RawRecord(seq, now, msgspec.Raw(raw))),
                e.id.encode(),
                e.session_id.encode() + b"\x00" + key,
                topic_of(e).encode() + b"\x00" + key,
                e.session_id,
                raw,
            )
        )
    return out


def run_raw_lmdb(tmp: Path, rep: int, items: Sequence[StoredItem]) -> float:
    """Events/s of the bare LMDB loop: one sync txn per 1,000 events, four puts each
    (the record, the id, the session and the by-type index rows)."""
    path = tmp / f"raw-lmdb-{rep}"
    env = lmdb.open(
        str(path), map_size=1 << 30, max_dbs=5, sync=True, metasync=True, readahead=False
    )
    events, ids, sessions, types = (
        env.open_db(n) for n in (b"events", b"ids", b"sessions", b"types")
    )
    start = time.perf_counter()
    for i in range(0, len(items), RAW_LMDB_BATCH):
        with env.begin(write=True) as txn:
            put = txn.put
            for it in items[i : i + RAW_LMDB_BATCH]:
                put(it.key, it.record, db=events, append=True)
                put(it.event_id, it.key, db=ids)
                put(it.session_key, b"", db=sessions)
                put(it.type_key, b"", db=types)
    seconds = time.perf_counter() - start
    env.close()
    shutil.rmtree(path, ignore_errors=True)
    return len(items) / seconds


def run_sqlite(tmp: Path, rep: int, items: Sequence[StoredItem]) -> float:
    """Events/s of SQLite in WAL mode, synchronous=FULL, one commit per event."""
    path = tmp / f"sqlite-{rep}.db"
    con = sqlite3.connect(path, isolation_level=None)  # autocommit: one txn per INSERT
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " session_id TEXT NOT NULL, appended_at REAL NOT NULL, event BLOB NOT NULL)"
    )
    con.execute("CREATE INDEX events_session ON events (session_id, seq)")
    insert = "INSERT INTO events (id, session_id, appended_at, event) VALUES (?, ?, ?, ?)"
    start = time.perf_counter()
    for it in items:
        con.execute(insert, (it.event_id.decode(), it.session_id, time.time(), it.raw))
    seconds = time.perf_counter() - start
    (stored,) = con.execute("SELECT count(*) FROM events").fetchone()
    con.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if stored != len(items):
        raise RuntimeError(f"sqlite holds {stored} rows, expected {len(items)}")
    return len(items) / seconds


# --- the rows -----------------------------------------------------------------------


def bench_append(tmp: Path) -> list[Row]:
    """Rows: journal, raw LMDB and SQLite append rates, and the two ratios."""
    items = stored_items(stamped_events(EMITTERS * EVENTS_PER_EMITTER, EMITTERS))
    mean_event = statistics.fmean(len(it.raw) for it in items)
    mean_record = statistics.fmean(len(it.record) for it in items)
    journal: list[AppendRun] = []
    raw: list[float] = []
    sqlite: list[float] = []
    for rep in range(APPEND_REPS):  # interleaved, so drift hits all three alike
        journal.append(run_journal_append(tmp, rep))
        raw.append(run_raw_lmdb(tmp, rep, items))
        sqlite.append(run_sqlite(tmp, rep, items[:SQLITE_EVENTS]))
    rates = [r.rate for r in journal]
    j, r, s = median(rates), median(raw), median(sqlite)
    per_rep = [a / b for a, b in zip(rates, raw, strict=True)]
    return [
        row(
            "durable append via journal, 8 emitters, fsync",
            j,
            "events/s",
            ">=",
            100_000,
            f"{spread(rates)}; {EMITTERS}x{EVENTS_PER_EMITTER:,} events of {mean_event:.0f} B"
            f" ({EMIT_WINDOW} emit_many x {EMIT_CHUNK} in flight each); journal CPU"
            f" {median([x.journal_cpu for x in journal]):.0%} of a core, emitters"
            f" {median([x.emitters_cpu for x in journal]):.0%}, machine"
            f" {median([x.machine_busy for x in journal]):.0%} busy; resends"
            f" {sum(x.resends for x in journal)}; log count verified",
        ),
        row(
            "raw LMDB loop, 1,000/txn, sync, 4 puts",
            r,
            "events/s",
            None,
            None,
            f"{spread(raw)}; records of {mean_record:.0f} B, pre-encoded; the ceiling",
        ),
        row(
            "SQLite WAL, synchronous=FULL, commit/event",
            s,
            "events/s",
            None,
            None,
            f"{spread(sqlite)}; {SQLITE_EVENTS:,} events",
        ),
        row("ratio journal / raw LMDB", j / r, "x", ">=", 0.25, spread(per_rep, "{:.2f}")),
        row(
            "ratio journal / SQLite",
            j / s,
            "x",
            None,
            None,
            spread([a / b for a, b in zip(rates, sqlite, strict=True)], "{:.0f}"),
        ),
    ]
