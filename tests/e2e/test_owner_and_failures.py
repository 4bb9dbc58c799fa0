"""The owner's gate and every way a submission or an objective can go wrong.

Bad input to ``ap submit`` is refused before anything is appended: one line on stderr, exit
code 3. Agents that are missing, hang or write outside their scope fail their objective
with the reason, and the session fails with it; nothing of theirs is merged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ap_actors.events import (
    MergeConflicted,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    PlanAwaitingApproval,
    Record,
    RequestSubmitted,
    ScopeViolated,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    WorkerStarted,
)
from ap_actors.process import group_alive
from tests.e2e.conftest import (
    PIPELINE_CONFIG,
    PipelineMesh,
    ended,
    gate_command,
    team_toml,
)

pytestmark = pytest.mark.timeout(300)

TEAM = team_toml(
    [
        {"id": "w1", "command": "true {scope}", "capabilities": ["python"]},
        {"id": "w2", "command": "true {scope}", "capabilities": ["python"]},
        {"id": "quick", "command": "true", "timeout_s": 1.0},
    ],
    max_attempts=1,
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineMesh]:
    """One mesh for the module: its sessions are independent of each other."""
    root = tmp_path_factory.mktemp("failures")
    # A short watchdog grace, for the test of a hung worker.
    (root / "ap.toml").write_text(
        PIPELINE_CONFIG + "[actors.scheduler]\noptions = { watchdog_grace_s = 1.0 }\n"
    )
    (root / "team.toml").write_text(TEAM)
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml").up()
    yield mesh
    mesh.down()


def plan(tmp_path: Path, text: str, name: str = "") -> str:
    path = tmp_path / (name or f"plan-{len(list(tmp_path.glob('plan-*')))}.toml")
    path.write_text(text)
    return str(path)


def refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 3, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ap: "), result.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_bad_submissions_are_refused_with_one_line_and_nothing_is_appended(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    def submitted() -> int:
        return sum(isinstance(r.event, RequestSubmitted) for r in mesh.records())

    before = submitted()
    (tmp_path / "plain").mkdir()
    cases = [
        (["do it", "--repo", str(tmp_path / "missing")], "does not exist"),
        (["do it", "--repo", str(tmp_path / "plain")], "not a git repository"),
        (["   ", "--repo", str(small_repo)], "request is empty"),
        (["do it", "--repo", str(small_repo), "--workers", "nobody"], "unknown worker"),
        (
            [
                "do it",
                "--repo",
                str(small_repo),
                "--plan",
                plan(tmp_path, "[[objectives]\nid = 1\n"),
            ],
            "plan-0.toml:1",
        ),
        (
            [
                "do it",
                "--repo",
                str(small_repo),
                "--plan",
                plan(
                    tmp_path,
                    '[[objectives]]\nid = "a"\ntitle = "A"\nscope_touch = ["pkg/"]\n'
                    '[[objectives]]\nid = "b"\ntitle = "B"\nscope_touch = ["pkg/core.py"]\n',
                ),
            ],
            "pkg/core.py",
        ),
        (
            [
                "do it",
                "--repo",
                str(small_repo),
                "--plan",
                plan(
                    tmp_path,
                    '[[objectives]]\nid = "a"\ntitle = "A"\nscope_touch = ["pkg/"]\n'
                    'worker = "ghost"\n',
                ),
            ],
            "ghost",
        ),
        (
            [
                "do it",
                "--repo",
                str(small_repo),
                "--plan",
                plan(
                    tmp_path,
                    '[[objectives]]\nid = "a"\ntitle = "A"\nscope_touch = ["pkg/"]\n'
                    'depends_on = ["b"]\nwave = 2\n'
                    '[[objectives]]\nid = "b"\ntitle = "B"\nscope_touch = ["tests/"]\n'
                    'depends_on = ["a"]\nwave = 1\n',
                ),
            ],
            "cycle",
        ),
    ]
    for args, says in cases:
        refused(mesh.submit(*args, check=False), says)
    assert submitted() == before


def test_a_plan_waits_for_the_owner_then_approve_runs_it_and_reject_cancels_it(
    mesh: PipelineMesh, small_repo: Path
) -> None:
    sessions = []
    for _ in range(2):
        out = mesh.submit("Refactor the package", "--repo", str(small_repo), "--json")
        sid = json.loads(out.stdout)["session_id"]
        mesh.wait_for(lambda r: isinstance(r.event, PlanAwaitingApproval), session_id=sid)
        sessions.append(sid)
    approved, rejected = sessions

    refused(mesh.ap("cancel", "nope", check=False), "no session")
    mesh.ap("approve", approved)
    mesh.ap("reject", rejected, "--reason", "not now")
    refused(mesh.ap("approve", rejected, check=False), "only a session awaiting approval")

    end = mesh.wait_for(ended, session_id=approved)
    assert isinstance(end.event, SessionCompleted), end.event
    end = mesh.wait_for(ended, session_id=rejected)
    assert isinstance(end.event, SessionCancelled) and "not now" in end.event.reason


def objective_plan(tmp_path: Path, command: str, worker: str = "w1", touch: str = "pkg/") -> str:
    return plan(
        tmp_path,
        f'[[objectives]]\nid = "only"\ntitle = "The only objective"\nworker = "{worker}"\n'
        f"scope_touch = [{json.dumps(touch)}]\ncommand = {json.dumps(command)}\n",
    )


def run_to_end(mesh: PipelineMesh, repo: Path, plan_file: str) -> tuple[str, Record]:
    out = mesh.submit("Fix it", "--repo", str(repo), "--plan", plan_file, "--approve", "--json")
    sid = json.loads(out.stdout)["session_id"]
    return sid, mesh.wait_for(ended, session_id=sid)


def failure_of(mesh: PipelineMesh, sid: str) -> ObjectiveFailed:
    failed = [r.event for r in mesh.records(sid) if isinstance(r.event, ObjectiveFailed)]
    assert len(failed) == 1, failed
    return failed[0]


def test_an_agent_command_that_does_not_exist_fails_its_objective_with_the_reason(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid, end = run_to_end(mesh, small_repo, objective_plan(tmp_path, "no-such-agent-xyz {scope}"))
    assert isinstance(end.event, SessionFailed)
    failure = failure_of(mesh, sid)
    assert "not found" in (failure.reason or "") and "no-such-agent-xyz" in (failure.reason or "")
    assert "only" in end.event.reason


def test_an_agent_that_hangs_past_its_timeout_is_killed_with_its_process_group(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    # The agent starts a child in the background: the whole group must go.
    sid, end = run_to_end(
        mesh, small_repo, objective_plan(tmp_path, "sh -c 'sleep 60 & sleep 60'", worker="quick")
    )
    assert isinstance(end.event, SessionFailed)
    assert "timed out after 1s" in (failure_of(mesh, sid).reason or "")
    started = [r.event for r in mesh.records(sid) if isinstance(r.event, WorkerStarted)]
    assert not group_alive(started[0].pid)


def test_an_agent_that_writes_outside_its_scope_is_not_merged(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    command = "sh -c 'echo changed >> README.md; echo more >> pkg/core.py'"
    sid, end = run_to_end(mesh, small_repo, objective_plan(tmp_path, command))
    assert isinstance(end.event, SessionFailed)
    violations = [r.event for r in mesh.records(sid) if isinstance(r.event, ScopeViolated)]
    assert [(v.rule, v.paths) for v in violations] == [("outside_touch", ["README.md"])]
    assert "scope violated" in (failure_of(mesh, sid).reason or "")
    branch = subprocess.run(
        ["git", "diff", "--name-only", f"main..ap/{sid}"],
        cwd=small_repo,
        capture_output=True,
        text=True,
    )
    assert branch.stdout.strip() == ""  # nothing merged (the branch may not even exist)


def test_cancelling_a_running_session_stops_its_agent(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    out = mesh.submit(
        "Fix it",
        "--repo",
        str(small_repo),
        "--approve",
        "--json",
        "--plan",
        objective_plan(tmp_path, "sleep 120"),
    )
    sid = json.loads(out.stdout)["session_id"]
    started = mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=sid)
    mesh.ap("cancel", sid, "--reason", "changed my mind")
    end = mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCancelled)
    failed = mesh.wait_for(lambda r: isinstance(r.event, ObjectiveFailed), session_id=sid)
    assert "cancelled" in (failed.event.reason or "")  # type: ignore[attr-defined]
    assert isinstance(started.event, WorkerStarted)
    assert not group_alive(started.event.pid)


def test_a_merge_conflict_with_a_change_on_the_session_branch_fails_the_session(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    command = gate_command(gate, "echo 'def run():\n    return 2' > pkg/core.py")
    out = mesh.submit(
        "Fix it",
        "--repo",
        str(small_repo),
        "--approve",
        "--json",
        "--plan",
        objective_plan(tmp_path, command),
    )
    sid = json.loads(out.stdout)["session_id"]
    mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=sid)

    # Someone commits to the session branch meanwhile, on the same lines.
    branch = f"ap/{sid}"
    side = tmp_path / "side"
    git = ["git", "-C", str(small_repo)]
    subprocess.run([*git, "worktree", "add", "-q", "--detach", str(side), branch], check=True)
    (side / "pkg" / "core.py").write_text("def run():\n    return 3\n")
    env = {
        "GIT_AUTHOR_NAME": "o",
        "GIT_AUTHOR_EMAIL": "o@x",
        "GIT_COMMITTER_NAME": "o",
        "GIT_COMMITTER_EMAIL": "o@x",
        "PATH": os.environ["PATH"],
    }
    subprocess.run(["git", "-C", str(side), "commit", "-qam", "owner"], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(side), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([*git, "update-ref", f"refs/heads/{branch}", head], check=True)
    subprocess.run([*git, "worktree", "remove", "--force", str(side)], check=True)
    gate.touch()

    end = mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionFailed)
    assert "conflicted on pkg/core.py" in end.event.reason
    conflicts = [r.event for r in mesh.records(sid) if isinstance(r.event, MergeConflicted)]
    assert [(c.objective_id, c.paths) for c in conflicts] == [("only", ["pkg/core.py"])]
    # The session branch is left as the owner made it: no half-done merge.
    assert (
        subprocess.run(
            [*git, "rev-parse", branch], capture_output=True, text=True, check=True
        ).stdout.strip()
        == head
    )


def test_a_hung_worker_is_caught_by_the_scheduler_watchdog_after_the_timeout(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    out = mesh.submit(
        "Fix it",
        "--repo",
        str(small_repo),
        "--approve",
        "--json",
        "--plan",
        objective_plan(tmp_path, "sleep 60", worker="quick"),
    )
    sid = json.loads(out.stdout)["session_id"]
    mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=sid)
    worker = mesh.pid_of("worker.quick")
    os.kill(worker, signal.SIGSTOP)  # alive to the supervisor, silent to the mesh
    try:
        end = mesh.wait_for(ended, session_id=sid)
    finally:
        os.kill(worker, signal.SIGCONT)
    assert isinstance(end.event, SessionFailed)
    first = next(r.event for r in mesh.records(sid) if isinstance(r.event, ObjectiveFailed))
    assert first.source == "scheduler" and "may be hung" in (first.reason or "")


def test_two_sessions_share_a_worker_one_objective_at_a_time(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sessions = []
    for n in range(2):
        plan_file = tmp_path / f"shared-{n}.toml"
        plan_file.write_text(
            '[[objectives]]\nid = "a"\ntitle = "A"\nworker = "w1"\nscope_touch = ["pkg/"]\n'
            "command = \"sh -c 'sleep 0.3; echo a >> pkg/util.py'\"\n"
            '[[objectives]]\nid = "b"\ntitle = "B"\nworker = "w1"\nscope_touch = ["tests/"]\n'
            "command = \"sh -c 'sleep 0.3; echo b >> tests/test_core.py'\"\n"
        )
        out = mesh.submit(
            "Work", "--repo", str(small_repo), "--approve", "--json", "--plan", str(plan_file)
        )
        sessions.append(json.loads(out.stdout)["session_id"])
    for sid in sessions:
        end = mesh.wait_for(ended, session_id=sid)
        assert isinstance(end.event, SessionCompleted), end.event

    # w1 ran the four objectives one after the other: each start follows the previous end.
    running: tuple[str, str] | None = None
    runs = 0
    for r in mesh.records():
        e = r.event
        if e.session_id not in sessions:
            continue
        if isinstance(e, ObjectiveStarted) and e.worker_id == "w1":
            assert running is None, f"{running} still running when {e.objective_id} started"
            running = (e.session_id, e.objective_id)
            runs += 1
        elif isinstance(e, ObjectiveCompleted | ObjectiveFailed) and e.worker_id == "w1":
            assert running == (e.session_id, e.objective_id)
            running = None
    assert runs == 4
