"""Fixtures of the end-to-end tests: a real third-party repository and a pipeline mesh.

The repository is python-dateutil 2.9.0.post0, downloaded as an sdist from PyPI once per
test run (``scripts/demo.py`` does the same for ``make demo``) and committed into a fresh
git repository for each test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ap_actors.bus import Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import Record
from tests.integration.conftest import REPO, Mesh

GATE_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "gate.py"
"""Waits, woken by inotify, until a gate file exists (see :func:`gate_command`)."""

PIPELINE_CONFIG = """
[mesh]
ingest = "tcp://127.0.0.1:*"
bus = "tcp://127.0.0.1:*"
replay = "tcp://127.0.0.1:*"
dashboard = "http://127.0.0.1:*/"

[supervisor]
backoff_initial_s = 0.05
"""

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"


def load_demo() -> ModuleType:
    """Import ``scripts/demo.py`` (not a package) as a module."""
    spec = importlib.util.spec_from_file_location("ap_demo", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sdist() -> bytes:
    data: bytes = load_demo().fetch_sdist()
    return data


@pytest.fixture
def dateutil_repo(tmp_path: Path, sdist: bytes) -> Path:
    repo: Path = load_demo().prepare_repo(tmp_path / "dateutil", sdist)
    return repo


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A small Python package in a git repository (for the failure cases)."""
    repo = tmp_path / "small"
    for path, text in {
        "pkg/__init__.py": "from pkg.core import run\n",
        "pkg/core.py": "def run():\n    return 1\n",
        "pkg/util.py": "import os\n",
        "tests/test_core.py": "from pkg.core import run\n\n\ndef test_run():\n    assert run()\n",
        "README.md": "# small\n",
    }.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    env = {**os.environ, **load_demo().GIT_ENV}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(argv, cwd=repo, env=env, check=True)
    return repo


@dataclass
class PipelineMesh(Mesh):
    """A mesh with the pipeline and a team, started with `ap up --detach`."""

    team: Path = Path("team.toml")
    started: bool = False

    def up(self) -> PipelineMesh:  # type: ignore[override]
        self.ap("up", "--detach", "--config", str(self.config), "--team", str(self.team))
        self.started = True
        return self

    def down(self) -> None:
        if self.started:
            super().down()
            self.started = False

    def submit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ap("submit", *args, check=check, timeout=300)

    def records(self, session_id: str | None = None) -> list[Record]:
        with EventLog(self.state_dir / "eventlog", readonly=True) as elog:
            return list(elog.read(0, session_id=session_id))

    def wait_for(
        self,
        predicate: Callable[[Record], bool],
        *,
        session_id: str | None = None,
        timeout: float = 120,
    ) -> Record:
        """Block until a record (history or live) satisfies ``predicate``; return it."""

        async def run() -> Record:
            sub = Subscriber.connect(self.state_dir, session_id=session_id)
            try:
                async with asyncio.timeout(timeout):
                    async for record in sub:
                        if predicate(record):
                            return record
            finally:
                await sub.close()
            raise AssertionError("subscription ended")

        # In its own thread: the caller may already run an event loop (Playwright's sync
        # API does, in the browser tests).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()


def team_toml(workers: list[dict[str, Any]], **settings: Any) -> str:
    """A team.toml text from plain dicts (strings, lists, numbers and string dicts)."""
    import msgspec

    def value(v: Any) -> str:
        if isinstance(v, dict):  # an inline table, keys quoted
            return "{ " + ", ".join(f"{value(k)} = {value(x)}" for k, x in v.items()) + " }"
        return msgspec.json.encode(v).decode()

    lines = [f"{k} = {value(v)}" for k, v in settings.items()]
    for w in workers:
        lines.append("[[workers]]")
        lines += [f"{k} = {value(v)}" for k, v in w.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def pipeline_mesh(tmp_path: Path) -> Iterator[Callable[..., PipelineMesh]]:
    meshes: list[PipelineMesh] = []

    def make(team: str, extra_config: str = "", name: str = "mesh") -> PipelineMesh:
        state_dir = tmp_path / name
        state_dir.mkdir(parents=True, exist_ok=True)
        config = tmp_path / f"{name}.toml"
        config.write_text(PIPELINE_CONFIG + extra_config)
        team_path = tmp_path / f"{name}-team.toml"
        team_path.write_text(team)
        mesh = PipelineMesh(state_dir, config, team_path)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        mesh.down()


# --- helpers of test_pipeline_paths.py and test_pipeline_planner_and_cli.py ----------


def ended(record: Record) -> bool:
    """True for the event that ends a session (completed, failed or cancelled)."""
    from ap_actors.events import SessionCancelled, SessionCompleted, SessionFailed

    return isinstance(record.event, SessionCompleted | SessionFailed | SessionCancelled)


def session_of(submitted: subprocess.CompletedProcess[str]) -> str:
    """The session id printed by ``ap submit --json``."""
    session_id: str = json.loads(submitted.stdout)["session_id"]
    return session_id


def write_plan(path: Path, *objectives: dict[str, Any]) -> str:
    """Write a plan file (the JSON form of README, "Plan files"); return its path."""
    path.write_text(json.dumps({"objectives": list(objectives)}, indent=2))
    return str(path)


def gate_command(gate: Path, then: str = "true") -> str:
    """An objective command that waits until the file ``gate`` exists, then runs ``then``
    (a shell snippet): the test opens the gate once it has seen what it waits for.
    The wait is ``tests/support/gate.py``, woken by inotify."""
    import shlex

    wait = shlex.join([sys.executable, str(GATE_SCRIPT), str(gate)])
    return f"sh -c {shlex.quote(f'{wait} && {then}')}"


def rebuilt_reports(mesh: PipelineMesh, session_id: str, out_dir: Path) -> dict[str, Path]:
    """Run ``ap report SESSION --out DIR``; return the path it wrote for each kind."""
    out = mesh.ap("report", session_id, "--out", str(out_dir)).stdout
    pairs = (line.split(maxsplit=1) for line in out.splitlines() if line.strip())
    return {kind: Path(path) for kind, path in pairs}


def written_reports(mesh: PipelineMesh, session_id: str) -> dict[str, Path]:
    """The reports the reporter wrote for a session (``report_written``), by kind."""
    from ap_actors.events import ReportWritten

    return {
        r.event.kind: Path(r.event.path)
        for r in mesh.records(session_id)
        if isinstance(r.event, ReportWritten)
    }


def actor_restarted(actor: str, after_seq: int) -> Callable[[Record], bool]:
    """A predicate for ``wait_for``: ``actor`` reported ready again after ``after_seq``
    (a restarted actor is ready once it has folded the log and resumed its work)."""
    from ap_actors.events import ActorStarted

    def matches(record: Record) -> bool:
        return (
            record.seq > after_seq
            and isinstance(record.event, ActorStarted)
            and record.event.actor == actor
            and record.event.restarts >= 1
        )

    return matches
