"""``make bench``: throughput, latency, replay rate and memory of the event log and bus.

Every number comes from real processes on this machine: the journal runs as its own
process (``python -m ap_actors.actors.journal``), emitters and subscribers run in
separate processes (multiprocessing, ``spawn``), sockets are ZeroMQ on 127.0.0.1 and
the LMDB / SQLite files live in ``bench/tmp-<pid>/`` under the repository (a real disk,
real fsync), removed at the end. Comparisons run side by side in the same invocation,
interleaved rep by rep; the table quotes medians of repeated runs and their ratios.

Output: a rich table on stdout and ``bench/results.json``::

    {"machine": {...}, "started_at": Unix s, "duration_s": s,
     "rows": [{"name", "value", "unit", "target", "meets_target", "notes"}, ...]}

``target`` is a string such as ``">= 100000"`` (None for informative rows, whose
``meets_target`` is None too). Exit code 0 when the suite ran, whatever the results;
1 when a benchmark failed to run (a process died, a count did not match).

The module also holds :class:`IdleActor`, the actor whose memory is measured; its source
is copied into a one-class module that the actor process imports, so the measurement
does not include this script.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import psutil

from ap_actors.actor import Actor
from ap_actors.bus import Emitter, Subscriber
from ap_actors.errors import ApError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Event, RawRecord, WorkerActivity, new_id, stamp
from ap_actors.protocol import pack_seq

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier
    from multiprocessing.synchronize import Event as MpEvent

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
ANY_PORT = "tcp://127.0.0.1:*"

# Row 1-2: durable append throughput and its references.
EMITTERS = 8
EVENTS_PER_EMITTER = 25_000
EMIT_CHUNK = 250  # events per emit_many call
EMIT_WINDOW = 8  # emit_many calls in flight per emitter
APPEND_REPS = 5
RAW_LMDB_BATCH = 1_000
SQLITE_EVENTS = 5_000
# Row 3: latency.
LATENCY_RATE = 1_000  # events/s
LATENCY_SECONDS = 5.0
LATENCY_WARMUP_SECONDS = 0.5  # paced but not measured: connections and caches settle
LATENCY_REPS = 3
# Row 4: replay.
REPLAY_RECORDS = 200_000
REPLAY_FILL_BATCH = 5_000
REPLAY_REPS = 3
# Row 5: memory.
MEMORY_SAMPLES = 5

BUSY_WARNING = 0.15  # share of the machine busy before the run that gets a warning
WARMUP_OBJECTIVE = "warmup"  # objective_id of latency events that are not measured


# --- results ------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table and of results.json."""

    name: str
    value: float
    unit: str
    target: str | None  # ">= 100000", "<= 1.0"; None = informative
    meets_target: bool | None
    notes: str = ""


def check(value: float, op: str, bound: float) -> bool:
    """Return whether ``value op bound`` holds (op is ">=" or "<=")."""
    return value >= bound if op == ">=" else value <= bound


def row(
    name: str, value: float, unit: str, op: str | None, bound: float | None, notes: str = ""
) -> Row:
    """Build a row; ``op``/``bound`` None make it informative."""
    if op is None or bound is None:
        return Row(name, value, unit, None, None, notes)
    return Row(name, value, unit, f"{op} {bound:g}", check(value, op, bound), notes)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """Return ``"runs a / b / c"`` for the notes column."""
    return "runs " + " / ".join(fmt.format(v) for v in values)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# --- events ------------------------------------------------------------------------


def activity(
    worker: int, n: int, session_id: str, *, ts: float = 0.0, objective_id: str = ""
) -> WorkerActivity:
    """A realistic ``worker_activity``: about 300 bytes of msgpack once stamped.

    msgpack maps carry their field names, so even an empty ``worker_activity`` with a
    ULID and a session id is about 210 bytes.
    """
    return WorkerActivity(
        session_id=session_id,
        ts=ts,
        worker_id=f"worker-{worker}",
        objective_id=objective_id or f"obj-{n % 7 + 1}",
        activity_type="tool_use",
        tool_name="Edit",
        description=f"Edited parse_args to accept --state-dir ({n})",
        file_path=f"ap_actors/module_{n % 50}.py",
    )


