"""A whole mesh started by ``ap up --detach``, for the benchmarks of the dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import psutil

from ap_actors.supervisor import read_status
from benchmarks.common import ANY_PORT

AP = str(Path(sys.executable).with_name("ap"))

CONFIG = f"""\
[mesh]
ingest = "{ANY_PORT}"
bus = "{ANY_PORT}"
replay = "{ANY_PORT}"
dashboard = "http://127.0.0.1:*/"

[pipeline]
enabled = true
"""
"""The pipeline on, every endpoint on a free port (the team comes from ``--team``)."""


class ApMesh:
    """``ap up --detach`` in a new state directory on entry, ``ap down`` on exit.

    Args:
        state: the state directory (created; ``ap.toml`` and ``team.toml`` go there).
        team: the text of ``team.toml``; None starts the pipeline with no team.
        exist_ok: ``state`` may exist already (e.g. holding an event log filled
            beforehand); by default it must not.
        up_timeout: seconds ``ap up`` may take (every actor recovers from the log first).

    Raises:
        RuntimeError: ``ap up`` failed (its stderr is in the message).
    """

    def __init__(
        self,
        state: Path,
        team: str | None = None,
        *,
        exist_ok: bool = False,
        up_timeout: float = 120,
    ) -> None:
        self.state = state
        self.team = team
        self.exist_ok = exist_ok
        self.up_timeout = up_timeout
        self.info: dict[str, str] = {}

    def ap(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``ap ARGS --state-dir STATE``; raise ``RuntimeError`` when it fails."""
        done = subprocess.run(
            [AP, *args, "--state-dir", str(self.state)],
            cwd=self.state,
            timeout=timeout,
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        if done.returncode != 0:
            raise RuntimeError(f"`ap {args[0]}` failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def __enter__(self) -> ApMesh:
        self.state.mkdir(parents=True, exist_ok=self.exist_ok)
        config = self.state / "ap.toml"
        config.write_text(CONFIG)
        argv = ["up", "--detach", "--config", str(config)]
        if self.team is not None:
            (self.state / "team.toml").write_text(self.team)
            argv += ["--team", str(self.state / "team.toml")]
        self.ap(*argv, timeout=self.up_timeout)
        self.info = json.loads((self.state / "mesh.json").read_text())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ap("down", timeout=60)

    @property
    def dashboard(self) -> str:
        """The dashboard's URL, ``http://127.0.0.1:PORT/``."""
        return self.info["dashboard"]

    def process(self, actor: str) -> psutil.Process:
        """The process of ``actor`` (e.g. ``"broadcaster"``, ``"journal"``)."""
        status = read_status(self.state)
        pids = {a.name: a.pid for a in status.actors} if status else {}
        if not pids.get(actor):
            raise RuntimeError(f"actor {actor} is not running: {pids}")
        return psutil.Process(pids[actor])

    def processes(self) -> dict[str, psutil.Process]:
        """Every running actor's process by actor name (``"worker.w1"``, ``"journal"``)."""
        status = read_status(self.state)
        if status is None:
            raise RuntimeError(f"no supervisor status in {self.state}")
        return {a.name: psutil.Process(a.pid) for a in status.actors if a.pid}
