"""The session view: one read model of a session, folded from its events.

Source: ``DESIGN.md``, "State". The scheduler, the reporter, the CLI (``ap sessions``,
``ap show``, ``ap submit``'s progress) and the dashboard all read sessions through this
module, so there is one definition of "the state of a session":

- ``status``: ``analysing`` (request submitted) → ``planning`` (analysis done) →
  ``validating`` (plan proposed or revised) → ``awaiting_approval`` → ``running`` (plan
  approved) → ``completed`` | ``failed`` | ``cancelled``. A session that ended stays
  ended: later events of it (an objective result racing a cancel) are recorded but do
  not reopen it.
- the request, the analysis, the current plan (the latest proposed or revised one),
  its validation, the waves, every objective with its attempts and result, the workers
  that worked on it with their counters (seed 001's worker card), the merge results,
  the reports written and the commit message.

:func:`apply` is a pure fold (it mutates and returns the view it is given).
:class:`Sessions` folds every session of a log and finds a session by id or prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import msgspec

from ap_actors.events import (
    AnalysisCompleted,
    CancelRequested,
    Contract,
    Event,
    MergeConflicted,
    Objective,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    PlanApproved,
    PlanAwaitingApproval,
    PlanProposed,
    PlanRejected,
    PlanRevised,
    Record,
    ReportWritten,
    RequestSubmitted,
    ScopeConflict,
    ScopeValidated,
    ScopeViolated,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    WaveCompleted,
    WaveMerged,
    WaveStarted,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
)

SessionStatus: TypeAlias = Literal[
    "analysing",
    "planning",
    "validating",
    "awaiting_approval",
    "running",
    "completed",
    "failed",
    "cancelled",
]
ENDED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

ObjectiveStatus: TypeAlias = Literal["pending", "assigned", "running", "completed", "failed"]
WaveStatus: TypeAlias = Literal["pending", "running", "completed", "merged", "failed"]

ACTIVITY_FEED = 50  # activities kept per worker in the view (the log keeps all)


class ObjectiveView(msgspec.Struct, kw_only=True):
    """An objective of the current plan and how its runs went."""

    objective: Objective  # As planned (id, title, wave, scopes, depends_on ...).
    status: ObjectiveStatus = "pending"
    worker_id: str = ""  # Worker of the latest attempt.
    attempt: int = 0  # Latest attempt number; 0 = never assigned.
    failures: int = 0  # Attempts that failed.
    base: str = ""  # Commit the latest attempt started from.
    timeout_s: float = 0.0  # Timeout of the latest attempt, seconds; 0 = none.
    workdir: str = ""  # Its git worktree.
    transcript: str = ""  # Its transcript file.
    transcript_read: bool = False  # Its log monitor read the transcript to its end.
    pid: int = 0  # Agent process of the latest attempt.
    files_modified: list[str] = []  # Of the completed attempt (or the failed one).
    exit_code: int | None = None
    reason: str | None = None  # Why the latest attempt failed.
    duration_s: float = 0.0  # Seconds the latest finished attempt ran.
    assigned_at: float = 0.0  # Unix seconds.
    started_at: float = 0.0  # Unix seconds.
    ended_at: float = 0.0  # Unix seconds.
    violations: list[str] = []  # Paths changed outside the scope, if the scope was violated.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class PlanRevisionView(msgspec.Struct, kw_only=True):
    """A plan that a revision replaced, with what its validation found."""

    plan_id: str
    objectives: int  # How many objectives it had.
    valid: bool | None = None
    conflicts: list[ScopeConflict] = []
    reason: str = ""  # Why it was invalid beyond its conflicts.


class WaveView(msgspec.Struct, kw_only=True):
    number: int  # 1-based.
    objective_ids: list[str] = []
    status: WaveStatus = "pending"
    commit: str = ""  # Session branch commit after the wave's merge.
    started_at: float = 0.0
    ended_at: float = 0.0


class ActivityView(msgspec.Struct, kw_only=True, gc=False):
    """One entry of a worker card's activity feed.

    Untracked by the garbage collector (``gc=False``: it holds only scalars, so it can be
    in no reference cycle): a busy log's views hold hundreds of thousands of them.
    """

    seq: int
    ts: float
    activity_type: str
    description: str
    tool_name: str | None = None
    file_path: str | None = None
    objective_id: str = ""


class WorkerView(msgspec.Struct, kw_only=True):
    """A worker card (seed 001): what one worker did in this session."""

    worker_id: str
    status: Literal["idle", "busy"] = "idle"
    objective_id: str = ""  # Objective it is working on, "" when idle.
    pid: int = 0  # Its current agent process.
    tasks_completed: int = 0
    tasks_failed: int = 0
    tools_used: dict[str, int] = {}  # Tool name -> uses (from worker_activity).
    files_modified: list[str] = []  # Paths, in the order first seen.
    activities: int = 0  # worker_activity events seen.
    errors: int = 0  # worker_error events seen.
    feed: list[ActivityView] = []  # The latest ACTIVITY_FEED activities, oldest first.
    cpu_percent: float = 0.0  # Latest sample.
    rss_bytes: int = 0  # Latest sample.
    uptime_seconds: float = 0.0  # Latest sample.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class SessionView(msgspec.Struct, kw_only=True):
    """Everything known about one session."""

    session_id: str
    status: SessionStatus = "analysing"
    request: str = ""
    repo: str = ""
    base_ref: str = "HEAD"
    plan_file: str | None = None
    auto_approve: bool = False
    resolve_conflicts: bool = False
    team: list[str] = []
    submitted_at: float = 0.0  # Unix seconds.
    ended_at: float = 0.0  # Unix seconds; 0 while running.
    analysis: AnalysisCompleted | None = None
    plan_id: str = ""  # The current plan.
    plan_revision: int = 0  # 0 for the first plan, +1 per revision.
    revised: list[PlanRevisionView] = []  # The plans revisions replaced, oldest first.
    objectives: dict[str, ObjectiveView] = {}  # Plan order.
    contracts: list[Contract] = []
    valid: bool | None = None  # Validation of the current plan; None = not validated yet.
    conflicts: list[ScopeConflict] = []
    resolving: bool = False  # The validator announced a revision of the plan.
    invalid_reason: str = ""
    approved_by: str = ""
    awaiting_since: float = 0.0
    waves: dict[int, WaveView] = {}
    workers: dict[str, WorkerView] = {}
    merge_conflict: MergeConflicted | None = None
    cancel_requested: bool = False
    branch: str = ""
    commit_message: str | None = None
    summary: str = ""  # Of a completed session.
    reason: str = ""  # Of a failed or cancelled session.
    reports: dict[str, str] = {}  # kind -> path.
    events: int = 0  # Events folded.
    last_seq: int = 0  # Seq of the last event folded (0 when folded without seqs).
    last_ts: float = 0.0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def wave_numbers(self) -> list[int]:
        """Return the plan's wave numbers, ascending."""
        return sorted({o.objective.wave for o in self.objectives.values()})

    def objectives_of(self, wave: int) -> list[ObjectiveView]:
        """Return the objectives of a wave, in plan order."""
        return [o for o in self.objectives.values() if o.objective.wave == wave]

    def duration_s(self, now: float | None = None) -> float:
        """Seconds from submission to the end (or to ``now`` / the last event)."""
        end = self.ended_at or now or self.last_ts
        return max(0.0, end - self.submitted_at) if self.submitted_at else 0.0

    def transcripts_unread(self) -> int:
        """Objectives whose latest attempt started and whose transcript is not read yet."""
        return sum(1 for o in self.objectives.values() if o.transcript and not o.transcript_read)

    def files_modified(self) -> list[str]:
        """Return every path changed by a completed objective, sorted, once each."""
        out: set[str] = set()
        for o in self.objectives.values():
            if o.status == "completed":
                out.update(o.files_modified)
        return sorted(out)


