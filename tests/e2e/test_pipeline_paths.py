"""The pipeline's other paths, each on a real mesh: conflicts resolved into waves, the
team's auto approval, activities from agent log files and transcripts, and actors killed
in the middle of a session (a log monitor, the planner) without losing or repeating work.

One mesh for the module (its sessions are independent of each other); every test brings
its own repository. Synchronised on events, never on sleep(): agents that must be caught
in the middle of their work wait for a gate file the test creates.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ap_actors.events import (
    AnalysisCompleted,
    ObjectiveAssigned,
    ObjectiveCompleted,
    PlanApproved,
    PlanAwaitingApproval,
    PlanProposed,
    PlanRevised,
    Record,
    ReportWritten,
    RequestSubmitted,
    ScopeValidated,
    SessionCompleted,
    WaveMerged,
    WaveStarted,
    WorkerActivity,
    WorkerError,
)
from ap_actors.scope import in_scope
from tests.e2e.conftest import (
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

E = TypeVar("E")

TOOL_LINE = "[2025-10-08T10:36:45] TOOL: search_replace - Editing pkg/core.py"


@pytest.fixture(scope="module")
def agent_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent log file of worker w1 (its ``log_paths``), empty when the mesh starts."""
    path = tmp_path_factory.mktemp("agent-logs") / "w1-agent.log"
    path.touch()
    return path


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, agent_log: Path) -> Iterator[PipelineMesh]:
    """One mesh for the module: two workers, w1 with an agent log, and auto approval."""
    root = tmp_path_factory.mktemp("paths")
    (root / "ap.toml").write_text(PIPELINE_CONFIG)
    (root / "team.toml").write_text(
        team_toml(
            [
                {"id": "w1", "command": "true {scope}", "log_paths": [str(agent_log)]},
                {"id": "w2", "command": "true {scope}"},
            ],
            auto_approve=True,
            max_attempts=1,
        )
    )
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml").up()
    yield mesh
    mesh.down()


def objective(id: str, command: str, *, worker: str = "", touch: str = "pkg/") -> dict[str, object]:
    return {
        "id": id,
        "title": f"Objective {id}",
        "scope_touch": [touch],
        "worker": worker,
        "command": command,
    }


def start(mesh: PipelineMesh, repo: Path, plan_file: str, *flags: str) -> str:
    """Submit a plan file, approved up front, and return the session id."""
    return session_of(
        mesh.submit(
            "Work on the package",
            "--repo",
            str(repo),
            "--plan",
            plan_file,
            "--approve",
            "--json",
            *flags,
        )
    )


def finish(mesh: PipelineMesh, session_id: str) -> Record:
    end = mesh.wait_for(ended, session_id=session_id)
    assert isinstance(end.event, SessionCompleted), end.event
    return end


def activity(objective_id: str, description: str) -> Callable[[Record], bool]:
    def matches(record: Record) -> bool:
        e = record.event
        return (
            isinstance(e, WorkerActivity)
            and e.objective_id == objective_id
            and e.description == description
        )

    return matches


def of_type(records: list[Record], kind: type[E]) -> list[tuple[int, E]]:
    """The (seq, event) of the records whose event is a ``kind``, in seq order."""
    return [(r.seq, r.event) for r in records if isinstance(r.event, kind)]


# --- plans ------------------------------------------------------------------------------


