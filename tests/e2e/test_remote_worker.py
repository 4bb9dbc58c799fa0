"""``ap worker`` on "another machine": a network namespace joined to this one by a veth
pair, against a mesh started with CurveZMQ keys and bound on the veth's address.

The namespace shares the filesystem, so the session's repository is at the same path on
both sides (README, "Remote workers"). Cutting the link is taking the veth down.
Without ``ip netns`` (not root, no ``ip``) the mesh binds 127.0.0.2 and the worker runs
on this machine, and the link-cut test is skipped: loopback cannot be cut without
changing the firewall.

Synchronisation is on events of the log, gate files the objective's command waits for,
and lines of the remote actors' logs (followed with inotify); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ap_actors.errors import EXIT_CONFIG, EXIT_NO_MESH
from ap_actors.events import (
    ActorExited,
    ActorStarted,
    ObjectiveCompleted,
    Record,
    SessionCompleted,
    WorkerActivity,
)
from ap_actors.history import check
from ap_actors.security import generate
from ap_actors.tailing import tail_lines
from tests.e2e.conftest import GATE_SCRIPT, PipelineMesh, ended, session_of, write_plan
from tests.integration.conftest import AP, _env

_NAMES = itertools.count()
WORKER = "r1"


@dataclass
class Link:
    """Where the mesh binds and how to run a command on the worker's side."""

    mesh_ip: str
    prefix: list[str] = field(default_factory=list)  # runs a command on the worker's side
    host_if: str | None = None  # the veth end of this side; None = no link to cut

    def cut(self) -> None:
        assert self.host_if is not None
        subprocess.run(["ip", "link", "set", self.host_if, "down"], check=True)

    def restore(self) -> None:
        assert self.host_if is not None
        subprocess.run(["ip", "link", "set", self.host_if, "up"], check=True)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def _free_subnet() -> int:
    used = _ip("-o", "-4", "addr", "show").stdout
    start = os.getpid() % 200
    for n in range(start, start + 200):
        octet = 20 + n % 200
        if f" 10.211.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.211.x.0/24 subnet")