def _set_plan(
    view: SessionView, plan_id: str, objectives: list[Objective], contracts: list[Contract]
) -> None:
    view.plan_id = plan_id
    view.objectives = {o.id: ObjectiveView(objective=o) for o in objectives}
    view.contracts = list(contracts)
    view.valid = None
    view.conflicts = []
    view.resolving = False
    view.invalid_reason = ""
    view.waves = {}
    for o in objectives:
        wave = view.waves.setdefault(o.wave, WaveView(number=o.wave))
        wave.objective_ids.append(o.id)
    view.waves = dict(sorted(view.waves.items()))


def _worker(view: SessionView, worker_id: str) -> WorkerView:
    w = view.workers.get(worker_id)
    if w is None:
        w = view.workers[worker_id] = WorkerView(worker_id=worker_id)
    return w


def _end(view: SessionView, status: SessionStatus, ts: float) -> None:
    if not view.ended:
        view.status = status
        view.ended_at = ts


def apply(view: SessionView, event: Event, seq: int = 0) -> SessionView:
    """Fold one event of the session into ``view`` and return it (mutated).

    Events of other sessions must not be passed. Unknown event types are counted and
    otherwise ignored, so an older reader folds a newer log.
    """
    view.events += 1
    if seq:
        view.last_seq = seq
    ts = event.ts
    if ts > view.last_ts:
        view.last_ts = ts
    # Most events of a busy log are activities (95% of a rebuild's): folded here, before
    # the match and without a call (those took a sixth of a rebuild's fold). Event
    # classes are final (a tagged union), so this type test is the match's isinstance.
    if type(event) is WorkerActivity:
        w = view.workers.get(event.worker_id)
        if w is None:
            w = _worker(view, event.worker_id)
        w.activities += 1
        tool = event.tool_name
        if tool:
            tools = w.tools_used
            tools[tool] = tools.get(tool, 0) + 1
        feed = w.feed  # the latest ACTIVITY_FEED, this one included
        if len(feed) >= ACTIVITY_FEED:
            del feed[: len(feed) - ACTIVITY_FEED + 1]
        feed.append(
            ActivityView(
                seq=seq,
                ts=ts,
                activity_type=event.activity_type,
                description=event.description,
                tool_name=tool,
                file_path=event.file_path,
                objective_id=event.objective_id,
            )
        )
        return view
    # A match tries its cases in order: metrics samples, the next most frequent, come
    # first (the other cases are on other classes, so order is free).
    match event:
        case WorkerMetrics():
            w = _worker(view, event.worker_id)
            w.cpu_percent = event.cpu_percent
            w.rss_bytes = event.rss_bytes
            w.uptime_seconds = event.uptime_seconds
            w.input_tokens = max(w.input_tokens, event.input_tokens)
            w.output_tokens = max(w.output_tokens, event.output_tokens)
            w.cost_usd = max(w.cost_usd, event.cost_usd)
        case RequestSubmitted():
            view.request = event.request
            view.repo = event.repo
            view.base_ref = event.base_ref
            view.plan_file = event.plan_file
            view.auto_approve = event.auto_approve
            view.resolve_conflicts = event.resolve_conflicts
            view.team = list(event.team)
            view.submitted_at = event.ts
        case AnalysisCompleted():
            view.analysis = event
            if view.status == "analysing":
                view.status = "planning"
        case PlanProposed() | PlanRevised():
            if isinstance(event, PlanRevised):
                view.plan_revision += 1
                view.revised.append(
                    PlanRevisionView(
                        plan_id=view.plan_id,
                        objectives=len(view.objectives),
                        valid=view.valid,
                        conflicts=list(view.conflicts),
                        reason=view.invalid_reason,
                    )
                )
            _set_plan(view, event.plan_id, event.objectives, event.contracts)
            if not view.ended:
                view.status = "validating"
        case ScopeValidated() if event.plan_id == view.plan_id:
            view.valid = event.valid
            view.conflicts = list(event.conflicts)
            view.resolving = event.resolving
            view.invalid_reason = event.reason
        case PlanAwaitingApproval() if event.plan_id == view.plan_id:
            view.awaiting_since = event.ts
            if not view.ended:
                view.status = "awaiting_approval"
        case PlanApproved() if event.plan_id == view.plan_id:
            view.approved_by = event.by
            if not view.ended:
                view.status = "running"
        case PlanRejected():
            view.reason = f"plan rejected by {event.by}" + (
                f": {event.reason}" if event.reason else ""
            )
        case CancelRequested():
            view.cancel_requested = True
        case WaveStarted():
            wave = view.waves.setdefault(event.wave, WaveView(number=event.wave))
            wave.status = "running"
            wave.started_at = event.ts
        case WaveCompleted():
            wave = view.waves.setdefault(event.wave, WaveView(number=event.wave))
            if wave.status != "merged":
                wave.status = "completed"
            wave.ended_at = event.ts
        case WaveMerged():
            wave = view.waves.setdefault(event.wave, WaveView(number=event.wave))
            wave.status = "merged"
            wave.commit = event.commit
            view.branch = event.branch or view.branch
        case MergeConflicted():
            view.merge_conflict = event
            if event.wave in view.waves:
                view.waves[event.wave].status = "failed"
        case ObjectiveAssigned():
            o = view.objectives.get(event.objective_id)
            if o is not None and event.attempt > o.attempt:
                o.attempt = event.attempt
                o.worker_id = event.worker_id
                o.status = "assigned"
                o.base = event.base
                o.timeout_s = event.timeout_s
                o.assigned_at = event.ts
                o.reason = None
                # Nothing of the previous attempt's run belongs to this one.
                o.pid = 0
                o.started_at = o.ended_at = 0.0
                o.workdir = o.transcript = ""
                o.transcript_read = False
            worker = _worker(view, event.worker_id)
            worker.status = "busy"
            worker.objective_id = event.objective_id
        case ObjectiveStarted():
            o = view.objectives.get(event.objective_id)
            if o is not None and event.attempt == o.attempt and o.status == "assigned":
                o.status = "running"
                o.started_at = event.ts
                o.workdir = event.workdir
                o.transcript = event.transcript
        case WorkerStarted():
            o = view.objectives.get(event.objective_id)
            if o is not None and o.worker_id == event.worker_id:
                o.pid = event.pid
            _worker(view, event.worker_id).pid = event.pid
        case ObjectiveCompleted() | ObjectiveFailed():
            _objective_result(view, event)
        case TranscriptRead():
            o = view.objectives.get(event.objective_id)
            if o is not None and o.attempt == event.attempt and o.worker_id == event.worker_id:
                o.transcript_read = True
        case ScopeViolated():
            o = view.objectives.get(event.objective_id)
            if o is not None:
                o.violations = sorted({*o.violations, *event.paths})
        case WorkerError():
            _worker(view, event.worker_id).errors += 1
        case ReportWritten():
            view.reports[event.kind] = event.path
        case SessionCompleted() if not view.ended:
            view.summary = event.summary
            view.branch = event.branch or view.branch
            view.commit_message = event.commit_message
            _end(view, "completed", event.ts)
        case SessionFailed() if not view.ended:
            view.reason = event.reason
            view.branch = event.branch or view.branch
            view.commit_message = event.commit_message or view.commit_message
            _end(view, "failed", event.ts)
        case SessionCancelled() if not view.ended:
            view.reason = event.reason or view.reason
            view.branch = event.branch or view.branch
            _end(view, "cancelled", event.ts)
    return view


