"""The scheduler actor: the approval gate, waves, assignments, retries, merges, the end.

Source: ``DESIGN.md``, "Processes" and "Workers and agents". The scheduler is a
reconciler: after every event it folds (and once after recovery) it compares each open
session's view (:mod:`ap_actors.projections`) with what should have happened and emits
what is missing. Every emit has an id derived from (session, what it is), so doing the
same step twice (a restart, or a reaction that runs before the scheduler's own previous
event came back on the bus) appends nothing twice; git merges are idempotent too
(:func:`worktrees.merge_branches` skips merged branches). So a scheduler killed at any
point resumes where it was.

The steps, per session:

1. plan validated → ``plan_approved`` (by ``auto`` when the request or the team says
   ``auto_approve``) or ``plan_awaiting_approval`` for the owner (``ap approve``,
   ``ap reject``). Invalid (conflicts, and no revision coming) → ``session_failed``.
2. approved → the session branch ``ap/<session>`` is created at the base ref, and the
   waves run in order: ``wave_started``; each objective goes to a free worker of the
   session's team whose capabilities cover the objective's (a worker with no
   capabilities takes anything; an objective naming a worker waits for that one),
   with the objective's timeout and the session branch head as ``base``.
3. a failed objective is assigned again (a new attempt, possibly to another worker)
   until the team's ``max_attempts``; then the session fails with its reason.
4. every objective of the wave completed → ``wave_completed``, the objective branches are
   merged into the session branch (``wave_merged``, or ``merge_conflicted`` and
   ``session_failed``), next wave.
5. all waves merged → ``session_completed`` with the branch and the commit message.

``cancel_requested`` → ``session_cancelled``; ``plan_rejected`` → ``session_cancelled``
with the owner's reason. Workers stop the objectives of a session that ended. An
objective whose worker the supervisor gave up on is failed on its behalf (and retried
elsewhere while attempts remain), and so is one without a result ``watchdog_grace_s``
(option, default 30) after its timeout: a hung worker the supervisor cannot see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from ap_actors.actor import Actor
from ap_actors.errors import ApError
from ap_actors.events import (
    ActorExited,
    Event,
    MergeConflicted,
    ObjectiveAssigned,
    ObjectiveFailed,
    PlanApproved,
    PlanAwaitingApproval,
    Record,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    WaveCompleted,
    WaveMerged,
    WaveStarted,
    derive_id,
)
from ap_actors.projections import ObjectiveView, Sessions, SessionView
from ap_actors.reports import commit_message
from ap_actors.team import Team, WorkerSpec, team_option
from ap_actors.worktrees import (
    MergeResult,
    add_worktree,
    ensure_branch,
    merge_branches,
    objective_branch,
    resolve_commit,
    session_branch,
    session_worktree_path,
)

log = logging.getLogger(__name__)


class SchedulerState:
    """Every session's view, plus which worker actors the supervisor gave up on."""

    def __init__(self) -> None:
        self.sessions = Sessions()
        self.dead_workers: set[str] = set()


