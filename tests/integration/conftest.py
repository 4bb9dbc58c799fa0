"""Fixtures for integration tests: a real journal process, a real supervised mesh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ap_actors.bus import Subscriber
from ap_actors.events import Record
from ap_actors.mesh import MeshInfo, read_mesh
from ap_actors.process import spawn_with_ready

REPO = Path(__file__).resolve().parents[2]
AP = [sys.executable, "-m", "ap_actors.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


FREE_PORTS = """
[pipeline]
enabled = false

[mesh]
ingest = "tcp://127.0.0.1:*"
bus = "tcp://127.0.0.1:*"
replay = "tcp://127.0.0.1:*"
"""


@dataclass
class JournalProcess:
    """A journal started as its own process, with the endpoints it bound."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    ingest: str
    bus: str
    replay: str
    log: str
    argv: list[str] = field(default_factory=list)

    def mesh(self) -> MeshInfo:
        return MeshInfo(self.ingest, self.bus, self.replay, None, self.proc.pid, self.log)


def start_journal(
    state_dir: Path, config_text: str = FREE_PORTS, **endpoints: str
) -> JournalProcess:
    """Start a journal process and wait for its ready line (the bound endpoints)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "journal.toml"
    config.write_text(config_text)
    argv = [
        sys.executable,
        "-m",
        "ap_actors.actors.journal",
        "--state-dir",
        str(state_dir),
        "--config",
        str(config),
    ]
    for name, url in endpoints.items():
        argv += [f"--{name}", url]
    proc, line = spawn_with_ready(argv, log_path=state_dir / "journal.log", env=_env())
    if not line:
        proc.wait()
        raise RuntimeError((state_dir / "journal.log").read_text())
    bound = json.loads(line)
    return JournalProcess(
        proc, state_dir, bound["ingest"], bound["bus"], bound["replay"], bound["log"], argv
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[JournalProcess]:
    j = start_journal(tmp_path / "state")
    yield j
    j.proc.terminate()
    j.proc.wait(timeout=20)


@dataclass
class Mesh:
    """A mesh started with `ap up --detach` in its own state directory."""

    state_dir: Path
    config: Path

    def ap(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*AP, *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ap {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def up(self) -> MeshInfo:
        self.ap("up", "--detach", "--config", str(self.config))
        return self.info()

    def down(self) -> None:
        self.ap("down", check=False)

    def info(self) -> MeshInfo:
        return read_mesh(self.state_dir)

    def status(self) -> dict[str, Any]:
        return json.loads(self.ap("status", "--json").stdout)

    def pid_of(self, actor: str) -> int:
        for a in self.status()["actors"]:
            if a["name"] == actor:
                return int(a["pid"])
        raise KeyError(actor)


@pytest.fixture
def mesh_factory(tmp_path: Path) -> Iterator[Any]:
    meshes: list[Mesh] = []

    def make(extra_config: str = "", name: str = "mesh") -> Mesh:
        state_dir = tmp_path / name
        state_dir.mkdir(parents=True, exist_ok=True)
        config = tmp_path / f"{name}.toml"
        config.write_text(FREE_PORTS + extra_config)
        mesh = Mesh(state_dir, config)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        mesh.down()


async def wait_for(subscriber: Subscriber, predicate: Any) -> Record:
    """Consume ``subscriber`` until a record satisfies ``predicate``; return it."""
    async for record in subscriber:
        if predicate(record):
            return record
    raise AssertionError("subscription ended")


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Collect emitters and subscribers to close at teardown."""
    things: list[Any] = []
    yield things
    for thing in things:
        await thing.close()
