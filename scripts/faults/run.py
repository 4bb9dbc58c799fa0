"""One fault-injection run: a mesh under load, faults on a schedule, then the checks.

The mesh (``ap up --detach``, every endpoint on a port chosen up front so that clients
keep it across ``ap down`` / ``ap up``) runs a team of ``workers`` ``command`` workers
on a small git repository. ``sessions`` sessions are submitted (one objective per
worker, each a shell command that waits ``objective_s`` and appends a line to a file of
its own scope), while ``clients`` processes append ``worker_activity`` events at
``rate`` events/s in all (:mod:`faults.clients`). Meanwhile, on a timeline:

- every ``kill_every_s`` s, ``kill -9`` on a running actor of the next kind in
  :data:`KINDS` (journal, planner, scope validator, scheduler, reporter, broadcaster,
  worker, log monitor), chosen at random among the actors of that kind;
- once, ``ap down`` then ``ap up`` of the whole mesh (the clients keep appending: their
  batches wait in their emitters and are sent again when the journal is back);
- once, a burst: every client appends as fast as it can for ``burst_s`` s, and the
  journal is killed halfway through.

Then the clients stop, every session is given ``settle_s`` s to end, the mesh goes down
and :func:`ap_actors.history.check` compares the clients' histories with the log.
Recovery of a killed actor = the ``ts`` of its next ``actor_started`` (the supervisor
emits it once the new process is ready) minus the moment of the kill.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ap_actors.config import ACTOR_KINDS
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, ActorStarted
from ap_actors.history import HistoryReport, check
from ap_actors.supervisor import read_status
from faults.clients import ClientSpec, run_client

AP = str(Path(sys.executable).with_name("ap"))
KINDS = ACTOR_KINDS
GIT_ENV = {
    "GIT_AUTHOR_NAME": "chaos",
    "GIT_AUTHOR_EMAIL": "chaos@example.invalid",
    "GIT_COMMITTER_NAME": "chaos",
    "GIT_COMMITTER_EMAIL": "chaos@example.invalid",
}


@dataclass
class Options:
    """The run's knobs (``scripts/chaos.py --help`` documents each)."""

    sessions: int = 100
    workers: int = 4
    clients: int = 4
    rate: float = 2_000.0
    kill_every_s: float = 1.5
    burst_s: float = 3.0
    objective_s: float = 0.3
    submit_every_s: float = 1.0
    settle_s: float = 240.0
    seed: int = 1
    state: Path | None = None
    keep: bool = False


@dataclass
class Kill:
    """One ``kill -9``: which actor, its pid, and when (Unix seconds)."""

    actor: str
    kind: str
    pid: int
    at: float
    phase: str
    recovered_s: float | None = None


@dataclass
class RunResult:
    """What :func:`run` measured."""

    report: HistoryReport
    kills: list[Kill]
    down_up_s: float
    burst_events_per_s: float
    sessions_submitted: int
    sessions_ended: dict[str, int]
    duration_s: float
    state: Path
    notes: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(ports: list[int]) -> str:
    ingest, bus, replay, web = ports
    return (
        "[mesh]\n"
        f'ingest = "tcp://127.0.0.1:{ingest}"\n'
        f'bus = "tcp://127.0.0.1:{bus}"\n'
        f'replay = "tcp://127.0.0.1:{replay}"\n'
        f'dashboard = "http://127.0.0.1:{web}/"\n\n'
        "[pipeline]\nenabled = true\n\n"
        "[supervisor]\nbackoff_initial_s = 0.05\nmax_restarts = 1000\n"
    )


def _workers(n: int) -> list[str]:
    return [f"w{i:02d}" for i in range(1, n + 1)]


def _repo(path: Path, workers: list[str]) -> Path:
    for w in workers:
        (path / "pkg" / w).mkdir(parents=True)
        (path / "pkg" / w / "log.txt").write_text("")
    (path / "README.md").write_text("# chaos\n")
    env = {**os.environ, **GIT_ENV}
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"]):
        subprocess.run(argv, cwd=path, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, env=env, check=True)
    return path


def _plans(folder: Path, sessions: int, workers: list[str], objective_s: float) -> list[Path]:
    folder.mkdir(parents=True)
    plans = []
    for n in range(1, sessions + 1):
        objectives = [
            {
                "id": f"o-{w}",
                "title": f"Append to pkg/{w}",
                "worker": w,
                "scope_touch": [f"pkg/{w}/"],
                "command": f"sh -c 'sleep {objective_s}; echo s{n} >> pkg/{w}/log.txt'",
            }
            for w in workers
        ]
        plan = folder / f"s{n:03d}.json"
        plan.write_text(json.dumps({"objectives": objectives}))
        plans.append(plan)
    return plans


