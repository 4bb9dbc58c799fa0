"""Resident memory of each kind of actor process while a session runs at load.

The idle figure is :mod:`benchmarks.memory`'s; this is the same mesh at work. ``ap up
--detach`` (pipeline on, every endpoint on a free port, :class:`benchmarks.mesh.ApMesh`)
with a team of ``WORKERS`` ``command`` workers; a git repository with one commit. Each
run is a session (``ap submit --plan --approve``) of one objective per worker, all in
one wave, each running ``busy_agent.py``: lines at random times (a Poisson process,
independent per agent), ``RATE`` lines/s on average for ``SECONDS`` s once the gate
opens (:mod:`benchmarks.team_load`), so the log monitors parse and emit about
``WORKERS x RATE`` lines/s together, the journal appends them (fsync), and the
broadcaster, the reporter and the scheduler fold them. Once every worker has started
its agent, a client process (``spawn``, uvloop, aiohttp) opens ``CLIENTS`` WebSockets
on the session's page (``/ws?since=0&session=<id>``), each reading and decoding every
frame; when they are caught up, the bench samples every actor once ("before"), opens
the gate, and then samples every actor process every ``SAMPLE_S`` s until the session
has ended and every log monitor has read its transcript to the end (``transcript_read``),
plus one sample after. A sample is ``psutil.Process.memory_full_info()``: RSS; USS
(the pages only this process holds; the shared libraries are in RSS but not USS); and
RSS - ``shared`` (file-backed and shmem pages), the anonymous memory. After the last
sample, ``memory_maps()`` gives how much of each RSS is the event log's LMDB file
(``data.mdb``) mapped read-only: pages of the page cache, shared by every process that
reads the log, counted in the RSS of each process that touched them.

Per kind (journal, planner, scope_validator, scheduler, reporter, broadcaster, worker,
log_monitor): the largest RSS of any process of that kind in any sample of any run;
the target is 40 MB, as for the idle actor. ``REPS`` sessions in one mesh, one after
the other, so memory that grows with each session shows in the per-run figures; the
notes also give each kind's RSS in the fresh mesh before the first session (once every
actor is CPU-quiet). The agents' own processes are not measured.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ap_actors.eventlog import EventLog
from ap_actors.events import SessionCompleted, TranscriptRead, WorkerActivity, WorkerStarted
from benchmarks.common import Row, median, row, spread
from benchmarks.line_to_browser import make_repo
from benchmarks.machine import busy_share
from benchmarks.memory import wait_idle
from benchmarks.mesh import ApMesh
from benchmarks.processes import collect, join_all, spawn_context, start_worker
from benchmarks.team_load import (
    ENDED,
    KINDS,
    actor_kind,
    dashboard_readers,
    submit_team,
    team_toml,
    wait_count,
)

WORKERS = 4
RATE = 250.0  # lines/s per worker: 1,000 lines/s together
SECONDS = 10.0
CLIENTS = 3
SAMPLE_S = 0.5
REPS = 2
TARGET_MB = 40.0

Sample = dict[str, tuple[float, float, float]]  # actor name -> (RSS, USS, anonymous), MB
RSS, USS, ANON = 0, 1, 2


def sample(procs: dict[str, psutil.Process]) -> Sample:
    """RSS, USS and anonymous RSS of every process, MB (10^6 bytes); a process gone is
    left out."""
    out: Sample = {}
    for name, p in procs.items():
        try:
            info = p.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        out[name] = (info.rss / 1e6, info.uss / 1e6, (info.rss - info.shared) / 1e6)
    return out


def log_mapped(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """Per kind, the largest RSS of the event log's ``data.mdb`` mapping, MB."""
    out: dict[str, float] = {}
    for name, p in procs.items():
        try:
            maps = p.memory_maps(grouped=True)
        except psutil.NoSuchProcess:
            continue
        mapped = sum(m.rss for m in maps if m.path.endswith("data.mdb")) / 1e6
        kind = actor_kind(name)
        out[kind] = max(out.get(kind, 0.0), mapped)
    return out


@dataclass
class MemoryRun:
    """One session at load; MB per kind."""

    before: dict[str, float]  # largest RSS per kind just before the gate opened
    rss: dict[str, float]  # largest RSS per kind over the run's samples
    uss: dict[str, float]  # largest USS per kind
    anon: dict[str, float]  # largest anonymous RSS per kind
    mapped: dict[str, float]  # largest RSS of the log's LMDB mapping per kind, at the end
    samples: int
    activities: int  # worker_activity events of the session in the log
    completed: bool  # the session ended with session_completed
    delivered: int  # messages the WebSocket clients received together
    resyncs: int
    machine_busy: float  # from the gate to the last sample


def largest(samples: list[Sample], index: int) -> dict[str, float]:
    """Per kind, the largest value (``RSS``, ``USS``, ``ANON``) over every process and
    sample."""
    out: dict[str, float] = {}
    for s in samples:
        for name, values in s.items():
            kind = actor_kind(name)
            out[kind] = max(out.get(kind, 0.0), values[index])
    return out


