"""Memory of an idle actor process, and of the journal, in a mesh started by ``ap up``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ap_actors.supervisor import read_status
from benchmarks.common import ANY_PORT, ROOT, Row, median, row

MEMORY_SAMPLES = 5
ACTOR_CLASS = "benchmarks.idle_actor:IdleActor"
ACTOR_PATH = ROOT / "scripts"  # on the actor's PYTHONPATH, for ACTOR_CLASS


def mesh_config(actor_class: str) -> str:
    """An ``ap.toml`` on free ports with one actor, ``idle``, of ``actor_class``."""
    return f"""\
[mesh]
ingest = "{ANY_PORT}"
bus = "{ANY_PORT}"
replay = "{ANY_PORT}"

[pipeline]
enabled = false

[actors.idle]
class = "{actor_class}"
"""


def wait_idle(proc: psutil.Process, timeout: float = 10.0) -> None:
    """Wait until ``proc`` used under 1 ms of CPU in each of two 0.25 s windows."""
    deadline = time.monotonic() + timeout
    quiet = 0
    last = sum(proc.cpu_times()[:2])
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(proc.cpu_times()[:2])
        quiet = quiet + 1 if now - last < 0.001 else 0
        last = now


def memory_mb(proc: psutil.Process) -> tuple[float, float]:
    """Median RSS and USS of ``proc`` over a few samples, in MB (10^6 bytes)."""
    rss, uss = [], []
    for _ in range(MEMORY_SAMPLES):
        info = proc.memory_full_info()
        rss.append(info.rss / 1e6)
        uss.append(info.uss / 1e6)
        time.sleep(0.1)
    return median(rss), median(uss)


@dataclass
class MeshMemory:
    """Memory of the processes of an idle mesh, MB."""

    actor_rss: float
    actor_uss: float
    journal_rss: float
    journal_uss: float
    supervisor_rss: float


def measure_mesh(state: Path, actor_class: str, pythonpath: Path) -> MeshMemory:
    """``ap up --detach`` a mesh in ``state``, measure it once idle, ``ap down``.

    Args:
        state: a new state directory (removed afterwards).
        actor_class: ``module:Class`` of the idle actor.
        pythonpath: where the actor process finds ``module``.

    Raises:
        RuntimeError: ``ap up`` failed or an actor was not running.
    """
    state.mkdir(parents=True)
    config = state / "ap.toml"
    config.write_text(mesh_config(actor_class))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    ap = str(Path(sys.executable).with_name("ap"))
    common = ["--state-dir", str(state)]
    up = subprocess.run(
        [ap, "up", "--detach", *common, "--config", str(config)],
        cwd=state.parent,
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        raise RuntimeError(f"`ap up` failed ({up.returncode}): {up.stderr.strip()}")
    try:
        status = read_status(state)
        pids = {a.name: a.pid for a in status.actors} if status else {}
        if not pids.get("idle") or not pids.get("journal"):
            raise RuntimeError(f"actors not running: {pids}")
        actor, journal = psutil.Process(pids["idle"]), psutil.Process(pids["journal"])
        supervisor = actor.parent()
        for p in (actor, journal):
            wait_idle(p)
        a_rss, a_uss = memory_mb(actor)
        j_rss, j_uss = memory_mb(journal)
        s_rss = supervisor.memory_info().rss / 1e6 if supervisor else float("nan")
    finally:
        subprocess.run(
            [ap, "down", *common],
            cwd=state.parent,
            env=env,
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
        )
    shutil.rmtree(state, ignore_errors=True)
    return MeshMemory(a_rss, a_uss, j_rss, j_uss, s_rss)


def bench_memory(tmp: Path) -> list[Row]:
    """Rows: RSS of the idle actor (target) and of the journal."""
    m = measure_mesh(tmp / "mesh", ACTOR_CLASS, ACTOR_PATH)
    return [
        row(
            "idle actor process RSS",
            m.actor_rss,
            "MB",
            "<=",
            40,
            f"USS {m.actor_uss:.1f} MB; started by `ap up`, after recovery, CPU quiet;"
            f" supervisor RSS {m.supervisor_rss:.1f} MB",
        ),
        row(
            "journal process RSS (idle)",
            m.journal_rss,
            "MB",
            None,
            None,
            f"USS {m.journal_uss:.1f} MB",
        ),
    ]