def stamped_events(count: int) -> list[Event]:
    """``count`` events with ids, ts and source, as an Emitter would send them."""
    sessions = [new_id() for _ in range(EMITTERS)]
    now = time.time()
    return [
        stamp(activity(i % EMITTERS, i, sessions[i % EMITTERS]), source="bench", now=now)
        for i in range(count)
    ]


# --- processes ---------------------------------------------------------------------


class JournalProcess:
    """The journal as a real subprocess with ``tcp://127.0.0.1:*`` endpoints.

    Attributes:
        endpoints: the ready line, ``{"ingest", "bus", "replay", "log"}``.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, str] = {}

    def __enter__(self) -> JournalProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        argv = [
            sys.executable,
            "-m",
            "ap_actors.actors.journal",
            "--state-dir",
            str(self.state_dir),
            "--ingest",
            ANY_PORT,
            "--bus",
            ANY_PORT,
            "--replay",
            ANY_PORT,
            "--ready-fd",
            str(write_fd),
        ]
        log_path = self.state_dir / "journal.log"
        with open(log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            line = ready.readline()
        if not line:
            self.__exit__()
            raise RuntimeError(f"journal did not start: {log_path.read_text()[-2000:]}")
        self.endpoints = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used by the journal so far (all threads)."""
        t = psutil.Process(self.pid).cpu_times()
        return float(t.user + t.system)


def spawn_context() -> Any:
    import multiprocessing

    return multiprocessing.get_context("spawn")


def _check_alive(procs: Sequence[Any]) -> None:
    for p in procs:
        if p.exitcode not in (None, 0):
            raise RuntimeError(f"worker {p.name} exited with {p.exitcode}")


def pass_barrier(barrier: Barrier, procs: Sequence[Any], timeout: float = 120.0) -> None:
    """Wait at ``barrier`` with the workers; fail fast when one of them died first."""
    import threading

    waiter = threading.Thread(target=barrier.wait, daemon=True)
    waiter.start()
    deadline = time.monotonic() + timeout
    while waiter.is_alive():
        waiter.join(0.1)
        try:
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not reach the start barrier")
        except RuntimeError:
            barrier.abort()
            raise


def collect(
    results: Queue[dict[str, Any]], procs: Sequence[Any], timeout: float = 300.0
) -> list[dict[str, Any]]:
    """Return one result per worker; fail fast when one of them died without one."""
    import queue

    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=0.2))
        except queue.Empty:
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not report in time") from None
    return out


def join_all(procs: Sequence[Any], timeout: float = 60.0) -> None:
    """Join worker processes; raise if one failed."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.terminate()
            p.join()
            raise RuntimeError(f"worker {p.name} did not finish")
        if p.exitcode != 0:
            raise RuntimeError(f"worker {p.name} exited with {p.exitcode}")


# --- row 1: durable append through the journal ----------------------------------------


def _emitter_worker(
    ingest: str, index: int, count: int, barrier: Barrier, results: Queue[dict[str, Any]]
) -> None:
    import uvloop

    results.put(uvloop.run(_emit_load(ingest, index, count, barrier)))


async def _emit_load(ingest: str, index: int, count: int, barrier: Barrier) -> dict[str, Any]:
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
    rate: float  # events/s
    seconds: float
    journal_cpu: float  # journal CPU seconds / wall seconds
    emitters_cpu: float  # sum of emitter CPU seconds / wall seconds
    machine_busy: float  # share of all cores busy (not idle, not iowait) during the run
    resends: int


def busy_share(before: Any, after: Any) -> float:
    """Share of CPU time not idle between two ``psutil.cpu_times()`` readings."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total > 0 else float("nan")