def count_activities(mesh: ApMesh, session_id: str) -> int:
    with EventLog(mesh.info["log"], readonly=True) as log:
        return sum(isinstance(r.event, WorkerActivity) for r in log.read(0, session_id=session_id))


def run_once(mesh: ApMesh, repo: Path, work: Path, rep: int) -> MemoryRun:
    """One session: readers attached, gate opened, samples until every transcript is read."""
    gate = work / f"gate-{rep}"
    plan = work / f"plan-{rep}.json"
    session_id = submit_team(mesh, repo, plan, gate, WORKERS, SECONDS, RATE)
    wait_count(mesh, session_id, WorkerStarted, WORKERS)
    procs = {n: p for n, p in mesh.processes().items() if actor_kind(n) in KINDS}
    ctx = spawn_context()
    results, ready, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    readers = start_worker(
        ctx, "dashboard-readers", results, dashboard_readers, mesh.dashboard, CLIENTS,
        session_id, ready, stop,
    )  # fmt: skip
    if not ready.wait(60):
        raise RuntimeError("the WebSocket clients did not catch up")
    before = largest([sample(procs)], RSS)
    machine0 = psutil.cpu_times()
    gate.touch()

    def finished() -> bool:
        wait_count(mesh, session_id, TranscriptRead, WORKERS, timeout=SECONDS + 120)
        end = wait_count(mesh, session_id, ENDED, 1, timeout=60)
        return isinstance(end.event, SessionCompleted)

    samples: list[Sample] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        done = pool.submit(finished)
        while not done.done():
            samples.append(sample(procs))
            time.sleep(SAMPLE_S)
        completed = done.result()
    samples.append(sample(procs))
    machine1 = psutil.cpu_times()
    mapped = log_mapped(procs)
    stop.set()
    (got,) = collect(results, [readers], timeout=60)
    join_all([readers])
    return MemoryRun(
        before=before,
        rss=largest(samples, RSS),
        uss=largest(samples, USS),
        anon=largest(samples, ANON),
        mapped=mapped,
        samples=len(samples),
        activities=count_activities(mesh, session_id),
        completed=completed,
        delivered=got["messages"],
        resyncs=got["resyncs"],
        machine_busy=busy_share(machine0, machine1),
    )


def bench_busy_memory(tmp: Path) -> list[Row]:
    """Rows: the largest RSS of each actor kind at load (target 40 MB each).

    Raises:
        RuntimeError: a session did not complete, or an actor kind was never sampled.
    """
    work = tmp / "busy-memory"
    work.mkdir()
    repo = make_repo(work / "repo")
    with ApMesh(work / "state", team_toml(WORKERS)) as mesh:
        procs = {n: p for n, p in mesh.processes().items() if actor_kind(n) in KINDS}
        for p in procs.values():
            wait_idle(p)
        fresh = largest([sample(procs)], RSS)
        runs = [run_once(mesh, repo, work, rep) for rep in range(REPS)]
    for r in runs:
        if not r.completed:
            raise RuntimeError("busy memory: a session did not complete")
        if missing := [k for k in KINDS if k not in r.rss]:
            raise RuntimeError(f"busy memory: no sample of {', '.join(missing)}")
    mb, share = "{:.1f}", "{:.0%}"
    load = (
        f"{WORKERS} command workers x {RATE:,.0f} lines/s for {SECONDS:g} s, {CLIENTS}"
        f" WebSocket clients on the session; {len(runs)} sessions, samples"
        f" {spread([r.samples for r in runs])} every {SAMPLE_S:g} s; activities in the log"
        f" {spread([r.activities for r in runs])} (about {WORKERS * RATE * SECONDS:,.0f} lines);"
        " messages"
        f" to the clients {spread([r.delivered for r in runs])}, resyncs"
        f" {sum(r.resyncs for r in runs)}; machine {spread([r.machine_busy for r in runs], share)}"
        " busy"
    )
    rows = []
    for i, kind in enumerate(KINDS):
        rss = [r.rss[kind] for r in runs]
        rows.append(
            row(
                f"busy RSS, {kind} process",
                max(rss),
                "MB",
                "<=",
                TARGET_MB,
                f"largest of any sample; per run {spread(rss, mb)}; USS"
                f" {spread([r.uss[kind] for r in runs], mb)}; anonymous"
                f" {spread([r.anon[kind] for r in runs], mb)}; the log's LMDB map at the end"
                f" {spread([r.mapped[kind] for r in runs], mb)}; before the gate"
                f" {spread([r.before[kind] for r in runs], mb)}; fresh mesh {fresh[kind]:.1f} MB"
                + (f"; {load}" if i == 0 else f"; median RSS over runs {median(rss):.1f}"),
            )
        )
    return rows