def _objective_result(view: SessionView, event: ObjectiveCompleted | ObjectiveFailed) -> None:
    worker = _worker(view, event.worker_id)
    o = view.objectives.get(event.objective_id)
    if o is not None and o.worker_id == event.worker_id and o.status in ("assigned", "running"):
        completed = isinstance(event, ObjectiveCompleted)
        o.status = "completed" if completed else "failed"
        o.files_modified = list(event.files_modified)
        o.exit_code = event.exit_code
        o.reason = event.reason
        o.duration_s = event.duration_s
        o.ended_at = event.ts
        o.input_tokens += event.input_tokens
        o.output_tokens += event.output_tokens
        o.cost_usd += event.cost_usd
        if completed:
            worker.tasks_completed += 1
            for path in event.files_modified:
                if path not in worker.files_modified:
                    worker.files_modified.append(path)
        else:
            o.failures += 1
            worker.tasks_failed += 1
    if worker.objective_id == event.objective_id:
        worker.status = "idle"
        worker.objective_id = ""
        worker.pid = 0


class Sessions(msgspec.Struct):
    """Every session of a log, folded: ``sessions.views[session_id] -> SessionView``.

    Events without a session id (actor lifecycle) are ignored; a session's view exists
    from its first event on (normally ``request_submitted``). A msgspec Struct, like the
    views: it encodes to msgpack as is (actor snapshots, :mod:`ap_actors.snapshots`).
    """

    views: dict[str, SessionView] = {}  # Session id -> its view, in order of first event.

    def apply(self, event: Event, seq: int = 0) -> SessionView | None:
        """Fold one event; return the session view it changed, or None."""
        sid = event.session_id
        if not sid:
            return None
        view = self.views.get(sid)
        if view is None:
            view = self.views[sid] = SessionView(session_id=sid)
        return apply(view, event, seq)

    def apply_records(self, records: Iterable[Record]) -> Sessions:
        """Fold records in seq order; return self."""
        for r in records:
            self.apply(r.event, r.seq)
        return self

    def active(self) -> list[SessionView]:
        """Return the sessions that have not ended, oldest first."""
        return [v for v in self.views.values() if not v.ended]

    def find(self, key: str) -> SessionView | None:
        """Return the session whose id is ``key`` or uniquely starts with it."""
        if key in self.views:
            return self.views[key]
        found = [v for k, v in self.views.items() if k.startswith(key)] if key else []
        return found[0] if len(found) == 1 else None


