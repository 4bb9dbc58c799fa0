"""The session view, folded from realistic sequences of real events."""

from __future__ import annotations

import itertools
from typing import Any

import hypothesis.strategies as st
import msgspec
from hypothesis import given, settings

from ap_actors.events import (
    CODEC,
    ActorStarted,
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
    WaveCompleted,
    WaveMerged,
    WaveStarted,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
)
from ap_actors.projections import (
    ACTIVITY_FEED,
    ENDED,
    ActivityView,
    Sessions,
    SessionView,
    apply,
    fold_session,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SID = "01JGZ7K3Q8SESSION000000001"
BRANCH = f"ap/{SID}"
_ids = itertools.count(1)


def ev(cls: type[Event], at: float, *, session: str = SID, **fields: Any) -> Event:
    """An event of a session, ``at`` seconds after T0."""
    return cls(id=f"e{next(_ids)}", session_id=session, ts=T0 + at, source="test", **fields)


def fold(events: list[Event], session: str = SID) -> SessionView:
    view = SessionView(session_id=session)
    for seq, event in enumerate(events, 1):
        apply(view, event, seq)
    return view


def statuses(events: list[Event]) -> list[str]:
    """The view's status after each event."""
    view = SessionView(session_id=SID)
    out = []
    for seq, event in enumerate(events, 1):
        out.append(apply(view, event, seq).status)
    return out


TOKENS = Objective(
    id="obj-1",
    title="Token service",
    description="Issue and verify JWTs.",
    wave=1,
    scope_touch=["src/auth/", "tests/test_auth*.py"],
    scope_forbid=["src/auth/legacy/"],
    capabilities=["python"],
)
LOGIN = Objective(id="obj-2", title="Login form", wave=1, scope_touch=["web/login/"])
GLUE = Objective(
    id="obj-3",
    title="Protect the API with the auth middleware",
    wave=2,
    scope_touch=["src/api/middleware.py"],
    depends_on=["obj-1", "obj-2"],
)
VERIFY = Contract(name="auth.verify_token(token: str) -> Claims", provider="obj-1")


def submitted(at: float = 0, session: str = SID) -> Event:
    return ev(
        RequestSubmitted,
        at,
        session=session,
        request="Add JWT authentication",
        repo="/srv/app",
        base_ref="main",
        team=["w-a", "w-b"],
        auto_approve=False,
        resolve_conflicts=True,
    )


def analysed(at: float = 2) -> Event:
    return ev(AnalysisCompleted, at, task_type="feature", modules=["src/auth/__init__.py"])


def proposed(
    at: float = 3, plan_id: str = "p1", objectives: list[Objective] | None = None
) -> Event:
    objectives = [TOKENS, LOGIN, GLUE] if objectives is None else objectives
    return ev(PlanProposed, at, plan_id=plan_id, objectives=objectives, contracts=[VERIFY])


def approved_plan() -> list[Event]:
    """A session up to the approval of plan p1."""
    return [
        submitted(),
        analysed(),
        proposed(),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(PlanApproved, 6, plan_id="p1", by="owner"),
    ]


def activity(at: float, worker: str, tool: str | None, **fields: Any) -> Event:
    fields.setdefault("objective_id", "obj-1")
    fields.setdefault("activity_type", "tool_use" if tool else "reasoning")
    fields.setdefault("description", f"{tool or 'thinking'} at {at}")
    return ev(WorkerActivity, at, worker_id=worker, tool_name=tool, **fields)


def assigned(objective: str, worker: str, at: float, attempt: int = 1, **fields: Any) -> Event:
    return ev(
        ObjectiveAssigned,
        at,
        objective_id=objective,
        worker_id=worker,
        attempt=attempt,
        **fields,
    )


def started(objective: str, worker: str, at: float, attempt: int = 1) -> Event:
    return ev(
        ObjectiveStarted,
        at,
        objective_id=objective,
        worker_id=worker,
        attempt=attempt,
        workdir=f"/srv/app/.ap/worktrees/{SID}/{objective}",
        transcript=f"/srv/app/.ap/transcripts/{objective}.{attempt}.log",
    )


def completed(objective: str, worker: str, at: float, files: list[str], **fields: Any) -> Event:
    return ev(
        ObjectiveCompleted,
        at,
        objective_id=objective,
        worker_id=worker,
        files_modified=files,
        **fields,
    )


def failed(objective: str, worker: str, at: float, reason: str, **fields: Any) -> Event:
    return ev(
        ObjectiveFailed, at, objective_id=objective, worker_id=worker, reason=reason, **fields
    )


# --- the session's status -----------------------------------------------------------


def test_a_session_goes_from_analysing_to_completed_through_every_status() -> None:
    events = [
        submitted(),
        analysed(),
        proposed(),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(PlanApproved, 6, plan_id="p1", by="owner"),
        ev(WaveStarted, 7, wave=1, objective_ids=["obj-1", "obj-2"]),
        ev(SessionCompleted, 90, summary="3 objectives merged", branch=BRANCH, commit_message="m"),
    ]

    assert statuses(events) == [
        "analysing",
        "planning",
        "validating",
        "validating",
        "awaiting_approval",
        "running",
        "running",
        "completed",
    ]
    view = fold(events)
    assert view.ended
    assert (view.submitted_at, view.awaiting_since, view.ended_at) == (T0, T0 + 5, T0 + 90)
    assert view.duration_s() == 90.0
    assert (view.request, view.repo, view.base_ref) == (
        "Add JWT authentication",
        "/srv/app",
        "main",
    )
    assert view.team == ["w-a", "w-b"] and view.resolve_conflicts and not view.auto_approve
    assert view.analysis is not None and view.analysis.task_type == "feature"
    assert (view.plan_id, view.plan_revision, view.valid) == ("p1", 0, True)
    assert view.approved_by == "owner"
    assert (view.summary, view.branch, view.commit_message) == ("3 objectives merged", BRANCH, "m")
    assert (view.events, view.last_seq, view.last_ts) == (8, 8, T0 + 90)


def test_an_auto_approved_session_goes_from_validating_straight_to_running() -> None:
    events = [
        submitted(),
        analysed(),
        proposed(),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanApproved, 5, plan_id="p1", by="auto"),
    ]
    assert statuses(events)[-2:] == ["validating", "running"]
    assert fold(events).awaiting_since == 0.0


