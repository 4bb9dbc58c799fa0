"""Many WebSocket clients of the dashboard at 1,000 events/s, with and without a stalled one.

One mesh (``ap up --detach``, pipeline on, no team): its broadcaster is the server.
Clients run in 2-4 spawn processes (:mod:`benchmarks.ws_clients`), each an asyncio loop
(uvloop) with one aiohttp ``ClientSession`` and a ``ws_connect`` per client, connected
with ``since`` = the log's last seq and no session filter, so every event of the log
must reach every client as seq last + 1. Once every client has its ``caught_up``,
another process emits small ``worker_activity`` events with an ``Emitter``, paced at
``RATE`` events/s on an absolute schedule (0.5 s unmeasured, then ``SECONDS``
measured), each with ``ts = time.time()`` at emit.

Per client: events received, gaps, duplicates, resyncs, and the latency (receive time -
``ts``; one machine, one clock) of the measured events whose seq is a multiple of
``LAT_SAMPLE`` (500 per client and run). A client *kept up* when it had every event, in
order, with no resync, by ``DRAIN_S`` after the emitter's last ack. Latency percentiles
are over the clients that kept up. When none did, they are over every client, an event
it had not received by then counting as (time it stopped reading - ``ts``): a lower
bound, and the row says "at least". The table gives medians of the runs.

The clients ask for permessage-deflate, as Chromium does; the broadcaster declines it
(``compress=False``: compressing every frame once per client cost more than the rest of
the send). With a stalled client, one more WebSocket is
opened over a raw socket (the handshake, no extension) and never read; the runs with
and without it are interleaved. The broadcaster's resyncs come from its ``/metrics``.
"""

from __future__ import annotations

import array
import asyncio
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from ap_actors.bus import Emitter
from ap_actors.eventlog import EventLog
from ap_actors.events import WorkerActivity, new_id
from benchmarks.common import Row, median, percentile, row, spread
from benchmarks.machine import busy_share
from benchmarks.memory import wait_idle
from benchmarks.mesh import ApMesh
from benchmarks.processes import (
    Result,
    collect,
    join_all,
    pass_barrier,
    spawn_context,
    start_worker,
)
from benchmarks.ws_clients import DRAIN_S, LAT_SAMPLE, WARMUP, ws_clients

RATE = 1_000  # events/s
SECONDS = 5.0  # measured
WARMUP_SECONDS = 0.5  # paced, not measured
# Stalled / not stalled p99, "does not move the others' p99": within the spread of
# identical runs on the 2-core VM (single runs of 10 clients: p99 5.3 to 42.5 ms).
P99_RATIO_MAX = 1.5


@dataclass(frozen=True)
class Setup:
    """One configuration of clients."""

    clients: int
    processes: int
    deflate: bool  # the clients ask for permessage-deflate, as Chromium does
    stall: tuple[bool, ...]  # run without (False) and/or with (True) a stalled client
    target: bool  # the 1,000 clients: the kept-up row carries the target
    reps: int = 2  # runs of each side

    @property
    def name(self) -> str:
        return f"ws {self.clients:,} clients"


# The 1,000 clients, as Chromium connects and as aiohttp does by default; then
# client counts this machine serves at 1,000 events/s: 100 at its limit, and 10, whose
# p99 is steady enough (3 runs a side) to show whether a stalled client moves it.
SETUPS = [
    Setup(1_000, 4, deflate=True, stall=(False, True), target=True),
    Setup(100, 2, deflate=True, stall=(False,), target=False),
    Setup(10, 2, deflate=True, stall=(False, True), target=False, reps=3),
]


# --- the emitter process ------------------------------------------------------------


async def paced_emit(ingest: str, rate: float, seconds: float) -> Result:
    """Emit small activities at ``rate``/s on an absolute schedule, ``ts`` stamped at emit.

    Returns the last seq, the count, the rate achieved and ``ts`` by seq of the measured
    events whose seq is a multiple of ``LAT_SAMPLE``.
    """
    emitter = Emitter(ingest, source="bench-ws")
    session = new_id()
    warmup = int(WARMUP_SECONDS * rate)
    total = warmup + int(seconds * rate)
    seqs: list[int] = []
    sampled: dict[int, float] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def emit(event: WorkerActivity) -> None:
        seq = await emitter.emit(event)
        seqs.append(seq)
        if event.objective_id != WARMUP and not seq % LAT_SAMPLE:
            sampled[seq] = event.ts

    start = time.monotonic()
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event = WorkerActivity(
            session_id=session,
            ts=time.time(),
            worker_id="w1",
            objective_id=WARMUP if n < warmup else "o1",
            activity_type="tool_use",
            tool_name="edit",
            description=f"n={n}",
        )
        task = asyncio.create_task(emit(event))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_in = time.monotonic() - start
    await asyncio.gather(*tasks)
    await emitter.close()
    return {"last_seq": max(seqs), "count": len(seqs), "rate": total / sent_in, "ts": sampled}


