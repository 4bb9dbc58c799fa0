"""The real agent CLIs (Codex, Claude Code, Gemini CLI) against the scripted model server.

Each CLI runs as installed by ``make agents``, in a real git repository, with stdin
closed; only the model is scripted (``tests/support/model_server.py``), so the tools,
the file edits and the machine-readable stream on stdout are the CLI's own. A CLI that
is not installed is skipped.

``AP_RECORD_AGENT_RUNS=1`` also writes each run's stdout to
``tests/fixtures/agent-runs/<cli>-{ok,error}.jsonl`` as parser fixtures, with the
temporary paths rewritten to ``/home/dev`` (HOME) and ``/home/dev/project`` (the repo).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.model_server import (
    Cli,
    HttpError,
    ModelServer,
    Patch,
    Reply,
    Shell,
    Usage,
    cli_setup,
    serve,
    serve_in_thread,
)

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".agents" / "node_modules" / ".bin"
FIXTURES = REPO / "tests" / "fixtures" / "agent-runs"
CLIS: list[Cli] = ["codex", "claude", "gemini"]
RUN_TIMEOUT_S = 60.0
ORIGINAL = "print('hello')\n"
PATCHED = "print('hello, world')\n"


def argv(cli: Cli, prompt: str) -> list[str]:
    """The plain non-interactive command line of each CLI (no server-specific flags)."""
    exe = str(BIN / cli)
    if cli == "codex":
        flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
        return [exe, "exec", "--json", *flags, "-m", "gpt-5.5", prompt]
    if cli == "claude":
        output = ["--output-format", "stream-json", "--verbose"]
        flags = ["--permission-mode", "bypassPermissions", "--model", "claude-sonnet-4-5"]
        return [exe, "-p", prompt, *output, *flags]
    return [exe, "-m", "gemini-2.5-flash", "-p", prompt, "--output-format", "stream-json", "--yolo"]


def installed(cli: Cli) -> Any:
    """Skip unless ``make agents`` installed the CLI."""
    reason = f"{BIN / cli} is missing: run `make agents`"
    return pytest.mark.skipif(not (BIN / cli).exists(), reason=reason)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def events(self) -> list[dict[str, Any]]:
        """The stdout lines, each parsed as JSON (fails on a line that is not)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(cli: Cli, prompt: str, cwd: Path, home: Path, server: ModelServer) -> Run:
    """Run the CLI to its end (at most ``RUN_TIMEOUT_S``, then its process group is killed)."""
    setup = cli_setup(cli, server.url, home)
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv(cli, prompt), *setup.argv],
        cwd=cwd,
        env=setup.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # codex.js and claude run helpers: kill them all on timeout
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{cli} ran over {RUN_TIMEOUT_S} s\n{out}\n{err}") from None
    return Run(proc.returncode, out, err, time.monotonic() - started)