def test_a_rejected_plan_records_who_and_why_and_the_cancel_ends_the_session() -> None:
    events = [*approved_plan()[:5], ev(PlanRejected, 8, plan_id="p1", by="owner", reason="too big")]
    view = fold(events)
    assert view.status == "awaiting_approval"
    assert view.reason == "plan rejected by owner: too big"

    view = apply(view, ev(SessionCancelled, 9, reason=view.reason))
    assert (view.status, view.reason, view.ended_at) == (
        "cancelled",
        "plan rejected by owner: too big",
        T0 + 9,
    )


def test_a_plan_rejected_without_a_reason_says_only_who() -> None:
    view = fold([*approved_plan()[:5], ev(PlanRejected, 8, plan_id="p1", by="alice")])
    assert view.reason == "plan rejected by alice"


def test_an_invalid_plan_keeps_its_conflicts_and_the_failure_ends_the_session() -> None:
    conflict = ScopeConflict(
        wave=1,
        objective_a="obj-1",
        objective_b="obj-2",
        pattern_a="src/",
        pattern_b="src/api/",
        witness="src/api/x",
    )
    events = [
        submitted(),
        analysed(),
        proposed(),
        ev(ScopeValidated, 4, plan_id="p1", valid=False, conflicts=[conflict], reason="overlap"),
        ev(SessionFailed, 5, reason="the plan's scopes conflict"),
    ]
    view = fold(events)
    assert (view.valid, view.conflicts, view.invalid_reason) == (False, [conflict], "overlap")
    assert (view.status, view.reason, view.ended_at) == (
        "failed",
        "the plan's scopes conflict",
        T0 + 5,
    )


def test_a_late_analysis_does_not_move_a_planned_session_back_to_planning() -> None:
    assert statuses([submitted(), proposed(), analysed(at=4)]) == [
        "analysing",
        "validating",
        "validating",
    ]


# --- plans and their revisions ------------------------------------------------------