# --- one run ------------------------------------------------------------------------


@dataclass
class FanoutRun:
    """One run; latencies in ms."""

    stalled: bool
    kept_up: int
    complete: int  # clients with the last event by the deadline (in order or not)
    gaps: int
    duplicates: int
    resyncs_clients: int  # resyncs the readers were sent
    resyncs_server: float  # ap_ws_resyncs_total, increase over the run
    stalled_unread: int  # bytes left unread in the stalled client's socket at the end
    p50: float  # over the clients that kept up (lower bounds over all when none did)
    p99: float
    max: float
    lower_bound: bool  # none kept up: the percentiles are lower bounds over all clients
    behind: list[float]  # s of events each client had not received when it stopped
    delivered: float  # log events received per second, all readers, until they stopped
    rate: float  # events/s emitted
    broadcaster_cpu: float  # share of one core
    clients_cpu: float  # client processes together, share of one core
    machine_busy: float


def metric(url: str, name: str) -> float:
    """The sample ``name`` (no labels) of the dashboard's ``/metrics``."""
    with urllib.request.urlopen(url + "metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise RuntimeError(f"no {name} in /metrics")


def settle(mesh: ApMesh, timeout: float = 30.0) -> None:
    """Wait until the previous run's clients are gone and the broadcaster is idle."""
    deadline = time.monotonic() + timeout
    while metric(mesh.dashboard, "ap_ws_clients") > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the previous run's WebSocket clients are still connected")
        time.sleep(0.05)
    wait_idle(mesh.process("broadcaster"), timeout=max(0.5, deadline - time.monotonic()))


def latencies(out: Sequence[Result], sent: Result, kept_up: int) -> list[float]:
    """The sorted latencies (ms) of the clients that kept up; with none, of every client,
    an event not received counting as (the time its process stopped reading - ``ts``)."""
    values = array.array("d")
    for o in out:
        values.frombytes(o["lat_kept" if kept_up else "lat_all"])
    if not kept_up:
        for o in out:
            for last in o["last_seqs"]:
                values.extend(o["stopped"] - ts for seq, ts in sent["ts"].items() if seq > last)
    return sorted(x * 1000 for x in values)


def run_fanout(mesh: ApMesh, setup: Setup, stall: bool) -> FanoutRun:
    """One run: connect the clients, emit, collect, check the log's count."""
    ctx = spawn_context()
    barrier = ctx.Barrier(setup.processes + 1)
    emitted = ctx.Event()
    final_seq = ctx.Value("q", 0)
    results, emit_results = ctx.Queue(), ctx.Queue()
    settle(mesh)
    with EventLog(mesh.info["log"], readonly=True) as log:
        since = log.last_seq()
    broadcaster = mesh.process("broadcaster")
    resyncs0 = metric(mesh.dashboard, "ap_ws_resyncs_total")
    procs = [
        start_worker(
            ctx,
            f"ws-clients-{i}",
            results,
            ws_clients,
            mesh.dashboard,
            setup.clients // setup.processes,
            since,
            setup.deflate,
            stall and i == 0,
            barrier,
            emitted,
            final_seq,
        )
        for i in range(setup.processes)
    ]
    pass_barrier(barrier, procs)
    start, start_wall = time.monotonic(), time.time()
    cpu0, machine0 = sum(broadcaster.cpu_times()[:2]), psutil.cpu_times()
    emitter = start_worker(
        ctx, "ws-emitter", emit_results, paced_emit, mesh.info["ingest"], RATE, SECONDS
    )
    (sent,) = collect(emit_results, [emitter], timeout=60)
    final_seq.value = sent["last_seq"]
    emitted.set()
    out = collect(results, procs, timeout=DRAIN_S + 60)
    wall = time.monotonic() - start
    cpu1, machine1 = sum(broadcaster.cpu_times()[:2]), psutil.cpu_times()
    join_all([emitter, *procs])
    if sent["last_seq"] - since != sent["count"]:
        raise RuntimeError(f"{sent['count']} events emitted, the log grew from {since}")
    kept_up = sum(o["kept_up"] for o in out)
    lat = latencies(out, sent, kept_up)
    final = sent["last_seq"]
    return FanoutRun(
        stalled=stall,
        kept_up=kept_up,
        complete=sum(o["complete"] for o in out),
        gaps=sum(o["gaps"] for o in out),
        duplicates=sum(o["duplicates"] for o in out),
        resyncs_clients=sum(o["resyncs"] for o in out),
        resyncs_server=metric(mesh.dashboard, "ap_ws_resyncs_total") - resyncs0,
        stalled_unread=sum(o["stalled_unread"] for o in out),
        p50=percentile(lat, 50),
        p99=percentile(lat, 99),
        max=lat[-1],
        lower_bound=not kept_up,
        behind=[(final - last) / RATE for o in out for last in o["last_seqs"]],
        delivered=sum(o["received"] for o in out) / (max(o["stopped"] for o in out) - start_wall),
        rate=sent["rate"],
        broadcaster_cpu=(cpu1 - cpu0) / wall,
        clients_cpu=sum(o["cpu"] for o in out) / wall,
        machine_busy=busy_share(machine0, machine1),
    )


# --- the rows -----------------------------------------------------------------------


def detail(runs: list[FanoutRun]) -> str:
    """The notes of a p99 row: every count of its runs."""
    ms = "{:.1f}"
    over = ""
    if any(r.lower_bound for r in runs):
        over = (
            "; AT LEAST: no client kept up, so over every client, an event not received"
            " counting as (time reading stopped - ts)"
        )
    unread = ""
    if any(r.stalled for r in runs):
        unread = (
            f"; the stalled client left {spread([r.stalled_unread / 1e3 for r in runs])} kB"
            " unread in its socket"
        )
    return (
        f"receive - ts{over}; {spread([r.p99 for r in runs], ms)} ms; p50"
        f" {spread([r.p50 for r in runs], ms)} ms; max {max(r.max for r in runs):,.0f} ms;"
        f" resyncs sent {sum(r.resyncs_clients for r in runs)}, counted by the server"
        f" {sum(r.resyncs_server for r in runs):.0f}{unread}; broadcaster CPU"
        f" {median([r.broadcaster_cpu for r in runs]):.0%} of a core, client processes"
        f" {median([r.clients_cpu for r in runs]):.0%}, machine"
        f" {median([r.machine_busy for r in runs]):.0%} busy"
    )


def setup_rows(setup: Setup, runs: list[FanoutRun]) -> list[Row]:
    """Kept up, the p99 without and with the stalled client, and their ratio."""
    free = [r for r in runs if not r.stalled]
    stalled = [r for r in runs if r.stalled]
    kept = [r.kept_up for r in runs]
    delivered = median([r.delivered for r in runs])
    behind = sorted(b for r in runs for b in r.behind)
    op, bound = (">=", setup.clients) if setup.target else (None, None)

    def p99_name(rs: list[FanoutRun], side: str) -> str:
        at_least = " (at least)" if any(r.lower_bound for r in rs) else ""
        return f"{setup.name}: p99{at_least}, {side}"

    rows = [
        row(
            f"{setup.name}: kept up at {RATE:,} events/s",
            min(kept),
            "clients",
            op,
            bound,
            f"fewest of {len(runs)} runs; {spread(kept)}; complete"
            f" {spread([r.complete for r in runs])}; delivered {delivered:,.0f} events/s to"
            f" all clients together = {delivered / setup.clients:,.0f} per client; emitted"
            f" {median([r.rate for r in runs]):,.0f} events/s for {SECONDS:g} s;"
            f" {setup.processes} client processes; when they stopped reading the clients"
            f" were behind by p50 {percentile(behind, 50):.2f} s, max {behind[-1]:.2f} s of"
            " events",
        ),
        row(
            p99_name(free, "no stalled client"),
            median([r.p99 for r in free]),
            "ms",
            None,
            None,
            detail(free),
        ),
    ]
    if stalled:
        p99_free, p99_stalled = median([r.p99 for r in free]), median([r.p99 for r in stalled])
        rows += [
            row(
                p99_name(stalled, "one stalled client"),
                p99_stalled,
                "ms",
                None,
                None,
                detail(stalled),
            ),
            row(
                f"{setup.name}: p99 stalled / not stalled",
                p99_stalled / p99_free,
                "x",
                "<=",
                P99_RATIO_MAX,
                f"medians of {len(stalled)} and {len(free)} runs, interleaved; rep by rep"
                f" {spread([s.p99 / f.p99 for f, s in zip(free, stalled, strict=True)], '{:.2f}')}",
            ),
        ]
    return rows


def bench_ws_fanout(tmp: Path) -> list[Row]:
    """Rows per setup of SETUPS, then gaps and duplicates over every run."""
    runs: dict[Setup, list[FanoutRun]] = {s: [] for s in SETUPS}
    with ApMesh(tmp / "ws-fanout") as mesh:
        for rep in range(max(s.reps for s in SETUPS)):
            for setup in (s for s in SETUPS if rep < s.reps):
                # Without the stalled client first, then with it; the other way round in
                # the next rep, so neither side always follows the heavier setup.
                for stall in setup.stall if rep % 2 == 0 else setup.stall[::-1]:
                    runs[setup].append(run_fanout(mesh, setup, stall))
    rows: list[Row] = []
    for setup in SETUPS:
        rows += setup_rows(setup, runs[setup])
    every = [r for rs in runs.values() for r in rs]
    rows.append(
        row(
            "ws gaps + duplicates, every client of every run",
            sum(r.gaps + r.duplicates for r in every),
            "",
            "<=",
            0,
            f"gaps {sum(r.gaps for r in every)}, duplicates {sum(r.duplicates for r in every)}"
            f" over {len(every)} runs: each log event must reach each reading client once,"
            " as seq last + 1",
        )
    )
    return rows
