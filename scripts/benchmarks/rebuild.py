"""Actor state rebuild: a restarted reporter folding a 1,000,000-event log, with and
without a snapshot.

The log is what a busy mesh leaves behind: ``REBUILD_SESSIONS`` sessions, run
``CONCURRENT`` at a time (their events interleaved), each with its request, analysis,
plan, validation, approval, two waves of objectives and, mostly, the agents'
``worker_activity`` (tool calls, commands, messages) with periodic ``worker_metrics``;
all but the last few sessions ended and got their three reports.

The actor is the reporter (:class:`~ap_actors.actors.reporter.Reporter`): like the
broadcaster it folds every event into :class:`~ap_actors.projections.Sessions`
(``topics = ()``), so it has the biggest state of the mesh (every session with its
workers' cards and activity feeds); the scheduler and the workers skip
``worker_activity``. Unlike the broadcaster it binds no HTTP server, so the time
measured is the rebuild. One rebuild = from constructing the actor (its snapshot, if
any, is loaded there) to its ready callback, which runs once the state is caught up to
the log's head and ``on_recovered`` is done (nothing to write: every ended session has
its reports). A real journal process serves the mesh; the history is read from the LMDB
files as actors on the journal's machine do.

Run alone: ``.venv/bin/python scripts/benchmarks/rebuild.py``.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop

from ap_actors.actor import SNAPSHOT_EVERY
from ap_actors.actors.reporter import Reporter
from ap_actors.bus import Emitter
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    ActivityType,
    AnalysisCompleted,
    Event,
    Objective,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveStarted,
    PlanApproved,
    PlanProposed,
    ReportWritten,
    RequestSubmitted,
    ScopeValidated,
    SessionCompleted,
    TranscriptRead,
    WaveCompleted,
    WaveMerged,
    WaveStarted,
    WorkerActivity,
    WorkerMetrics,
    WorkerStarted,
    new_id,
)
from ap_actors.mesh import MeshInfo
from ap_actors.projections import Sessions
from ap_actors.snapshots import snapshot_path
from benchmarks.common import Row, median, row, scratch_dir, spread
from benchmarks.processes import JournalProcess

REBUILD_EVENTS = 1_000_000
REBUILD_SESSIONS = 1_000  # about 1,000 events each
CONCURRENT = 8  # sessions running at once (their events interleave in the log)
OPEN_SESSIONS = 8  # the last sessions have not ended yet
OBJECTIVES = 4  # per plan, two per wave
METRICS_EVERY = 50  # worker_metrics sample per this many activities
REBUILD_REPS = 3
FILL_BATCH = 5_000
SNAPSHOT_BEHIND = SNAPSHOT_EVERY  # events appended after the snapshot of the "behind" row
ACTOR = "reporter"
OPTIONS = {"gc_freeze": True}  # as in the reporter's own process (ap_actors.actor.main)

_TOOLS = ("Edit", "Read", "Bash", "Grep", "Write", "Glob", "TodoWrite", "WebFetch")
_KINDS: tuple[ActivityType, ...] = ("tool_use", "tool_use", "command", "reasoning", "message")


def _session(n: int, ended: bool, activities: int, now: float) -> list[Event]:
    """One session's events, in order."""
    sid = new_id()
    team = [f"worker-{i + 1}" for i in range(OBJECTIVES)]
    events: list[Event] = []

    def add(event: Event) -> None:
        events.append(event)

    def make(cls: type[Event], **fields: object) -> Event:
        return cls(id=new_id(), session_id=sid, ts=now, source="bench", **fields)

    add(
        make(RequestSubmitted, request=f"Add JWT authentication ({n})", repo="/srv/repo", team=team)
    )
    modules = [f"src/pkg/module_{i}.py" for i in range(20)]
    add(make(AnalysisCompleted, task_type="feature", modules=modules, test_dirs=["tests"]))
    objectives = [
        Objective(
            id=f"obj-{i + 1}",
            title=f"Objective {i + 1} of session {n}",
            description="Implement the token verification and its tests. " * 4,
            wave=i // 2 + 1,
            scope_touch=[f"src/pkg/part_{i}/", f"tests/test_part_{i}*.py"],
            scope_forbid=["**/*.md"],
            worker=team[i],
        )
        for i in range(OBJECTIVES)
    ]
    plan = f"plan-{n}"
    add(make(PlanProposed, plan_id=plan, objectives=objectives))
    add(make(ScopeValidated, plan_id=plan, valid=True))
    add(make(PlanApproved, plan_id=plan, by="auto"))
    add(make(ReportWritten, kind="analysis", path=f"/srv/docs/analyses/{sid}.md"))
    add(make(ReportWritten, kind="plan", path=f"/srv/docs/plans/{sid}.md"))
    per_objective = activities // OBJECTIVES
    for wave in (1, 2):
        ids = [o.id for o in objectives if o.wave == wave]
        add(make(WaveStarted, wave=wave, objective_ids=ids))
        running = [o for o in objectives if o.wave == wave]
        for o in running:
            add(make(ObjectiveAssigned, objective_id=o.id, worker_id=o.worker, base="c0ffee"))
            add(
                make(
                    ObjectiveStarted,
                    objective_id=o.id,
                    worker_id=o.worker,
                    workdir=f"/srv/.ap/worktrees/{sid}/{o.id}",
                    transcript=f"/srv/.ap/transcripts/{sid}/{o.id}.jsonl",
                )
            )
            add(make(WorkerStarted, worker_id=o.worker, pid=4242, objective_id=o.id))
        for i in range(per_objective):  # the two objectives of the wave interleave
            for o in running:
                tool = _TOOLS[i % len(_TOOLS)]
                add(
                    make(
                        WorkerActivity,
                        worker_id=o.worker,
                        objective_id=o.id,
                        activity_type=_KINDS[i % len(_KINDS)],
                        tool_name=tool,
                        description=f"{tool}: src/pkg/part_{o.wave}/auth_{i % 40}.py"
                        " (verify_token, 12 lines)",
                        file_path=f"src/pkg/part_{o.wave}/auth_{i % 40}.py",
                    )
                )
                if i % METRICS_EVERY == METRICS_EVERY - 1:
                    add(
                        make(
                            WorkerMetrics,
                            worker_id=o.worker,
                            tools_used={t: i // len(_TOOLS) for t in _TOOLS},
                            uptime_seconds=float(i),
                            cpu_percent=12.5,
                            rss_bytes=180_000_000,
                            input_tokens=i * 900,
                            output_tokens=i * 120,
                            cost_usd=i * 0.002,
                        )
                    )
        if not ended:
            break
        for o in running:
            add(make(TranscriptRead, objective_id=o.id, worker_id=o.worker, lines=per_objective))
            add(
                make(
                    ObjectiveCompleted,
                    objective_id=o.id,
                    worker_id=o.worker,
                    files_modified=[f"src/pkg/part_{o.wave}/auth_{j}.py" for j in range(5)],
                    duration_s=312.5,
                )
            )
        add(make(WaveCompleted, wave=wave, objective_ids=ids))
        add(make(WaveMerged, wave=wave, objective_ids=ids, branch=f"ap/{sid}", commit="beef"))
    if ended:
        add(make(SessionCompleted, summary="Added JWT authentication.", branch=f"ap/{sid}"))
        add(make(ReportWritten, kind="accomplishment", path=f"/srv/docs/acc/{sid}.md"))
    return events


def busy_mesh_events(count: int = REBUILD_EVENTS, sessions: int = REBUILD_SESSIONS) -> list[Event]:
    """Exactly ``count`` events of ``sessions`` sessions as a busy mesh logs them.

    Sessions run ``CONCURRENT`` at a time, their events interleaved round-robin; the
    last ``OPEN_SESSIONS`` have not ended. Mostly ``worker_activity``.
    """
    now = time.time()
    overhead = 45  # events of a session besides activities and metrics, about
    activities = int((count / sessions - overhead) / (1 + 1 / METRICS_EVERY))
    out: list[Event] = []
    for group in range(0, sessions, CONCURRENT):
        streams = [
            _session(n, n < sessions - OPEN_SESSIONS, activities, now)
            for n in range(group, min(group + CONCURRENT, sessions))
        ]
        longest = max(len(s) for s in streams)
        for i in range(longest):
            out.extend(s[i] for s in streams if i < len(s))
    # Pad with activities of the last session (or trim) to hit the count exactly.
    last = out[-1]
    while len(out) < count:
        out.append(
            WorkerActivity(
                id=new_id(),
                session_id=last.session_id,
                ts=now,
                source="bench",
                worker_id="worker-4",
                objective_id="obj-4",
                activity_type="message",
                description="Still working on the token verification",
            )
        )
    return out[:count]


def fill(log_dir: Path, events: list[Event]) -> float:
    """Append ``events`` with durability "none"; return the seconds it took."""
    start = time.perf_counter()
    with EventLog(log_dir, durability="none") as elog:
        for i in range(0, len(events), FILL_BATCH):
            elog.append(events[i : i + FILL_BATCH])
        if elog.last_seq() != len(events):
            raise RuntimeError(f"filled {elog.last_seq()} records, expected {len(events)}")
    return time.perf_counter() - start


class Rebuild(NamedTuple):
    seconds: float  # from constructing the actor until its ready callback ran
    cpu: float  # CPU seconds of the process over the same time
    load_cpu: float  # of which the constructor (the snapshot's load, if any)
    encode_cpu: float  # after it: encoding the snapshot due once caught up (0: none due)
    actor: Reporter


async def rebuild_once(mesh: MeshInfo, state_dir: Path, options: dict[str, object]) -> Rebuild:
    """Construct a reporter and run it until it is recovered, then stop it cleanly (it
    saves a snapshot); return the times and the actor."""
    ready = asyncio.Event()
    measuring, encode_cpu = True, 0.0
    start, cpu = time.perf_counter(), time.process_time()
    actor = Reporter(ACTOR, mesh, state_dir, options)
    load_cpu = time.process_time() - cpu
    encode_state = actor.encode_state

    def timed_encode(state: Sessions) -> bytes:
        nonlocal encode_cpu
        began = time.process_time()
        try:
            return encode_state(state)
        finally:
            if measuring:
                encode_cpu += time.process_time() - began

    actor.encode_state = timed_encode  # type: ignore[method-assign]
    at_ready: list[float] = []

    def on_ready() -> None:  # the rebuild ends here: the actor is caught up and resumed
        at_ready.extend((time.perf_counter(), time.process_time()))
        ready.set()

    task = asyncio.create_task(actor.run(ready=on_ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    # The snapshot due after the catch-up is encoded once the ready callback's waiters
    # have run: its CPU is reported beside the rebuild, not in it.
    await asyncio.sleep(0)
    measuring = False
    if at_ready:
        seconds, cpu = at_ready[0] - start, at_ready[1] - cpu
    if task.done() or not at_ready:
        task.result()  # raises what made the actor stop
        raise RuntimeError("the actor stopped before it was ready")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return Rebuild(seconds, cpu, load_cpu, encode_cpu, actor)


async def emit_all(ingest: str, events: list[Event]) -> None:
    """Append ``events`` through the journal, as the mesh's actors do."""
    async with Emitter(ingest, source="bench") as emitter:
        for i in range(0, len(events), FILL_BATCH):
            await emitter.emit_many(events[i : i + FILL_BATCH])


class Runs(NamedTuple):
    seconds: list[float]
    cpu: list[float]  # CPU seconds of the process
    snapshot_seqs: set[int]  # the seqs of the snapshots the runs started from
    sessions: int  # in the state rebuilt
    load_cpu: list[float]  # of cpu: the snapshot's load
    encode_cpu: list[float]  # not in cpu: the snapshot due once caught up, encoded after

    def detail(self) -> str:
        """Where the CPU went (medians): load, fold and catch-up; then the snapshot
        encoded after the actor was ready."""
        fold = median([cpu - load for cpu, load in zip(self.cpu, self.load_cpu, strict=True)])
        return (
            f"CPU {median(self.cpu):.3f} s = load {median(self.load_cpu):.3f}"
            f" + fold {fold:.3f}; then the snapshot due, encoded after ready:"
            f" {median(self.encode_cpu):.3f} s"
        )


def timed_runs(mesh: MeshInfo, state: Path, snapshot: bytes | None) -> Runs:
    """``REBUILD_REPS`` rebuilds, each starting with ``snapshot`` as the reporter's file
    (None: no file)."""
    path = snapshot_path(state, ACTOR)
    runs = Runs([], [], set(), 0, [], [])
    for _ in range(REBUILD_REPS):
        path.unlink(missing_ok=True)
        if snapshot is not None:
            path.write_bytes(snapshot)
        seconds, cpu, load_cpu, encode_cpu, actor = uvloop.run(rebuild_once(mesh, state, OPTIONS))
        if actor.last_seq != REBUILD_EVENTS:
            raise RuntimeError(f"the reporter folded to {actor.last_seq}, not {REBUILD_EVENTS}")
        runs.seconds.append(seconds)
        runs.cpu.append(cpu)
        runs.load_cpu.append(load_cpu)
        runs.encode_cpu.append(encode_cpu)
        runs.snapshot_seqs.add(actor.snapshot_seq)
        runs = runs._replace(sessions=len(actor.state.views))
        del actor
        gc.collect()
    return runs


def bench_rebuild(tmp: Path) -> list[Row]:
    """Rows: the reporter's rebuild from a 1,000,000-event log without a snapshot, with
    one ``SNAPSHOT_BEHIND`` events behind the head (the worst case of the default
    ``snapshot_every``: the actor died just before its next snapshot) and with one at
    the head (a clean restart); medians of ``REBUILD_REPS`` runs each."""
    state = tmp / "rebuild"
    events = busy_mesh_events()
    head = REBUILD_EVENTS - SNAPSHOT_BEHIND
    fill_s = fill(state / "eventlog", events[:head])
    with JournalProcess(state) as journal:
        ep = journal.endpoints
        mesh = MeshInfo(ep["ingest"], ep["bus"], ep["replay"], None, journal.pid, ep["log"])
        # A reporter that ran up to `head` and stopped cleanly left a snapshot there.
        uvloop.run(rebuild_once(mesh, state, OPTIONS))
        behind = snapshot_path(state, ACTOR).read_bytes()
        uvloop.run(emit_all(ep["ingest"], events[head:]))
        del events
        without = timed_runs(mesh, state, None)
        with_behind = timed_runs(mesh, state, behind)
        at_head = snapshot_path(state, ACTOR).read_bytes()  # saved by the last stop
        with_head = timed_runs(mesh, state, at_head)
    shutil.rmtree(state, ignore_errors=True)
    if without.snapshot_seqs != {0} or with_behind.snapshot_seqs != {head}:
        raise RuntimeError(f"snapshot use: {without.snapshot_seqs}, {with_behind.snapshot_seqs}")
    if with_head.snapshot_seqs != {REBUILD_EVENTS}:
        raise RuntimeError(f"the snapshot at the head was not used: {with_head.snapshot_seqs}")
    size = f"snapshot {len(at_head) / 1e6:.0f} MB"
    return [
        row(
            "actor rebuild, 1,000,000-event log, no snapshot (reporter)",
            median(without.seconds),
            "s",
            "<=",
            2.0,
            f"{spread(without.seconds, '{:.2f}')}; {without.detail()};"
            f" {without.sessions:,} sessions, mostly worker_activity; fill (durability"
            f" none) {fill_s:.1f} s",
        ),
        row(
            f"actor rebuild, snapshot {SNAPSHOT_BEHIND:,} events behind the head",
            median(with_behind.seconds),
            "s",
            "<=",
            0.3,
            f"{spread(with_behind.seconds, '{:.3f}')}; {with_behind.detail()};"
            f" {size} + {SNAPSHOT_BEHIND:,} events folded",
        ),
        row(
            "actor rebuild, snapshot at the head (clean restart)",
            median(with_head.seconds),
            "s",
            "<=",
            0.3,
            f"{spread(with_head.seconds, '{:.3f}')}; {with_head.detail()}; {size}, nothing to fold",
        ),
    ]


if __name__ == "__main__":
    with scratch_dir() as tmp:
        for r in bench_rebuild(tmp):
            print(
                f"{r.name}: {r.value:.3f} {r.unit} (target {r.target}: {r.meets_target}) {r.notes}"
            )