def test_a_plan_revision_replaces_the_objectives_and_resets_validation_and_waves() -> None:
    overlapping = Objective(id="obj-2", title="Login form", wave=1, scope_touch=["src/auth/"])
    conflict = ScopeConflict(
        wave=1,
        objective_a="obj-1",
        objective_b="obj-2",
        pattern_a="src/auth/",
        pattern_b="src/auth/",
        witness="src/auth/a",
    )
    moved = msgspec.structs.replace(overlapping, wave=2)
    events = [
        submitted(),
        analysed(),
        proposed(objectives=[TOKENS, overlapping]),
        ev(ScopeValidated, 4, plan_id="p1", valid=False, conflicts=[conflict], resolving=True),
    ]
    before = fold(events)
    assert (before.valid, before.resolving, before.conflicts) == (False, True, [conflict])
    assert {n: w.objective_ids for n, w in before.waves.items()} == {1: ["obj-1", "obj-2"]}

    view = apply(
        before,
        ev(PlanRevised, 5, plan_id="p2", revises="p1", objectives=[TOKENS, moved, GLUE]),
    )

    assert (view.plan_id, view.plan_revision, view.status) == ("p2", 1, "validating")
    assert list(view.objectives) == ["obj-1", "obj-2", "obj-3"]
    assert view.objectives["obj-2"].objective.wave == 2
    assert all(o.status == "pending" and o.attempt == 0 for o in view.objectives.values())
    assert (view.valid, view.conflicts, view.resolving, view.invalid_reason) == (
        None,
        [],
        False,
        "",
    )
    assert view.contracts == []
    assert {n: (w.objective_ids, w.status) for n, w in view.waves.items()} == {
        1: (["obj-1"], "pending"),
        2: (["obj-2", "obj-3"], "pending"),
    }
    assert view.wave_numbers() == [1, 2]
    assert [o.objective.id for o in view.objectives_of(2)] == ["obj-2", "obj-3"]


def test_a_scope_validated_for_an_old_plan_id_is_ignored() -> None:
    events = [
        submitted(),
        analysed(),
        proposed(objectives=[TOKENS]),
        ev(ScopeValidated, 4, plan_id="p1", valid=False, resolving=True),
        ev(PlanRevised, 5, plan_id="p2", revises="p1", objectives=[TOKENS]),
        ev(ScopeValidated, 6, plan_id="p1", valid=True),
    ]
    view = fold(events)
    assert (view.plan_id, view.valid, view.resolving) == ("p2", None, False)

    view = apply(view, ev(ScopeValidated, 7, plan_id="p2", valid=True))
    assert view.valid is True


def test_an_approval_or_approval_request_for_an_old_plan_id_is_ignored() -> None:
    events = [
        submitted(),
        analysed(),
        proposed(plan_id="p1"),
        proposed(at=4, plan_id="p2"),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(PlanApproved, 6, plan_id="p1", by="owner"),
    ]
    view = fold(events)
    assert (view.status, view.awaiting_since, view.approved_by) == ("validating", 0.0, "")


# --- objectives, attempts and worker cards ------------------------------------------


def test_an_objective_that_fails_is_assigned_again_and_completes_on_its_second_attempt() -> None:
    events = [
        *approved_plan(),
        ev(WaveStarted, 7, wave=1, objective_ids=["obj-1", "obj-2"]),
        assigned("obj-1", "w-a", 8, base="c0ffee1", timeout_s=600.0),
    ]
    view = fold(events)
    o, w_a = view.objectives["obj-1"], view.workers["w-a"]
    assert (o.status, o.worker_id, o.attempt, o.base, o.timeout_s) == (
        "assigned",
        "w-a",
        1,
        "c0ffee1",
        600.0,
    )
    assert o.assigned_at == T0 + 8
    assert (w_a.status, w_a.objective_id) == ("busy", "obj-1")

    apply(view, started("obj-1", "w-a", 9))
    apply(view, ev(WorkerStarted, 9, worker_id="w-a", pid=4242, objective_id="obj-1"))
    assert (o.status, o.started_at, o.pid, w_a.pid) == ("running", T0 + 9, 4242, 4242)
    assert o.workdir == f"/srv/app/.ap/worktrees/{SID}/obj-1"
    assert o.transcript.endswith("obj-1.1.log")

    apply(
        view,
        failed("obj-1", "w-a", 20, "exit code 2", exit_code=2, duration_s=11.0, input_tokens=100),
    )
    assert (o.status, o.failures, o.reason, o.exit_code, o.duration_s, o.ended_at) == (
        "failed",
        1,
        "exit code 2",
        2,
        11.0,
        T0 + 20,
    )
    assert (w_a.status, w_a.objective_id, w_a.pid, w_a.tasks_failed) == ("idle", "", 0, 1)

    apply(view, assigned("obj-1", "w-b", 21, attempt=2, base="c0ffee2"))
    assert (o.status, o.worker_id, o.attempt, o.base, o.reason) == (
        "assigned",
        "w-b",
        2,
        "c0ffee2",
        None,
    )
    apply(view, started("obj-1", "w-b", 22, attempt=2))
    assert o.status == "running" and o.transcript.endswith("obj-1.2.log")

    files = ["src/auth/tokens.py", "tests/test_auth.py"]
    apply(view, completed("obj-1", "w-b", 40, files, duration_s=18.0, input_tokens=250))
    w_b = view.workers["w-b"]
    assert (o.status, o.failures, o.exit_code, o.reason, o.duration_s) == (
        "completed",
        1,
        0,
        None,
        18.0,
    )
    assert o.files_modified == files
    assert o.input_tokens == 350  # both attempts' usage
    assert (w_b.status, w_b.tasks_completed, w_b.tasks_failed) == ("idle", 1, 0)
    assert w_b.files_modified == files
    assert (w_a.tasks_completed, w_a.tasks_failed) == (0, 1)


