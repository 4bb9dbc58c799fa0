"""The scope validator actor: proves that no two objectives of a wave can touch one path.

Source: ``DESIGN.md``, "Scopes". On ``plan_proposed`` / ``plan_revised`` it checks every
pattern (:func:`scope.check_pattern`) and every pair of objectives of each wave
(:func:`scope.find_conflicts`, exact on the patterns, each conflict with a witness path)
and emits ``scope_validated``. When the plan conflicts and the request asked for it
(``resolve_conflicts``), it re-colours the objectives into waves keeping the
``depends_on`` order (:func:`scope.recolour`): ``scope_validated`` says ``resolving``,
``plan_revised`` follows, and that plan is validated in turn.

Ids derive from the plan event, so a restart re-validates without duplicates; plans
proposed while it was down are validated in ``on_recovered``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ap_actors.actor import Actor
from ap_actors.errors import ScopeError
from ap_actors.events import (
    Event,
    Objective,
    PlanProposed,
    PlanRevised,
    RequestSubmitted,
    ScopeValidated,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
)
from ap_actors.scope import check_pattern, find_conflicts, recolour

PlanEvent = PlanProposed | PlanRevised


class ValidatorState(msgspec.Struct):
    resolve: dict[str, bool] = {}  # session -> resolve_conflicts of its request
    unvalidated: dict[str, PlanEvent] = {}  # session -> its latest plan, not validated yet


class ScopeValidator(Actor[ValidatorState]):
    """Validates each plan's waves and, on request, resolves conflicts by re-colouring."""

    topics = ("request_submitted", "plan_proposed", "plan_revised", "scope_validated", "session_")

    def initial_state(self) -> ValidatorState:
        return ValidatorState()

    def apply(self, state: ValidatorState, event: Event) -> ValidatorState:
        match event:
            case RequestSubmitted():
                state.resolve[event.session_id] = event.resolve_conflicts
            case PlanProposed() | PlanRevised():
                state.unvalidated[event.session_id] = event
            case ScopeValidated():
                plan = state.unvalidated.get(event.session_id)
                if plan is not None and plan.plan_id == event.plan_id:
                    del state.unvalidated[event.session_id]
            case SessionCompleted() | SessionFailed() | SessionCancelled():
                state.resolve.pop(event.session_id, None)
                state.unvalidated.pop(event.session_id, None)
        return state

    async def on_recovered(self) -> None:
        for plan in list(self.state.unvalidated.values()):
            await self._validate(plan)

    async def react(self, record: Any) -> None:
        if isinstance(record.event, PlanProposed | PlanRevised):
            await self._validate(record.event)

    async def _validate(self, plan: PlanEvent) -> None:
        bad = _bad_pattern(plan.objectives)
        if bad:
            await self.emit(
                ScopeValidated(plan_id=plan.plan_id, valid=False, reason=bad), cause=plan
            )
            return
        conflicts = find_conflicts(plan.objectives)
        if not conflicts:
            await self.emit(ScopeValidated(plan_id=plan.plan_id, valid=True), cause=plan)
            return
        if not self.state.resolve.get(plan.session_id) or isinstance(plan, PlanRevised):
            await self.emit(
                ScopeValidated(plan_id=plan.plan_id, valid=False, conflicts=conflicts),
                cause=plan,
            )
            return
        try:
            objectives = recolour(plan.objectives)
        except ScopeError as e:
            await self.emit(
                ScopeValidated(
                    plan_id=plan.plan_id,
                    valid=False,
                    conflicts=conflicts,
                    reason=f"cannot resolve the conflicts: {e}",
                ),
                cause=plan,
            )
            return
        await self.emit(
            ScopeValidated(plan_id=plan.plan_id, valid=False, conflicts=conflicts, resolving=True),
            cause=plan,
        )
        await self.emit(
            PlanRevised(
                plan_id=f"{plan.plan_id}-r",
                revises=plan.plan_id,
                objectives=objectives,
                contracts=plan.contracts,
            ),
            cause=plan,
        )


def _bad_pattern(objectives: list[Objective]) -> str:
    for o in objectives:
        for pattern in (*o.scope_touch, *o.scope_forbid):
            try:
                check_pattern(pattern)
            except ScopeError as e:
                return f"objective {o.id}: {e}"
        if not o.scope_touch:
            return f"objective {o.id} has no scope_touch pattern"
    return ""
