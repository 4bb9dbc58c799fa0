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

Options (``[actors.planner] options = {...}``): ``mode`` ("heuristic" | "agent"),
``agent_command`` (list of str), ``agent_timeout_s`` (float, default 600).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import msgspec

from ap_actors.actor import Actor
from ap_actors.analysis import RepoAnalysis, analyse
from ap_actors.errors import ApError
from ap_actors.events import (
    AnalysisCompleted,
    Event,
    PlanProposed,
    RequestSubmitted,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
)
from ap_actors.planning import Plan, agent_plan, check_plan, heuristic_plan, load_plan_file
from ap_actors.team import Team, team_option

log = logging.getLogger(__name__)

PLAN_ID = "plan-1"  # the first plan of a session; revisions get their own ids


class PlannerState(msgspec.Struct):
    pending: dict[str, RequestSubmitted] = {}  # session -> request not planned yet


class Planner(Actor[PlannerState]):
    """Analyses the repository and proposes a plan for every submitted request."""

    topics = ("request_submitted", "plan_proposed", "session_")

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
            await self._plan(request)

    async def react(self, record: Any) -> None:
        if isinstance(record.event, RequestSubmitted):
            await self._plan(record.event)

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

    def _make_plan(self, request: RequestSubmitted, analysis: RepoAnalysis, team: Team) -> Plan:
        if request.plan_file:
            return load_plan_file(Path(request.plan_file), team)
        if self.options.get("mode", "heuristic") == "agent":
            argv = [str(a) for a in self.options.get("agent_command", [])]
            plan = agent_plan(
                analysis,
                request.request,
                team,
                argv,
                Path(request.repo),
                float(self.options.get("agent_timeout_s", 600.0)),
            )
        else:
            plan = heuristic_plan(analysis, request.request, team)
        check_plan(plan, team)
        return plan


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