def test_a_result_from_a_worker_that_no_longer_has_the_objective_does_not_change_it() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        failed("obj-1", "w-a", 10, "worker w-a stopped for good (the supervisor gave up)"),
        assigned("obj-1", "w-b", 11, attempt=2),
        # The first attempt's worker was not dead after all: its late events arrive.
        started("obj-1", "w-a", 12, attempt=1),
        completed("obj-1", "w-a", 13, ["src/auth/stale.py"]),
    ]
    view = fold(events)
    o = view.objectives["obj-1"]
    assert (o.status, o.worker_id, o.attempt) == ("assigned", "w-b", 2)
    assert o.files_modified == [] and o.failures == 1
    assert view.workers["w-a"].tasks_completed == 0
    assert view.workers["w-a"].files_modified == []
    assert view.workers["w-b"].status == "busy"


def test_a_new_attempt_does_not_carry_the_previous_attempts_process_or_start() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        ev(WorkerStarted, 9, worker_id="w-a", pid=4242, objective_id="obj-1"),
        failed("obj-1", "w-a", 10, "exit code 1"),
        assigned("obj-1", "w-a", 11, attempt=2),
        started("obj-1", "w-a", 12, attempt=2),
    ]
    o = fold(events).objectives["obj-1"]
    assert (o.status, o.attempt, o.started_at) == ("running", 2, T0 + 12)
    assert o.pid == 0  # attempt 2's agent has not been reported yet


def test_a_stale_assignment_does_not_roll_the_objective_back_to_its_earlier_attempt() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        failed("obj-1", "w-a", 9, "timed out"),
        assigned("obj-1", "w-b", 10, attempt=2),
        assigned("obj-1", "w-a", 11, attempt=1),
    ]
    o = fold(events).objectives["obj-1"]
    assert (o.attempt, o.worker_id, o.status) == (2, "w-b", "assigned")


def test_a_second_result_for_a_finished_objective_does_not_change_it() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        completed("obj-1", "w-a", 10, ["src/auth/tokens.py"]),
        failed("obj-1", "w-a", 11, "killed"),
    ]
    view = fold(events)
    o = view.objectives["obj-1"]
    assert (o.status, o.failures, o.reason) == ("completed", 0, None)
    assert (view.workers["w-a"].tasks_completed, view.workers["w-a"].tasks_failed) == (1, 0)


def test_a_result_for_an_objective_outside_the_plan_only_frees_its_worker() -> None:
    events = [
        *approved_plan(),
        assigned("obj-9", "w-a", 8),
        completed("obj-9", "w-a", 9, ["x.py"]),
    ]
    view = fold(events)
    assert "obj-9" not in view.objectives
    w = view.workers["w-a"]
    assert (w.status, w.objective_id, w.tasks_completed) == ("idle", "", 0)


def test_a_scope_violation_records_the_paths_once_each_sorted() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        ev(ScopeViolated, 9, objective_id="obj-1", worker_id="w-a", paths=["z.py", "a.py"]),
        ev(
            ScopeViolated,
            9,
            objective_id="obj-1",
            worker_id="w-a",
            paths=["a.py", "src/auth/legacy/x.py"],
            rule="inside_forbid",
        ),
        failed("obj-1", "w-a", 10, "scope violated"),
    ]
    o = fold(events).objectives["obj-1"]
    assert o.violations == ["a.py", "src/auth/legacy/x.py", "z.py"]
    assert o.status == "failed"


