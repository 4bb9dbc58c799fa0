"""The worker actor: runs one objective at a time on its agent, in a git worktree.

Source: ``DESIGN.md``, "Workers and agents". One worker actor per worker of the team
(``worker.<id>``; its options carry its :class:`~ap_actors.team.WorkerSpec`). For each
``objective_assigned`` to it:

1. a fresh git worktree ``<state dir>/worktrees/<session>/<objective>`` on the branch
   ``ap/<session>--<objective>`` at the assignment's ``base`` commit
   (:mod:`ap_actors.worktrees`), then ``objective_started`` with the worktree and the
   transcript path ``<state dir>/transcripts/<session>/<objective>.<attempt>.log``;
2. the agent's commands (its adapter, :mod:`ap_actors.agents`) run in the worktree, each
   in a new process group, stdout and stderr appended to the transcript, each preceded
   by a ``[ts] COMMAND: ...`` line and followed by ``[ts] EXIT: code``; ``worker_started``
   per process; CPU and memory of the process tree are sampled into ``worker_metrics``
   every ``metrics_interval_s``;
3. the whole process group is killed (SIGTERM, then SIGKILL after ``kill_grace_s``) when
   the objective's timeout passes or its session ends (cancelled, failed);
4. the files changed (tracked and untracked) are checked against the scope: changes
   outside ``scope_touch`` or inside ``scope_forbid`` give ``scope_violated`` and fail the
   objective; otherwise they are committed on the objective branch and
   ``objective_completed`` lists them. A non-zero exit, a missing command, a timeout or a
   cancel give ``objective_failed`` with the reason.

Emits derive their ids from the ``objective_assigned`` event. A worker that restarts with
an objective in flight does not run it again: it kills what is left of the agent's
process group (its id is in ``worker_started`` and, written before that is emitted, in
``<transcript>.pid``) and reports ``objective_failed`` ("interrupted"); the scheduler assigns a
new attempt while the team's ``max_attempts`` allows.

Every event it emits is redacted first (:mod:`ap_actors.redaction`): the values of the
secret variables of the agent's environment (the mesh's plus the worker's ``env``) become
``[redacted:NAME]``, wherever the agent's output put them (the reason of a failure, the
files it created). The environment itself is never put into an event.

Options: ``worker`` (the WorkerSpec), ``team``, ``metrics_interval_s`` (default 2.0),
``kill_grace_s`` (default 3.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec

from ap_actors.actors.sessions import SessionsActor
from ap_actors.agents import get_adapter
from ap_actors.agents.base import (
    AgentTask,
    CommandSpec,
    TranscriptSummary,
    read_transcript,
    summarize,
)
from ap_actors.agents.command import command_line, exit_line, timestamp
from ap_actors.errors import ApError
from ap_actors.events import (
    Event,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    Record,
    ScopeViolated,
    WorkerMetrics,
    WorkerStarted,
    derive_id,
)
from ap_actors.process import TreeSampler, kill_group
from ap_actors.projections import SessionView
from ap_actors.redaction import Redactor
from ap_actors.scope import check_changes
from ap_actors.team import WorkerSpec
from ap_actors.worktrees import (
    add_worktree,
    changed_files,
    commit_all,
    objective_branch,
    worktree_path,
)

log = logging.getLogger(__name__)


class _Stop(Exception):
    """The run must end early: a timeout or the session ended (the reason is the message)."""


class Worker(SessionsActor):
    """Runs the objectives assigned to one worker of the team (module docstring)."""

    topics = (
        "request_submitted",
        "analysis_completed",
        "plan_",
        "objective_",
        "worker_started",
        "session_",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spec = msgspec.convert(self.options["worker"], WorkerSpec)
        self.worker_id = self.spec.id
        self.adapter = get_adapter(self.spec.agent)
        self.redactor = Redactor.from_env(os.environ, self.spec.env)
        self.metrics_interval_s = float(self.options.get("metrics_interval_s", 2.0))
        self.kill_grace_s = float(self.options.get("kill_grace_s", 3.0))
        self.started_at = time.time()
        self.sampler = TreeSampler()  # the running agent's process tree
        self.queue: asyncio.Queue[ObjectiveAssigned] = asyncio.Queue()
        self.current: ObjectiveAssigned | None = None
        self.stop_reason: str | None = None
        self.stop_event = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None

    # --- life cycle -----------------------------------------------------------------

    async def on_recovered(self) -> None:
        for view in self.state.views.values():
            for o in view.objectives.values():
                if o.worker_id != self.worker_id:
                    continue
                if o.status == "running":
                    pid = o.pid or _read_pid(o.transcript)
                    await self._interrupted(view, o.objective.id, o.attempt, pid)
                elif o.status == "assigned":  # never started: nothing to undo, run it
                    await self.queue.put(_assignment(view, o.objective.id, o.attempt, o.base))
        self.runner = asyncio.create_task(self._run_queue())

    async def react(self, record: Record) -> None:
        event = record.event
        if isinstance(event, ObjectiveAssigned) and event.worker_id == self.worker_id:
            await self.queue.put(event)
            return
        current = self.current
        if current is not None and event.session_id == current.session_id:
            view = self.state.views.get(current.session_id)
            if view is not None and view.ended:
                self._stop_current(f"stopped: the session was {view.status}")

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        try:
            await super().run(ready)
        finally:
            if self.runner is not None:
                self.runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.runner

    async def emit(self, event: Event, *, cause: Event | None = None) -> int:
        """Append ``event`` with the agent's secrets redacted (module docstring)."""
        return await super().emit(self.redactor.event(event), cause=cause)

    def _stop_current(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_event.set()

    async def _interrupted(
        self, view: SessionView, objective_id: str, attempt: int, pid: int
    ) -> None:
        """Report an objective the previous incarnation left running; kill its leftovers."""
        if pid:
            await asyncio.to_thread(kill_group, pid, self.kill_grace_s)
        assigned = _assignment_id(view, objective_id, attempt)
        await self.emit(
            ObjectiveFailed(
                id=derive_id(assigned, self.name, "interrupted"),
                session_id=view.session_id,
                objective_id=objective_id,
                worker_id=self.worker_id,
                reason="interrupted: the worker restarted while the objective ran",
            )
        )

    # --- running objectives ---------------------------------------------------------

    async def _run_queue(self) -> None:
        while True:
            assigned = await self.queue.get()
            view = self.state.views.get(assigned.session_id)
            if view is None:
                continue
            o = view.objectives.get(assigned.objective_id)
            if o is None or o.attempt != assigned.attempt or o.status not in ("assigned",):
                continue  # superseded, already reported, or the session ended
            if view.ended:
                await self._fail(assigned, 0.0, "stopped: the session ended before it started")
                continue
            self.current = assigned
            self.stop_reason = None
            self.stop_event = asyncio.Event()
            try:
                await self._run(view, assigned)
            except ApError as e:
                await self._fail(assigned, 0.0, str(e))
            except Exception as e:  # a bug: report the objective, keep the worker
                log.exception("objective crashed the worker's run")
                await self._fail(assigned, 0.0, f"internal error in the worker: {e!r}")
            finally:
                self.current = None

    async def _fail(
        self,
        assigned: ObjectiveAssigned,
        started: float,
        reason: str,
        *,
        exit_code: int | None = None,
        files: list[str] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        if not self._still_open(assigned):
            return
        await self.emit(
            ObjectiveFailed(
                objective_id=assigned.objective_id,
                worker_id=self.worker_id,
                exit_code=exit_code,
                files_modified=files or [],
                duration_s=round(time.time() - started, 3) if started else 0.0,
                reason=reason,
                **(usage or {}),
            ),
            cause=assigned,
        )
        await self._metrics(
            assigned.session_id, None, (assigned.objective_id, usage) if usage else None
        )

    def _still_open(self, assigned: ObjectiveAssigned) -> bool:
        """False when this attempt already has a result: the scheduler's watchdog failed it
        on our behalf while we were stuck. Reporting it again would be a second result."""
        view = self.state.views.get(assigned.session_id)
        o = view.objectives.get(assigned.objective_id) if view else None
        return o is None or o.attempt != assigned.attempt or o.status in ("assigned", "running")

    async def _run(self, view: SessionView, assigned: ObjectiveAssigned) -> None:
        objective = view.objectives[assigned.objective_id].objective
        repo = Path(view.repo)
        workdir = worktree_path(self.state_dir, view.session_id, objective.id)
        branch = objective_branch(view.session_id, objective.id)
        await asyncio.to_thread(add_worktree, repo, workdir, branch, assigned.base, fresh=True)
        transcript = (
            self.state_dir
            / "transcripts"
            / view.session_id
            / f"{objective.id}.{assigned.attempt}.log"
        )
        transcript.parent.mkdir(parents=True, exist_ok=True)
        transcript.write_bytes(b"")
        started = time.time()
        await self.emit(
            ObjectiveStarted(
                objective_id=objective.id,
                worker_id=self.worker_id,
                attempt=assigned.attempt,
                workdir=str(workdir),
                transcript=str(transcript),
            ),
            cause=assigned,
        )
        task = AgentTask(
            session_id=view.session_id,
            objective=objective,
            workdir=str(workdir),
            request=view.request,
            contracts=view.contracts,
            coordination_points=view.analysis.coordination_points if view.analysis else [],
            attempt=assigned.attempt,
            model=self.spec.model,
        )
        spec = (
            CommandSpec.from_config(command=self.spec.command, commands=self.spec.commands)
            if self.spec.templates()
            else None
        )
        argvs = self.adapter.commands(task, spec)
        deadline = started + assigned.timeout_s if assigned.timeout_s > 0 else None
        code: int | None = 0
        with transcript.open("ab", buffering=0) as out:
            for argv in argvs:
                try:
                    code = await self._step(assigned, argv, workdir, out, deadline)
                except _Stop as stop:
                    await self._fail(assigned, started, str(stop), exit_code=None)
                    return
                except FileNotFoundError:
                    reason = (
                        f"agent command not found: {argv[0]!r}; install it or fix the"
                        f" worker {self.worker_id!r} command in the team file"
                    )
                    _mark(out, f"ERROR: {reason}")
                    await self._fail(assigned, started, reason, exit_code=127)
                    return
                except PermissionError:
                    reason = f"agent command {argv[0]!r} is not executable"
                    _mark(out, f"ERROR: {reason}")
                    await self._fail(assigned, started, reason, exit_code=126)
                    return
                if code != 0:
                    break
        changed = await asyncio.to_thread(changed_files, workdir)
        summary = await asyncio.to_thread(self._summarize, transcript, workdir)
        usage = {
            "input_tokens": summary.input_tokens,
            "output_tokens": summary.output_tokens,
            "cost_usd": summary.cost_usd,
        }
        if code != 0:
            # The agent's own last error (its parser's), else its last line of output.
            # Redacted before the cut, which could leave a secret's first half.
            last = summary.last_error or self.redactor.text(_last_error_line(transcript))[:300]
            reason = f"{shlex.join(argvs[-1][:3]) if argvs else 'agent'} exited with {code}"
            await self._fail(
                assigned,
                started,
                f"{reason}: {last}" if last else reason,
                exit_code=code,
                files=changed,
                usage=usage,
            )
            return
        outside, forbidden = check_changes(changed, objective.scope_touch, objective.scope_forbid)
        if outside or forbidden:
            for paths, rule in ((outside, "outside_touch"), (forbidden, "inside_forbid")):
                if paths:
                    await self.emit(
                        ScopeViolated(
                            objective_id=objective.id,
                            worker_id=self.worker_id,
                            paths=paths,
                            rule=rule,  # type: ignore[arg-type]
                        ),
                        cause=assigned,
                    )
            bad = [*outside, *forbidden]
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            await self._fail(
                assigned,
                started,
                f"scope violated: changed {shown} outside its scope; not merged",
                exit_code=code,
                files=changed,
                usage=usage,
            )
            return
        if changed:
            await asyncio.to_thread(
                commit_all,
                workdir,
                f"ap({objective.id}): {objective.title}\n\nSession {view.session_id},"
                f" attempt {assigned.attempt}, worker {self.worker_id}.",
                author=f"ap-actors {self.worker_id}",
            )
        if not self._still_open(assigned):
            return
        await self.emit(
            ObjectiveCompleted(
                objective_id=objective.id,
                worker_id=self.worker_id,
                files_modified=changed,
                exit_code=0,
                duration_s=round(time.time() - started, 3),
                **usage,  # type: ignore[arg-type]
            ),
            cause=assigned,
        )
        await self._metrics(assigned.session_id, None, (objective.id, usage))

    async def _step(
        self,
        assigned: ObjectiveAssigned,
        argv: list[str],
        workdir: Path,
        out: IO[bytes],
        deadline: float | None,
    ) -> int:
        """Run one command of the agent; return its exit code.

        Raises:
            _Stop: the timeout passed or the session ended (the process group is killed).
            FileNotFoundError, PermissionError: the command cannot be run.
        """
        out.write(command_line(argv).encode() + b"\n")
        env = {**os.environ, **self.spec.env}  # never in an event: it holds the keys
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        # Before anything can fail: a restarted worker must find this process group.
        _pid_file(out).write_text(str(proc.pid))
        await self.emit(
            WorkerStarted(
                worker_id=self.worker_id,
                pid=proc.pid,
                argv=argv,
                objective_id=assigned.objective_id,
            ),
            cause=assigned,
        )
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            while not waiter.done():
                timeout = self.metrics_interval_s
                if deadline is not None:
                    timeout = min(timeout, max(0.0, deadline - time.time()))
                await asyncio.wait(
                    {waiter, stopper}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if waiter.done():
                    break
                if stopper.done():
                    await self._terminate(proc.pid, waiter)
                    _mark(out, f"ERROR: {self.stop_reason}")
                    raise _Stop(self.stop_reason or "stopped")
                if deadline is not None and time.time() >= deadline:
                    await self._terminate(proc.pid, waiter)
                    reason = f"timed out after {assigned.timeout_s:g}s; the agent was killed"
                    _mark(out, f"ERROR: {reason}")
                    raise _Stop(reason)
                await self._metrics(assigned.session_id, proc.pid)
        finally:
            stopper.cancel()
            if not waiter.done():  # cancelled (the actor stops): leave no agent behind
                await asyncio.to_thread(kill_group, proc.pid, self.kill_grace_s)
        code = waiter.result()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the agent left in the background
        out.write(exit_line(code).encode() + b"\n")
        return code

    async def _terminate(self, pgid: int, waiter: asyncio.Future[int]) -> None:
        """SIGTERM the agent's process group; SIGKILL it after ``kill_grace_s``."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        await asyncio.wait({waiter}, timeout=self.kill_grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        await waiter

    def _summarize(self, transcript: Path, workdir: Path) -> TranscriptSummary:
        """The transcript read through the adapter's parser (tokens, last error)."""
        try:
            return summarize(self.adapter.parser(str(workdir)), read_transcript(transcript))
        except OSError:
            return TranscriptSummary()

    async def _metrics(
        self, session_id: str, pid: int | None, reported: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        """Emit ``worker_metrics``: the agent's process tree sample, counts, tokens, cost.

        ``reported`` is (objective id, usage) of a result just emitted, which this
        actor's state may not have folded yet.
        """
        # On the loop, not in a thread: a sample reads a few /proc files (a fraction of a
        # ms, less than a thread hop costs); the sampler's full look every
        # ``rescan_every`` calls takes a few ms with hundreds of processes.
        cpu, rss = self.sampler.sample(pid) if pid else (0.0, 0)
        done = failed = tokens_in = tokens_out = 0
        cost = 0.0
        view = self.state.views.get(session_id)
        for v in self.state.views.values():
            for o in v.objectives.values():
                if o.worker_id == self.worker_id:
                    done += o.status == "completed"
                    failed += o.failures
                    if v is view:  # tokens and cost: this session's, as the reports show
                        tokens_in += o.input_tokens
                        tokens_out += o.output_tokens
                        cost += o.cost_usd
                        if reported and reported[0] == o.objective.id and not o.ended_at:
                            tokens_in += reported[1]["input_tokens"]
                            tokens_out += reported[1]["output_tokens"]
                            cost += reported[1]["cost_usd"]
        await self.emit(
            WorkerMetrics(
                session_id=session_id,
                worker_id=self.worker_id,
                tasks_completed=done,
                tasks_failed=failed,
                uptime_seconds=round(time.time() - self.started_at, 3),
                cpu_percent=cpu,
                rss_bytes=rss,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=round(cost, 6),
            )
        )


def _assignment_id(view: SessionView, objective_id: str, attempt: int) -> str:
    """The id the scheduler gave this assignment (its ids derive from session and step)."""
    return derive_id(view.session_id, "scheduler", f"assign:{objective_id}:{attempt}")


def _assignment(view: SessionView, objective_id: str, attempt: int, base: str) -> ObjectiveAssigned:
    """Rebuild an assignment from the view (with its original id, so emits derive alike)."""
    o = view.objectives[objective_id]
    return ObjectiveAssigned(
        id=_assignment_id(view, objective_id, attempt),
        session_id=view.session_id,
        objective_id=objective_id,
        worker_id=o.worker_id,
        attempt=attempt,
        base=base,
        timeout_s=o.timeout_s,
    )


def _pid_file(out: IO[bytes]) -> Path:
    """``<transcript>.pid``: the agent's process group id, for a restarted worker."""
    return Path(f"{out.name}.pid")


def _read_pid(transcript: str) -> int:
    try:
        return int(Path(f"{transcript}.pid").read_text())
    except (OSError, ValueError):
        return 0


def _mark(out: IO[bytes], text: str) -> None:
    out.write(f"[{timestamp()}] {text}\n".encode())


def _last_error_line(transcript: Path, max_bytes: int = 8192) -> str:
    """The last non-marker, non-blank line of a transcript (the agent's own last word),
    from its last ``max_bytes``, whole."""
    with transcript.open("rb") as f:
        f.seek(max(0, transcript.stat().st_size - max_bytes))
        lines = f.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        text = line.strip()
        if text and not (text.startswith("[") and ("] EXIT:" in text or "] COMMAND:" in text)):
            return text
    return ""
