"""Emit -> subscriber latency: a paced emitter, one catch-up subscriber, a fresh journal.

Latency is the subscriber's receive time minus ``event.ts``, stamped at send; both
processes run on this machine, so they share one clock.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ap_actors.bus import Emitter, Subscriber
from ap_actors.events import WorkerActivity, new_id
from benchmarks.common import Row, activity, median, percentile, row, spread, stream_of
from benchmarks.processes import (
    JournalProcess,
    Result,
    collect,
    join_all,
    spawn_context,
    start_worker,
)

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as MpEvent

LATENCY_RATE = 1_000  # events/s
LATENCY_SECONDS = 5.0
LATENCY_WARMUP_SECONDS = 0.5  # paced but not measured: connections and caches settle
LATENCY_REPS = 3
WARMUP_OBJECTIVE = "warmup"  # objective_id of the events that are not measured


async def subscribe(bus: str, log_path: str, expected: int, ready: MpEvent) -> Result:
    """The subscriber process: set ``ready`` once caught up, then time ``expected`` events."""

    async def caught_up(head: int) -> None:
        ready.set()

    sub = Subscriber(bus, log_path=log_path, topics=["worker_activity"], on_caught_up=caught_up)
    latencies: list[float] = []
    to_journal: list[float] = []  # event ts -> the journal's appended_at
    async with aclosing(stream_of(sub)) as stream:
        async for record in stream:
            received = time.time()
            event = record.event
            if isinstance(event, WorkerActivity) and event.objective_id != WARMUP_OBJECTIVE:
                latencies.append(received - event.ts)
                to_journal.append(record.appended_at - event.ts)
                if len(latencies) >= expected:
                    break
    return {"latencies": latencies, "to_journal": to_journal, "gaps_filled": sub.gaps_filled}


async def paced_emit(ingest: str) -> Result:
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
    """One rep, in ms."""

    p50: float
    p99: float
    max: float
    ack_p50: float
    ack_p99: float
    to_journal_p50: float  # from the event's ts to the journal's appended_at
    rate: float  # events/s actually sent
    gaps_filled: int


def run_latency(tmp: Path, rep: int) -> LatencyRun:
    """One rep: a fresh journal, the subscriber caught up, then the paced emitter."""
    ctx = spawn_context()
    expected = int(LATENCY_SECONDS * LATENCY_RATE)
    ready = ctx.Event()
    sub_results = ctx.Queue()
    emit_results = ctx.Queue()
    state = tmp / f"latency-{rep}"
    with JournalProcess(state) as journal:
        ep = journal.endpoints
        sub = start_worker(
            ctx, "subscriber", sub_results, subscribe, ep["bus"], ep["log"], expected, ready
        )
        if not ready.wait(timeout=60):
            sub.terminate()
            raise RuntimeError("the latency subscriber did not catch up")
        emitter = start_worker(ctx, "paced-emitter", emit_results, paced_emit, ep["ingest"])
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
    """Rows: p50, p99 (medians of the per-run values) and max (over all runs)."""
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
