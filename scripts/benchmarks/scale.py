"""The scale run of ``make bench-scale``: N replaying agents, M WebSocket clients, one mesh.

Steps, each timed:

1. ``ap up --detach`` with the team of :mod:`benchmarks.scale_workload` (N workers: 2N + 6
   actor processes, started one after another by the supervisor);
2. M WebSocket clients in a few ``spawn`` processes (:func:`benchmarks.ws_clients.ws_clients`,
   as in the fan-out benchmark: every event of the log after the last seq, no session
   filter, permessage-deflate asked for as Chromium does) connect and read to their
   ``caught_up``;
3. ``ap submit --plan --approve``: N objectives in one wave; the workers make their
   worktrees and start their replays, which wait at the gate; this step ends when every
   ``worker_started`` is in the log;
4. the gate opens: every replay writes ``rate`` lines/s for ``seconds``. CPU and memory of
   every process are sampled from ``warmup`` seconds after the gate to 1 s before the
   replays end (the *window*);
5. drain: until every ``transcript_read``, then ``session_completed``, is in the log; once
   no record came for ``QUIET_S`` the clients are told the log's last seq and have
   ``DRAIN_S`` to receive it (a client *kept up* when it had every event up to it, in
   order, with no resync, by then);
6. ``ap down``; the log, the transcripts and the stamps are checked
   (:mod:`benchmarks.scale_log`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import psutil

from ap_actors.eventlog import EventLog
from ap_actors.events import (
    ObjectiveFailed,
    Record,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    WorkerStarted,
)
from ap_actors.supervisor import read_status
from benchmarks.machine import busy_share
from benchmarks.mesh import ApMesh
from benchmarks.processes import collect, join_all, pass_barrier, spawn_context, start_worker
from benchmarks.scale_log import LogFigures, analyse
from benchmarks.scale_usage import KINDS, KindUsage, UsageSampler, kind_of
from benchmarks.scale_workload import Workload, make_repo, team_toml, write_plan
from benchmarks.ws_clients import DRAIN_S, ws_clients

UP_TIMEOUT_S = 900.0  # `ap up` of a few hundred actors, one after another, on 2 cores
POLL_S = 0.25  # how often the log is read while waiting for events
QUIET_S = 1.0  # the log is done when no record came for this long
RESEND = b'"msg":"no ack from the journal, resending"'  # ap_actors.emitter's warning


@dataclass(frozen=True)
class ScaleConfig:
    """One scale run.

    Attributes:
        workload: the agents (workers, rate, seconds, recording).
        clients: WebSocket clients.
        client_processes: processes they are spread over.
        sample: the clients record the latency of the events whose seq is a multiple.
        warmup: seconds after the gate before the window starts.
    """

    workload: Workload
    clients: int = 1000
    client_processes: int = 4
    sample: int = 100
    warmup: float = 5.0


@dataclass
class ScaleRun:
    """What a run measured (figures of the log in ``log``; durations in s)."""

    config: ScaleConfig
    phases: dict[str, float] = field(default_factory=dict)
    actors: int = 0
    usage: list[KindUsage] = field(default_factory=list)
    machine_busy: float = float("nan")  # in the window
    busy_before: float = float("nan")  # in the second before `ap up`
    window: tuple[float, float] = (0.0, 0.0)  # Unix s
    clients: dict[str, Any] = field(default_factory=dict)
    log: LogFigures = field(default_factory=LogFigures)
    resends: dict[str, int] = field(default_factory=dict)  # emitter resends by actor kind


def say(text: str) -> None:
    print(f"bench-scale: {text}", file=sys.stderr, flush=True)


class ScaleMesh(ApMesh):
    """:class:`ApMesh` with room for ``ap up`` of hundreds of actors (``UP_TIMEOUT_S``)."""

    def ap(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if args[:1] == ("up",):
            timeout = max(timeout, UP_TIMEOUT_S)
        return super().ap(*args, timeout=timeout)


class LogWatch:
    """Reads a session's new records as they are appended (polling the log files)."""

    def __init__(self, log_path: str, since: int, session_id: str) -> None:
        self.log = EventLog(log_path, readonly=True)
        self.pos = since
        self.session_id = session_id

    def until(
        self, predicate: Callable[[Record], bool], count: int, timeout: float, what: str
    ) -> list[Record]:
        """Return once ``count`` records of the session satisfy ``predicate``.

        Raises:
            RuntimeError: the time ran out, an objective failed or the session ended.
        """
        found: list[Record] = []
        deadline = time.monotonic() + timeout
        while True:
            for r in self.log.read(self.pos, session_id=self.session_id):
                self.pos = r.seq
                e = r.event
                if predicate(r):
                    found.append(r)
                    if len(found) >= count:  # what follows is for the next wait
                        return found
                elif isinstance(e, ObjectiveFailed | SessionFailed | SessionCancelled):
                    raise RuntimeError(f"{type(e).__name__} while waiting for {what}: {e}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(found)} of {count} {what} within {timeout:.0f} s")
            time.sleep(POLL_S)

    def quiet(self, seconds: float, timeout: float) -> int:
        """Return the log's last seq once it has not changed for ``seconds``."""
        deadline = time.monotonic() + timeout
        last, since = self.log.last_seq(), time.monotonic()
        while time.monotonic() - since < seconds and time.monotonic() < deadline:
            time.sleep(POLL_S)
            if (now := self.log.last_seq()) != last:
                last, since = now, time.monotonic()
        return last

    def close(self) -> None:
        self.log.close()