def test_a_worker_card_counts_tools_activities_errors_and_keeps_the_latest_metrics() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        activity(10, "w-a", "edit", file_path="src/auth/tokens.py"),
        activity(11, "w-a", None),
        activity(12, "w-a", "shell", activity_type="command", exit_code=0),
        activity(13, "w-a", "edit", file_path="tests/test_auth.py"),
        activity(14, "w-a", "read"),
        activity(15, "w-a", "edit"),
        ev(WorkerError, 16, worker_id="w-a", error="rate limited", objective_id="obj-1"),
        ev(
            WorkerMetrics,
            17,
            worker_id="w-a",
            cpu_percent=55.0,
            rss_bytes=2 << 20,
            input_tokens=900,
        ),
        ev(
            WorkerMetrics, 18, worker_id="w-a", cpu_percent=5.0, rss_bytes=1 << 20, input_tokens=400
        ),
    ]
    w = fold(events).workers["w-a"]
    assert w.tools_used == {"edit": 3, "shell": 1, "read": 1}
    assert (w.activities, w.errors) == (6, 1)
    assert (w.cpu_percent, w.rss_bytes) == (5.0, 1 << 20)  # the latest sample
    assert w.input_tokens == 900  # a counter: a lower sample does not lower it
    assert w.feed[0] == ActivityView(
        seq=9,
        ts=T0 + 10,
        activity_type="tool_use",
        description="edit at 10",
        tool_name="edit",
        file_path="src/auth/tokens.py",
        objective_id="obj-1",
    )
    assert [(a.seq, a.tool_name) for a in w.feed] == [
        (9, "edit"),
        (10, None),
        (11, "shell"),
        (12, "edit"),
        (13, "read"),
        (14, "edit"),
    ]


def test_the_activity_feed_keeps_only_the_latest_activities_oldest_first() -> None:
    extra = 7
    events = [*approved_plan(), assigned("obj-1", "w-a", 8)]
    first_seq = len(events) + 1
    events += [activity(10 + n, "w-a", "edit") for n in range(ACTIVITY_FEED + extra)]
    w = fold(events).workers["w-a"]

    assert len(w.feed) == ACTIVITY_FEED
    assert [a.seq for a in w.feed] == list(
        range(first_seq + extra, first_seq + ACTIVITY_FEED + extra)
    )
    assert w.feed[-1].description == f"edit at {10 + ACTIVITY_FEED + extra - 1}"
    # The counters still count every activity.
    assert w.activities == ACTIVITY_FEED + extra
    assert w.tools_used == {"edit": ACTIVITY_FEED + extra}


def test_a_workers_files_modified_are_in_the_order_first_seen_once_each() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        completed("obj-1", "w-a", 9, ["src/auth/b.py", "src/auth/a.py"]),
        assigned("obj-2", "w-a", 10),
        completed("obj-2", "w-a", 11, ["web/login/form.js", "src/auth/a.py"]),
    ]
    w = fold(events).workers["w-a"]
    assert w.files_modified == ["src/auth/b.py", "src/auth/a.py", "web/login/form.js"]
    assert w.tasks_completed == 2


def test_the_sessions_files_modified_are_those_of_completed_objectives_sorted_once_each() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        completed("obj-1", "w-a", 9, ["src/auth/b.py", "src/auth/a.py"]),
        assigned("obj-2", "w-b", 8),
        failed("obj-2", "w-b", 9, "tests failed", files_modified=["web/login/broken.js"]),
        assigned("obj-3", "w-a", 10),
        completed("obj-3", "w-a", 11, ["src/api/middleware.py", "src/auth/a.py"]),
    ]
    view = fold(events)
    assert view.objectives["obj-2"].files_modified == ["web/login/broken.js"]
    assert view.files_modified() == ["src/api/middleware.py", "src/auth/a.py", "src/auth/b.py"]


# --- waves --------------------------------------------------------------------------


def test_a_wave_goes_from_pending_to_running_to_completed_to_merged() -> None:
    view = fold(approved_plan())
    assert {n: w.status for n, w in view.waves.items()} == {1: "pending", 2: "pending"}

    apply(view, ev(WaveStarted, 7, wave=1, objective_ids=["obj-1", "obj-2"]))
    assert (view.waves[1].status, view.waves[1].started_at) == ("running", T0 + 7)
    apply(view, ev(WaveCompleted, 20, wave=1, objective_ids=["obj-1", "obj-2"]))
    assert (view.waves[1].status, view.waves[1].ended_at) == ("completed", T0 + 20)
    apply(view, ev(WaveMerged, 21, wave=1, branch=BRANCH, commit="1111aaa"))
    assert (view.waves[1].status, view.waves[1].commit, view.branch) == (
        "merged",
        "1111aaa",
        BRANCH,
    )
    assert view.waves[2].status == "pending"


def test_a_wave_completed_folded_after_its_wave_merged_keeps_merged() -> None:
    events = [
        *approved_plan(),
        ev(WaveStarted, 7, wave=1),
        ev(WaveMerged, 21, wave=1, branch=BRANCH, commit="1111aaa"),
        ev(WaveCompleted, 22, wave=1),
    ]
    wave = fold(events).waves[1]
    assert (wave.status, wave.commit, wave.ended_at) == ("merged", "1111aaa", T0 + 22)


