"""CPU of the orchestration while 20 workers run busy agents.

What "busy" means for an agent here: a coding agent spends its time waiting for its
model and running tools; what the orchestration sees of it is the lines it writes to its
transcript (the log monitor tails, parses and emits each one) and the process tree the
worker samples. A streaming CLI agent (Claude Code, Codex, Gemini with JSON output)
writes one line per message, tool call and tool result, a few per second on average and
tens per second in bursts. So each agent here writes ``RATE`` = 20 lines/s on average
without a pause for the whole window (``busy_agent.py``: one ``write`` + flush per line,
at random times, a Poisson process independent per agent, almost no CPU of its own): a
sustained upper bound of a real agent's rate, and the load that costs the orchestration
the most per agent, since every line is an event. Random times matter: 20 agents paced
on one schedule from one gate write in step, and the journal then commits their lines
together (in an exploratory run that cut its CPU several times over).

Setup: ``ap up --detach`` (pipeline on, every endpoint on a free port,
:class:`benchmarks.mesh.ApMesh`) with a team of ``WORKERS`` = 20 ``command`` workers; a
git repository with one commit. A run is a session (``ap submit --plan --approve``) of
20 objectives in one wave, one per worker, each running ``busy_agent.py`` gated on one
file (:mod:`benchmarks.team_load`). Once every worker has started its agent, one
WebSocket client (a ``spawn`` process: aiohttp, decoding every frame) opens the
session's page (``/ws?since=0&session=<id>``), as the owner watching it would; when it
is caught up the gate opens. After ``WARMUP_S`` the bench reads ``cpu_times()`` (user +
system, all threads) of every actor process, of the supervisor and of the agents (the
workers' descendants), and the machine's; again ``WINDOW_S`` later. The agents write
for ``WARMUP_S + WINDOW_S + TAIL_S`` s, so they are busy for the whole window.

Orchestration = journal, planner, scope_validator, scheduler, reporter, broadcaster,
the 20 workers and the 20 log monitors: their CPU seconds over the window / the window,
as a share of one core, in total (the target: at most 5 %) and per kind. The supervisor,
the agents, the client and the machine's busy share are in the notes, not in the total.
``REPS`` sessions in one mesh; rows quote the median of the runs. Before the first
session, the same processes are measured over one ``WINDOW_S`` window of the idle mesh
(``SETTLE_S`` after ``ap up`` returned): what they cost with no agent running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ap_actors.events import SessionCompleted, TranscriptRead, WorkerStarted
from benchmarks.common import Row, median, row, spread
from benchmarks.line_to_browser import make_repo
from benchmarks.machine import busy_share
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

WORKERS = 20
RATE = 20.0  # lines/s per agent
WARMUP_S = 2.0  # after the gate, not measured
WINDOW_S = 10.0
TAIL_S = 2.0  # the agents write on after the window
AGENT_S = WARMUP_S + WINDOW_S + TAIL_S  # how long each agent writes
REPS = 3
TARGET_SHARE = 0.05  # of one core
SETTLE_S = 3.0  # after `ap up`, before the idle window


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds of each process so far (a process gone is left out)."""
    out: dict[str, float] = {}
    for name, p in procs.items():
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[name] = t.user + t.system
    return out


@dataclass
class CpuRun:
    """One window; shares of one core."""

    total: float  # the orchestration processes together
    kinds: dict[str, float]  # per kind, all its processes together
    per_process: dict[str, list[float]]  # per kind, each process
    supervisor: float
    agents: float  # the agents' processes together
    agent_count: int
    client: float  # the WebSocket client process
    machine_busy: float  # share of both cores
    completed: bool