def resends_by_kind(state: Path) -> dict[str, int]:
    """Emitter resends (no ack within its ``ack_timeout``) in the actors' logs, by kind."""
    out: dict[str, int] = {}
    for path in sorted((state / "logs").glob("*.log")):
        with path.open("rb") as f:
            n = sum(1 for line in f if RESEND in line)
        if n:
            kind = kind_of(path.stem)
            out[kind] = out.get(kind, 0) + n
    return out


def _last_seq(log_path: str) -> int:
    with EventLog(log_path, readonly=True) as log:
        return log.last_seq()


def _groups(mesh: ApMesh) -> dict[str, list[psutil.Process]]:
    """The mesh's processes by kind (:data:`KINDS` first, in that order)."""
    status = read_status(mesh.state)
    if status is None:
        raise RuntimeError(f"no supervisor status in {mesh.state}")
    groups: dict[str, list[psutil.Process]] = {k: [] for k in KINDS}
    for a in status.actors:
        if a.pid:
            groups.setdefault(kind_of(a.name), []).append(psutil.Process(a.pid))
    groups["supervisor"] = [psutil.Process(status.pid)]
    return groups


@dataclass
class Clients:
    """The client processes and what they share with this one."""

    procs: list[SpawnProcess]
    results: Any  # multiprocessing Queue of their results
    done: Any  # multiprocessing Event: the final seq is known
    final_seq: Any  # multiprocessing Value("q")