def test_a_merge_conflict_fails_its_wave_and_is_kept_on_the_view() -> None:
    conflict = ev(MergeConflicted, 21, wave=1, objective_id="obj-2", branch="b", paths=["src/x.py"])
    events = [
        *approved_plan(),
        ev(WaveStarted, 7, wave=1),
        ev(WaveCompleted, 20, wave=1),
        conflict,
        ev(SessionFailed, 22, reason="merging obj-2 conflicted on src/x.py", branch=BRANCH),
    ]
    view = fold(events)
    assert view.waves[1].status == "failed"
    assert view.merge_conflict == conflict
    assert (view.status, view.branch) == ("failed", BRANCH)


def test_reports_written_are_kept_by_kind_the_latest_winning() -> None:
    events = [
        submitted(),
        ev(ReportWritten, 1, kind="analysis", path="/srv/app/docs/analyses/A1.md"),
        ev(ReportWritten, 2, kind="plan", path="/srv/app/docs/plans/P1.md"),
        ev(ReportWritten, 3, kind="plan", path="/srv/app/docs/plans/P2.md"),
    ]
    assert fold(events).reports == {
        "analysis": "/srv/app/docs/analyses/A1.md",
        "plan": "/srv/app/docs/plans/P2.md",
    }


# --- an ended session stays ended ---------------------------------------------------


def test_late_events_after_a_cancel_do_not_reopen_the_session() -> None:
    events = [
        *approved_plan(),
        ev(WaveStarted, 7, wave=1),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        ev(CancelRequested, 10, by="owner"),
        ev(SessionCancelled, 11, reason="cancelled by the owner", branch=BRANCH),
    ]
    view = fold(events)
    assert view.cancel_requested
    assert (view.status, view.ended_at, view.reason) == (
        "cancelled",
        T0 + 11,
        "cancelled by the owner",
    )

    for late in [
        completed("obj-1", "w-a", 12, ["src/auth/tokens.py"]),
        ev(WaveCompleted, 13, wave=1),
        ev(PlanApproved, 14, plan_id="p1", by="owner"),
        proposed(at=15, plan_id="p9", objectives=[TOKENS]),
        ev(PlanAwaitingApproval, 16, plan_id="p9"),
        ev(SessionCompleted, 17, summary="late"),
    ]:
        apply(view, late)
        assert (view.status, view.ended_at) == ("cancelled", T0 + 11)
    assert view.duration_s(now=T0 + 1000) == 11.0


def test_the_late_objective_result_itself_is_recorded_on_the_objective() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        started("obj-1", "w-a", 9),
        ev(SessionCancelled, 11, reason="cancelled by the owner"),
        completed("obj-1", "w-a", 12, ["src/auth/tokens.py"]),
    ]
    view = fold(events)
    assert view.objectives["obj-1"].status == "completed"
    assert view.workers["w-a"].status == "idle"
    assert view.status == "cancelled"


def test_a_late_session_failed_keeps_the_reason_of_the_cancel_that_ended_the_session() -> None:
    events = [
        submitted(),
        ev(CancelRequested, 1, by="owner"),
        ev(SessionCancelled, 2, reason="cancelled by the owner"),
        ev(SessionFailed, 3, reason="analysis failed: repository vanished"),
    ]
    view = fold(events)
    assert view.status == "cancelled"
    assert view.reason == "cancelled by the owner"


# --- duration -----------------------------------------------------------------------


def test_duration_runs_to_now_or_the_last_event_until_the_session_ends() -> None:
    view = fold([submitted(at=10), analysed(at=25)])
    assert view.duration_s() == 15.0
    assert view.duration_s(now=T0 + 70) == 60.0
    assert view.duration_s(now=T0 + 5) == 0.0  # a clock behind the submission
    apply(view, ev(SessionFailed, 40, reason="analysis failed"))
    assert view.duration_s(now=T0 + 1000) == 30.0


def test_a_session_seen_without_its_request_has_no_duration() -> None:
    view = fold([analysed(at=25)])
    assert view.submitted_at == 0.0
    assert view.duration_s(now=T0 + 100) == 0.0


# --- all sessions of a log ----------------------------------------------------------


