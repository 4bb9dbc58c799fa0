"""The agent planner through the real planner actor, and the read-only CLI on a log.

The agent is a small Python script standing in for a coding-agent CLI: asked with the
planner's prompt, it prints prose and a fenced JSON plan (or garbage, when the request
asks for it). The read-only commands (``ap sessions``, ``show``, ``replay``, ``report``)
are checked against the log itself, and once more after ``ap down``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from ap_actors.events import (
    AnalysisCompleted,
    ObjectiveCompleted,
    PlanAwaitingApproval,
    PlanProposed,
    Record,
    ReportWritten,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    WorkerActivity,
    WorkerStarted,
    record_to_json_dict,
)
from tests.e2e.conftest import (
    GATE_SCRIPT,
    PIPELINE_CONFIG,
    PipelineMesh,
    actor_restarted,
    ended,
    gate_command,
    rebuilt_reports,
    session_of,
    team_toml,
    write_plan,
    written_reports,
)

pytestmark = pytest.mark.timeout(120)

AGENT_PLAN = {
    "objectives": [
        {
            "id": "pkg-work",
            "title": "Work on the package",
            "description": "Everything under pkg/",
            "wave": 1,
            "scope_touch": ["pkg/"],
        }
    ]
}

AGENT = '''\
"""A stand-in for a coding-agent CLI asked for a plan: argv[1] is the planner's prompt."""
import json
import re
import subprocess
import sys

prompt = sys.argv[1]
if "Answer with garbage" in prompt:
    print("I had a look around. Honestly, {objectives: just do it yourself")
    sys.exit(0)
gate = re.search(r"Wait for the gate (\\S+)", prompt)
if gate:
    subprocess.run([sys.executable, GATE_SCRIPT, gate[1]], check=True)
