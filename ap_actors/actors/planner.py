"""The planner actor: the ANALYTIC and PLANNING phases of a session.

Source: ``DESIGN.md``, "Processes"; seed 001, phases 1 and 2. On ``request_submitted``
it analyses the repository at the request's base ref (:mod:`ap_actors.analysis`),
emits ``analysis_completed``, then makes the plan from one of three sources and emits
``plan_proposed``:

1. the owner's plan file, when the request names one (:func:`planning.load_plan_file`);
2. an agent planner, when ``options.mode = "agent"``: the agent CLI of
   ``options.agent_command`` (an argv template with ``{prompt}``) is asked for a plan in
   the plan file's JSON schema, which is validated like a plan file;
3. the built-in heuristic planner otherwise (offline, deterministic).

A request it cannot plan (repository missing, not a git repository, an invalid plan
file, an agent that returns no valid plan) ends the session with ``session_failed`` and
the one-line reason. Both emits derive their ids from the request event, so a planner
that restarts mid-session and plans again appends nothing twice.

Each session is planned in its own task, so a slow agent planner holds up neither the
other sessions nor a restarted planner's recovery. An agent planner's process group id is
kept in ``<state dir>/planner/<session>.pid`` while it runs: a planner that stops kills
the groups of its agents, and a restarted one kills what a killed one left behind.

Options (``[actors.planner] options = {...}``): ``mode`` ("heuristic" | "agent"),
``agent_command`` (list of str), ``agent_timeout_s`` (float, default 600).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from ap_actors.actor import Actor
from ap_actors.analysis import RepoAnalysis, analyse
from ap_actors.errors import ApError
from ap_actors.events import (
    AnalysisCompleted,
    Event,
    PlanProposed,
    Record,
    RequestSubmitted,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
)
from ap_actors.planning import Plan, agent_plan, check_plan, heuristic_plan, load_plan_file
from ap_actors.process import kill_group
from ap_actors.redaction import Redactor
from ap_actors.team import Team, team_option

log = logging.getLogger(__name__)

PLAN_ID = "plan-1"  # the first plan of a session; revisions get their own ids


class PlannerState(msgspec.Struct):
    pending: dict[str, RequestSubmitted] = {}  # session -> request not planned yet


class Planner(Actor[PlannerState]):
    """Analyses the repository and proposes a plan for every submitted request."""

    topics = ("request_submitted", "plan_proposed", "session_")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.tasks: dict[str, asyncio.Task[None]] = {}  # session -> its planning
        self.agents: dict[str, int] = {}  # session -> process group of its agent planner
        self.pid_dir = self.state_dir / "planner"
        # A planning agent's stderr can end up in a failure's reason: redact its keys.
        self.redactor = Redactor.from_env(os.environ)

    async def emit(self, event: Event, *, cause: Event | None = None) -> int:
        """Append ``event`` with the secrets of this environment redacted
        (:mod:`ap_actors.redaction`)."""
        return await super().emit(self.redactor.event(event), cause=cause)

    def initial_state(self) -> PlannerState:
        return PlannerState()

    def apply(self, state: PlannerState, event: Event) -> PlannerState:
        match event:
            case RequestSubmitted():
                state.pending[event.session_id] = event
            case PlanProposed() | SessionCompleted() | SessionFailed() | SessionCancelled():
                state.pending.pop(event.session_id, None)
        return state

    async def on_recovered(self) -> None:
        for request in list(self.state.pending.values()):
            # An agent planner the previous incarnation started must not live on.
            pid = _read_pid(self._pid_file(request.session_id))
            if pid:
                await asyncio.to_thread(kill_group, pid)
            self._schedule(request)

    async def react(self, record: Record) -> None:
        if isinstance(record.event, RequestSubmitted):
            self._schedule(record.event)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        try:
            await super().run(ready)
        finally:
            for pid in list(self.agents.values()):  # unblocks the planning threads
                kill_group(pid)
            for task in self.tasks.values():
                task.cancel()
            for task in list(self.tasks.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- planning -------------------------------------------------------------------

    def _schedule(self, request: RequestSubmitted) -> None:
        """Plan a session in the background: a slow agent must not hold up the others,
        nor keep this actor from reporting ready after a restart."""
        sid = request.session_id
        if sid not in self.tasks:
            task = asyncio.create_task(self._plan_safely(request))
            self.tasks[sid] = task
            task.add_done_callback(lambda _: self.tasks.pop(sid, None))

    async def _plan_safely(self, request: RequestSubmitted) -> None:
        try:
            await self._plan(request)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: end the session with it rather than hang
            log.exception("planning crashed", extra={"session": request.session_id})
            await self.emit(
                SessionFailed(reason=f"internal error in the planner: {e!r}"), cause=request
            )

    async def _plan(self, request: RequestSubmitted) -> None:
        team = self._team(request)
        try:
            analysis = await asyncio.to_thread(
                analyse, Path(request.repo), request.request, ref=request.base_ref
            )
        except ApError as e:
            await self.emit(SessionFailed(reason=f"analysis failed: {e}"), cause=request)
            return
        await self.emit(_analysis_event(analysis), cause=request)
        try:
            plan = await asyncio.to_thread(self._make_plan, request, analysis, team)
        except ApError as e:
            await self.emit(SessionFailed(reason=f"planning failed: {e}"), cause=request)
            return
        finally:
            self.agents.pop(request.session_id, None)
            self._pid_file(request.session_id).unlink(missing_ok=True)
        await self.emit(
            PlanProposed(plan_id=PLAN_ID, objectives=plan.objectives, contracts=plan.contracts),
            cause=request,
        )

    def _team(self, request: RequestSubmitted) -> Team:
        team = team_option(self.options)
        if request.team:
            chosen = [w for w in team.workers if w.id in request.team]
            team = msgspec.structs.replace(team, workers=chosen)
        return team

    def _pid_file(self, session_id: str) -> Path:
        return self.pid_dir / f"{session_id}.pid"

    def _make_plan(self, request: RequestSubmitted, analysis: RepoAnalysis, team: Team) -> Plan:
        """Runs in a thread: the plan from the plan file, the agent or the heuristic."""
        if request.plan_file:
            return load_plan_file(Path(request.plan_file), team)
        if self.options.get("mode", "heuristic") == "agent":

            def started(pid: int) -> None:
                self.agents[request.session_id] = pid
                self.pid_dir.mkdir(parents=True, exist_ok=True)
                self._pid_file(request.session_id).write_text(str(pid))

            argv = [str(a) for a in self.options.get("agent_command", [])]
            plan = agent_plan(
                analysis,
                request.request,
                team,
                argv,
                Path(request.repo),
                float(self.options.get("agent_timeout_s", 600.0)),
                on_start=started,
            )
        else:
            plan = heuristic_plan(analysis, request.request, team)
        check_plan(plan, team)
        return plan


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def _analysis_event(analysis: RepoAnalysis) -> AnalysisCompleted:
    return AnalysisCompleted(
        task_type=analysis.task_type,
        modules=analysis.modules,
        entry_points=analysis.entry_points,
        test_dirs=analysis.test_dirs,
        config_files=analysis.config_files,
        coordination_points=analysis.coordination_points,
        scope_strategy=analysis.scope_strategy,
    )
