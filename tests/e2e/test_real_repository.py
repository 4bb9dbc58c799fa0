"""A whole session on real third-party code (python-dateutil's sdist), end to end.

Real processes (the supervisor and every actor), real git worktrees, real ruff runs as
the workers' agents, the real event log. Synchronised on events, never on sleep().
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ap_actors.events import (
    ActorStarted,
    AnalysisCompleted,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    PlanApproved,
    PlanProposed,
    Record,
    ReportWritten,
    RequestSubmitted,
    ScopeValidated,
    SessionCompleted,
    WaveMerged,
    WaveStarted,
    WorkerStarted,
)
from ap_actors.process import group_alive
from ap_actors.scope import in_scope
from tests.e2e.conftest import RUFF, PipelineMesh, team_toml

pytestmark = pytest.mark.timeout(300)

REQUEST = "Modernize syntax and sort imports across the codebase"


def ruff_workers(n: int = 3, wrap: str | None = None) -> list[dict[str, object]]:
    steps = [
        f"{RUFF} check --fix --exit-zero --no-cache --select UP,I {{scope:*.py}}",
        f"{RUFF} format --no-cache {{scope:*.py}}",
    ]
    workers: list[dict[str, object]] = []
    for i in range(1, n + 1):
        w: dict[str, object] = {"id": f"ruff-{i}", "capabilities": ["python"]}
        if wrap:
            w["command"] = ["sh", "-c", wrap, "sh", "{scope:*.py}"]
        else:
            w["commands"] = steps
        workers.append(w)
    return workers


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def check_completed_session(mesh: PipelineMesh, repo: Path, session_id: str) -> None:
    """The assertions every completed session on the real repository must pass."""
    records = mesh.records(session_id)
    events = [r.event for r in records]
    view = json.loads(mesh.ap("show", session_id, "--json").stdout)
    assert view["status"] == "completed", view["reason"]

    # The plan is valid and has parallel objectives.
    plans = [e for e in events if isinstance(e, PlanProposed)]
    assert len(plans) == 1
    validated = [e for e in events if isinstance(e, ScopeValidated)]
    assert validated and validated[-1].valid and not validated[-1].conflicts
    waves = Counter(o.wave for o in plans[0].objectives)
    assert max(waves.values()) >= 2, f"no parallel wave in {waves}"

    # Every objective completed exactly once; every changed file lies in its scope.
    completed = [e for e in events if isinstance(e, ObjectiveCompleted)]
    assert sorted(e.objective_id for e in completed) == sorted(o.id for o in plans[0].objectives)
    by_id = {o.id: o for o in plans[0].objectives}
    changed: set[str] = set()
    for e in completed:
        o = by_id[e.objective_id]
        for path in e.files_modified:
            assert in_scope(path, o.scope_touch, o.scope_forbid), (o.id, path)
        changed.update(e.files_modified)
    assert changed, "ruff changed nothing: the demo package is not old enough?"

    # The session branch holds exactly the merged changes.
    branch = view["branch"]
    assert branch == f"ap/{session_id}"
    on_branch = set(git(repo, "diff", "--name-only", f"main..{branch}").split())
    assert on_branch == changed

    # The three reports exist.
    written = {e.kind: e.path for e in events if isinstance(e, ReportWritten)}
    assert set(written) == {"analysis", "plan", "accomplishment"}
    for path in written.values():
        text = Path(path).read_text()
        assert session_id in text
        assert not Path(path).is_relative_to(repo)

    # Causal order.
    def first(kind: type, pred: Callable[[object], bool] = lambda e: True) -> int:
        return next(r.seq for r in records if isinstance(r.event, kind) and pred(r.event))

    chain = [
        first(RequestSubmitted),
        first(AnalysisCompleted),
        first(PlanProposed),
        first(ScopeValidated),
        first(PlanApproved),
        first(WaveStarted, lambda e: e.wave == 1),  # type: ignore[attr-defined]
    ]
    assert chain == sorted(chain)
    for o in plans[0].objectives:
        won = next(e for e in completed if e.objective_id == o.id)
        steps = [
            first(WaveStarted, lambda e, w=o.wave: e.wave == w),  # type: ignore[attr-defined,misc]
            first(ObjectiveAssigned, lambda e, i=o.id: e.objective_id == i),  # type: ignore[attr-defined,misc]
            first(ObjectiveStarted, lambda e, i=o.id: e.objective_id == i),  # type: ignore[attr-defined,misc]
            next(r.seq for r in records if r.event is won),
            first(WaveMerged, lambda e, w=o.wave: e.wave == w),  # type: ignore[attr-defined,misc]
            first(SessionCompleted),
        ]
        assert steps == sorted(steps), o.id
        for dep in o.depends_on:
            dep_done = next(
                r.seq
                for r in records
                if isinstance(r.event, ObjectiveCompleted) and r.event.objective_id == dep
            )
            assert dep_done < steps[1]

    # One result per attempt; the attempt a result belongs to is the latest assigned.
    latest: dict[str, int] = {}
    results: Counter[tuple[str, int]] = Counter()
    for e in events:
        if isinstance(e, ObjectiveAssigned):
            latest[e.objective_id] = e.attempt
        elif isinstance(e, ObjectiveCompleted | ObjectiveFailed):
            results[(e.objective_id, latest[e.objective_id])] += 1
    assert results and set(results.values()) == {1}, results


def test_a_session_on_real_third_party_code_completes_with_scoped_parallel_objectives(
    pipeline_mesh: Callable[..., PipelineMesh], dateutil_repo: Path
) -> None:
    mesh = pipeline_mesh(team_toml(ruff_workers())).up()

    done = mesh.submit(REQUEST, "--repo", str(dateutil_repo), "--approve", "--wait", "--json")

    view = json.loads(done.stdout)
    assert view["status"] == "completed"
    check_completed_session(mesh, dateutil_repo, view["session_id"])
    # The reports can be rebuilt from the log alone.
    rebuilt = mesh.ap("report", view["session_id"], "--out", str(mesh.state_dir / "rebuilt"))
    assert rebuilt.stdout.count(".md") == 3


def test_killing_a_worker_mid_objective_and_the_scheduler_mid_wave_still_completes(
    pipeline_mesh: Callable[..., PipelineMesh], dateutil_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    # Each agent waits for the gate, so the kills land while objectives are in flight.
    wrap = (
        f'while [ ! -e "{gate}" ]; do sleep 0.02; done;'
        f' {RUFF} check --fix --exit-zero --no-cache --select UP,I "$@"'
        f' && {RUFF} format --no-cache "$@"'
    )
    mesh = pipeline_mesh(team_toml(ruff_workers(wrap=wrap), max_attempts=3)).up()
    out = mesh.submit(REQUEST, "--repo", str(dateutil_repo), "--approve", "--json")
    session_id = json.loads(out.stdout)["session_id"]

    started = mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=session_id)
    victim = started.event
    assert isinstance(victim, WorkerStarted)
    os.kill(mesh.pid_of(f"worker.{victim.worker_id}"), signal.SIGKILL)
    # The restarted worker reports the objective interrupted; the scheduler re-assigns it.
    mesh.wait_for(
        lambda r: (
            isinstance(r.event, ObjectiveFailed)
            and r.event.objective_id == victim.objective_id
            and "interrupted" in (r.event.reason or "")
        ),
        session_id=session_id,
    )
    mesh.wait_for(
        lambda r: (
            isinstance(r.event, ObjectiveAssigned)
            and r.event.objective_id == victim.objective_id
            and r.event.attempt == 2
        ),
        session_id=session_id,
    )
    # The agent of the killed worker is gone (its process group was killed).
    assert not group_alive(victim.pid)

    seq_before = mesh.records()[-1].seq
    os.kill(mesh.pid_of("scheduler"), signal.SIGKILL)
    mesh.wait_for(
        lambda r: (
            r.seq > seq_before
            and isinstance(r.event, ActorStarted)
            and r.event.actor == "scheduler"
        )
    )
    gate.touch()

    end: Record = mesh.wait_for(
        lambda r: type(r.event).__name__.startswith("Session"), session_id=session_id
    )
    assert isinstance(end.event, SessionCompleted), end.event
    mesh.wait_for(
        lambda r: isinstance(r.event, ReportWritten) and r.event.kind == "accomplishment",
        session_id=session_id,
    )
    check_completed_session(mesh, dateutil_repo, session_id)
