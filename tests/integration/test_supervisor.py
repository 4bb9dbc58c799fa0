"""The supervised mesh as a user runs it: `ap up`, crashes, restarts, `ap down`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from ap_actors.bus import Emitter, Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import ActorExited, ActorStarted, WorkerActivity, WorkerError, WorkerMetrics
from ap_actors.mesh import read_mesh
from ap_actors.supervisor import PRIORITY_STEP
from tests.integration.conftest import AP, FREE_PORTS, Mesh, _env, wait_for

COUNTER = """
[actors.counter]
class = "tests.support.actors:Counter"
options = {{ state_file = "{state_file}" }}
"""


def _counter_mesh(mesh_factory: Any, tmp_path: Path, extra: str = "") -> Mesh:
    return mesh_factory(COUNTER.format(state_file=tmp_path / "counter.json") + extra)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mesh_pids(mesh: Mesh) -> list[int]:
    supervisor = psutil.Process(mesh.info().pid)
    return [supervisor.pid, *(p.pid for p in supervisor.children(recursive=True))]


async def test_ap_up_starts_the_journal_then_the_actors_and_ap_down_leaves_no_process(
    mesh_factory: Any, tmp_path: Path
) -> None:
    mesh = _counter_mesh(mesh_factory, tmp_path)
    info = mesh.up()
    status = mesh.status()
    assert [a["name"] for a in status["actors"]] == ["journal", "counter"]
    assert all(a["pid"] and a["restarts"] == 0 and a["uptime_s"] >= 0 for a in status["actors"])
    assert status["last_seq"] >= 2 and status["log_bytes"] > 0
    pids = _mesh_pids(mesh)
    assert len(pids) == 3
    with EventLog(info.log, readonly=True) as log:
        started = [r.event.actor for r in log.read(topics=["actor_started"])]
    assert started == ["journal", "counter"]
    mesh.down()
    assert not [p for p in pids if _running(p)]
    assert not (mesh.state_dir / "mesh.json").exists()
    again = mesh.ap("status", check=False)
    assert again.returncode == 4 and again.stderr.startswith("ap: no mesh is running")


async def test_a_killed_actor_is_restarted_and_reacts_again(
    mesh_factory: Any, tmp_path: Path, closing: list[Any]
) -> None:
    mesh = _counter_mesh(mesh_factory, tmp_path)
    info = mesh.up()
    sub = Subscriber.connect(mesh.state_dir, topics=["actor_", "worker_metrics"])
    closing.append(sub)
    stream = aiter(sub)
    os.kill(mesh.pid_of("counter"), signal.SIGKILL)
    exited = await wait_for(
        stream, lambda r: isinstance(r.event, ActorExited) and r.event.actor == "counter"
    )
    assert exited.event.signal == signal.SIGKILL and exited.event.restarting_in_s is not None
    restarted = await wait_for(
        stream,
        lambda r: (
            isinstance(r.event, ActorStarted)
            and r.event.actor == "counter"
            and r.event.restarts == 1
        ),
    )
    assert restarted.event.pid == mesh.pid_of("counter")
    emitter = Emitter(info.ingest, source="test")
    closing.append(emitter)
    await emitter.emit(WorkerError(worker_id="w9", error="after restart"))
    reply = await wait_for(stream, lambda r: isinstance(r.event, WorkerMetrics))
    assert reply.event.worker_id == "w9" and reply.event.tasks_failed == 1
    assert mesh.status()["actors"][1]["restarts"] == 1


async def test_after_ap_down_and_ap_up_an_actors_folded_state_equals_the_state_before(
    mesh_factory: Any, tmp_path: Path, closing: list[Any]
) -> None:
    mesh = _counter_mesh(mesh_factory, tmp_path)
    info = mesh.up()
    async with Emitter(info.ingest, source="test") as emitter:
        events: list[Any] = [
            WorkerActivity(worker_id=f"w{i % 4}", description=f"a{i}") for i in range(300)
        ]
        events += [WorkerError(worker_id=f"w{i % 2}", error=f"e{i}") for i in range(5)]
        await emitter.emit_many(events)
        # The counter answers the last error; then its state file covers everything.
        sub = Subscriber.connect(mesh.state_dir, topics=["worker_metrics"])
        closing.append(sub)
        await wait_for(sub, lambda r: r.event.tasks_failed == 3 and r.event.worker_id == "w0")
    before = json.loads((tmp_path / "counter.json").read_text())
    assert before["state"]["activities"] == {"w0": 75, "w1": 75, "w2": 75, "w3": 75}
    assert before["state"]["errors"] == {"w0": 3, "w1": 2}
    mesh.down()
    (tmp_path / "counter.json").unlink()
    mesh.up()  # returns once every actor has recovered and written its state
    after = json.loads((tmp_path / "counter.json").read_text())
    assert after["state"]["activities"] == before["state"]["activities"]
    assert after["state"]["errors"] == before["state"]["errors"]
    # No reaction was repeated on recovery: still exactly five worker_metrics.
    with EventLog(info.log, readonly=True) as log:
        assert len(list(log.read(topics=["worker_metrics"]))) == 5
    assert after["state"]["metrics_seen"] == 5


async def test_killing_the_journal_in_a_burst_loses_and_duplicates_no_acknowledged_event(
    mesh_factory: Any, tmp_path: Path
) -> None:
    mesh = mesh_factory()
    info = mesh.up()
    journal_pid = mesh.pid_of("journal")
    acked: dict[str, int] = {}
    killed = asyncio.Event()

    async def burst(name: str) -> None:
        async with Emitter(info.ingest, source=name, ack_timeout=1.0) as emitter:
            for batch in range(40):
                events = [
                    WorkerActivity(id=f"{name}-{batch}-{i}", worker_id=name, description="x")
                    for i in range(100)
                ]
                seqs = await emitter.emit_many(events)
                acked.update((e.id, s) for e, s in zip(events, seqs, strict=True))
                if len(acked) >= 4_000 and not killed.is_set():
                    killed.set()
                    os.kill(journal_pid, signal.SIGKILL)

    await asyncio.gather(*(burst(f"e{n}") for n in range(4)))
    assert killed.is_set() and len(acked) == 16_000
    assert mesh.pid_of("journal") != journal_pid
    with EventLog(info.log, readonly=True) as log:
        records = list(log.read())
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gaps
    stored: dict[str, int] = {}
    for r in records:
        if isinstance(r.event, WorkerActivity):
            assert r.event.id not in stored, "duplicated event"
            stored[r.event.id] = r.seq
    assert stored == acked  # every acked event is there, at the acked seq


async def test_the_supervisor_gives_up_loudly_on_an_actor_that_keeps_crashing(
    mesh_factory: Any, closing: list[Any]
) -> None:
    mesh = mesh_factory(
        '[actors.fragile]\nclass = "tests.support.actors:CrashOnError"\n'
        "[supervisor]\nmax_restarts = 2\nbackoff_initial_s = 0.01\n"
    )
    info = mesh.up()
    sub = Subscriber.connect(mesh.state_dir, topics=["actor_"])
    closing.append(sub)
    stream = aiter(sub)
    emitter = Emitter(info.ingest, source="test")
    closing.append(emitter)
    exits = []
    for attempt in range(3):
        if attempt:
            await wait_for(
                stream,
                lambda r, n=attempt: (
                    isinstance(r.event, ActorStarted)
                    and r.event.actor == "fragile"
                    and r.event.restarts == n
                ),
            )
        await emitter.emit(WorkerError(worker_id="w", error="crash"))
        exited = await wait_for(
            stream, lambda r: isinstance(r.event, ActorExited) and r.event.actor == "fragile"
        )
        exits.append(exited.event)
    assert [e.gave_up for e in exits] == [False, False, True]
    assert exits[0].exit_code == 1 and "crash" in exits[0].reason
    fragile = next(a for a in mesh.status()["actors"] if a["name"] == "fragile")
    assert fragile["state"] == "failed" and fragile["pid"] is None
    assert (
        "giving up on actor 'fragile'" in (mesh.state_dir / "logs" / "supervisor.log").read_text()
    )


async def test_ap_tail_shows_events_emitted_by_another_process(mesh_factory: Any) -> None:
    mesh = mesh_factory()
    mesh.up()
    tail = subprocess.Popen(
        [
            *AP,
            "tail",
            "--json",
            "--topic",
            "worker_",
            "--count",
            "2",
            "--state-dir",
            str(mesh.state_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    for n in range(2):
        mesh.ap("emit", json.dumps({"type": "worker_error", "worker_id": f"w{n}", "error": "e"}))
    out, _ = tail.communicate(timeout=60)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["type"], x["worker_id"]) for x in lines] == [
        ("worker_error", "w0"),
        ("worker_error", "w1"),
    ]
    assert lines[0]["seq"] < lines[1]["seq"] and lines[0]["source"] == "cli"


def test_user_mistakes_get_one_clear_line_and_a_documented_exit_code(
    mesh_factory: Any, tmp_path: Path
) -> None:
    mesh = mesh_factory()
    missing = mesh.ap("up", "--config", str(tmp_path / "nope.toml"), check=False)
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[mesh\ningest = 1\n")
    broken = mesh.ap("up", "--config", str(bad), check=False)
    assert broken.returncode == 3 and "line 1" in broken.stderr
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[supervisor]\nmax_restarts = 'many'\n")
    typed = mesh.ap("up", "--config", str(wrong), check=False)
    assert typed.returncode == 3 and "max_restarts" in typed.stderr
    ghost = mesh_factory('[actors.ghost]\nclass = "no.such.module:Ghost"\n', name="ghost")
    failed = ghost.ap("up", "--detach", "--config", str(ghost.config), check=False)
    assert failed.returncode == 7 and "ghost failed to start" in failed.stderr
    assert "no.such.module" in failed.stderr
    assert not (ghost.state_dir / "mesh.json").exists()
    for result in (missing, broken, typed, failed):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    info = mesh.up()
    twice = mesh.ap("up", "--detach", "--config", str(mesh.config), check=False)
    assert twice.returncode == 5 and "already running" in twice.stderr
    taken = mesh_factory(name="taken")  # a second mesh asking for the first one's port
    taken.config.write_text(FREE_PORTS.replace("tcp://127.0.0.1:*", info.ingest, 1))
    busy = taken.ap("up", "--detach", "--config", str(taken.config), check=False)
    assert busy.returncode == 7 and "cannot bind its ingest endpoint" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert read_mesh(mesh.state_dir).pid == mesh.info().pid
    rejected = mesh.ap("emit", '{"type": "worker_error"}', check=False)
    assert rejected.returncode == 3 and "worker_id" in rejected.stderr


def test_killing_the_supervisor_takes_its_actors_down_and_a_new_ap_up_starts_cleanly(
    mesh_factory: Any, tmp_path: Path
) -> None:
    mesh = _counter_mesh(mesh_factory, tmp_path)
    mesh.up()
    pids = _mesh_pids(mesh)
    supervisor = psutil.Process(pids[0])
    children = [psutil.Process(p) for p in pids[1:]]
    supervisor.kill()
    supervisor.wait(timeout=10)
    # Each actor asked the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG).
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    status = mesh.ap("status", check=False)
    assert status.returncode == 4 and "is not running" in status.stderr
    info = mesh.up()  # the stale mesh.json does not block a new mesh
    assert info.pid != pids[0]
    assert [a["name"] for a in mesh.status()["actors"]] == ["journal", "counter"]


def test_ap_up_in_the_foreground_stops_everything_on_ctrl_c(
    mesh_factory: Any, tmp_path: Path
) -> None:
    mesh = _counter_mesh(mesh_factory, tmp_path)
    proc = subprocess.Popen(
        [*AP, "up", "--config", str(mesh.config), "--state-dir", str(mesh.state_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if line.startswith("stop it with"):
            break
    assert any(line.split()[:1] == ["ingest"] for line in printed)
    pids = _mesh_pids(mesh)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    # The supervisor waited for its actors before exiting: none is left.
    assert not [p for p in pids[1:] if _running(p)]
    assert not (mesh.state_dir / "mesh.json").exists()


def test_ap_emit_reads_events_from_stdin_and_every_command_honours_ap_state_dir(
    mesh_factory: Any,
) -> None:
    mesh = mesh_factory()
    mesh.up()
    env = {**_env(), "AP_STATE_DIR": str(mesh.state_dir)}
    lines = "\n".join(
        json.dumps({"type": "worker_activity", "worker_id": f"w{n}", "session_id": "s1"})
        for n in range(3)
    )
    emitted = subprocess.run(
        [*AP, "emit", "-", "--source", "script"],
        input=lines,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    seqs = [int(x) for x in emitted.stdout.split()]
    assert len(seqs) == 3 and seqs == sorted(seqs)
    history = subprocess.run(
        [*AP, "tail", "--no-follow", "--json", "--session", "s1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    records = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(r["seq"], r["worker_id"], r["source"]) for r in records] == [
        (seq, f"w{n}", "script") for n, seq in enumerate(seqs)
    ]


def test_two_ap_up_racing_on_one_state_dir_start_one_mesh(mesh_factory: Any) -> None:
    mesh = mesh_factory()
    argv = [*AP, "up", "--detach", "--config", str(mesh.config), "--state-dir", str(mesh.state_dir)]
    racers = [
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in racers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 5], results
    loser = next(err for code, _, err in results if code == 5)
    assert "already" in loser and "Traceback" not in loser
    assert [a["name"] for a in mesh.status()["actors"]] == ["journal"]


TEAM_MESH = """
[mesh]
ingest = "tcp://127.0.0.1:*"
bus = "tcp://127.0.0.1:*"
replay = "tcp://127.0.0.1:*"
dashboard = "http://127.0.0.1:*/"
"""
TEAM = "".join(f'[[workers]]\nid = "w{n}"\nagent = "command"\ncommand = "true"\n' for n in (1, 2))
SERIAL = {"journal", "broadcaster", "scheduler"}
# Runs a command without CAP_SYS_NICE, as a user who is not root (RLIMIT_NICE aside).
WITHOUT_CAP_SYS_NICE = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]


def _can_lower_nice(prefix: list[str]) -> bool:
    lower = "import os; os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) - 1)"
    probe = subprocess.run([*prefix, sys.executable, "-c", lower], capture_output=True)
    return probe.returncode == 0


def _team_up(mesh_factory: Any, prefix: list[str]) -> tuple[Mesh, dict[str, list[int]]]:
    """``ap up`` a pipeline with two workers; return it and its actors' threads' nice."""
    mesh = mesh_factory()
    mesh.config.write_text(TEAM_MESH)
    team = mesh.config.with_name("team.toml")
    team.write_text(TEAM)
    up = [*AP, "up", "--detach", "--config", str(mesh.config), "--team", str(team)]
    argv = [*prefix, *up, "--state-dir", str(mesh.state_dir)]
    subprocess.run(argv, env=_env(), check=True, capture_output=True, timeout=120)
    nice = {}
    for actor in mesh.status()["actors"]:
        threads = psutil.Process(actor["pid"]).threads()
        nice[actor["name"]] = [os.getpriority(os.PRIO_PROCESS, t.id) for t in threads]
    assert {"worker.w1", "log_monitor.w2", *SERIAL} <= set(nice)
    return mesh, nice


def test_the_serial_actors_are_lowered_below_the_workers_when_permitted(
    mesh_factory: Any,
) -> None:
    if not _can_lower_nice([]):
        pytest.skip("lowering a nice value is not permitted here (no CAP_SYS_NICE)")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    _, nice = _team_up(mesh_factory, [])
    for name, values in nice.items():  # every thread of each actor
        lowered = max(base - PRIORITY_STEP, -20)
        assert set(values) == {lowered if name in SERIAL else base}, name


def test_without_the_privilege_the_workers_and_log_monitors_are_raised_instead(
    mesh_factory: Any,
) -> None:
    prefix = WITHOUT_CAP_SYS_NICE if _can_lower_nice([]) else []  # root: drop it
    if prefix and (shutil.which("setpriv") is None or _can_lower_nice(prefix)):
        pytest.skip("cannot drop the privilege to lower nice values here")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    mesh, nice = _team_up(mesh_factory, prefix)
    for name, values in nice.items():  # every thread of each actor
        per_agent = name.startswith(("worker.", "log_monitor."))
        assert set(values) == {min(base + PRIORITY_STEP, 19) if per_agent else base}, name
    log = (mesh.state_dir / "logs" / "supervisor.log").read_text()
    assert "raising the workers' and log monitors'" in log