def reported_usage(cli: Cli, events: list[dict[str, Any]]) -> Usage:
    """The token totals the CLI reports in its last event, in the server's neutral terms."""
    last = events[-1]
    if cli == "codex":
        usage = last["usage"]  # turn.completed
        return Usage(usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"])
    if cli == "claude":
        usage = last["usage"]  # result: input_tokens excludes the cache reads
        cached = usage["cache_read_input_tokens"]
        return Usage(usage["input_tokens"] + cached, usage["output_tokens"], cached)
    stats = last["stats"]  # result
    return Usage(stats["input_tokens"], stats["output_tokens"], stats["cached"])


def record(name: str, run: Run, repo: Path, home: Path) -> None:
    if os.environ.get("AP_RECORD_AGENT_RUNS") != "1":
        return
    FIXTURES.mkdir(parents=True, exist_ok=True)
    text = run.stdout.replace(str(repo), "/home/dev/project").replace(str(home), "/home/dev")
    # Claude Code names its project folder after the cwd with every other character a dash.
    text = text.replace(re.sub(r"[^A-Za-z0-9]", "-", str(repo)), "-home-dev-project")
    (FIXTURES / f"{name}.jsonl").write_text(text)


def make_repo(path: Path) -> Path:
    """Make ``path`` a git repository holding a committed ``app.py``."""
    path.mkdir(parents=True)
    (path / "app.py").write_text(ORIGINAL)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    subprocess.run([*git, "add", "app.py"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], cwd=path, check=True)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with serve_in_thread() as s:
        yield s


def script_edit(server: ModelServer, key: str, repo: Path) -> None:
    server.script(
        key,
        Shell("cat app.py"),
        Patch("app.py", ORIGINAL, PATCHED),
        Reply(f"Objective {key} done: app.py greets the world."),
        cwd=repo,
    )


def check_edit(cli: Cli, run: Run, server: ModelServer, key: str, repo: Path) -> None:
    assert run.returncode == 0, f"{cli} exited {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert (repo / "app.py").read_text() == PATCHED
    events = run.events()
    assert server.remaining(key) == 0
    first, second, third = server.exchanges(key)
    assert first.tool_results == []
    assert "print('hello')" in second.tool_results[0]  # the cat output came back
    assert len(third.tool_results) == 2
    assert reported_usage(cli, events) == server.usage(key)


@pytest.mark.parametrize("cli", [pytest.param(c, marks=installed(c)) for c in CLIS])
def test_a_cli_runs_a_scripted_shell_command_and_patch_and_reports_the_usage_sent(
    cli: Cli, repo: Path, tmp_path: Path, server: ModelServer
) -> None:
    script_edit(server, "o1", repo)

    run = run_cli(cli, "Objective o1: greet the world in app.py.", repo, tmp_path / "home", server)

    record(f"{cli}-ok", run, repo, tmp_path / "home")
    check_edit(cli, run, server, "o1", repo)


# What each CLI says when its one model request fails with HTTP 500. Codex shows a
# fixed text for any 500 (the body's message only for other statuses, e.g. 502, 503).
ERROR_TEXT = {
    "codex": "We\u2019re currently experiencing high demand",
    "claude": "API Error: 500 scripted outage",
    "gemini": "scripted outage",
}


def failed(cli: Cli, events: list[dict[str, Any]]) -> bool:
    last = events[-1]
    if cli == "codex":
        return bool(last["type"] == "turn.failed")
    if cli == "claude":
        return bool(last["type"] == "result" and last["is_error"] is True)
    return bool(last["type"] == "result" and last["status"] == "error")


@pytest.mark.parametrize("cli", [pytest.param(c, marks=installed(c)) for c in CLIS])
def test_a_cli_fails_at_once_with_the_error_shown_when_the_model_answers_500(
    cli: Cli, repo: Path, tmp_path: Path, server: ModelServer
) -> None:
    server.script("o1", HttpError(500, "scripted outage"))

    run = run_cli(cli, "Objective o1: greet the world in app.py.", repo, tmp_path / "home", server)

    record(f"{cli}-error", run, repo, tmp_path / "home")
    assert run.returncode != 0, run.stdout
    assert len(server.exchanges("o1")) == 1  # retries are off
    assert run.seconds < 20
    events = run.events()
    assert failed(cli, events), events[-1]
    assert ERROR_TEXT[cli] in run.stdout
    assert (repo / "app.py").read_text() == ORIGINAL


@pytest.mark.skipif(not all((BIN / c).exists() for c in CLIS), reason="run `make agents`")
def test_the_three_clis_run_at_once_against_one_server_each_in_its_own_conversation(
    tmp_path: Path, server: ModelServer
) -> None:
    repos = {cli: make_repo(tmp_path / cli / "repo") for cli in CLIS}
    for i, cli in enumerate(CLIS, start=1):
        script_edit(server, f"o{i}", repos[cli])

    def run_one(i: int, cli: Cli) -> Run:
        home = tmp_path / cli / "home"
        return run_cli(cli, f"Objective o{i}: greet the world.", repos[cli], home, server)

    with ThreadPoolExecutor(len(CLIS)) as pool:
        runs = list(pool.map(run_one, range(1, len(CLIS) + 1), CLIS))

    for i, (cli, run) in enumerate(zip(CLIS, runs, strict=True), start=1):
        check_edit(cli, run, server, f"o{i}", repos[cli])


async def test_a_side_request_offering_no_tools_is_answered_without_playing_a_turn() -> None:
    async with serve() as server, aiohttp.ClientSession(server.url) as http:
        server.script("o1", Reply("the real answer"))
        title = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "o1"}]}
        async with http.post("/v1/messages", json=title) as response:
            message = await response.json()
        schema = {"type": "object", "properties": {"next_speaker": {"enum": ["user", "model"]}}}
        user = [{"role": "user", "parts": [{"text": "o1"}]}]
        check = {"contents": user, "generationConfig": {"responseJsonSchema": schema}}
        async with http.post("/v1beta/models/m:generateContent", json=check) as response:
            verdict = await response.json()

    assert message["content"] == [{"type": "text", "text": "OK"}]
    assert json.loads(verdict["candidates"][0]["content"]["parts"][0]["text"]) == {
        "next_speaker": "user"
    }
    assert [e.kind for e in server.exchanges("o1", kind=None)] == ["side", "side"]
    assert server.remaining("o1") == 1