def run_journal_append(tmp: Path, rep: int) -> AppendRun:
    """8 emitter processes append through a fresh journal (fsync on); verify the count."""
    ctx = spawn_context()
    state = tmp / f"append-{rep}"
    barrier = ctx.Barrier(EMITTERS + 1)
    results = ctx.Queue()
    with JournalProcess(state) as journal:
        procs = [
            ctx.Process(
                target=_emitter_worker,
                name=f"emitter-{i}",
                daemon=True,  # never outlive a failed run
                args=(journal.endpoints["ingest"], i, EVENTS_PER_EMITTER, barrier, results),
            )
            for i in range(EMITTERS)
        ]
        for p in procs:
            p.start()
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


# --- row 2: references: raw LMDB, SQLite -------------------------------------------


@dataclass
class StoredItem:
    """One event as the event log stores it: three keys and the record."""

    key: bytes  # seq, 8 bytes
    record: bytes  # msgpack record
    event_id: bytes
    session_key: bytes  # session id + NUL + seq
    session_id: str
    raw: bytes  # the event map


def stored_items(events: Sequence[Event]) -> list[StoredItem]:
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
                e.session_id,
                raw,
            )
        )
    return out


def run_raw_lmdb(tmp: Path, rep: int, items: Sequence[StoredItem]) -> float:
    """Events/s of the bare LMDB loop: one sync txn per 1,000 events, three puts each."""
    path = tmp / f"raw-lmdb-{rep}"
    env = lmdb.open(
        str(path), map_size=1 << 30, max_dbs=4, sync=True, metasync=True, readahead=False
    )
    events, ids, sessions = (env.open_db(n) for n in (b"events", b"ids", b"sessions"))
    start = time.perf_counter()
    for i in range(0, len(items), RAW_LMDB_BATCH):
        with env.begin(write=True) as txn:
            put = txn.put
            for it in items[i : i + RAW_LMDB_BATCH]:
                put(it.key, it.record, db=events, append=True)
                put(it.event_id, it.key, db=ids)
                put(it.session_key, b"", db=sessions)
    seconds = time.perf_counter() - start
    env.close()
    shutil.rmtree(path, ignore_errors=True)
    return len(items) / seconds


def run_sqlite(tmp: Path, rep: int, items: Sequence[StoredItem]) -> float:
    """Events/s of SQLite in WAL mode, synchronous=FULL, one commit per event."""
    import sqlite3

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


def bench_append(tmp: Path) -> list[Row]:
    items = stored_items(stamped_events(EMITTERS * EVENTS_PER_EMITTER))
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
            "raw LMDB loop, 1,000/txn, sync, 3 puts",
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


# --- row 3: emit -> subscriber latency ---------------------------------------------


def _subscriber_worker(
    bus: str, log_path: str, expected: int, ready: MpEvent, results: Queue[dict[str, Any]]
) -> None:
    import uvloop

    results.put(uvloop.run(_subscribe(bus, log_path, expected, ready)))


async def _subscribe(bus: str, log_path: str, expected: int, ready: MpEvent) -> dict[str, Any]:
    async def caught_up(head: int) -> None:
        ready.set()

    sub = Subscriber(bus, log_path=log_path, topics=["worker_activity"], on_caught_up=caught_up)
    latencies: list[float] = []
    to_journal: list[float] = []  # event ts -> the journal's appended_at
    stream = aiter(sub)
    try:
        async for record in stream:
            received = time.time()
            event = record.event
            if isinstance(event, WorkerActivity) and event.objective_id != WARMUP_OBJECTIVE:
                latencies.append(received - event.ts)
                to_journal.append(record.appended_at - event.ts)
                if len(latencies) >= expected:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return {"latencies": latencies, "to_journal": to_journal, "gaps_filled": sub.gaps_filled}


def _paced_emitter_worker(ingest: str, results: Queue[dict[str, Any]]) -> None:
    import uvloop

    results.put(uvloop.run(_paced_emit(ingest)))