class Scheduler(Actor[SchedulerState]):
    """Drives every approved session through its waves (see the module docstring)."""

    topics = (
        "request_submitted",
        "analysis_completed",
        "plan_",
        "scope_validated",
        "scope_violated",
        "cancel_requested",
        "wave_",
        "merge_conflicted",
        "objective_",
        "worker_started",
        "session_",
        "report_written",
        "actor_exited",
    )

    def initial_state(self) -> SchedulerState:
        return SchedulerState()

    def apply(self, state: SchedulerState, event: Event) -> SchedulerState:
        if isinstance(event, ActorExited):
            if event.gave_up and event.actor.startswith("worker."):
                state.dead_workers.add(event.actor.removeprefix("worker."))
            return state
        state.sessions.apply(event)
        if isinstance(event, ObjectiveAssigned):
            self._pending.pop((event.session_id, event.objective_id, event.attempt), None)
        return state

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Assignments emitted but not yet folded: (session, objective, attempt) -> worker.
        self._pending: dict[tuple[str, str, int], str] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.team: Team = team_option(self.options)
        self.watchdog_grace_s = float(self.options.get("watchdog_grace_s", 30.0))
        self.watchdog_interval_s = float(self.options.get("watchdog_interval_s", 1.0))
        self._watchdog: asyncio.Task[None] | None = None

    async def on_recovered(self) -> None:
        await self._reconcile_all()
        self._watchdog = asyncio.create_task(self._watch_overdue())

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        try:
            await super().run(ready)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watchdog

    async def _watch_overdue(self) -> None:
        """Fail, on its worker's behalf, an objective with no result well past its timeout.

        The worker enforces the timeout itself; this is the backstop for a worker that
        hangs (or is stopped) without dying, which the supervisor cannot see.
        """
        while True:
            await asyncio.sleep(self.watchdog_interval_s)
            now = time.time()
            for view in self.state.sessions.active():
                for o in view.objectives.values():
                    late = o.assigned_at + o.timeout_s + self.watchdog_grace_s
                    if o.status in ("assigned", "running") and o.timeout_s > 0 and now > late:
                        await self._emit(
                            view,
                            f"overdue:{o.objective.id}:{o.attempt}",
                            ObjectiveFailed(
                                objective_id=o.objective.id,
                                worker_id=o.worker_id,
                                reason=(
                                    f"no result from worker {o.worker_id}"
                                    f" {self.watchdog_grace_s:g}s after the {o.timeout_s:g}s"
                                    " timeout; the worker may be hung"
                                ),
                            ),
                        )

    async def react(self, record: Record) -> None:
        await self._reconcile_all()

    async def _reconcile_all(self) -> None:
        for view in self.state.sessions.active():
            try:
                await self._reconcile(view)
            except ApError as e:  # a git failure on the owner's repository, etc.
                log.warning("session failed", extra={"session": view.session_id, "error": str(e)})
                await self._emit(view, "end", SessionFailed(reason=str(e), branch=view.branch))

    # --- emitting -------------------------------------------------------------------

    async def _emit(self, view: SessionView, key: str, event: Event) -> int:
        """Emit with an id derived from (session, key): the same step never appends twice."""
        event = msgspec.structs.replace(
            event, id=derive_id(view.session_id, self.name, key), session_id=view.session_id
        )
        return await self.emit(event)

    # --- the steps ------------------------------------------------------------------

    async def _reconcile(self, view: SessionView) -> None:
        if view.cancel_requested:
            await self._emit(
                view,
                "end",
                SessionCancelled(reason="cancelled by the owner", branch=view.branch),
            )
            return
        if view.reason.startswith("plan rejected"):
            await self._emit(view, "end", SessionCancelled(reason=view.reason))
            return
        match view.status:
            case "validating":
                await self._gate(view)
            case "running":
                await self._drive(view)

    async def _gate(self, view: SessionView) -> None:
        if view.valid is None:
            return
        if view.valid:
            if view.auto_approve or self.team.auto_approve:
                await self._emit(
                    view, f"approve:{view.plan_id}", PlanApproved(plan_id=view.plan_id, by="auto")
                )
            else:
                await self._emit(
                    view,
                    f"await:{view.plan_id}",
                    PlanAwaitingApproval(plan_id=view.plan_id),
                )
        elif not view.resolving:
            await self._emit(view, "end", SessionFailed(reason=_invalid_reason(view)))

    async def _drive(self, view: SessionView) -> None:
        repo = Path(view.repo)
        branch = session_branch(view.session_id)
        for number in view.wave_numbers():
            wave = view.waves[number]
            if wave.status == "merged":
                continue
            if wave.status == "failed" or view.merge_conflict is not None:
                return
            objectives = view.objectives_of(number)
            if wave.status == "pending":
                await asyncio.to_thread(_session_branch, repo, branch, view.base_ref)
                await self._emit(
                    view,
                    f"wave_started:{number}",
                    WaveStarted(wave=number, objective_ids=[o.objective.id for o in objectives]),
                )
            if all(o.status == "completed" for o in objectives):
                await self._finish_wave(view, number, objectives)
                continue
            await self._assign(view, objectives)
            return
        merged = [w for w in view.waves.values() if w.status == "merged"]
        if view.waves and len(merged) == len(view.waves):
            completed = sum(o.status == "completed" for o in view.objectives.values())
            files = len(view.files_modified())
            await self._emit(
                view,
                "end",
                SessionCompleted(
                    summary=(
                        f"{completed} objectives in {len(view.waves)} waves completed;"
                        f" {files} files modified; merged into {branch}"
                    ),
                    branch=branch,
                    commit_message=commit_message(view),
                ),
            )

    async def _finish_wave(
        self, view: SessionView, number: int, objectives: list[ObjectiveView]
    ) -> None:
        ids = [o.objective.id for o in objectives]
        if view.waves[number].status != "completed":
            await self._emit(
                view, f"wave_completed:{number}", WaveCompleted(wave=number, objective_ids=ids)
            )
        repo = Path(view.repo)
        branch = session_branch(view.session_id)
        branches = [objective_branch(view.session_id, i) for i in ids]
        result = await asyncio.to_thread(
            _merge, repo, self.state_dir, view.session_id, branches, number
        )
        if result.conflict is not None:
            objective = ids[branches.index(result.conflict)]
            await self._emit(
                view,
                f"merge_conflicted:{number}",
                MergeConflicted(
                    wave=number,
                    objective_id=objective,
                    branch=result.conflict,
                    paths=list(result.conflict_paths),
                ),
            )
            paths = ", ".join(result.conflict_paths) or "unknown paths"
            await self._emit(
                view,
                "end",
                SessionFailed(
                    reason=f"merging {objective} into {branch} conflicted on {paths}",
                    branch=branch,
                ),
            )
            return
        await self._emit(
            view,
            f"wave_merged:{number}",
            WaveMerged(wave=number, objective_ids=ids, branch=branch, commit=result.commit),
        )
        # The next wave's assignments start from the merge commit: fold it first.
        view.waves[number].status = "merged"

    async def _assign(self, view: SessionView, objectives: list[ObjectiveView]) -> None:
        """Assign the wave's objectives that need a run; fail the session when one of
        them has failed for good, once the others still running have ended (a failure
        fails only its objective: its siblings finish and their results are kept in the
        log; nothing new starts and the wave is not merged)."""
        dead = False
        for o in objectives:
            if o.status in ("assigned", "running") and o.worker_id in self.state.dead_workers:
                dead = True
                await self._emit(
                    view,
                    f"dead:{o.objective.id}:{o.attempt}",
                    ObjectiveFailed(
                        objective_id=o.objective.id,
                        worker_id=o.worker_id,
                        reason=f"worker {o.worker_id} stopped for good (the supervisor gave up)",
                    ),
                )
        if dead:
            return  # folded next: the failure then counts below
        lost = [
            o for o in objectives if o.status == "failed" and o.failures >= self.team.max_attempts
        ]
        if lost:
            if not any(o.status in ("assigned", "running") for o in objectives):
                await self._emit(
                    view,
                    "end",
                    SessionFailed(
                        reason="; ".join(
                            f"objective {o.objective.id} failed after {o.failures}"
                            f" attempt(s): {o.reason or 'no reason given'}"
                            for o in lost
                        ),
                        branch=view.branch,
                    ),
                )
            return
        for o in objectives:
            if o.status in ("assigned", "running", "completed"):
                continue
            attempt = o.attempt + 1
            key = (view.session_id, o.objective.id, attempt)
            if key in self._pending:
                continue
            candidates = self._candidates(view, o)
            if not candidates:
                await self._emit(
                    view,
                    "end",
                    SessionFailed(
                        reason=f"no worker of the team can run {o.objective.id}"
                        f" (needs {_needs(o)}); add one to the team file"
                    ),
                )
                return
            busy = self._busy()
            free = [w for w in candidates if w.id not in busy]
            if not free:
                continue
            worker = min(free, key=lambda w: (self._load(view, w.id), candidates.index(w)))
            base = await asyncio.to_thread(
                resolve_commit, Path(view.repo), session_branch(view.session_id)
            )
            self._pending[key] = worker.id
            await self._emit(
                view,
                f"assign:{o.objective.id}:{attempt}",
                ObjectiveAssigned(
                    objective_id=o.objective.id,
                    worker_id=worker.id,
                    attempt=attempt,
                    base=base,
                    timeout_s=self.team.timeout_of(worker.id),
                ),
            )

    def _candidates(self, view: SessionView, o: ObjectiveView) -> list[WorkerSpec]:
        team = [w for w in self.team.workers if not view.team or w.id in view.team]
        team = [w for w in team if w.id not in self.state.dead_workers]
        if o.objective.worker:
            return [w for w in team if w.id == o.objective.worker]
        needs = set(o.objective.capabilities)
        return [w for w in team if not w.capabilities or needs <= set(w.capabilities)]

    def _busy(self) -> set[str]:
        busy = set(self._pending.values())
        for view in self.state.sessions.active():
            for o in view.objectives.values():
                if o.status in ("assigned", "running"):
                    busy.add(o.worker_id)
        return busy

    @staticmethod
    def _load(view: SessionView, worker_id: str) -> int:
        return sum(o.worker_id == worker_id for o in view.objectives.values())