@pytest.fixture
def link() -> Iterator[Link]:
    """A network namespace and a veth pair with unique names, deleted afterwards."""
    if shutil.which("ip") is None:
        yield Link("127.0.0.2")
        return
    uniq = f"{os.getpid()}{next(_NAMES)}"
    ns, host_if, ns_if = f"apw{uniq}", f"apv{uniq}h", f"apv{uniq}n"
    added = _ip("netns", "add", ns)
    if added.returncode != 0:  # not root, or no netns support: fall back to loopback
        yield Link("127.0.0.2")
        return
    try:
        octet = _free_subnet()
        mesh_ip, worker_ip = f"10.211.{octet}.1", f"10.211.{octet}.2"
        in_ns = ["ip", "netns", "exec", ns]
        for argv in (
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
            ["ip", "link", "set", ns_if, "netns", ns],
            ["ip", "addr", "add", f"{mesh_ip}/24", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
            [*in_ns, "ip", "addr", "add", f"{worker_ip}/24", "dev", ns_if],
            [*in_ns, "ip", "link", "set", ns_if, "up"],
            [*in_ns, "ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        yield Link(mesh_ip, in_ns, host_if)
    finally:
        _ip("netns", "del", ns)  # takes its veth end, and so the pair, with it
        _ip("link", "del", host_if)


def _config(link: Link, keys: Path) -> str:
    return f"""
[mesh]
ingest = "tcp://{link.mesh_ip}:*"
bus = "tcp://{link.mesh_ip}:*"
replay = "tcp://{link.mesh_ip}:*"
dashboard = "http://127.0.0.1:*/"

[supervisor]
backoff_initial_s = 0.05

[security]
keys = "{keys}"
"""


TEAM = f"""max_attempts = 1

[[workers]]
id = "local"
command = "true"

[[workers]]
id = "{WORKER}"
command = "true"
remote = true
"""


@dataclass
class Setup:
    mesh: PipelineMesh
    link: Link
    remote_keys: Path  # what is copied to the worker's machine
    root: Path
    worker: subprocess.Popen[str] | None = None

    def worker_argv(self, *extra: str) -> list[str]:
        return [
            *self.link.prefix,
            *AP,
            "worker",
            "--connect",
            self.mesh.info().ingest,
            "--id",
            WORKER,
            "--team",
            str(self.mesh.team),
            "--state-dir",
            str(self.root / "remote-state"),
            *extra,
        ]

    def start_worker(self) -> str:
        """Run `ap worker` on the worker's side; return its line once its actors run."""
        self.worker = subprocess.Popen(
            self.worker_argv("--keys", str(self.remote_keys)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=self.root,
        )
        assert self.worker.stdout is not None
        line = self.worker.stdout.readline()
        if not line:
            code, err = self.stop_worker()
            raise AssertionError(f"ap worker exited {code}: {err}")
        return line

    def stop_worker(self) -> tuple[int | None, str]:
        """SIGTERM `ap worker` if it runs; return its exit code and stderr."""
        if self.worker is None:
            return None, ""
        with contextlib.suppress(ProcessLookupError):
            self.worker.send_signal(signal.SIGTERM)
        try:
            _, err = self.worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            _, err = self.worker.communicate()
        return self.worker.returncode, err

    def remote_log(self, actor: str) -> Path:
        return self.root / "remote-state" / "logs" / f"{actor}.log"


@pytest.fixture
def setup(tmp_path: Path, link: Link) -> Iterator[Setup]:
    keys = tmp_path / "keys"
    generate(keys, ["mesh", WORKER])
    # Only these three files go to the worker's machine.
    remote_keys = tmp_path / "remote-keys"
    remote_keys.mkdir(mode=0o700)
    for name in ("server.key", f"{WORKER}.key", f"{WORKER}.key_secret"):
        shutil.copy2(keys / name, remote_keys / name)
    root = tmp_path / "m"
    root.mkdir()
    (root / "ap.toml").write_text(_config(link, keys))
    (root / "team.toml").write_text(TEAM)
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml")
    s = Setup(mesh.up(), link, remote_keys, root)
    try:
        yield s
    finally:
        code, err = s.stop_worker()
        mesh.down()
        assert code in (None, 0), f"ap worker exited {code}: {err}"


def _objective(gates: Path, first: int, last: int, *, cut_gate: str = "") -> dict[str, object]:
    """An objective for the remote worker: writes lines ``first..last`` to its transcript
    and to pkg/remote.txt; with ``cut_gate``, waits for that file after line 5."""
    lines = []
    for i in range(first, last + 1):
        lines.append(f'echo "remote line {i}"; echo "line {i}" >> pkg/remote.txt')
        if cut_gate and i == 5:
            lines.append(shlex.join([sys.executable, str(GATE_SCRIPT), str(gates / cut_gate)]))
    if cut_gate:  # stays running until the link is back: the outage is mid-objective
        lines.append(shlex.join([sys.executable, str(GATE_SCRIPT), str(gates / "restored")]))
    return {
        "id": "o1",
        "title": "Write remotely",
        "worker": WORKER,
        "scope_touch": ["pkg/remote.txt"],
        "command": "sh -c " + shlex.quote("; ".join(lines)),
    }


def _activities(records: list[Record]) -> list[str]:
    return [
        r.event.description
        for r in records
        if isinstance(r.event, WorkerActivity)
        and r.event.objective_id == "o1"
        and r.event.description.startswith("remote line")
    ]


def _ran_remotely(records: list[Record]) -> bool:
    """The worker's actors were started by `ap worker`, once each, and never exited."""
    started = [
        r.event.actor
        for r in records
        if isinstance(r.event, ActorStarted) and r.event.actor.endswith(f".{WORKER}")
    ]
    exited = [
        r.event
        for r in records
        if isinstance(r.event, ActorExited) and r.event.actor.endswith(f".{WORKER}")
    ]
    return sorted(started) == [f"log_monitor.{WORKER}", f"worker.{WORKER}"] and not exited


def test_a_session_whose_objective_runs_on_the_remote_worker_completes(
    setup: Setup, small_repo: Path, tmp_path: Path
) -> None:
    line = setup.start_worker()
    assert f"worker {WORKER} joined the mesh" in line, line

    plan = write_plan(tmp_path / "plan.json", _objective(tmp_path, 1, 8))
    sid = session_of(
        setup.mesh.submit(
            "Write remotely", "--repo", str(small_repo), "--plan", plan, "--approve", "--json"
        )
    )
    end = setup.mesh.wait_for(ended, session_id=sid)

    assert isinstance(end.event, SessionCompleted), end.event
    records = setup.mesh.records()
    done = [r.event for r in records if isinstance(r.event, ObjectiveCompleted)]
    assert [(e.worker_id, e.files_modified) for e in done] == [(WORKER, ["pkg/remote.txt"])]
    assert _activities(records) == [f"remote line {i}" for i in range(1, 9)]
    assert _ran_remotely(records)
    merged = subprocess.run(
        ["git", "show", f"{end.event.branch}:pkg/remote.txt"],
        cwd=small_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert merged == "".join(f"line {i}\n" for i in range(1, 9))
    # The worker's machine holds no event log: its actors replayed through the journal.
    assert not (setup.root / "remote-state" / "eventlog.remote").exists()


async def _wait_for_line(path: Path, needle: str) -> str:
    async with contextlib.aclosing(tail_lines(path)) as lines:
        async for line in lines:
            if needle in line.text:
                return line.text
    raise AssertionError(f"{path} ended without {needle!r}")


@pytest.mark.timeout(300)
def test_cutting_the_link_mid_objective_loses_and_duplicates_no_event(
    setup: Setup, small_repo: Path, tmp_path: Path
) -> None:
    if setup.link.host_if is None:
        pytest.skip("no network namespace here (`ip netns` unavailable or not permitted)")
    setup.start_worker()
    plan = write_plan(tmp_path / "plan.json", _objective(tmp_path, 1, 10, cut_gate="cut"))
    sid = session_of(
        setup.mesh.submit(
            "Write remotely", "--repo", str(small_repo), "--plan", plan, "--approve", "--json"
        )
    )
    # Lines 1-5 reached the mesh; the objective now waits for the gate.
    setup.mesh.wait_for(
        lambda r: isinstance(r.event, WorkerActivity) and r.event.description == "remote line 5",
        session_id=sid,
    )

    setup.link.cut()
    try:
        (tmp_path / "cut").touch()  # lines 6-10 are written while the link is down
        # The log monitor's emitter sees its connection drop (ZeroMQ heartbeats went
        # unanswered) with lines 6-10 unacknowledged, and sends them again.
        resent = asyncio.run(
            _wait_for_line(setup.remote_log(f"log_monitor.{WORKER}"), ": resending")
        )
        assert "dropped" in resent or "no connection" in resent, resent
        # Longer than three unanswered replay requests: an actor's subscription keeps
        # asking, rather than crash the worker, which would abandon its objective.
        asyncio.run(_wait_for_line(setup.remote_log(f"worker.{WORKER}"), '"attempt":3,'))
    finally:
        setup.link.restore()
    (tmp_path / "restored").touch()

    end = setup.mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionCompleted), end.event
    records = setup.mesh.records()
    assert _activities(records) == [f"remote line {i}" for i in range(1, 11)]
    ids = [r.event.id for r in records if isinstance(r.event, WorkerActivity)]
    assert len(ids) == len(set(ids))
    assert _ran_remotely(records)  # no actor crashed through the outage
    report = check(setup.mesh.state_dir / "eventlog", [])
    assert report.clean, report.summary()


# --- refusals: one line and a documented exit code ------------------------------------


def _refused(setup: Setup, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        setup.worker_argv(*extra),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=setup.root,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ap: "), lines[0]
    return result


def test_ap_worker_with_the_wrong_keys_fails_in_one_line_and_says_to_check_them(
    setup: Setup, tmp_path: Path
) -> None:
    other = tmp_path / "other-keys"  # another mesh's keys, with a pair for this worker
    generate(other, [WORKER])
    revoked = tmp_path / "revoked-keys"  # the right server key, a client it does not allow
    revoked.mkdir(mode=0o700)
    shutil.copy2(setup.remote_keys / "server.key", revoked / "server.key")
    generate(tmp_path / "unlisted", [WORKER])
    for name in (f"{WORKER}.key", f"{WORKER}.key_secret"):
        shutil.copy2(tmp_path / "unlisted" / name, revoked / name)

    for keys in (other, revoked):
        result = _refused(setup, "--keys", str(keys))
        assert result.returncode == EXIT_CONFIG, result
        assert "handshake" in result.stderr and "--keys" in result.stderr, result.stderr

    no_keys = _refused(setup)
    assert no_keys.returncode == EXIT_CONFIG and "no --keys" in no_keys.stderr

    missing = _refused(setup, "--keys", str(tmp_path / "nowhere"))
    assert missing.returncode == EXIT_CONFIG and "no key file" in missing.stderr


def test_ap_worker_with_no_mesh_answering_fails_in_one_line_with_exit_4(
    setup: Setup, tmp_path: Path
) -> None:
    argv = setup.worker_argv("--keys", str(setup.remote_keys), "--timeout", "0.5")
    argv[argv.index("--connect") + 1] = f"tcp://{setup.link.mesh_ip}:1"  # nothing listens
    result = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=60)
    assert result.returncode == EXIT_NO_MESH, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no mesh answered" in lines[0], result.stderr


def test_ap_worker_refuses_a_worker_the_team_does_not_declare_remote(setup: Setup) -> None:
    keys = ("--keys", str(setup.remote_keys))
    argv = setup.worker_argv(*keys)
    for worker, needle in (("local", "is not remote"), ("ghost", "no worker 'ghost'")):
        argv[argv.index("--id") + 1] = worker
        result = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=60)
        assert result.returncode == EXIT_CONFIG, result
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
