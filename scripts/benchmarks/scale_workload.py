"""The workload of ``make bench-scale``: a repository, a team of replaying agents, a plan.

Each of the N workers runs ``scripts/replay_transcript.py`` as its agent: the team file's
``command`` replaces the agent CLI's command line, and the worker's adapter (named by
the recording's folder, e.g. ``claude`` for
``tests/fixtures/agent-streams/claude/...``) parses what it writes, as it would parse
the real CLI. The plan has N objectives in one wave, objective ``oNNN`` on worker
``wNNN`` with the scope ``pkgNNN/`` (one package each in the repository, so no two
scopes overlap). Every replay waits for one gate file, then writes ``rate`` lines/s for
``seconds`` and records each line's write time in ``<stamps>/<objective>.txt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from benchmarks.common import ROOT
from benchmarks.line_to_browser import GIT_ENV

REPLAY = ROOT / "scripts" / "replay_transcript.py"
RECORDINGS = ROOT / "tests" / "fixtures" / "agent-streams"
DEFAULT_RECORDING = (
    RECORDINGS / "claude" / "stream-json_v2.1.197_real-cli-scripted-model_bash-write.jsonl"
)
"""Claude Code 2.1.197's real ``stream-json`` (Bash, Write, a message, the result): 7
lines, 6 activities a pass."""
GATE_TIMEOUT_S = 1800  # how long a replay waits for the gate before it gives up


@dataclass(frozen=True)
class Workload:
    """What one scale run asks of the mesh.

    Attributes:
        workers: workers in the team, one objective each.
        rate: lines per second each replay writes.
        seconds: how long each replay writes once the gate opens.
        recording: the transcript replayed (looped) by every worker.
        agent: the adapter that parses it (the recording's folder name).
    """

    workers: int
    rate: float
    seconds: float
    recording: Path = DEFAULT_RECORDING
    agent: str = "claude"

    @property
    def lines(self) -> int:
        """Lines each replay writes (``replay_transcript.py --seconds``)."""
        return round(self.seconds * self.rate)

    def worker_id(self, i: int) -> str:
        return f"w{i:03d}"

    def objective_id(self, i: int) -> str:
        return f"o{i:03d}"


def agent_of(recording: Path) -> str:
    """The adapter of a recording: its folder under ``tests/fixtures/agent-streams``."""
    return recording.resolve().parent.name


def make_repo(path: Path, packages: int) -> Path:
    """A git repository with ``pkg000/`` ... one package per objective, one commit."""
    for i in range(packages):
        (path / f"pkg{i:03d}").mkdir(parents=True)
        (path / f"pkg{i:03d}" / "__init__.py").write_text("")
    env = {**os.environ, **GIT_ENV}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--no-verify", "-m", "init"],
    ):
        subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True)
    return path


def replay_command(w: Workload, gate: Path, stamps: Path) -> list[str]:
    """The argv template of every worker (``{objective}`` names its stamp file)."""
    return [
        sys.executable,
        str(REPLAY),
        str(w.recording.resolve()),
        "--rate",
        f"{w.rate:g}",
        "--seconds",
        f"{w.seconds:g}",
        "--gate",
        str(gate),
        "--gate-timeout",
        str(GATE_TIMEOUT_S),
        "--stamp",
        str(stamps / "{objective}.txt"),
    ]


def team_toml(w: Workload, gate: Path, stamps: Path) -> str:
    """The team: one attempt per objective (a retry would replay the lines again)."""
    command = msgspec.json.encode(replay_command(w, gate, stamps)).decode()
    lines = ["max_attempts = 1", "objective_timeout_s = 3600"]
    for i in range(w.workers):
        lines += [
            "[[workers]]",
            f'id = "{w.worker_id(i)}"',
            f'agent = "{w.agent}"',
            f"command = {command}",
        ]
    return "\n".join(lines) + "\n"


def write_plan(w: Workload, path: Path) -> Path:
    """The plan file: N objectives in one wave, distinct scopes, one per worker."""
    objectives = [
        {
            "id": w.objective_id(i),
            "title": f"Replay a recorded {w.agent} transcript",
            "wave": 1,
            "scope_touch": [f"pkg{i:03d}/"],
            "worker": w.worker_id(i),
        }
        for i in range(w.workers)
    ]
    path.write_text(json.dumps({"objectives": objectives}, indent=1))
    return path