class _Mesh:
    def __init__(self, state: Path, config: Path, team: Path) -> None:
        self.state, self.config, self.team = state, config, team

    def ap(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [AP, *args, "--state-dir", str(self.state)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"`ap {args[0]}` failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def up(self) -> None:
        self.ap("up", "--detach", "--config", str(self.config), "--team", str(self.team))

    def down(self) -> None:
        self.ap("down", timeout=120)

    def running(self, kind: str) -> list[tuple[str, int]]:
        status = read_status(self.state)
        return [
            (a.name, a.pid)
            for a in (status.actors if status else [])
            if a.name.split(".", 1)[0] == kind and a.state == "running" and a.pid
        ]


def _kill(
    mesh: _Mesh, kind: str, rng: random.Random, phase: str, earlier: list[Kill]
) -> Kill | None:
    """``kill -9`` a running actor of ``kind``: one never killed, else the one killed
    longest ago (a second crash soon after the first is a crash loop, which the
    supervisor meets with its back-off on purpose: that is not a recovery to time)."""
    candidates = mesh.running(kind)
    if not candidates:
        return None
    last = {k.actor: k.at for k in earlier}
    oldest = min(last.get(name, 0.0) for name, _ in candidates)
    name, pid = rng.choice([c for c in candidates if last.get(c[0], 0.0) == oldest])
    at = time.time()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return Kill(name, kind, pid, at, phase)


def _wait_sessions(log: Path, expected: int, timeout: float) -> dict[str, int]:
    """Poll the log until ``expected`` sessions ended (or ``timeout``); count the ends."""
    deadline = time.monotonic() + timeout
    while True:
        started, ended = _sessions(log)
        if len(ended) >= expected or time.monotonic() > deadline:
            counts: dict[str, int] = {"submitted": len(started), "unfinished": 0}
            for sid in started:
                kind = ended.get(sid, "unfinished")
                counts[kind] = counts.get(kind, 0) + 1
            return counts
        time.sleep(1.0)


def _sessions(log: Path) -> tuple[set[str], dict[str, str]]:
    started: set[str] = set()
    ended: dict[str, str] = {}
    with EventLog(log, readonly=True) as elog:
        topics = ["request_submitted", "session_completed", "session_failed", "session_cancel"]
        for record in elog.read(topics=topics):
            kind = record.event.__struct_config__.tag
            if kind == "request_submitted":
                started.add(record.event.session_id)
            else:
                ended.setdefault(record.event.session_id, str(kind))
    return started, ended


def _recoveries(log: Path, kills: list[Kill]) -> None:
    """Fill each kill's ``recovered_s`` from the ``actor_started`` events in the log."""
    starts: dict[str, list[float]] = {}
    with EventLog(log, readonly=True) as elog:
        for record in elog.read(topics=["actor_started"]):
            event = record.event
            assert isinstance(event, ActorStarted)
            starts.setdefault(event.actor, []).append(event.ts)
    for kill in kills:
        later = [t for t in starts.get(kill.actor, []) if t >= kill.at]
        kill.recovered_s = min(later) - kill.at if later else None


def run(opts: Options, say: Any = print) -> RunResult:
    """Run the mesh, the load and the faults; return what was measured.

    Raises:
        RuntimeError: the mesh could not start (``ap up`` failed), with its message.
    """
    rng = random.Random(opts.seed)
    state = opts.state or Path(os.environ.get("TMPDIR", "/tmp")) / f"ap-chaos-{os.getpid()}"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    workers = _workers(opts.workers)
    repo = _repo(state / "repo", workers)
    plans = _plans(state / "plans", opts.sessions, workers, opts.objective_s)
    config = state / "ap.toml"
    ports = [_free_port() for _ in range(4)]
    config.write_text(_config(ports))
    team = state / "team.toml"
    team.write_text(
        "max_attempts = 5\n\n"
        + "".join(
            f'[[workers]]\nid = "{w}"\nagent = "command"\ncommand = "true"\n\n' for w in workers
        )
    )
    mesh = _Mesh(state / "mesh", config, team)
    mesh.state.mkdir()
    ingest = f"tcp://127.0.0.1:{ports[0]}"
    started = time.time()
    mesh.up()
    try:
        say(f"mesh up in {time.time() - started:.1f} s; state {state}")

        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        submitted = ctx.Value("i", 0)
        rates = [ctx.Value("d", opts.rate / opts.clients) for _ in range(opts.clients)]
        (state / "histories").mkdir()
        histories = [state / "histories" / f"client-{k}.jsonl" for k in range(opts.clients)]
        procs = []
        for k in range(opts.clients):
            spec = ClientSpec(
                k,
                ingest,
                histories[k],
                plans=tuple(plans) if k == 0 else (),
                repo=repo,
                team_file=team,
                submit_every_s=opts.submit_every_s,
            )
            p = ctx.Process(target=run_client, args=(spec, rates[k], stop, submitted), daemon=True)
            p.start()
            procs.append(p)

        kills: list[Kill] = []
        submit_span = opts.sessions * opts.submit_every_s
        down_at = submit_span / 3
        burst_at = 2 * submit_span / 3
        down_up_s = 0.0
        burst_rate = 0.0
        next_kill = 2.0
        k = 0
        t0 = time.monotonic()
        done_down = done_burst = False
        try:
            # Until every session is submitted and every kind of actor was killed once.
            while (
                submitted.value < opts.sessions or len({x.kind for x in kills}) < len(KINDS)
            ) and any(p.is_alive() for p in procs):
                elapsed = time.monotonic() - t0
                if elapsed > submit_span * 3 + 120:
                    say("submissions are stuck; ending the fault phase")
                    break
                if not done_down and elapsed >= down_at:
                    done_down = True
                    say(f"{elapsed:6.1f} s  ap down / ap up")
                    t = time.monotonic()
                    mesh.down()
                    mesh.up()
                    down_up_s = time.monotonic() - t
                    next_kill = time.monotonic() - t0 + opts.kill_every_s
                    continue
                if not done_burst and elapsed >= burst_at:
                    done_burst = True
                    burst_rate = _burst(opts, mesh, rates, histories, kills, rng, say, elapsed)
                    next_kill = time.monotonic() - t0 + opts.kill_every_s
                    continue
                if elapsed >= next_kill:
                    kind = KINDS[k % len(KINDS)]
                    k += 1
                    kill = _kill(mesh, kind, rng, "steady", kills)
                    if kill is not None:
                        kills.append(kill)
                        say(f"{elapsed:6.1f} s  kill -9 {kill.actor} (pid {kill.pid})")
                    next_kill += opts.kill_every_s
                time.sleep(0.05)
        finally:
            for r in rates:
                r.value = 0
            stop.set()
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
        say(f"{submitted.value} sessions submitted; waiting up to {opts.settle_s:.0f} s for them")
        log = mesh.state / "eventlog"
        ended = _wait_sessions(log, submitted.value, opts.settle_s)
        mesh.down()
        _recoveries(log, kills)
        report = check(log, histories)
        result = RunResult(
            report,
            kills,
            down_up_s,
            burst_rate,
            submitted.value,
            ended,
            time.time() - started,
            state,
        )
        (state / "result.json").write_bytes(CODEC.to_json(report))
        if not opts.keep and report.clean:
            shutil.rmtree(state / "repo", ignore_errors=True)
        return result
    except BaseException:
        with contextlib.suppress(Exception):  # never leave a mesh running
            mesh.down()
        raise


def _burst(
    opts: Options,
    mesh: _Mesh,
    rates: list[Any],
    histories: list[Path],
    kills: list[Kill],
    rng: random.Random,
    say: Any,
    elapsed: float,
) -> float:
    """Every client as fast as it can for ``burst_s``; the journal killed halfway.

    Returns the acknowledged events/s over the burst (from the histories' ``ok`` lines).
    """
    say(f"{elapsed:6.1f} s  burst for {opts.burst_s:.1f} s, journal killed halfway")
    before = time.time()
    saved = [r.value for r in rates]
    for r in rates:
        r.value = -1.0
    time.sleep(opts.burst_s / 2)
    kill = _kill(mesh, "journal", rng, "burst", kills)
    if kill is not None:
        kills.append(kill)
        say(f"           kill -9 {kill.actor} (pid {kill.pid}) during the burst")
    time.sleep(opts.burst_s / 2)
    after = time.time()
    for r, v in zip(rates, saved, strict=True):
        r.value = v
    acked = 0
    for path in histories:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    op = json.loads(line)
                except ValueError:
                    continue
                if op.get("op") == "ok" and before <= op.get("t", 0) <= after:
                    acked += len(op["ids"])
    return acked / (after - before)