def run_once(mesh: ApMesh, repo: Path, work: Path, rep: int) -> CpuRun:
    """One session: 20 busy agents, one dashboard client, CPU over the window."""
    gate = work / f"gate-{rep}"
    plan = work / f"plan-{rep}.json"
    session_id = submit_team(mesh, repo, plan, gate, WORKERS, AGENT_S, RATE)
    wait_count(mesh, session_id, WorkerStarted, WORKERS)
    actors = {n: p for n, p in mesh.processes().items() if actor_kind(n) in KINDS}
    supervisor = mesh.process("journal").parent()
    if supervisor is None:
        raise RuntimeError("the journal has no parent process")
    agents = {
        f"agent.{child.pid}": child
        for name, p in actors.items()
        if actor_kind(name) == "worker"
        for child in p.children(recursive=True)
    }
    ctx = spawn_context()
    results, ready, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    client = start_worker(
        ctx, "dashboard-reader", results, dashboard_readers, mesh.dashboard, 1, session_id,
        ready, stop,
    )  # fmt: skip
    if not ready.wait(60):
        raise RuntimeError("the WebSocket client did not catch up")
    gate.touch()
    time.sleep(WARMUP_S)
    others = {"supervisor": supervisor, **agents}
    machine0, client0 = psutil.cpu_times(), cpu_seconds({"client": psutil.Process(client.pid)})
    t0, before = time.monotonic(), cpu_seconds({**actors, **others})
    time.sleep(WINDOW_S)
    after, seconds = cpu_seconds({**actors, **others}), time.monotonic() - t0
    machine1, client1 = psutil.cpu_times(), cpu_seconds({"client": psutil.Process(client.pid)})
    share = {n: (after[n] - before[n]) / seconds for n in after if n in before}
    wait_count(mesh, session_id, TranscriptRead, WORKERS, timeout=AGENT_S + 120)
    end = wait_count(mesh, session_id, ENDED, 1, timeout=120)
    stop.set()
    collect(results, [client], timeout=60)
    join_all([client])
    per_process: dict[str, list[float]] = {k: [] for k in KINDS}
    for name in actors:
        per_process[actor_kind(name)].append(share.get(name, 0.0))
    missing = [n for n in actors if n not in share]
    if missing:
        raise RuntimeError(f"orchestration: {', '.join(missing)} exited during the window")
    return CpuRun(
        total=sum(sum(v) for v in per_process.values()),
        kinds={k: sum(v) for k, v in per_process.items()},
        per_process=per_process,
        supervisor=share.get("supervisor", 0.0),
        agents=sum(v for n, v in share.items() if n.startswith("agent.")),
        agent_count=len(agents),
        client=(client1["client"] - client0["client"]) / seconds,
        machine_busy=busy_share(machine0, machine1),
        completed=isinstance(end.event, SessionCompleted),
    )


def idle_window(mesh: ApMesh) -> dict[str, float]:
    """Per kind, the share of one core the actor processes use with no session running."""
    time.sleep(SETTLE_S)
    actors = {n: p for n, p in mesh.processes().items() if actor_kind(n) in KINDS}
    t0, before = time.monotonic(), cpu_seconds(actors)
    time.sleep(WINDOW_S)
    after, seconds = cpu_seconds(actors), time.monotonic() - t0
    kinds = dict.fromkeys(KINDS, 0.0)
    for name in after.keys() & before.keys():
        kinds[actor_kind(name)] += (after[name] - before[name]) / seconds
    return kinds


def bench_orchestration(tmp: Path) -> list[Row]:
    """Rows: orchestration CPU in total (target 5 % of one core), then per kind.

    Raises:
        RuntimeError: an actor exited during a window, or a session did not complete.
    """
    work = tmp / "orchestration"
    work.mkdir()
    repo = make_repo(work / "repo")
    with ApMesh(work / "state", team_toml(WORKERS)) as mesh:
        idle = idle_window(mesh)
        runs = [run_once(mesh, repo, work, rep) for rep in range(REPS)]
    if not all(r.completed for r in runs):
        raise RuntimeError("orchestration: a session did not complete")
    pct = "{:.1%}"
    totals = [r.total for r in runs]
    rows = [
        row(
            f"orchestration CPU, {WORKERS} busy workers",
            median(totals) * 100,
            "% of a core",
            "<=",
            TARGET_SHARE * 100,
            f"{spread(totals, pct)}; {len(runs)} windows of {WINDOW_S:g} s; journal, planner,"
            f" scope_validator, scheduler, reporter, broadcaster, {WORKERS} workers and"
            f" {WORKERS} log monitors; each agent writing {RATE:g} lines/s"
            f" ({WORKERS * RATE:,.0f} lines/s together); one WebSocket client on the session;"
            f" not counted: supervisor {spread([r.supervisor for r in runs], pct)}, the"
            f" {runs[0].agent_count} agent processes {spread([r.agents for r in runs], pct)},"
            f" the client {spread([r.client for r in runs], pct)}; machine"
            f" {spread([r.machine_busy for r in runs], '{:.0%}')} busy",
        )
    ]
    rows.append(
        row(
            f"orchestration CPU, idle mesh of {WORKERS} workers",
            sum(idle.values()) * 100,
            "% of a core",
            None,
            None,
            f"the same processes, no session, one {WINDOW_S:g} s window; "
            + ", ".join(f"{k} {v:.1%}" for k, v in idle.items()),
        )
    )
    for kind in KINDS:
        values = [r.kinds[kind] for r in runs]
        each = sorted(x for r in runs for x in r.per_process[kind])
        count = len(runs[0].per_process[kind])
        per = (
            f"; {count} processes, each {each[0]:.1%} to {each[-1]:.1%} (median {median(each):.1%})"
            if count > 1
            else ""
        )
        rows.append(
            row(
                f"orchestration CPU: {kind}" + (f" x {count}" if count > 1 else ""),
                median(values) * 100,
                "% of a core",
                None,
                None,
                f"{spread(values, pct)}{per}",
            )
        )
    return rows