def fold_session(records: Iterable[Record], session_id: str) -> SessionView:
    """Fold one session's records (already filtered to it) into a new view."""
    view = SessionView(session_id=session_id)
    for r in records:
        apply(view, r.event, r.seq)
    return view


def view_to_json(view: SessionView) -> dict[str, Any]:
    """The session view as JSON-ready builtins (``ap show --json``, ``GET
    /api/sessions/{id}``): objectives, waves and workers as lists, plus ``duration_s``."""
    out: dict[str, Any] = msgspec.to_builtins(view)
    out["objectives"] = list(out["objectives"].values())
    out["waves"] = list(out["waves"].values())
    out["workers"] = list(out["workers"].values())
    out["duration_s"] = round(view.duration_s(), 3)
    return out


def session_row(v: SessionView) -> dict[str, Any]:
    """One line of a sessions list (``ap sessions --json``, ``GET /api/sessions``)."""
    return {
        "session_id": v.session_id,
        "status": v.status,
        "request": v.request,
        "repo": v.repo,
        "submitted_at": v.submitted_at,
        "ended_at": v.ended_at,
        "duration_s": round(v.duration_s(), 3),
        "objectives": len(v.objectives),
        "objectives_completed": sum(o.status == "completed" for o in v.objectives.values()),
        "branch": v.branch,
        "reason": v.reason,
    }