def test_sessions_find_a_session_by_its_id_or_a_unique_prefix() -> None:
    sessions = Sessions()
    for sid in ["01JAAA0001", "01JAAB0002", "01JB000003", "01JB00000"]:
        sessions.apply(submitted(session=sid))

    assert sessions.find("01JAAA0001") is sessions.views["01JAAA0001"]
    assert sessions.find("01JAAA") is sessions.views["01JAAA0001"]
    assert sessions.find("01JAAB") is sessions.views["01JAAB0002"]
    assert sessions.find("01JAA") is None  # ambiguous
    assert sessions.find("01JB00000") is sessions.views["01JB00000"]  # exact beats prefix
    assert sessions.find("01JB0000") is None  # ambiguous
    assert sessions.find("01JC") is None
    assert sessions.find("") is None


def test_sessions_active_are_the_unended_ones_oldest_first() -> None:
    sessions = Sessions()
    for sid in ["s-1", "s-2", "s-3", "s-4"]:
        sessions.apply(submitted(session=sid))
    sessions.apply(ev(SessionCompleted, 5, session="s-2"))
    sessions.apply(ev(SessionCancelled, 6, session="s-4"))
    sessions.apply(ev(SessionFailed, 7, session="s-3", reason="x"))
    sessions.apply(submitted(session="s-5"))
    assert [v.session_id for v in sessions.active()] == ["s-1", "s-5"]


def test_sessions_ignore_mesh_events_and_fold_each_session_apart() -> None:
    sessions = Sessions()
    assert sessions.apply(ev(ActorStarted, 0, session="", actor="journal", pid=1)) is None
    assert sessions.views == {}

    a = sessions.apply(submitted(session="s-a"), seq=1)
    sessions.apply(submitted(session="s-b"), seq=2)
    assert a is sessions.views["s-a"]
    changed = sessions.apply(ev(AnalysisCompleted, 3, session="s-a", task_type="bug"), seq=3)
    assert changed is a
    assert (a.status, a.last_seq, a.events) == ("planning", 3, 2)
    assert (sessions.views["s-b"].status, sessions.views["s-b"].last_seq) == ("analysing", 2)


def test_a_session_first_seen_after_its_request_still_gets_a_view() -> None:
    sessions = Sessions()
    view = sessions.apply(analysed(), seq=7)
    assert view is not None
    assert (view.session_id, view.status, view.request) == (SID, "planning", "")


def test_fold_session_folds_decoded_log_records_in_order() -> None:
    events = [
        *approved_plan(),
        assigned("obj-1", "w-a", 8),
        completed("obj-1", "w-a", 9, ["src/auth/tokens.py"]),
    ]
    # Records as they come out of the log: encoded by the journal, decoded by the reader.
    records = [
        CODEC.decode_record(CODEC.encode(Record(seq, T0 + seq, event)))
        for seq, event in enumerate(events, 100)
    ]

    view = fold_session(records, SID)

    assert (view.session_id, view.status, view.events, view.last_seq) == (
        SID,
        "running",
        len(events),
        100 + len(events) - 1,
    )
    assert view.objectives["obj-1"].status == "completed"
    assert view == Sessions().apply_records(records).views[SID]
    assert fold_session([], SID) == SessionView(session_id=SID)


# --- properties ---------------------------------------------------------------------

_RANK = {
    "analysing": 0,
    "planning": 1,
    "validating": 2,
    "awaiting_approval": 3,
    "running": 4,
    "completed": 5,
    "failed": 5,
    "cancelled": 5,
}
_WORKERS = ["w-a", "w-b", "w-c"]


@st.composite
def generated_session(draw: st.DrawFn) -> tuple[list[list[Event]], Event]:
    """A whole session as causal streams: the setup, one stream per objective, the end.

    Returns the streams (each in its own order) and the event that ends the session.
    """
    n_objectives = draw(st.integers(1, 4))
    objectives = [
        Objective(id=f"obj-{i}", title=f"objective {i}", wave=draw(st.integers(1, 2)))
        for i in range(1, n_objectives + 1)
    ]
    setup = [
        submitted(),
        analysed(),
        proposed(objectives=objectives),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(PlanApproved, 6, plan_id="p1", by="owner"),
        *[ev(WaveStarted, 7, wave=w) for w in sorted({o.wave for o in objectives})],
    ]
    streams = [setup]
    for o in objectives:
        stream: list[Event] = []
        attempts = draw(st.integers(1, 2))
        for attempt in range(1, attempts + 1):
            worker = draw(st.sampled_from(_WORKERS))
            at = 10.0 * attempt
            stream += [
                assigned(o.id, worker, at, attempt=attempt),
                started(o.id, worker, at + 1, attempt=attempt),
                ev(WorkerStarted, at + 1, worker_id=worker, pid=1000 + attempt, objective_id=o.id),
            ]
            stream += [
                activity(at + 2, worker, tool, objective_id=o.id)
                for tool in draw(st.lists(st.sampled_from(["edit", "shell", None]), max_size=3))
            ]
            if draw(st.booleans()):
                stream.append(ev(WorkerMetrics, at + 3, worker_id=worker, cpu_percent=1.0))
            if attempt < attempts:
                stream.append(failed(o.id, worker, at + 4, "exit code 1"))
            else:
                stream.append(completed(o.id, worker, at + 4, [f"src/{o.id}.py"]))
        streams.append(stream)
    end = draw(
        st.sampled_from(
            [
                ev(SessionCompleted, 100, summary="done", branch=BRANCH),
                ev(SessionFailed, 100, reason="objective failed"),
                ev(SessionCancelled, 100, reason="cancelled by the owner"),
            ]
        )
    )
    return streams, end