print("I read the repository: one package, so one objective is enough.")
print()
print("```json")
print(json.dumps(PLAN, indent=2))
print("```")
print()
print("Tell me if you want a finer split.")
'''


@pytest.fixture(scope="module")
def agent_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineMesh]:
    """A mesh whose planner asks the agent script for its plans."""
    root = tmp_path_factory.mktemp("agent-planner")
    script = root / "agent.py"
    script.write_text(
        AGENT.replace("PLAN", repr(AGENT_PLAN)).replace("GATE_SCRIPT", repr(str(GATE_SCRIPT)))
    )
    command = msgspec.json.encode([sys.executable, str(script), "{prompt}"]).decode()
    (root / "ap.toml").write_text(
        PIPELINE_CONFIG
        + f'\n[actors.planner]\noptions = {{ mode = "agent", agent_command = {command} }}\n'
    )
    (root / "team.toml").write_text(
        team_toml([{"id": "w1", "command": "true {scope}"}], auto_approve=True)
    )
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml").up()
    yield mesh
    mesh.down()


def events_of(mesh: PipelineMesh, session_id: str, kind: type) -> list[object]:
    return [r.event for r in mesh.records(session_id) if isinstance(r.event, kind)]


# --- the agent planner ----------------------------------------------------------------


def test_the_agent_planner_proposes_the_plan_the_agent_printed_after_its_prose(
    agent_mesh: PipelineMesh, small_repo: Path
) -> None:
    sid = session_of(agent_mesh.submit("Tidy the package", "--repo", str(small_repo), "--json"))
    end = agent_mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCompleted), end.event
    (proposed,) = events_of(agent_mesh, sid, PlanProposed)
    assert isinstance(proposed, PlanProposed)
    assert [(o.id, o.title, o.description, o.wave, o.scope_touch) for o in proposed.objectives] == [
        ("pkg-work", "Work on the package", "Everything under pkg/", 1, ["pkg/"])
    ]


def test_an_agent_planner_that_prints_no_plan_fails_the_session_with_the_reason(
    agent_mesh: PipelineMesh, small_repo: Path
) -> None:
    sid = session_of(agent_mesh.submit("Answer with garbage", "--repo", str(small_repo), "--json"))
    end = agent_mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionFailed), end.event
    assert end.event.source == "planner"
    assert "agent plan" in end.event.reason and "objectives" in end.event.reason
    assert events_of(agent_mesh, sid, AnalysisCompleted)
    assert not events_of(agent_mesh, sid, PlanProposed)


def planning_behind_a_gate(mesh: PipelineMesh, repo: Path, gate: Path) -> str:
    """Submit a request whose agent waits for ``gate``; return the session id once the
    analysis is in the log, i.e. while the planner waits for its agent."""
    sid = session_of(
        mesh.submit(f"Wait for the gate {gate} then plan", "--repo", str(repo), "--json")
    )
    mesh.wait_for(lambda r: isinstance(r.event, AnalysisCompleted), session_id=sid)
    return sid


def test_a_planner_killed_while_its_agent_plans_plans_once_after_its_restart(
    agent_mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    sid = planning_behind_a_gate(agent_mesh, small_repo, gate)
    os.kill(agent_mesh.pid_of("planner"), signal.SIGKILL)
    # The first agent's answer goes to a dead planner. The restarted one analyses again
    # (the same event id: acknowledged, not appended) and asks its own agent.
    gate.touch()
    end = agent_mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCompleted), end.event
    assert len(events_of(agent_mesh, sid, AnalysisCompleted)) == 1
    assert len(events_of(agent_mesh, sid, PlanProposed)) == 1


def test_a_planner_restarted_while_its_agent_plans_is_ready_before_the_agent_answers(
    agent_mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    planning_behind_a_gate(agent_mesh, small_repo, gate)
    before = agent_mesh.records()[-1].seq
    os.kill(agent_mesh.pid_of("planner"), signal.SIGKILL)
    try:
        # Starting and folding a small log takes a second or two.
        agent_mesh.wait_for(actor_restarted("planner", before), timeout=10)
    finally:
        gate.touch()  # lets the planner finish, so that the mesh stops cleanly


# --- the read-only CLI ----------------------------------------------------------------


def objective(id: str, command: str, touch: str) -> dict[str, object]:
    return {"id": id, "title": f"Objective {id}", "scope_touch": [touch], "command": command}


def of_objective(kind: type, objective_id: str, description: str = "") -> Callable[[Record], bool]:
    def matches(r: Record) -> bool:
        e = r.event
        return (
            isinstance(e, kind)
            and getattr(e, "objective_id", None) == objective_id
            and (not description or getattr(e, "description", None) == description)
        )

    return matches


def completed_session(mesh: PipelineMesh, repo: Path, tmp_path: Path) -> str:
    """Run a two-objective session to its end and return its id.

    The scheduler is held (SIGSTOP) from the moment both agents run until the log
    monitors have read both transcripts to their end, so that every activity of the
    session precedes its end: the reporter's accomplishment report then has them all
    (see test_pipeline_paths.py for the report written before late activities).
    """
    gate = tmp_path / "gate"
    plan_file = write_plan(
        tmp_path / "plan.json",
        objective("alpha", gate_command(gate, "echo '# a' >> pkg/core.py"), "pkg/core.py"),
        objective("beta", gate_command(gate, "echo '# b' >> pkg/util.py"), "pkg/util.py"),
    )
    sid = session_of(
        mesh.submit(
            "Annotate the modules", "--repo", str(repo), "--plan", plan_file, "--approve", "--json"
        )
    )
    for o in ("alpha", "beta"):
        mesh.wait_for(of_objective(WorkerStarted, o), session_id=sid)
    scheduler = mesh.pid_of("scheduler")
    os.kill(scheduler, signal.SIGSTOP)
    try:
        gate.touch()
        for o in ("alpha", "beta"):
            mesh.wait_for(of_objective(ObjectiveCompleted, o), session_id=sid)
            mesh.wait_for(of_objective(WorkerActivity, o, "exit code 0"), session_id=sid)
    finally:
        os.kill(scheduler, signal.SIGCONT)
    end = mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCompleted), end.event
    mesh.wait_for(
        lambda r: isinstance(r.event, ReportWritten) and r.event.kind == "accomplishment",
        session_id=sid,
    )
    return sid


def rejected_session(mesh: PipelineMesh, repo: Path, tmp_path: Path) -> str:
    plan_file = write_plan(tmp_path / "rejected.json", objective("gamma", "true", "pkg/"))
    sid = session_of(
        mesh.submit("Not this one", "--repo", str(repo), "--plan", plan_file, "--json")
    )
    mesh.wait_for(lambda r: isinstance(r.event, PlanAwaitingApproval), session_id=sid)
    mesh.ap("reject", sid, "--reason", "not now")
    end = mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCancelled), end.event
    return sid


def test_sessions_show_replay_and_report_read_the_log_also_after_the_mesh_is_down(
    pipeline_mesh: Callable[..., PipelineMesh], small_repo: Path, tmp_path: Path
) -> None:
    mesh = pipeline_mesh(
        team_toml([{"id": "w1", "command": "true"}, {"id": "w2", "command": "true"}])
    ).up()
    rejected = rejected_session(mesh, small_repo, tmp_path)
    sid = completed_session(mesh, small_repo, tmp_path)
    written = written_reports(mesh, sid)
    assert set(written) == {"analysis", "plan", "accomplishment"}
    mesh.down()
    assert mesh.ap("status", check=False).returncode != 0  # no mesh runs

    rows = [json.loads(line) for line in mesh.ap("sessions", "--json").stdout.splitlines()]
    assert [
        (r["session_id"], r["status"], r["objectives"], r["objectives_completed"]) for r in rows
    ] == [(rejected, "cancelled", 1, 0), (sid, "completed", 2, 2)]

    view = json.loads(mesh.ap("show", sid, "--json").stdout)
    assert (view["session_id"], view["status"], view["branch"]) == (sid, "completed", f"ap/{sid}")
    assert sorted((o["objective"]["id"], o["status"]) for o in view["objectives"]) == [
        ("alpha", "completed"),
        ("beta", "completed"),
    ]

    # The shortest prefix that only this session has; a shared one is refused.
    shared = next(sid[:n] for n in range(len(sid)) if sid[n] != rejected[n])
    text = mesh.ap("show", sid[: len(shared) + 1]).stdout
    assert sid in text and "alpha" in text and "beta" in text and "completed" in text
    ambiguous = mesh.ap("show", shared, check=False)
    assert ambiguous.returncode == 3 and "matches 2 sessions" in ambiguous.stderr

    out = mesh.ap("replay", sid, "--speed", "0", "--json").stdout
    replayed = [json.loads(line) for line in out.splitlines()]
    expected = [json.loads(msgspec.json.encode(record_to_json_dict(r))) for r in mesh.records(sid)]
    assert replayed == expected
    assert [r["seq"] for r in replayed] == sorted(r["seq"] for r in replayed)
    refused = mesh.ap("replay", sid, "--speed", "-1", check=False)
    assert refused.returncode == 3
    assert refused.stderr.strip().startswith("ap: ") and "--speed" in refused.stderr
    assert "Traceback" not in refused.stderr

    rebuilt = rebuilt_reports(mesh, sid, tmp_path / "rebuilt")
    assert set(rebuilt) == set(written)
    for kind, path in rebuilt.items():
        assert path.is_relative_to(tmp_path / "rebuilt") and path.name == written[kind].name
        assert path.read_text() == written[kind].read_text(), kind
    assert "alpha" in rebuilt["accomplishment"].read_text()