async def _paced_emit(ingest: str) -> dict[str, Any]:
    """Emit one event per 1/LATENCY_RATE s on an absolute schedule, each stamped at send."""
    emitter = Emitter(ingest, source="bench-latency")
    session = new_id()
    period = 1 / LATENCY_RATE
    warmup = int(LATENCY_WARMUP_SECONDS * LATENCY_RATE)
    total = warmup + int(LATENCY_SECONDS * LATENCY_RATE)
    acks: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def emit(event: WorkerActivity, measured: bool) -> None:
        await emitter.emit(event)
        if measured:
            acks.append(time.time() - event.ts)

    start = time.monotonic()
    for n in range(total):
        delay = start + n * period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event = activity(
            0, n, session, ts=time.time(), objective_id=WARMUP_OBJECTIVE if n < warmup else ""
        )
        task = asyncio.create_task(emit(event, n >= warmup))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_in = time.monotonic() - start
    await asyncio.gather(*tasks)
    await emitter.close()
    return {"acks": acks, "rate": total / sent_in}


@dataclass
class LatencyRun:
    p50: float  # ms
    p99: float
    max: float
    ack_p50: float
    ack_p99: float
    to_journal_p50: float  # ms from the event's ts to the journal's appended_at
    rate: float
    gaps_filled: int


def run_latency(tmp: Path, rep: int) -> LatencyRun:
    ctx = spawn_context()
    expected = int(LATENCY_SECONDS * LATENCY_RATE)
    ready = ctx.Event()
    sub_results = ctx.Queue()
    emit_results = ctx.Queue()
    state = tmp / f"latency-{rep}"
    with JournalProcess(state) as journal:
        ep = journal.endpoints
        sub = ctx.Process(
            target=_subscriber_worker,
            name="subscriber",
            daemon=True,
            args=(ep["bus"], ep["log"], expected, ready, sub_results),
        )
        sub.start()
        if not ready.wait(timeout=60):
            sub.terminate()
            raise RuntimeError("the latency subscriber did not catch up")
        emitter = ctx.Process(
            target=_paced_emitter_worker,
            name="paced-emitter",
            args=(ep["ingest"], emit_results),
            daemon=True,
        )
        emitter.start()
        (emitted,) = collect(emit_results, [emitter], timeout=120)
        (received,) = collect(sub_results, [sub], timeout=60)
        join_all([emitter, sub])
    shutil.rmtree(state, ignore_errors=True)
    lat = sorted(x * 1000 for x in received["latencies"])
    acks = sorted(x * 1000 for x in emitted["acks"])
    return LatencyRun(
        percentile(lat, 50),
        percentile(lat, 99),
        lat[-1],
        percentile(acks, 50),
        percentile(acks, 99),
        median(received["to_journal"]) * 1000,
        emitted["rate"],
        received["gaps_filled"],
    )


def bench_latency(tmp: Path) -> list[Row]:
    runs = [run_latency(tmp, rep) for rep in range(LATENCY_REPS)]
    p50s, p99s = [r.p50 for r in runs], [r.p99 for r in runs]
    ms = "{:.2f}"
    common = (
        f"{LATENCY_REPS} runs of {LATENCY_SECONDS:g} s at"
        f" {median([r.rate for r in runs]):,.0f} events/s"
    )
    return [
        row(
            "emit -> subscriber latency p50",
            median(p50s),
            "ms",
            "<=",
            1.0,
            f"{spread(p50s, ms)}; {common}; emit->ack p50"
            f" {median([r.ack_p50 for r in runs]):.2f} ms; ts->journal appended_at p50"
            f" {median([r.to_journal_p50 for r in runs]):.2f} ms",
        ),
        row(
            "emit -> subscriber latency p99",
            median(p99s),
            "ms",
            "<=",
            5.0,
            f"{spread(p99s, ms)}; emit->ack p99 {median([r.ack_p99 for r in runs]):.2f} ms;"
            f" gaps filled {sum(r.gaps_filled for r in runs)}",
        ),
        row(
            "emit -> subscriber latency max",
            max(r.max for r in runs),
            "ms",
            None,
            None,
            spread([r.max for r in runs], ms),
        ),
    ]


# --- row 4: replay -----------------------------------------------------------------


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