def _interleave(data: st.DataObject, streams: list[list[Event]]) -> list[Event]:
    """One interleaving of the streams that keeps each stream's own order."""
    slots = data.draw(st.permutations([i for i, s in enumerate(streams) for _ in s]))
    cursors = [iter(s) for s in streams]
    return [next(cursors[i]) for i in slots]


@given(session=generated_session(), data=st.data())
@settings(max_examples=200, deadline=None)
def test_folding_any_interleaving_never_raises_and_the_status_only_moves_forward(
    session: tuple[list[list[Event]], Event], data: st.DataObject
) -> None:
    streams, end = session
    setup, objectives = streams[0], streams[1:]
    # Workers run in parallel: their streams interleave in any way; some of their
    # events arrive only after the session ended.
    running = _interleave(data, objectives)
    cut = data.draw(st.integers(0, len(running)))
    events = [*setup, *running[:cut], end, *running[cut:]]

    view = SessionView(session_id=SID)
    ranks = []
    for seq, event in enumerate(events, 1):
        apply(view, event, seq)
        ranks.append(_RANK[view.status])
    assert ranks == sorted(ranks)
    assert (
        view.status
        == {
            SessionCompleted: "completed",
            SessionFailed: "failed",
            SessionCancelled: "cancelled",
        }[type(end)]
    )
    assert view.ended_at == end.ts
    assert view.events == len(events)
    # Each objective's own results are recorded, also those that arrived after the end.
    for stream in objectives:
        objective_id = stream[0].objective_id  # type: ignore[attr-defined]
        o = view.objectives[objective_id]
        assert o.status == "completed"
        assert o.failures == sum(isinstance(e, ObjectiveFailed) for e in stream)
        assert o.attempt == o.failures + 1


@given(session=generated_session(), data=st.data())
@settings(max_examples=200, deadline=None)
def test_folding_events_in_any_order_never_raises_and_an_ended_session_stays_ended(
    session: tuple[list[list[Event]], Event], data: st.DataObject
) -> None:
    streams, end = session
    extra_end = data.draw(
        st.sampled_from([[], [ev(SessionFailed, 101, reason="late")], [ev(SessionCompleted, 102)]])
    )
    events = data.draw(st.permutations([*itertools.chain(*streams), end, *extra_end]))

    view = SessionView(session_id=SID)
    first_end: tuple[str, float] | None = None
    for event in events:
        apply(view, event)
        if first_end is None and view.ended:
            first_end = (view.status, view.ended_at)
        if first_end is not None:
            assert (view.status, view.ended_at) == first_end
    assert first_end is not None and first_end[0] in ENDED


@given(a=generated_session(), b=generated_session(), data=st.data())
@settings(max_examples=50, deadline=None)
def test_two_sessions_interleaved_in_one_log_fold_as_if_each_were_alone(
    a: tuple[list[list[Event]], Event],
    b: tuple[list[list[Event]], Event],
    data: st.DataObject,
) -> None:
    own_a = [*itertools.chain(*a[0]), a[1]]
    own_b = [
        msgspec.structs.replace(e, session_id="other") for e in [*itertools.chain(*b[0]), b[1]]
    ]
    sessions = Sessions()
    for event in _interleave(data, [own_a, own_b]):
        sessions.apply(event)
    assert sessions.views[SID] == fold_without_seqs(own_a, SID)
    assert sessions.views["other"] == fold_without_seqs(own_b, "other")


def fold_without_seqs(events: list[Event], session: str) -> SessionView:
    view = SessionView(session_id=session)
    for event in events:
        apply(view, event)
    return view
