"""The supervisor: starts every actor as its own OS process and keeps them running.

Source: ``DESIGN.md``, "Processes". Start order: the journal first (it owns the log and
the endpoints; once it has bound them the supervisor writes ``mesh.json``), then every
enabled actor of the config in file order, each awaited until it reports ready, except
the per-agent actors (``worker.*``, ``log_monitor.*``): they come last and start
concurrently, at most :func:`os.cpu_count` at a time (each start is ~0.2 s of CPU,
mostly imports and the first fold: one at a time left cores idle). Policy:
one-for-one, Erlang style. A crashed actor is restarted after an exponential back-off
(``backoff_initial_s`` doubled per consecutive quick crash, at most ``backoff_max_s``;
reset after a run of ``stable_after_s``). More than ``max_restarts`` restarts within
``restart_window_s`` and the supervisor gives up on that actor, loudly (an error log
line and ``actor_exited`` with ``gave_up``); giving up on the journal stops the mesh
(exit code ``EXIT_STARTUP``). Shutdown (SIGTERM/SIGINT, ``ap down``) stops the actors in
reverse start order, the journal last: SIGTERM, then SIGKILL after ``stop_timeout_s``.

Every start and exit is recorded in the log (``actor_started``, ``actor_exited``), and
the live process table is kept in ``<state dir>/supervisor.json`` for ``ap status``::

    {"pid", "started_at", "actors": [{"name", "pid", "restarts", "started_at", "state"}]}

Each actor's stdout and stderr go to ``<state dir>/logs/<name>.log``.

CPU priority (``[supervisor] priority``, on by default): the serial actors every event
goes through (:data:`SERIAL_ACTORS`) run :data:`PRIORITY_STEP` nice levels above the
per-agent actors and the agents they start, so that a hundred busy workers cannot starve
the journal. Lowering a nice value needs ``CAP_SYS_NICE`` or ``RLIMIT_NICE``; without it
the per-agent actors are raised by the same step instead (always allowed). Agents
inherit their worker's nice value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec

from ap_actors.bus import Emitter
from ap_actors.config import Config, eventlog_dir
from ap_actors.errors import EXIT_STARTUP, MeshNotRunningError, MeshRunningError, StartupError
from ap_actors.events import ActorExited, ActorStarted, Event
from ap_actors.mesh import MeshInfo, read_mesh, remove_mesh, write_atomic, write_mesh
from ap_actors.process import hold_lock
from ap_actors.security import CurveKeys, require_keys
from ap_actors.team import Team, effective_config, write_team

log = logging.getLogger("ap_actors.supervisor")

STATUS_FILE = "supervisor.json"
EFFECTIVE_CONFIG = "mesh-config.json"  # the config the actors run with (JSON)
READY_TIMEOUT_S = 60.0  # an actor that is not ready after this long failed to start
STABLE_AFTER_S = 10.0  # a run this long resets the back-off
SERIAL_ACTORS = frozenset({"journal", "broadcaster", "scheduler"})
"""Actors that every event (or every session) goes through, one process each."""
PER_AGENT_PREFIXES = ("worker.", "log_monitor.")  # the actors a team adds, per worker
PRIORITY_STEP = 10  # nice levels between the serial and the per-agent actors

ActorState = Literal["starting", "running", "backoff", "failed", "stopped"]


class ActorStatus(msgspec.Struct):
    """One row of supervisor.json."""

    name: str
    pid: int | None
    restarts: int
    started_at: float | None  # Unix seconds of the current process's start
    state: ActorState


class SupervisorStatus(msgspec.Struct):
    """The content of supervisor.json."""

    pid: int
    started_at: float
    actors: list[ActorStatus]


def read_status(state_dir: Path) -> SupervisorStatus | None:
    """Return the content of ``<state_dir>/supervisor.json``, or None if absent/unreadable."""
    try:
        return msgspec.json.decode((state_dir / STATUS_FILE).read_bytes(), type=SupervisorStatus)
    except (OSError, msgspec.DecodeError):
        return None


def ensure_no_mesh(state_dir: Path) -> None:
    """Raise :class:`MeshRunningError` if a live mesh already uses ``state_dir``."""
    try:
        running = read_mesh(state_dir)
    except MeshNotRunningError:
        return
    raise MeshRunningError(
        f"a mesh is already running in {state_dir} (supervisor pid {running.pid});"
        " stop it with `ap down` or use another --state-dir"
    )


class Priorities(NamedTuple):
    """The nice values the supervisor gives its actors (None = left as inherited)."""

    serial: int | None  # the journal, the broadcaster and the scheduler
    per_agent: int | None  # workers and log monitors (and so the agents they start)

    def of(self, name: str) -> int | None:
        """Return the nice value for actor ``name`` (None = the supervisor's own)."""
        if name in SERIAL_ACTORS:
            return self.serial
        if name.startswith(PER_AGENT_PREFIXES):
            return self.per_agent
        return None


SetPriority = Callable[[int, int, int], None]  # os.setpriority's signature


def choose_priorities(
    journal_pid: int, base: int, setpriority: SetPriority = os.setpriority
) -> Priorities:
    """Give the journal priority over the per-agent actors, the best way permitted.

    Tries to lower the journal's nice value (every thread of it) to ``base -
    PRIORITY_STEP``. When that is not permitted (no ``CAP_SYS_NICE``, ``RLIMIT_NICE``
    too low), the per-agent actors are to be raised to ``base + PRIORITY_STEP``
    instead. Logs once, at info, which it did.

    Args:
        journal_pid: the journal's process id.
        base: the supervisor's own nice value (what every actor inherits).
        setpriority: :func:`os.setpriority`, injectable for tests.

    Returns:
        The nice values to give the serial and the per-agent actors.
    """
    lowered = max(base - PRIORITY_STEP, -20)
    try:
        renice(journal_pid, lowered, setpriority)
    except PermissionError:
        raised = min(base + PRIORITY_STEP, 19)
        log.info(
            "not permitted to lower the serial actors' nice value (no CAP_SYS_NICE or"
            " RLIMIT_NICE); raising the workers' and log monitors' from %d to %d instead",
            base,
            raised,
        )
        return Priorities(serial=None, per_agent=raised)
    log.info(
        "serial actors (%s) run at nice %d, the other actors at %d",
        ", ".join(sorted(SERIAL_ACTORS)),
        lowered,
        base,
    )
    return Priorities(serial=lowered, per_agent=None)


def renice(pid: int, nice: int, setpriority: SetPriority = os.setpriority) -> None:
    """Set the nice value of every thread of process ``pid``.

    Linux keeps a nice value per thread, and ``setpriority(PRIO_PROCESS, pid)`` sets only
    the main thread's; threads started later inherit their creator's.

    Raises:
        PermissionError: lowering it is not permitted.
        ProcessLookupError: ``pid`` has exited.
    """
    setpriority(os.PRIO_PROCESS, pid, nice)  # the main thread first: new threads inherit
    for tid in _threads(pid):
        if tid != pid:
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                setpriority(os.PRIO_PROCESS, tid, nice)


def _threads(pid: int) -> Iterable[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # not Linux (the whole process has one value), or it has exited
        return []


class _Child:
    def __init__(self, name: str, argv: list[str], is_journal: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.is_journal = is_journal
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.quick_crashes = 0
        self.restart_times: deque[float] = deque()
        self.started_at: float | None = None
        self.state: ActorState = "starting"
        self.watcher: asyncio.Task[None] | None = None

    def status(self) -> ActorStatus:
        pid = self.proc.pid if self.proc is not None and self.state == "running" else None
        return ActorStatus(self.name, pid, self.restarts, self.started_at, self.state)


class Supervisor:
    """Runs one mesh in ``state_dir`` until stopped.

    Args:
        config: the validated config.
        state_dir: the mesh's state directory (created if missing).
        config_path: the config file, passed on to the journal (None = defaults).
        team: the team; its workers' actors are added to the config's.
    """

    def __init__(
        self, config: Config, state_dir: Path, config_path: str | None, team: Team | None = None
    ) -> None:
        self.team = team or Team()
        self.config = effective_config(config, self.team)
        self.state_dir = state_dir
        self.config_path = config_path
        self.logs_dir = state_dir / "logs"
        self.children: list[_Child] = []
        self.mesh: MeshInfo | None = None
        self.emitter: Emitter | None = None
        self.stopping = False
        self.started_at = time.time()
        self._emits: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self.exit_code = 0
        self.priorities: Priorities | None = None  # decided when the journal starts

    # --- process handling -----------------------------------------------------------

    def _actor_argv(self, name: str) -> list[str]:
        argv = [sys.executable, "-m", "ap_actors.actor", "--name", name]
        argv += ["--state-dir", str(self.state_dir), "--parent-pid", str(os.getpid())]
        # The effective config (defaults, the file, the team's actors), written at start.
        argv += ["--config", str(self.state_dir / EFFECTIVE_CONFIG)]
        return argv

    def _journal_argv(self, ingest: str, bus: str, replay: str) -> list[str]:
        argv = [sys.executable, "-m", "ap_actors.actors.journal"]
        argv += ["--state-dir", str(self.state_dir), "--parent-pid", str(os.getpid())]
        argv += ["--ingest", ingest, "--bus", bus, "--replay", replay]
        if self.config_path:
            argv += ["--config", str(self.config_path)]
        return argv

    async def _spawn(self, child: _Child) -> dict[str, Any]:
        """Start ``child`` and wait for its ready line; return the line's JSON.

        Raises:
            StartupError: it exited or stayed silent before becoming ready.
        """
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{child.name}.log"
        read_fd, write_fd = os.pipe()
        child.state = "starting"
        child.started_at = None  # a start that fails counts as a quick crash
        with open(log_path, "ab") as log_file:
            child.proc = await asyncio.create_subprocess_exec(
                *child.argv,
                "--ready-fd",
                str(write_fd),
                pass_fds=(write_fd,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        os.close(write_fd)
        self._set_priority(child)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
        )
        try:
            line = await asyncio.wait_for(reader.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        finally:
            transport.close()
        if not line:
            code = await _wait_briefly(child.proc)
            reason = _last_line(log_path) or f"exit code {code}"
            raise StartupError(f"{child.name} failed to start: {reason} (log: {log_path})")
        child.started_at = time.time()
        child.state = "running"
        self._write_status()
        self._emit(
            ActorStarted(
                actor=child.name, pid=child.proc.pid, restarts=child.restarts, argv=child.argv
            )
        )
        info: dict[str, Any] = msgspec.json.decode(line) if line.strip() else {}
        dashboard = info.get("dashboard")
        if dashboard and self.mesh is not None and dashboard != self.mesh.dashboard:
            # The broadcaster reports the URL it bound; clients find it in mesh.json.
            self.mesh = msgspec.structs.replace(self.mesh, dashboard=dashboard)
            write_mesh(self.state_dir, self.mesh)
        return info

    def _set_priority(self, child: _Child) -> None:
        """Give a freshly started actor its nice value (see :func:`choose_priorities`)."""
        assert child.proc is not None
        if not self.config.supervisor.priority:
            return
        try:
            if self.priorities is None:  # the journal, started first
                base = os.getpriority(os.PRIO_PROCESS, 0)
                self.priorities = choose_priorities(child.proc.pid, base)
            elif (nice := self.priorities.of(child.name)) is not None:
                renice(child.proc.pid, nice)
        except OSError as e:  # it exited already: its start fails and says why
            log.warning("cannot set the nice value of %s: %s", child.name, e)

    async def _spawn_all(self, children: list[_Child], limit: int) -> None:
        """Start ``children``, at most ``limit`` at a time; on a failure stop waiting.

        Raises:
            StartupError: one failed to start (the others' starts are cancelled; the
                caller stops whatever runs).
        """
        slots = asyncio.Semaphore(limit)

        async def start(child: _Child) -> None:
            async with slots:
                await self._spawn(child)

        tasks = [asyncio.create_task(start(c), name=f"start-{c.name}") for c in children]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, child: _Child) -> None:
        """Wait for ``child`` to exit; restart it per the policy unless stopping."""
        cfg = self.config.supervisor
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            pid = child.proc.pid
            if self.stopping:
                return
            ran = time.time() - (child.started_at or time.time())
            child.quick_crashes = 0 if ran >= STABLE_AFTER_S else child.quick_crashes + 1
            now = time.monotonic()
            child.restart_times.append(now)
            while child.restart_times and now - child.restart_times[0] > cfg.restart_window_s:
                child.restart_times.popleft()
            gave_up = len(child.restart_times) > cfg.max_restarts
            delay = min(
                cfg.backoff_initial_s * 2 ** max(child.quick_crashes - 1, 0), cfg.backoff_max_s
            )
            exited = ActorExited(
                actor=child.name,
                pid=pid,
                exit_code=code if code >= 0 else None,
                signal=-code if code < 0 else None,
                restarting_in_s=None if gave_up else delay,
                gave_up=gave_up,
                reason=_last_line(self.logs_dir / f"{child.name}.log"),
            )
            self._emit(exited)
            if gave_up:
                child.state = "failed"
                self._write_status()
                log.error(
                    "giving up on %s: %d restarts within %.0fs; see %s",
                    child.name,
                    cfg.max_restarts,
                    cfg.restart_window_s,
                    self.logs_dir / f"{child.name}.log",
                )
                print(
                    f"ap: giving up on actor {child.name!r} after {cfg.max_restarts} restarts"
                    f" within {cfg.restart_window_s:.0f}s; see {self.logs_dir / child.name}.log",
                    file=sys.stderr,
                )
                if child.is_journal:
                    self.exit_code = EXIT_STARTUP
                    self._stop.set()
                return
            child.state = "backoff"
            self._write_status()
            log.warning("%s exited (%s); restarting in %.2fs", child.name, code, delay)
            await asyncio.sleep(delay)
            if self.stopping:
                return
            child.restarts += 1
            try:
                await self._spawn(child)
            except StartupError as e:
                log.error("%s", e)  # its exit is counted as a crash on the next round
            except Exception:  # e.g. no file descriptors left: count it as a crash too
                log.exception("restarting %s failed", child.name)

    async def _stop_child(self, child: _Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            child.state = "stopped"
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.config.supervisor.stop_timeout_s)
        except TimeoutError:
            log.warning("%s ignored SIGTERM; killing it", child.name)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        child.state = "stopped"

    # --- events and status ----------------------------------------------------------

    def _emit(self, event: Event) -> None:
        """Append a lifecycle event in the background (the journal may be restarting)."""
        if self.emitter is None:
            return
        task = asyncio.create_task(self.emitter.emit(event))
        self._emits.add(task)
        task.add_done_callback(self._emit_done)

    def _emit_done(self, task: asyncio.Task[Any]) -> None:
        self._emits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("lifecycle event not recorded: %s", task.exception())

    def _write_status(self) -> None:
        status = SupervisorStatus(os.getpid(), self.started_at, [c.status() for c in self.children])
        write_atomic(self.state_dir / STATUS_FILE, msgspec.json.encode(status))

    # --- run ------------------------------------------------------------------------

    async def start(self) -> MeshInfo:
        """Start the journal and every enabled actor; return the mesh's endpoints.

        Raises:
            MeshRunningError: a live mesh already uses ``state_dir``.
            StartupError: an actor failed to start (everything started is stopped again).
        """
        self._claim_state_dir()
        mesh_cfg = self.config.mesh
        keys = self.config.security.keys
        require_keys(
            {"ingest": mesh_cfg.ingest, "bus": mesh_cfg.bus, "replay": mesh_cfg.replay}, keys
        )
        curve = CurveKeys.for_client(keys) if keys else None  # ConfigError before any start
        journal = _Child(
            "journal",
            self._journal_argv(mesh_cfg.ingest, mesh_cfg.bus, mesh_cfg.replay),
            is_journal=True,
        )
        self.children.append(journal)
        try:
            bound = await self._spawn(journal)
            # A restarted journal must bind the very ports clients already know.
            journal.argv = self._journal_argv(bound["ingest"], bound["bus"], bound["replay"])
            mesh = MeshInfo(
                ingest=bound["ingest"],
                bus=bound["bus"],
                replay=bound["replay"],
                dashboard=None,
                pid=os.getpid(),
                log=str(eventlog_dir(self.state_dir)),
                keys=keys,
            )
            self._publish(mesh, curve)
            assert journal.proc is not None
            self._emit(ActorStarted(actor="journal", pid=journal.proc.pid, argv=journal.argv))
            await self._start_actors()
        except BaseException:
            await self.shutdown()
            raise
        self._watch_all()
        assert self.mesh is not None  # with the dashboard's URL the broadcaster reported
        log.info("mesh up", extra={"mesh": msgspec.to_builtins(self.mesh), "actors": self._names()})
        return self.mesh

    def _claim_state_dir(self) -> None:
        """Refuse a state directory that a live mesh uses; hold its supervisor lock.

        Raises:
            MeshRunningError: a mesh runs there, or another supervisor is starting one.
        """
        ensure_no_mesh(self.state_dir)
        # Two `ap up` racing on one state directory: the second stops here.
        try:
            self._lock = hold_lock(self.state_dir / "supervisor.lock", "another supervisor")
        except StartupError as e:
            raise MeshRunningError(
                f"{e}; a mesh is starting or running in this state dir"
            ) from None

    def _publish(self, mesh: MeshInfo, curve: CurveKeys | None) -> None:
        """Write what the actors read at start (mesh.json, the effective config, the
        team) and connect the emitter of the lifecycle events."""
        self.mesh = mesh
        write_mesh(self.state_dir, mesh)
        write_atomic(
            self.state_dir / EFFECTIVE_CONFIG,
            msgspec.json.format(msgspec.json.encode(self.config)) + b"\n",
        )
        write_team(self.state_dir, self.team)
        self.emitter = Emitter(mesh.ingest, source="supervisor", curve=curve)

    async def _start_actors(self) -> None:
        """Start every enabled actor of the config: one at a time in file order, then
        the per-agent ones concurrently (module docstring).

        Raises:
            StartupError: one failed to start (the caller stops whatever runs).
        """
        new = [_Child(name, self._actor_argv(name)) for name in self.config.enabled_actors()]
        self.children += new  # file order: shutdown reverses it
        per_agent = [c for c in new if c.name.startswith(PER_AGENT_PREFIXES)]
        for child in new:
            if child not in per_agent:
                await self._spawn(child)
        await self._spawn_all(per_agent, os.cpu_count() or 2)

    def _watch_all(self) -> None:
        """Start restarting every child that exits (:meth:`_watch`)."""
        for child in self.children:
            child.watcher = asyncio.create_task(self._watch(child))
        self._write_status()

    def _names(self) -> list[str]:
        return [c.name for c in self.children]

    def handle_signals(self) -> None:
        """From now on SIGTERM/SIGINT stop the mesh cleanly (:meth:`wait` returns)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)

    async def wait(self) -> int:
        """Run until SIGTERM/SIGINT (or giving up on the journal); return the exit code."""
        self.handle_signals()
        await self._stop.wait()
        await self.shutdown()
        return self.exit_code

    async def shutdown(self) -> None:
        """Stop every actor in reverse start order, the journal last; remove mesh.json."""
        self.stopping = True
        for child in self.children:
            if child.watcher is not None:
                child.watcher.cancel()
        for child in reversed(self.children):
            if child.is_journal:
                continue
            pid = child.proc.pid if child.proc is not None else 0
            was_running = child.proc is not None and child.proc.returncode is None
            await self._stop_child(child)
            if was_running and child.proc is not None:
                self._emit(
                    ActorExited(
                        actor=child.name,
                        pid=pid,
                        exit_code=child.proc.returncode,
                        reason="shutdown",
                    )
                )
        if self._emits:  # record the exits while the journal still runs
            await asyncio.wait(set(self._emits), timeout=5)
        if self.emitter is not None:
            await self.emitter.close()
        for child in self.children:
            if child.is_journal:
                await self._stop_child(child)
        self._write_status()
        remove_mesh(self.state_dir)
        log.info("mesh stopped", extra={"state_dir": str(self.state_dir)})


async def _wait_briefly(proc: asyncio.subprocess.Process) -> int | None:
    try:
        return await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        proc.kill()
        return await proc.wait()


def _last_line(path: Path, max_bytes: int = 4096) -> str:
    """Return the last non-empty line of a log file, decoded from JSON when it is JSON."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - max_bytes, 0))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    last = lines[-1]
    with contextlib.suppress(msgspec.DecodeError):
        data = msgspec.json.decode(last)
        if isinstance(data, dict) and "msg" in data:
            return str(data["msg"])
    return last.decode("utf-8", "replace")