def test_overlapping_objectives_are_moved_to_later_waves_with_resolve_conflicts(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    plan_file = write_plan(
        tmp_path / "plan.json",
        objective("whole", "sh -c 'echo \"# whole\" >> pkg/util.py'", touch="pkg/"),
        objective("core", "sh -c 'echo \"# core\" >> pkg/core.py'", touch="pkg/core.py"),
    )
    sid = start(mesh, small_repo, plan_file, "--resolve-conflicts")
    finish(mesh, sid)
    records = mesh.records(sid)

    ((revised_seq, revised),) = of_type(records, PlanRevised)
    validated = of_type(records, ScopeValidated)
    assert [(e.plan_id, e.valid, e.resolving) for _, e in validated] == [
        ("plan-1", False, True),
        (revised.plan_id, True, False),
    ]
    assert validated[0][0] < revised_seq < validated[1][0]
    assert revised.revises == "plan-1" and revised.plan_id != "plan-1"
    (conflict,) = validated[0][1].conflicts
    assert conflict.wave == 1
    assert {conflict.objective_a, conflict.objective_b} == {"whole", "core"}
    assert {conflict.pattern_a, conflict.pattern_b} == {"pkg/", "pkg/core.py"}
    assert conflict.witness == "pkg/core.py"
    assert in_scope(conflict.witness, [conflict.pattern_a], [])
    assert in_scope(conflict.witness, [conflict.pattern_b], [])

    waves = {o.id: o.wave for o in revised.objectives}
    assert set(waves) == {"whole", "core"} and waves["whole"] != waves["core"]
    ((_, approved),) = of_type(records, PlanApproved)
    assert approved.plan_id == revised.plan_id

    # The later wave starts only once the earlier one is merged, from its merge commit.
    first, second = sorted(waves, key=waves.__getitem__)
    merged = {e.wave: (seq, e) for seq, e in of_type(records, WaveMerged)}
    started = {e.wave: seq for seq, e in of_type(records, WaveStarted)}
    assert set(merged) == set(started) == {1, 2}
    assert merged[waves[first]][0] < started[waves[second]]
    assigned = next(e for _, e in of_type(records, ObjectiveAssigned) if e.objective_id == second)
    assert assigned.base == merged[waves[first]][1].commit
    changed = subprocess.run(
        ["git", "diff", "--name-only", f"main..ap/{sid}"],
        cwd=small_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(changed) == ["pkg/core.py", "pkg/util.py"]


def test_a_team_with_auto_approve_approves_a_submission_without_approve(
    mesh: PipelineMesh, small_repo: Path
) -> None:
    sid = session_of(mesh.submit("Refactor the package", "--repo", str(small_repo), "--json"))
    finish(mesh, sid)
    records = mesh.records(sid)
    ((_, request),) = of_type(records, RequestSubmitted)
    assert request.auto_approve is False
    ((_, validated),) = of_type(records, ScopeValidated)
    ((_, approved),) = of_type(records, PlanApproved)
    assert (approved.by, approved.plan_id) == ("auto", validated.plan_id)
    assert not of_type(records, PlanAwaitingApproval)


# --- activities -------------------------------------------------------------------------


def test_a_line_appended_to_a_workers_agent_log_is_an_activity_of_its_running_objective(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, agent_log: Path
) -> None:
    gate = tmp_path / "gate"
    plan_file = write_plan(
        tmp_path / "plan.json", objective("edit", gate_command(gate), worker="w1")
    )
    sid = start(mesh, small_repo, plan_file)
    # The monitor tails the transcript, so it knows the objective w1 is running.
    mesh.wait_for(
        lambda r: isinstance(r.event, WorkerActivity) and r.event.activity_type == "command",
        session_id=sid,
    )
    with agent_log.open("a") as f:
        f.write(TOOL_LINE + "\n")
    found = mesh.wait_for(
        lambda r: isinstance(r.event, WorkerActivity) and r.event.tool_name == "search_replace",
        session_id=sid,
    )
    gate.touch()
    finish(mesh, sid)
    event = found.event
    assert isinstance(event, WorkerActivity)
    assert (event.worker_id, event.objective_id) == ("w1", "edit")
    assert (event.activity_type, event.file_path) == ("tool_use", "pkg/core.py")
    assert event.description == "Editing pkg/core.py"


def test_tool_uses_test_results_and_tracebacks_in_the_transcript_become_activities_in_order(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "agent.sh"
    script.write_text(
        "cat <<'OUT'\n"
        f"{TOOL_LINE}\n"
        "======================== 3 passed, 1 failed in 0.12s ========================\n"
        "Traceback (most recent call last):\n"
        '  File "pkg/core.py", line 2, in run\n'
        "    return 1 / 0\n"
        "ZeroDivisionError: division by zero\n"
        "OUT\n"
    )
    plan_file = write_plan(
        tmp_path / "plan.json", objective("noisy", f"sh {shlex.quote(str(script))}", worker="w1")
    )
    sid = start(mesh, small_repo, plan_file)
    finish(mesh, sid)
    # The monitor reads the transcript to its end after the objective: wait for its last line.
    mesh.wait_for(activity("noisy", "exit code 0"), session_id=sid)
    records = mesh.records(sid)

    activities = of_type(records, WorkerActivity)
    assert {(e.worker_id, e.objective_id) for _, e in activities} == {("w1", "noisy")}
    assert [e.activity_type for _, e in activities] == [
        "command",  # the worker's COMMAND line
        "tool_use",
        "testing",
        "error",
        "command",  # exit code 0
    ]
    _, tool, testing, error, _ = (e for _, e in activities)
    assert (tool.tool_name, tool.description, tool.file_path) == (
        "search_replace",
        "Editing pkg/core.py",
        "pkg/core.py",
    )
    assert "3 passed, 1 failed in 0.12s" in testing.description
    assert (error.description, error.file_path) == (
        "ZeroDivisionError: division by zero",
        "pkg/core.py",
    )
    ((error_seq, worker_error),) = of_type(records, WorkerError)
    assert (worker_error.worker_id, worker_error.objective_id) == ("w1", "noisy")
    assert worker_error.error == "ZeroDivisionError: division by zero"
    assert error_seq > activities[3][0]


# --- crashes ----------------------------------------------------------------------------


def numbered_lines(tmp_path: Path, gate: Path, worker: str) -> str:
    """A plan whose one objective prints ``step 1`` .. ``step 100``, waits for ``gate``,
    then prints ``step 101`` .. ``step 200``."""
    script = tmp_path / "lines.sh"
    script.write_text(
        "i=1\n"
        'while [ $i -le 100 ]; do echo "step $i"; i=$((i+1)); done\n'
        'while [ ! -e "$1" ]; do sleep 0.02; done\n'
        'while [ $i -le 200 ]; do echo "step $i"; i=$((i+1)); done\n'
    )
    command = f"sh {shlex.quote(str(script))} {shlex.quote(str(gate))}"
    return write_plan(tmp_path / "plan.json", objective("lines", command, worker=worker))


def assert_each_line_once(mesh: PipelineMesh, session_id: str) -> None:
    descriptions = Counter(
        e.description for _, e in of_type(mesh.records(session_id), WorkerActivity)
    )
    counts = {n: descriptions[f"step {n}"] for n in range(1, 201)}
    assert [n for n, c in counts.items() if c == 0] == [], "missing"
    assert {n: c for n, c in counts.items() if c > 1} == {}, "duplicated"
    assert descriptions["exit code 0"] == 1


def test_a_log_monitor_killed_mid_transcript_emits_each_activity_exactly_once(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    sid = start(mesh, small_repo, numbered_lines(tmp_path, gate, "w2"))
    mesh.wait_for(activity("lines", "step 100"), session_id=sid)

    before = mesh.records()[-1].seq
    os.kill(mesh.pid_of("log_monitor.w2"), signal.SIGKILL)
    # Ready means recovered: the new monitor reads the transcript again from its start.
    mesh.wait_for(actor_restarted("log_monitor.w2", before))
    gate.touch()

    finish(mesh, sid)
    mesh.wait_for(activity("lines", "exit code 0"), session_id=sid)
    assert_each_line_once(mesh, sid)


def test_a_log_monitor_down_while_its_objective_ends_still_reads_the_rest_of_the_transcript(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    sid = start(mesh, small_repo, numbered_lines(tmp_path, gate, "w2"))
    mesh.wait_for(activity("lines", "step 100"), session_id=sid)

    # Stopped, the monitor cannot read on; the objective ends; then the monitor dies and
    # comes back, as it would after a crash and its back-off.
    monitor = mesh.pid_of("log_monitor.w2")
    os.kill(monitor, signal.SIGSTOP)
    try:
        gate.touch()
        mesh.wait_for(
            lambda r: isinstance(r.event, ObjectiveCompleted) and r.event.objective_id == "lines",
            session_id=sid,
        )
        before = mesh.records()[-1].seq
    finally:
        os.kill(monitor, signal.SIGKILL)
    mesh.wait_for(actor_restarted("log_monitor.w2", before))
    finish(mesh, sid)

    # A recovered monitor reads 200 lines in well under a second.
    mesh.wait_for(activity("lines", "exit code 0"), session_id=sid, timeout=5)
    assert_each_line_once(mesh, sid)


def test_the_accomplishment_report_counts_activities_read_after_the_session_ended(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    plan_file = write_plan(tmp_path / "plan.json", objective("quick", "echo done", worker="w1"))
    # The monitor is held back until the session has ended and its report is written:
    # the late reading that a busy monitor does in every session, made certain.
    monitor = mesh.pid_of("log_monitor.w1")
    os.kill(monitor, signal.SIGSTOP)
    try:
        sid = start(mesh, small_repo, plan_file)
        finish(mesh, sid)
        mesh.wait_for(
            lambda r: isinstance(r.event, ReportWritten) and r.event.kind == "accomplishment",
            session_id=sid,
        )
    finally:
        os.kill(monitor, signal.SIGCONT)
    drained = mesh.wait_for(activity("quick", "exit code 0"), session_id=sid)

    with contextlib.suppress(TimeoutError):  # a fixed reporter writes the report again
        mesh.wait_for(
            lambda r: (
                r.seq > drained.seq
                and isinstance(r.event, ReportWritten)
                and r.event.kind == "accomplishment"
            ),
            session_id=sid,
            timeout=5,
        )
    reporter_file = written_reports(mesh, sid)["accomplishment"]
    rebuilt = rebuilt_reports(mesh, sid, tmp_path / "rebuilt")["accomplishment"]
    assert reporter_file.read_text() == rebuilt.read_text()


def test_a_planner_killed_before_it_saw_a_submission_plans_it_once_after_its_restart(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    plan_file = write_plan(tmp_path / "plan.json", objective("only", "true"))
    planner = mesh.pid_of("planner")
    # Stopped, it cannot react to the request; SIGKILL ends a stopped process too.
    os.kill(planner, signal.SIGSTOP)
    try:
        sid = start(mesh, small_repo, plan_file)
        before = mesh.records()[-1].seq
    finally:
        os.kill(planner, signal.SIGKILL)
    mesh.wait_for(actor_restarted("planner", before))
    finish(mesh, sid)
    records = mesh.records(sid)
    assert len(of_type(records, AnalysisCompleted)) == 1
    ((_, proposed),) = of_type(records, PlanProposed)
    assert [o.id for o in proposed.objectives] == ["only"]
