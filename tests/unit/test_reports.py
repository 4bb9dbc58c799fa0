"""Reports and the commit message, rendered from session views folded from real events."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

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
from ap_actors.projections import SessionView, apply
from ap_actors.reports import (
    commit_message,
    render_accomplishment,
    render_analysis,
    render_plan,
    report_dir,
    report_path,
    write_report,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SID = "01JGXSESSION00000000000001"
REQUEST = "Add JWT authentication with secure token handling"
_ids = itertools.count(1)


def ev(cls: type[Event], at: float, **fields: Any) -> Event:
    """An event of the test session, ``at`` seconds after T0."""
    return cls(id=f"e{next(_ids)}", session_id=SID, ts=T0 + at, source="test", **fields)


def fold(events: list[Event]) -> SessionView:
    view = SessionView(session_id=SID)
    for seq, event in enumerate(events, 1):
        apply(view, event, seq)
    return view


def submitted(request: str = REQUEST) -> Event:
    return ev(RequestSubmitted, 0, request=request, repo="/srv/app", base_ref="main", team=["w-a"])


def analysed(task_type: str = "feature", modules: int = 3) -> Event:
    return ev(
        AnalysisCompleted,
        2,
        task_type=task_type,
        modules=[f"src/mod_{i:02d}.py" for i in range(modules)],
        entry_points=["src/__main__.py"],
        test_dirs=["tests/"],
        config_files=["pyproject.toml"],
        coordination_points=["src/auth/__init__.py"],
        scope_strategy="Independent modules in wave 1, integration in wave 2.",
    )


AUTH = Objective(
    id="obj-1",
    title="Token service",
    description="Issue and verify JWTs.",
    wave=1,
    scope_touch=["src/auth/", "tests/test_auth*.py"],
    scope_forbid=["src/auth/legacy/"],
    worker="w-a",
    capabilities=["python"],
)
UI = Objective(id="obj-2", title="Login form", wave=1, scope_touch=["web/login/"])
GLUE = Objective(
    id="obj-3",
    title="Protect the API with the auth middleware",
    wave=2,
    scope_touch=["src/api/middleware.py"],
    depends_on=["obj-1", "obj-2"],
)
VERIFY = Contract(
    name="auth.verify_token(token: str) -> Claims",
    provider="obj-1",
    consumers=["obj-3"],
    description="Raises InvalidToken on a bad signature.",
)


def run(objective: str, worker: str, at: float, files: list[str], attempt: int = 1) -> list[Event]:
    """Assignment, start, one tool call and a completion of an objective."""
    return [
        ev(ObjectiveAssigned, at, objective_id=objective, worker_id=worker, attempt=attempt),
        ev(ObjectiveStarted, at + 1, objective_id=objective, worker_id=worker, attempt=attempt),
        ev(WorkerStarted, at + 1, worker_id=worker, pid=4242, objective_id=objective),
        ev(
            WorkerActivity,
            at + 2,
            worker_id=worker,
            objective_id=objective,
            activity_type="tool_use",
            tool_name="edit",
            description="edit",
            file_path=files[0],
        ),
        ev(
            ObjectiveCompleted,
            at + 10,
            objective_id=objective,
            worker_id=worker,
            files_modified=files,
            exit_code=0,
            duration_s=9.0,
            input_tokens=1000,
            output_tokens=200,
            cost_usd=0.01,
        ),
    ]


def completed_session(modules: int = 3) -> list[Event]:
    return [
        submitted(),
        analysed(modules=modules),
        ev(PlanProposed, 3, plan_id="p1", objectives=[AUTH, UI, GLUE], contracts=[VERIFY]),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(PlanApproved, 6, plan_id="p1", by="owner"),
        ev(WaveStarted, 7, wave=1, objective_ids=["obj-1", "obj-2"]),
        *run("obj-1", "w-a", 8, ["src/auth/tokens.py", "tests/test_auth.py"]),
        *run("obj-2", "w-b", 8, ["web/login/form.js"]),
        ev(
            WorkerActivity,
            15,
            worker_id="w-a",
            objective_id="obj-1",
            activity_type="command",
            tool_name="shell",
            description="pytest",
        ),
        ev(WorkerError, 16, worker_id="w-b", error="rate limited, retrying"),
        ev(WorkerMetrics, 17, worker_id="w-a", input_tokens=1500, output_tokens=300, cost_usd=0.02),
        ev(WaveCompleted, 20, wave=1, objective_ids=["obj-1", "obj-2"]),
        ev(WaveMerged, 21, wave=1, branch=f"ap/{SID}", commit="1111aaa"),
        ev(WaveStarted, 22, wave=2, objective_ids=["obj-3"]),
        *run("obj-3", "w-a", 23, ["src/api/middleware.py"]),
        ev(WaveCompleted, 40, wave=2, objective_ids=["obj-3"]),
        ev(WaveMerged, 41, wave=2, branch=f"ap/{SID}", commit="2222bbb"),
        ev(SessionCompleted, 125, summary="All 3 objectives merged.", branch=f"ap/{SID}"),
    ]


# --- the completed two-wave session --------------------------------------------------


def test_the_analysis_report_shows_the_request_and_what_the_analysis_found() -> None:
    text = render_analysis(fold(completed_session()))
    assert text.startswith("# Analysis Report\n")
    assert f"- **Session:** `{SID}`" in text
    assert "- **Submitted:** 2026-01-01T00:00:00Z" in text
    assert "- **Repository:** `/srv/app` at `main`" in text
    assert "- **Task Type:** FEATURE" in text
    assert "## Owner Request\n\nAdd JWT authentication with secure token handling\n" in text
    assert "### Modules (3)\n\n- `src/mod_00.py`\n- `src/mod_01.py`\n- `src/mod_02.py`\n" in text
    assert "### Entry Points\n\n- `src/\\_\\_main\\_\\_.py`" not in text  # paths are code
    assert "### Entry Points\n\n- `src/__main__.py`" in text
    assert "### Test Directories\n\n- `tests/`" in text
    assert "### Configuration Files\n\n- `pyproject.toml`" in text
    assert "## Coordination Points\n\n- `src/auth/__init__.py`" in text
    assert "## Scope Allocation Strategy\n\nIndependent modules in wave 1" in text


def test_a_long_module_list_is_capped_at_fifty_with_the_rest_counted() -> None:
    text = render_analysis(fold(completed_session(modules=63)))
    assert "### Modules (63)" in text
    assert "- `src/mod_49.py`\n- … and 13 more\n" in text
    assert "src/mod_50.py" not in text


def test_the_plan_report_lists_each_wave_with_its_objectives_contracts_and_approval() -> None:
    text = render_plan(fold(completed_session()))
    assert text.startswith("# Coordination Plan\n")
    assert "- **Plan ID:** `p1`\n- **Revision:** 0\n- **Task Type:** FEATURE" in text
    assert "- **Waves:** 2\n- **Objectives:** 3" in text
    wave1, wave2 = text.index("### Wave 1"), text.index("### Wave 2")
    assert wave1 < text.index("`obj-1` Token service") < text.index("`obj-2` Login form") < wave2
    assert wave2 < text.index("`obj-3` Protect the API with the auth middleware")
    assert "- **Worker:** `w-a`\n- **Capabilities:** `python`\n- **Depends on:** _none_" in text
    assert "- **Scope touch:** `src/auth/`, `tests/test_auth*.py`" in text
    assert "- **Scope forbid:** `src/auth/legacy/`" in text
    assert "Issue and verify JWTs." in text
    assert "- **Worker:** any matching worker\n- **Capabilities:** any" in text
    assert "- **Depends on:** `obj-1`, `obj-2`" in text
    assert (
        "- `auth.verify_token(token: str) -> Claims`, provided by `obj-1`; consumed by "
        "`obj-3`: Raises InvalidToken on a bad signature." in text
    )
    assert "**Status:** ✓ VALID" in text
    assert text.endswith("## Approval\n\n✓ Approved by owner.\n")


def test_the_accomplishment_report_shows_waves_objectives_workers_and_totals() -> None:
    text = render_accomplishment(fold(completed_session()))
    assert "- **Outcome:** ✓ COMPLETED" in text
    assert "- **Ended:** 2026-01-01T00:02:05Z\n- **Duration:** 2m 05s" in text
    assert f"- **Branch:** `ap/{SID}`" in text
    assert "## Summary\n\nAll 3 objectives merged.\n" in text
    assert "### Wave 1: merged at `1111aaa`" in text
    assert "### Wave 2: merged at `2222bbb`" in text
    assert (
        "#### `obj-1` Token service: ✓ completed\n\n"
        "- **Worker:** `w-a`\n- **Attempts:** 1\n- **Duration:** 9.0s\n- **Exit code:** 0\n"
        "- **Files modified (2):**\n  - `src/auth/tokens.py`\n  - `tests/test_auth.py`\n"
        "- **Usage:** 1,000 input / 200 output tokens, $0.0100\n"
    ) in text
    assert (
        "### `w-a`\n\n- **Tasks:** 2 completed, 0 failed\n"
        "- **Tools used:** `edit` (2), `shell` (1)\n- **Files modified:** 3\n"
        "- **Activities:** 3 (0 errors)\n"
        "- **Usage:** 1,500 input / 300 output tokens, $0.0200\n"
    ) in text
    assert "### `w-b`\n\n- **Tasks:** 1 completed, 0 failed" in text
    assert "- **Activities:** 1 (1 error)\n\n" in text  # no usage line: w-b reported none
    assert "- **Objectives:** 3 completed, 0 failed, 0 not finished (of 3)" in text
    assert "- **Files modified:** 4\n- **Usage:** 3,000 input / 600 output tokens, $0.0300" in text
    assert "## Merge Conflict" not in text
    assert text.endswith(
        "## Commit Message\n\n```text\n" + commit_message(fold(completed_session())) + "```\n"
    )


def test_the_commit_message_of_a_known_request_is_exact() -> None:
    assert commit_message(fold(completed_session())) == (
        "feat: Add JWT authentication with secure token handling\n"
        "\n"
        "All 3 objectives merged.\n"
        "\n"
        "Objectives completed:\n"
        "- Token service (2 files)\n"
        "- Login form (1 file)\n"
        "- Protect the API with the auth middleware (1 file)\n"
        "\n"
        "Modified files: 4\n"
        f"Session: {SID}\n"
    )


def test_before_the_session_ends_the_paragraph_counts_the_objectives_done() -> None:
    message = commit_message(fold(completed_session()[:-1]))
    assert message.startswith(
        "feat: Add JWT authentication with secure token handling\n\n"
        "3 of 3 objectives completed in 2 waves.\n\nObjectives completed:\n"
    )


def test_a_long_request_is_shortened_at_a_word_boundary_and_wrapped_in_the_body() -> None:
    request = (
        "Refactor the configuration loader so that every layer (defaults, ap.toml, the "
        "environment and the command line) is merged in one place, with errors that name "
        "the file and the key"
    )
    events = completed_session()
    events[0] = submitted(request)
    events[1] = analysed("refactor")
    message = commit_message(fold(events))
    subject, blank, *body = message.splitlines()
    assert subject == "refactor: Refactor the configuration loader so that every layer"
    assert len(subject) <= 72 and blank == ""
    assert all(len(line) <= 72 for line in body)
    assert body[0] == "Refactor the configuration loader so that every layer (defaults,"
    assert " ".join(body[: body.index("")]) == request


@pytest.mark.parametrize(
    ("task_type", "prefix"),
    [
        ("feature", "feat: "),
        ("bug", "fix: "),
        ("security", "fix: "),
        ("reset", "refactor: "),
        ("docs", "docs: "),
        ("test", "test: "),
        ("perf", "perf: "),
    ],
)
def test_the_commit_type_follows_the_task_type(task_type: str, prefix: str) -> None:
    view = fold([submitted("Do it"), analysed(task_type)])
    assert commit_message(view).startswith(prefix + "Do it\n")


def test_a_co_author_trailer_is_added_only_when_one_is_given() -> None:
    view = fold(completed_session())
    assert "Co-authored-by" not in commit_message(view)
    message = commit_message(view, co_authors=["Claude <noreply@anthropic.com>"])
    assert message.endswith(f"Session: {SID}\n\nCo-authored-by: Claude <noreply@anthropic.com>\n")


def test_rendering_is_deterministic() -> None:
    a, b = fold(completed_session()), fold(completed_session())
    for render in (render_analysis, render_plan, render_accomplishment, commit_message):
        assert render(a) == render(b) == render(a)


def test_no_report_of_any_session_has_a_double_blank_line_or_trailing_space() -> None:
    sessions = (
        completed_session,
        conflicted_session,
        revised_session,
        failed_session,
        analysis_failed_session,
        cancelled_session,
    )
    for session in sessions:
        view = fold(session())
        for render in (render_analysis, render_plan, render_accomplishment, commit_message):
            text = render(view)
            assert "\n\n\n" not in text, (session.__name__, render.__name__)
            assert all(line == line.rstrip() for line in text.splitlines())
            assert text.endswith("\n") and not text.endswith("\n\n")


# --- conflicts and a revised plan ----------------------------------------------------

WIDE = Objective(id="obj-1", title="Refactor src", wave=1, scope_touch=["src/**", "we`ird/"])
NARROW = Objective(id="obj-2", title="Auth", wave=1, scope_touch=["src/auth/"])
CONFLICT = ScopeConflict(
    wave=1,
    objective_a="obj-1",
    objective_b="obj-2",
    pattern_a="src/**",
    pattern_b="src/auth/",
    witness="src/auth/__init__.py",
)


def conflicted_session() -> list[Event]:
    return [
        submitted(),
        analysed("refactor"),
        ev(PlanProposed, 3, plan_id="p1", objectives=[WIDE, NARROW]),
        ev(ScopeValidated, 4, plan_id="p1", valid=False, conflicts=[CONFLICT], resolving=True),
    ]


def revised_session() -> list[Event]:
    moved = Objective(id="obj-2", title="Auth", wave=2, scope_touch=["src/auth/"])
    return [
        *conflicted_session(),
        ev(PlanRevised, 5, plan_id="p2", revises="p1", objectives=[WIDE, moved]),
        ev(ScopeValidated, 6, plan_id="p2", valid=True),
        ev(PlanApproved, 7, plan_id="p2", by="auto"),
    ]


def test_an_invalid_plan_shows_each_conflict_with_its_witness_path() -> None:
    text = render_plan(fold(conflicted_session()))
    assert "**Status:** ✗ INVALID (1 conflict)" in text
    assert (
        "- Wave 1: `obj-1` `src/**` and `obj-2` `src/auth/` both match `src/auth/__init__.py`"
        in text
    )
    assert "The scope validator is revising the plan to resolve these conflicts." in text
    assert "## Approval\n\nNot requested yet" in text


def test_a_revised_plan_shows_its_revision_new_waves_and_validity() -> None:
    text = render_plan(fold(revised_session()))
    assert "- **Plan ID:** `p2`\n- **Revision:** 1 (revised 1 time)" in text
    assert "- **Waves:** 2\n- **Objectives:** 2" in text
    assert text.index("### Wave 2") < text.index("`obj-2` Auth")
    assert "**Status:** ✓ VALID" in text
    assert "✓ Approved automatically (auto-approve)." in text


def test_a_revised_plan_keeps_the_conflicts_of_the_plan_it_replaced() -> None:
    text = render_plan(fold(revised_session()))
    earlier = text[text.index("### Earlier Revisions") :]
    assert earlier.startswith("### Earlier Revisions\n\n- `p1` (2 objectives): 1 conflict\n")
    assert (
        "  - Wave 1: `obj-1` `src/**` and `obj-2` `src/auth/` both match `src/auth/__init__.py`"
        in earlier
    )


def test_a_backtick_in_a_pattern_gets_a_longer_code_fence() -> None:
    text = render_plan(fold(revised_session()))
    assert "- **Scope touch:** `src/**`, ``we`ird/``" in text


# --- a failed session ------------------------------------------------------------------

FIX = Objective(id="obj-1", title="Fix the date parser", wave=1, scope_touch=["src/dates.py"])
DOCS = Objective(id="obj-2", title="Document the fix", wave=1, scope_touch=["docs/"])


def failed_session() -> list[Event]:
    return [
        submitted("Fix the crash on dates before 1970"),
        analysed("bug"),
        ev(PlanProposed, 3, plan_id="p1", objectives=[FIX, DOCS]),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanApproved, 5, plan_id="p1", by="owner"),
        ev(WaveStarted, 6, wave=1, objective_ids=["obj-1", "obj-2"]),
        ev(ObjectiveAssigned, 7, objective_id="obj-1", worker_id="w-a", attempt=1),
        ev(
            ObjectiveFailed,
            30,
            objective_id="obj-1",
            worker_id="w-a",
            exit_code=1,
            duration_s=23.0,
            reason="tests failed",
        ),
        ev(ObjectiveAssigned, 31, objective_id="obj-1", worker_id="w-a", attempt=2),
        ev(ScopeViolated, 60, objective_id="obj-1", worker_id="w-a", paths=["setup.py"]),
        ev(
            ObjectiveFailed,
            61,
            objective_id="obj-1",
            worker_id="w-a",
            files_modified=["src/dates.py", "setup.py"],
            exit_code=0,
            duration_s=29.5,
            reason="scope violated: setup.py is outside scope_touch",
        ),
        *run("obj-2", "w-b", 7, ["docs/dates.md"]),
        ev(WaveCompleted, 62, wave=1, objective_ids=["obj-1", "obj-2"]),
        ev(SessionFailed, 63, reason="objective obj-1 failed after 2 attempts"),
    ]


def test_a_failed_objective_shows_its_attempts_reason_files_and_scope_violation() -> None:
    text = render_accomplishment(fold(failed_session()))
    assert "- **Outcome:** ✗ FAILED" in text
    assert "## Reason\n\nobjective obj-1 failed after 2 attempts\n" in text
    assert "### Wave 1: completed, not merged" in text
    assert (
        "#### `obj-1` Fix the date parser: ✗ failed\n\n"
        "- **Worker:** `w-a`\n- **Attempts:** 2 (2 failed)\n- **Duration:** 29.5s\n"
        "- **Exit code:** 0\n- **Files modified (2):**\n  - `src/dates.py`\n  - `setup.py`\n"
        "- **Failure reason:** scope violated: setup.py is outside scope\\_touch\n"
        "- **Scope violations:** `setup.py`\n"
    ) in text
    assert "### `w-a`\n\n- **Tasks:** 0 completed, 2 failed" in text
    assert "- **Objectives:** 1 completed, 1 failed, 0 not finished (of 2)" in text
    assert "- **Files modified:** 1\n" in text  # only the completed objective's file counts


def test_the_commit_message_of_a_failed_session_lists_what_failed_and_why() -> None:
    message = commit_message(fold(failed_session()))
    assert message == (
        "fix: Fix the crash on dates before 1970\n"
        "\n"
        "Session failed: objective obj-1 failed after 2 attempts\n"
        "\n"
        "Objectives completed:\n"
        "- Document the fix (1 file)\n"
        "\n"
        "Objectives failed:\n"
        "- Fix the date parser: scope violated: setup.py is outside scope_touch\n"
        "\n"
        "Modified files: 1\n"
        f"Session: {SID}\n"
    )


# --- a session that failed during analysis, and a cancelled one -----------------------


def analysis_failed_session() -> list[Event]:
    return [submitted(), ev(SessionFailed, 4, reason="repository /srv/app is not a git repo")]


def test_a_session_that_failed_during_analysis_renders_every_report() -> None:
    view = fold(analysis_failed_session())
    analysis = render_analysis(view)
    assert "- **Task Type:** UNKNOWN" in analysis
    assert analysis.endswith(
        "## Analysis\n\nThe session failed before the analysis completed: "
        "repository /srv/app is not a git repo.\n"
    )
    plan = render_plan(view)
    assert plan.endswith(
        "No plan: the session failed during analysis: repository /srv/app is not a git repo.\n"
    )
    accomplishment = render_accomplishment(view)
    assert "- **Outcome:** ✗ FAILED" in accomplishment
    assert "## Waves\n\nNo plan was executed." in accomplishment
    assert "- **Objectives:** 0 completed, 0 failed, 0 not finished (of 0)" in accomplishment
    assert commit_message(view).startswith(
        "chore: Add JWT authentication with secure token handling\n"
    )
    assert "Objectives completed: none\n" in commit_message(view)


def test_an_empty_view_renders_without_crashing() -> None:
    view = SessionView(session_id="s")
    for render in (render_analysis, render_plan, render_accomplishment, commit_message):
        assert render(view).endswith("\n")
    assert commit_message(view).startswith("chore: ap session s\n")
    assert "The analysis has not completed yet (session status: analysing)." in render_analysis(
        view
    )


def cancelled_session() -> list[Event]:
    return [
        submitted(),
        analysed(),
        ev(PlanProposed, 3, plan_id="p1", objectives=[AUTH]),
        ev(ScopeValidated, 4, plan_id="p1", valid=True),
        ev(PlanAwaitingApproval, 5, plan_id="p1"),
        ev(CancelRequested, 50, reason="not today"),
        ev(SessionCancelled, 51, reason="cancelled by the owner: not today"),
    ]


def test_a_cancelled_session_says_so_in_the_plan_and_the_accomplishment() -> None:
    awaiting = fold(cancelled_session()[:-2])
    assert "Awaiting the owner's approval since 2026-01-01T00:00:05Z." in render_plan(awaiting)
    view = fold(cancelled_session())
    assert render_plan(view).endswith(
        "## Approval\n\nNot approved: the session cancelled before approval.\n"
    )
    text = render_accomplishment(view)
    assert "- **Outcome:** ✗ CANCELLED" in text
    assert "## Reason\n\ncancelled by the owner: not today\n" in text
    assert "### Wave 1: not started\n\n#### `obj-1` Token service: pending\n" in text
    assert "Session cancelled: cancelled by the owner: not today" in commit_message(view)


def test_a_merge_conflict_is_reported_with_its_objective_and_paths() -> None:
    events = completed_session()[:-1]
    events += [
        ev(
            MergeConflicted,
            42,
            wave=2,
            objective_id="obj-3",
            branch=f"ap/{SID}/obj-3",
            paths=["src/api/middleware.py"],
        ),
        ev(SessionFailed, 43, reason="merge of obj-3 conflicted"),
    ]
    text = render_accomplishment(fold(events))
    assert (
        f"## Merge Conflict\n\nObjective `obj-3` of wave 2 did not merge (branch `ap/{SID}/obj-3`)"
        "; conflicting paths: `src/api/middleware.py`.\n"
    ) in text


def test_a_rejected_plan_says_who_rejected_it_and_why() -> None:
    events = [
        *cancelled_session()[:5],
        ev(PlanRejected, 9, plan_id="p1", by="owner", reason="too broad"),
    ]
    assert render_plan(fold(events)).endswith("## Approval\n\n✗ Rejected by owner: too broad.\n")


# --- escaping ------------------------------------------------------------------------


def test_markdown_in_owner_text_cannot_change_the_report_structure() -> None:
    request = "# Not a heading\n- not a list\n1. not ordered\n*bold* and `code` and <b>\n\n\n\nend"
    text = render_analysis(fold([submitted(request)]))
    assert (
        "## Owner Request\n\n\\# Not a heading\n\\- not a list\n1\\. not ordered\n"
        "\\*bold\\* and \\`code\\` and \\<b\\>\n\nend\n"
    ) in text


def test_a_commit_message_with_a_code_fence_is_fenced_longer_in_the_report() -> None:
    events = [*completed_session()[:-1]]
    events.append(ev(SessionCompleted, 125, commit_message="feat: x\n\n```\ncode\n```\n"))
    text = render_accomplishment(fold(events))
    assert text.endswith("## Commit Message\n\n````text\nfeat: x\n\n```\ncode\n```\n````\n")


# --- files ---------------------------------------------------------------------------


def test_report_paths_are_named_by_kind_submission_time_and_session(tmp_path: Path) -> None:
    view = fold(completed_session())
    assert report_dir(tmp_path, "analysis") == tmp_path / "docs" / "analyses"
    assert report_path(tmp_path, view, "analysis") == (
        tmp_path / "docs" / "analyses" / f"ANALYSIS_20260101_000000_{SID}.md"
    )
    assert report_path(tmp_path, view, "plan").name == f"PLAN_20260101_000000_{SID}.md"
    assert report_path(tmp_path, view, "accomplishment") == (
        tmp_path / "docs" / "accomplishments" / f"ACCOMPLISHMENT_20260101_000000_{SID}.md"
    )
    assert report_path(tmp_path, view, "plan") == report_path(
        tmp_path, fold(completed_session()), "plan"
    )


def test_a_session_id_cannot_lead_a_report_out_of_its_folder(tmp_path: Path) -> None:
    view = SessionView(session_id="../../etc/passwd", submitted_at=T0)
    path = report_path(tmp_path, view, "plan")
    assert path.parent == tmp_path / "docs" / "plans"
    assert path.name == "PLAN_20260101_000000_.._.._etc_passwd.md"


def test_an_unknown_report_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report kind 'diary'"):
        report_dir(tmp_path, "diary")  # type: ignore[arg-type]


def test_write_report_creates_the_folders_and_replaces_the_file_atomically(
    tmp_path: Path,
) -> None:
    view = fold(completed_session())
    for kind, render in (
        ("analysis", render_analysis),
        ("plan", render_plan),
        ("accomplishment", render_accomplishment),
    ):
        path = write_report(tmp_path, view, kind)  # type: ignore[arg-type]
        assert path == report_path(tmp_path, view, kind)  # type: ignore[arg-type]
        assert path.read_text(encoding="utf-8") == render(view)
    path = report_path(tmp_path, view, "plan")
    path.write_text("stale")
    with path.open() as reader:  # a reader of the old report keeps reading the old one
        assert write_report(tmp_path, view, "plan") == path
        assert reader.read() == "stale"
    assert path.read_text(encoding="utf-8") == render_plan(view)
    leftovers = [p.name for p in (tmp_path / "docs").rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    view = fold(completed_session())
    target = report_path(tmp_path, view, "plan")
    target.mkdir(parents=True)  # a folder where the file should go: os.replace fails
    with pytest.raises(OSError):
        write_report(tmp_path, view, "plan")
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