def start_clients(config: ScaleConfig, url: str, since: int) -> Clients:
    """Start the client processes; return once every client has its ``caught_up``."""
    ctx = spawn_context()
    barrier = ctx.Barrier(config.client_processes + 1)
    clients = Clients([], ctx.Queue(), ctx.Event(), ctx.Value("q", 0))
    per = [config.clients // config.client_processes] * config.client_processes
    per[0] += config.clients - sum(per)
    for i, n in enumerate(per):
        args = (url, n, since, True, False, barrier, clients.done, clients.final_seq)
        clients.procs.append(
            start_worker(
                ctx, f"scale-clients-{i}", clients.results, ws_clients, *args, config.sample
            )
        )
    pass_barrier(barrier, clients.procs, timeout=600)
    return clients


def finish_clients(clients: Clients, final: int) -> dict[str, Any]:
    """Tell the clients the final seq; return their results added up (latency arrays
    joined, as bytes), with how many events each was behind when it stopped."""
    clients.final_seq.value = final
    clients.done.set()
    out = collect(clients.results, clients.procs, timeout=DRAIN_S + 300)
    join_all(clients.procs)
    total: dict[str, Any] = {
        k: sum(o[k] for o in out)
        for k in ("kept_up", "received", "complete", "gaps", "duplicates", "resyncs", "cpu")
    }
    for k in ("lat_kept", "lat_all"):
        total[k] = b"".join(o[k] for o in out)
        total[k + "_seqs"] = b"".join(o[k + "_seqs"] for o in out)
    total["behind"] = sorted(final - last for o in out for last in o["last_seqs"])
    total["final_seq"] = final
    return total


def submit(mesh: ApMesh, w: Workload, repo: Path, plan: Path) -> str:
    """``ap submit --plan --approve``; return the session id."""
    done = mesh.ap(
        "submit",
        f"Scale benchmark: {w.workers} replaying {w.agent} agents",
        "--repo",
        str(repo),
        "--plan",
        str(plan),
        "--approve",
        "--json",
        timeout=600,
    )
    session_id: str = json.loads(done.stdout)["session_id"]
    return session_id


def run_scale(config: ScaleConfig, tmp: Path) -> ScaleRun:
    """Run the whole scale benchmark in ``tmp`` (module docstring)."""
    w = config.workload
    run = ScaleRun(config)
    phases = run.phases
    t = time.monotonic()
    repo = make_repo(tmp / "repo", w.workers)
    gate, stamps = tmp / "gate", tmp / "stamps"
    stamps.mkdir()
    plan = write_plan(w, tmp / "plan.json")
    phases["setup (repository, team, plan)"] = time.monotonic() - t
    machine0 = psutil.cpu_times()
    time.sleep(1.0)
    run.busy_before = busy_share(machine0, psutil.cpu_times())
    say(f"ap up with {w.workers} workers ({2 * w.workers + 6} actor processes) ...")
    t = time.monotonic()
    with ScaleMesh(tmp / "state", team_toml(w, gate, stamps)) as mesh:
        phases["ap up"] = time.monotonic() - t
        groups = _groups(mesh)
        run.actors = sum(len(v) for k, v in groups.items() if k != "supervisor")
        say(f"{run.actors} actors up in {phases['ap up']:.1f} s")
        log_path = mesh.info["log"]
        since = _last_seq(log_path)
        t = time.monotonic()
        clients = start_clients(config, mesh.dashboard, since)
        phases["clients connected"] = time.monotonic() - t
        say(f"{config.clients} WebSocket clients connected in {phases['clients connected']:.1f} s")
        t = time.monotonic()
        session_id = submit(mesh, w, repo, plan)
        watch = LogWatch(log_path, since, session_id)
        try:
            started = watch.until(
                lambda r: isinstance(r.event, WorkerStarted), w.workers, 900, "agents started"
            )
            phases["submit -> every agent started"] = time.monotonic() - t
            say(f"{w.workers} agents started in {phases['submit -> every agent started']:.1f} s")
            # The agents: worker_started carries the pid of the replay it started.
            groups["replay tools (agents)"] = [
                psutil.Process(r.event.pid) for r in started if isinstance(r.event, WorkerStarted)
            ]
            groups["ws client processes"] = [psutil.Process(p.pid) for p in clients.procs if p.pid]
            groups["bench (this process)"] = [psutil.Process()]
            ours = {p.pid for procs in groups.values() for p in procs}
            # Anything else that runs meanwhile (other users' work, kernel threads) takes
            # CPU from the mesh: it is measured too.
            groups["other processes on the machine"] = [
                p for p in psutil.process_iter() if p.pid not in ours
            ]
            gate.touch()
            opened = time.time()
            time.sleep(config.warmup)
            sampler = UsageSampler(groups)
            sampler.start()
            window_start = time.time()
            time.sleep(max(1.0, opened + w.seconds - 1.0 - window_start))
            run.usage = sampler.stop()
            run.machine_busy = sampler.machine_busy
            run.window = (window_start, time.time())
            say(f"window of {sampler.seconds:.1f} s measured; waiting for the log monitors")
            watch.until(
                lambda r: isinstance(r.event, TranscriptRead), w.workers, 900, "transcripts read"
            )
            phases["gate -> every transcript read"] = time.time() - opened
            t = time.monotonic()
            watch.until(lambda r: isinstance(r.event, SessionCompleted), 1, 900, "session end")
            phases["-> session completed"] = time.monotonic() - t
            # The clients' final seq: the log's last once nothing more comes (the reports
            # follow the session's end), so that a client cannot be past it already.
            run.clients = finish_clients(clients, watch.quiet(QUIET_S, 60))
            say(f"{run.clients['kept_up']} of {config.clients} clients kept up")
        finally:
            watch.close()
        t = time.monotonic()
    phases["ap down"] = time.monotonic() - t
    run.resends = resends_by_kind(tmp / "state")
    say("checking the log against the transcripts ...")
    t = time.monotonic()
    samples = {
        k: (run.clients.pop(f"lat_{k}"), run.clients.pop(f"lat_{k}_seqs")) for k in ("kept", "all")
    }
    run.log = analyse(
        log_path, since, session_id, w.agent, w.recording, stamps, run.window, samples
    )
    phases["log check"] = time.monotonic() - t
    return run