async def _replay_all(bus: str, replay: str) -> float:
    sub = Subscriber(bus, log_path=None, replay=replay)
    stream = aiter(sub)
    start = time.perf_counter()
    n = 0
    try:
        async for record in stream:
            n += 1
            if record.seq >= REPLAY_RECORDS:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    if n != REPLAY_RECORDS:
        raise RuntimeError(f"replayed {n} records, expected {REPLAY_RECORDS}")
    return n / seconds


def bench_replay(tmp: Path) -> list[Row]:
    import uvloop

    state = tmp / "replay"
    log_dir = state / "eventlog"
    fill = fill_log(log_dir, stamped_events(REPLAY_RECORDS))
    direct = [read_all(log_dir) for _ in range(REPLAY_REPS)]
    with JournalProcess(state) as journal:
        ep = journal.endpoints
        remote = [uvloop.run(_replay_all(ep["bus"], ep["replay"])) for _ in range(REPLAY_REPS)]
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


# --- row 5: memory of an idle actor ------------------------------------------------


class IdleActor(Actor[int]):
    """The smallest useful actor: counts worker errors, reacts to nothing."""

    topics = ("worker_error",)

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Event) -> int:
        return state + 1


ACTOR_MODULE = "bench_idle_actor"
MESH_CONFIG = f"""\
[mesh]
ingest = "{ANY_PORT}"
bus = "{ANY_PORT}"
replay = "{ANY_PORT}"

[actors.idle]
class = "{ACTOR_MODULE}:IdleActor"
"""


def write_actor_module(directory: Path) -> None:
    """Write :class:`IdleActor` alone into ``<directory>/bench_idle_actor.py``.

    The actor process imports that module instead of this script: compiling and running
    this whole file would add about 2 MB to the RSS being measured.
    """
    header = (
        "from __future__ import annotations\n\n"
        "from ap_actors.actor import Actor\nfrom ap_actors.events import Event\n\n\n"
    )
    (directory / f"{ACTOR_MODULE}.py").write_text(header + inspect.getsource(IdleActor))


def wait_idle(proc: psutil.Process, timeout: float = 10.0) -> None:
    """Wait until ``proc`` used under 1 ms of CPU in each of two 0.25 s windows."""
    deadline = time.monotonic() + timeout
    quiet = 0
    last = sum(proc.cpu_times()[:2])
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(proc.cpu_times()[:2])
        quiet = quiet + 1 if now - last < 0.001 else 0
        last = now


def memory_mb(proc: psutil.Process) -> tuple[float, float]:
    """Median RSS and USS of ``proc`` over a few samples, in MB (10^6 bytes)."""
    rss, uss = [], []
    for _ in range(MEMORY_SAMPLES):
        info = proc.memory_full_info()
        rss.append(info.rss / 1e6)
        uss.append(info.uss / 1e6)
        time.sleep(0.1)
    return median(rss), median(uss)


