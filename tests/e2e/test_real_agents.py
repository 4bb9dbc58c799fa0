"""Sessions run by the real agent CLIs: Codex, Claude Code and Gemini CLI.

The CLIs are the real npm packages (``make agents`` installs them into ``.agents/``); only
their model is scripted, by :mod:`tests.support.model_server` on loopback, which speaks
each vendor's streaming API. Each CLI runs real tools (shell commands, file edits) in its
objective's worktree and prints its real machine-readable stream, which the log monitor
parses into ``worker_activity`` events and the worker reads for tokens and errors.

``make test`` sets ``AP_REQUIRE_AGENTS=1``: there a missing CLI fails the tests instead
of skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ap_actors.events import (
    ObjectiveCompleted,
    ObjectiveFailed,
    Record,
    ScopeViolated,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    WorkerActivity,
    WorkerMetrics,
)
from ap_actors.worktrees import worktree_path
from tests.e2e.conftest import PipelineMesh, ended, session_of, team_toml, write_plan
from tests.integration.conftest import REPO
from tests.support.model_server import (
    HttpError,
    ModelServer,
    Patch,
    Reply,
    Shell,
    WriteFile,
    cli_setup,
    serve_in_thread,
)

pytestmark = pytest.mark.timeout(420)

AGENTS_BIN = REPO / ".agents" / "node_modules" / ".bin"
CLIS = ("codex", "claude", "gemini")
MODELS = {"codex": "gpt-5.5", "claude": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
SHELL_TOOL = {"codex": "shell", "claude": "Bash", "gemini": "run_shell_command"}

_missing = [c for c in CLIS if not (AGENTS_BIN / c).exists()]
if _missing and os.environ.get("AP_REQUIRE_AGENTS") == "1":
    raise RuntimeError(f"agent CLIs missing from {AGENTS_BIN}: {_missing}; run `make agents`")
pytestmark = [
    pytestmark,
    pytest.mark.skipif(bool(_missing), reason=f"{_missing} not installed; run `make agents`"),
]


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with serve_in_thread() as server:
        yield server


@pytest.fixture
def repo(small_repo: Path) -> Path:
    """The small package, with one module per CLI for it to change."""
    import subprocess

    for cli in CLIS:
        (small_repo / f"{cli}_app.py").write_text("def greet():\n    print('hi')\n")
    subprocess.run(["git", "add", "-A"], cwd=small_repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "apps"],
        cwd=small_repo,
        check=True,
    )
    return small_repo


def worker(cli: str, server: ModelServer, home: Path, **extra: object) -> dict[str, object]:
    """A team worker running ``cli``, pointed at ``server`` (only what differs from the
    mesh's own environment goes into its ``env``)."""
    env = cli_setup(cli, server.url, home).env  # type: ignore[arg-type]
    env["PATH"] = f"{AGENTS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    return {"id": cli, "agent": cli, "model": MODELS[cli], "env": changed, **extra}


def objective(cli: str, touch: list[str] | None = None) -> dict[str, object]:
    return {
        "id": f"o{cli}",
        "title": f"{cli}: greet differently",
        "description": f"Make greet() in {cli}_app.py print '{cli}'.",
        "scope_touch": touch or [f"{cli}_app.py"],
        "worker": cli,
        "wave": 1,
    }


def submit_and_script(
    mesh: PipelineMesh, repo: Path, plan: str, script: Callable[[str], None]
) -> str:
    """Submit with ``plan``, script the model for the session's worktrees, approve."""
    sid = session_of(
        mesh.submit("Greet differently", "--repo", str(repo), "--plan", plan, "--json")
    )
    script(sid)
    mesh.ap("approve", sid)
    return sid


def of(records: list[Record], kind: type, **fields: object) -> list:  # type: ignore[type-arg]
    return [
        r.event
        for r in records
        if isinstance(r.event, kind) and all(getattr(r.event, k) == v for k, v in fields.items())
    ]


def test_a_wave_of_codex_claude_and_gemini_completes_with_their_real_activities_and_tokens(
    pipeline_mesh: Callable[..., PipelineMesh], model: ModelServer, repo: Path, tmp_path: Path
) -> None:
    team = team_toml([worker(c, model, tmp_path / f"home-{c}") for c in CLIS], max_attempts=1)
    mesh = pipeline_mesh(team).up()
    plan = write_plan(tmp_path / "plan.json", *(objective(c) for c in CLIS))

    def script(sid: str) -> None:
        for cli in CLIS:
            path = f"{cli}_app.py"
            model.script(
                f"o{cli}",
                Shell(f"cat {path}"),
                Patch(path, "    print('hi')", f"    print('{cli}')"),
                Reply(f"greet() now prints {cli}."),
                cwd=worktree_path(mesh.state_dir, sid, f"o{cli}"),
            )

    sid = submit_and_script(mesh, repo, plan, script)
    end = mesh.wait_for(ended, session_id=sid, timeout=360)
    records = mesh.records(sid)
    failures = [(e.objective_id, e.reason) for e in of(records, ObjectiveFailed)]
    assert isinstance(end.event, SessionCompleted), failures
    assert len(of(records, TranscriptRead)) == 3

    for cli in CLIS:
        path = f"{cli}_app.py"
        assert model.remaining(f"o{cli}") == 0, cli  # every scripted turn was played
        # The real tool ran: the `cat` output went back to the model.
        results = [r for e in model.exchanges(f"o{cli}") for r in e.tool_results]
        assert any("print('hi')" in r for r in results), (cli, results)
        (done,) = of(records, ObjectiveCompleted, worker_id=cli)
        assert done.files_modified == [path]

        acts: list[WorkerActivity] = of(records, WorkerActivity, worker_id=cli)
        kinds = {a.activity_type for a in acts}
        assert {"message", "usage"} <= kinds, (cli, kinds)
        shell = [
            a for a in acts if a.tool_name == SHELL_TOOL[cli] and f"cat {path}" in a.description
        ]
        assert shell, (cli, [(a.activity_type, a.tool_name, a.description) for a in acts])
        # The edit is shown with the file it touched, relative to the worktree.
        assert any(
            a.file_path == path and a.activity_type in ("file_change", "tool_use") for a in acts
        ), (cli, [(a.activity_type, a.tool_name, a.file_path) for a in acts])
        assert not [a for a in acts if a.activity_type == "other"], cli
        assert any(f"prints {cli}" in a.description for a in acts if a.activity_type == "message")

        # Tokens: what the server reported, summed by the parser, in the result and the
        # worker's metrics.
        sent = model.usage(f"o{cli}", kind=None)
        assert done.input_tokens > 0 and done.output_tokens > 0, (cli, done)
        assert done.output_tokens <= sent.output_tokens, (cli, done, sent)
        metrics: list[WorkerMetrics] = of(records, WorkerMetrics, worker_id=cli)
        assert max(m.input_tokens for m in metrics) == done.input_tokens, cli
        assert max(m.output_tokens for m in metrics) == done.output_tokens, cli

    # The session branch has the three edits.
    import subprocess

    for cli in CLIS:
        shown = subprocess.run(
            ["git", "show", f"ap/{sid}:{cli}_app.py"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"print('{cli}')" in shown


def test_a_model_error_and_a_missing_cli_fail_only_their_objective_with_the_agents_message(
    pipeline_mesh: Callable[..., PipelineMesh], model: ModelServer, repo: Path, tmp_path: Path
) -> None:
    workers = [
        worker("codex", model, tmp_path / "home-codex"),
        worker("claude", model, tmp_path / "home-claude"),
        worker("gemini", model, tmp_path / "home-gemini"),
        # A CLI this machine does not have: the cursor agent, with PATH left as it is.
        {"id": "cursor", "agent": "cursor"},
    ]
    mesh = pipeline_mesh(team_toml(workers, max_attempts=1)).up()
    plan = write_plan(
        tmp_path / "plan.json",
        objective("codex"),
        objective("claude"),
        objective("gemini"),
        {**objective("cursor"), "scope_touch": ["README.md"]},
    )
    message = "the scripted model is down (HTTP 500)"

    def script(sid: str) -> None:
        model.script("ocodex", HttpError(500, message))
        model.script("ogemini", HttpError(500, message))
        model.script(
            "oclaude",
            Shell("cat claude_app.py"),
            Patch("claude_app.py", "    print('hi')", "    print('claude')"),
            Reply("greet() now prints claude."),
            cwd=worktree_path(mesh.state_dir, sid, "oclaude"),
        )

    sid = submit_and_script(mesh, repo, plan, script)
    end = mesh.wait_for(ended, session_id=sid, timeout=360)
    records = mesh.records(sid)
    assert isinstance(end.event, SessionFailed)
    # Codex prints its own fixed text for a 500 ("We're currently experiencing high
    # demand ..."), not the body's message; the reason is the agent's last error.
    (codex,) = of(records, ObjectiveFailed, objective_id="ocodex")
    codex_errors = of(records, WorkerActivity, worker_id="codex", activity_type="error")
    assert codex_errors and codex.reason.endswith(codex_errors[-1].description), codex.reason
    assert "codex exec --json exited with 1" in codex.reason
    # Gemini CLI passes the API's own message on.
    (gemini,) = of(records, ObjectiveFailed, objective_id="ogemini")
    assert message in gemini.reason and gemini.exit_code != 0, gemini.reason
    (cursor,) = of(records, ObjectiveFailed, objective_id="ocursor")
    assert "agent command not found: 'cursor-agent'" in cursor.reason, cursor.reason
    (claude,) = of(records, ObjectiveCompleted, objective_id="oclaude")
    assert claude.files_modified == ["claude_app.py"]


def test_an_agent_that_edits_outside_its_scope_causes_scope_violated(
    pipeline_mesh: Callable[..., PipelineMesh], model: ModelServer, repo: Path, tmp_path: Path
) -> None:
    mesh = pipeline_mesh(
        team_toml([worker("gemini", model, tmp_path / "home-gemini")], max_attempts=1)
    ).up()
    plan = write_plan(tmp_path / "plan.json", objective("gemini"))

    def script(sid: str) -> None:
        model.script(
            "ogemini",
            Patch("gemini_app.py", "    print('hi')", "    print('gemini')"),
            WriteFile("pkg/core.py", "def run():\n    return 2\n"),
            Reply("Done, and I also changed pkg/core.py."),
            cwd=worktree_path(mesh.state_dir, sid, "ogemini"),
        )

    sid = submit_and_script(mesh, repo, plan, script)
    end = mesh.wait_for(ended, session_id=sid, timeout=360)
    records = mesh.records(sid)
    assert isinstance(end.event, SessionFailed)
    (violated,) = of(records, ScopeViolated)
    assert violated.paths == ["pkg/core.py"] and violated.rule == "outside_touch"
    (failed,) = of(records, ObjectiveFailed, objective_id="ogemini")
    assert "scope violated" in failed.reason
    acts = of(records, WorkerActivity, worker_id="gemini")
    assert any(a.file_path == "pkg/core.py" for a in acts), acts