def _session_branch(repo: Path, branch: str, base_ref: str) -> str:
    """Create the session branch at the base ref unless it exists; return its commit."""
    return ensure_branch(repo, branch, resolve_commit(repo, base_ref))


def _merge(
    repo: Path, state_dir: Path, session_id: str, branches: list[str], wave: int
) -> MergeResult:
    """Merge the objective branches into the session branch, in its own worktree."""
    branch = session_branch(session_id)
    worktree = session_worktree_path(state_dir, session_id)
    add_worktree(repo, worktree, branch, resolve_commit(repo, branch))
    return merge_branches(
        repo, worktree, branches, f"ap: merge wave {wave} of session {session_id}"
    )


def _needs(o: ObjectiveView) -> str:
    if o.objective.worker:
        return f"worker {o.objective.worker!r}"
    return "capabilities " + (", ".join(o.objective.capabilities) or "none")


def _invalid_reason(view: SessionView) -> str:
    if view.invalid_reason:
        return f"the plan is invalid: {view.invalid_reason}"
    parts = [
        f"{c.objective_a} and {c.objective_b} in wave {c.wave} can both touch {c.witness}"
        f" ({c.pattern_a} / {c.pattern_b})"
        for c in view.conflicts[:3]
    ]
    more = f" and {len(view.conflicts) - 3} more" if len(view.conflicts) > 3 else ""
    return "the plan's scopes conflict: " + "; ".join(parts) + more