def bench_memory(tmp: Path) -> list[Row]:
    state = tmp / "mesh"
    state.mkdir(parents=True)
    config = state / "ap.toml"
    config.write_text(MESH_CONFIG)
    code = tmp / "actor-code"
    code.mkdir()
    write_actor_module(code)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    ap = str(Path(sys.executable).with_name("ap"))
    common = ["--state-dir", str(state)]
    up = subprocess.run(
        [ap, "up", "--detach", *common, "--config", str(config)],
        cwd=tmp,
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        raise RuntimeError(f"`ap up` failed ({up.returncode}): {up.stderr.strip()}")
    try:
        from ap_actors.supervisor import read_status

        status = read_status(state)
        pids = {a.name: a.pid for a in status.actors} if status else {}
        if not pids.get("idle") or not pids.get("journal"):
            raise RuntimeError(f"actors not running: {pids}")
        actor, journal = psutil.Process(pids["idle"]), psutil.Process(pids["journal"])
        supervisor = actor.parent()
        for p in (actor, journal):
            wait_idle(p)
        a_rss, a_uss = memory_mb(actor)
        j_rss, j_uss = memory_mb(journal)
        s_rss = supervisor.memory_info().rss / 1e6 if supervisor else float("nan")
    finally:
        subprocess.run(
            [ap, "down", *common],
            cwd=tmp,
            env=env,
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
        )
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(code, ignore_errors=True)
    return [
        row(
            "idle actor process RSS",
            a_rss,
            "MB",
            "<=",
            40,
            f"USS {a_uss:.1f} MB; started by `ap up`, after recovery, CPU quiet;"
            f" supervisor RSS {s_rss:.1f} MB",
        ),
        row("journal process RSS (idle)", j_rss, "MB", None, None, f"USS {j_uss:.1f} MB"),
    ]


# --- report ------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    for p in psutil.disk_partitions(all=True):
        if str(path).startswith(p.mountpoint) and len(p.mountpoint) > len(best):
            best, kind = p.mountpoint, f"{p.fstype} on {p.device} ({p.mountpoint})"
    return kind


def machine_info(tmp: Path) -> dict[str, Any]:
    import sqlite3

    import uvloop
    import zmq

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    before = psutil.cpu_times()
    time.sleep(1.0)
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "filesystem": _filesystem(tmp),
        "libzmq": zmq.zmq_version(),
        "pyzmq": zmq.__version__,
        "lmdb": ".".join(map(str, lmdb.version())),
        "py-lmdb": lmdb.__version__,
        "msgspec": msgspec.__version__,
        "uvloop": uvloop.__version__,
        "sqlite": sqlite3.sqlite_version,
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        # The package as measured: uncommitted changes to it are part of the result.
        "package_changes": git("status", "--porcelain", "--", "ap_actors").split("\n")[:-1],
        # Share of the machine busy in the second before the run: other work skews it all.
        "busy_before_run": round(busy_share(before, psutil.cpu_times()), 3),
    }


def print_table(rows: Sequence[Row], machine: dict[str, Any], seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"make bench ({seconds:.0f} s) on {machine['cpus']} x {machine['cpu']},"
        f" {machine['filesystem']}",
        title_justify="left",
    )
    table.add_column("benchmark", overflow="fold")
    table.add_column("value", justify="right")
    for name in ("unit", "target"):
        table.add_column(name)
    table.add_column("met", justify="center")
    table.add_column("notes", overflow="fold")
    for r in rows:
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[r.meets_target]
        value = f"{r.value:,.2f}" if abs(r.value) < 100 else f"{r.value:,.0f}"
        table.add_row(r.name, value, r.unit, r.target or "-", met, r.notes)
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """``bench/tmp-<pid>/`` on the repository's disk, removed afterwards."""
    path = ROOT / "bench" / f"tmp-{os.getpid()}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_all(
    tmp: Path, benches: Sequence[tuple[str, Callable[[Path], list[Row]]]], rows: list[Row]
) -> dict[str, Any]:
    """Run every benchmark in ``tmp``, appending to ``rows``; return the machine info."""
    machine = machine_info(tmp)
    if machine["busy_before_run"] > BUSY_WARNING:
        print(
            f"bench: warning: the machine was {machine['busy_before_run']:.0%} busy before"
            " the run; other processes will skew the numbers",
            file=sys.stderr,
        )
    for title, bench in benches:
        t0 = time.monotonic()
        print(f"bench: {title} ...", file=sys.stderr, flush=True)
        rows += bench(tmp)
        print(f"bench: {title} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return machine


def main() -> int:
    """Run the suite, print the table, write results.json; 1 when a benchmark failed."""
    started = time.time()
    benches: list[tuple[str, Callable[[Path], list[Row]]]] = [
        ("append throughput (journal, raw LMDB, SQLite)", bench_append),
        ("emit -> subscriber latency", bench_latency),
        ("log replay", bench_replay),
        ("idle memory", bench_memory),
    ]
    rows: list[Row] = []
    try:
        with scratch_dir() as tmp:
            machine = run_all(tmp, benches, rows)
    except (RuntimeError, ApError, subprocess.SubprocessError) as e:
        print(f"bench: failed: {e}", file=sys.stderr)
        return 1
    seconds = time.time() - started
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": machine,
                "started_at": started,
                "duration_s": round(seconds, 1),
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    print_table(rows, machine, seconds)
    print(f"results written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
