"""The three session reports (analysis, plan, accomplishment) and the commit message.

Source: seed 003 (``ANALYSIS_*.md``, ``PLAN_*.md``, ``ACCOMPLISHMENT_*.md`` under
``docs/``, and a conventional-commit message), rendered from the real
:class:`~ap_actors.projections.SessionView` instead of placeholders. Every function here
is pure and deterministic: the same view gives the same bytes, whatever the clock, the
locale or the time zone (times are printed in UTC). A partial view (a session that is
still running, or that failed before it had a plan) renders too, and says what is
missing and why.

Text from outside (the owner request, titles, descriptions, reasons) is escaped so that
it cannot change the structure of a report; patterns, paths and ids are set as inline
code spans whose fences are longer than any backtick run they contain (both from
:mod:`ap_actors.markdown`).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

from ap_actors.markdown import (
    capped,
    code,
    codes,
    document,
    escape,
    escape_paragraphs,
    fenced,
)
from ap_actors.projections import ObjectiveView, SessionView
from ap_actors.redaction import Redactor

ReportKind: TypeAlias = Literal["analysis", "plan", "accomplishment"]

_DIRS: dict[str, tuple[str, str]] = {
    "analysis": ("analyses", "ANALYSIS"),
    "plan": ("plans", "PLAN"),
    "accomplishment": ("accomplishments", "ACCOMPLISHMENT"),
}
LIST_CAP = 50  # items of one analysis list shown before "… and N more"
SUBJECT_MAX = 72  # characters of a commit subject line, type prefix included
BODY_WIDTH = 72  # columns of the commit message body

# Analysis task type -> conventional-commit type; "chore" for anything else.
COMMIT_TYPES: dict[str, str] = {
    "feature": "feat",
    "bug": "fix",
    "refactor": "refactor",
    "docs": "docs",
    "test": "test",
    "perf": "perf",
    "security": "fix",
    "reset": "refactor",
}


# --- formatting ---------------------------------------------------------------------


def _iso(ts: float) -> str:
    if not ts:
        return "unknown"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _task_type(view: SessionView) -> str:
    return view.analysis.task_type.upper() if view.analysis else "UNKNOWN"


def _header(title: str, view: SessionView) -> list[str]:
    return [f"# {title}", "", f"- **Session:** {code(view.session_id)}"]


def _ended_early(view: SessionView, phase: str) -> str:
    """Say why a phase has no result: the session ended first, or it is still to come."""
    if view.ended:
        why = f": {escape(view.reason)}" if view.reason else ""
        return f"The session {view.status} before the {phase} completed{why}."
    return f"The {phase} has not completed yet (session status: {view.status})."


# --- analysis -----------------------------------------------------------------------


def render_analysis(view: SessionView) -> str:
    """Render the Analysis Report: the request and what the analytic phase found.

    Lists (modules, entry points ...) show at most ``LIST_CAP`` items each, then
    "… and N more". A session without an ``analysis_completed`` says so.
    """
    lines = _header("Analysis Report", view)
    lines += [
        f"- **Submitted:** {_iso(view.submitted_at)}",
        f"- **Repository:** {code(view.repo or '?')} at {code(view.base_ref)}",
        f"- **Task Type:** {_task_type(view)}",
    ]
    if view.plan_file:
        lines.append(f"- **Plan file:** {code(view.plan_file)}")
    if view.team:
        lines.append(f"- **Team:** {codes(view.team)}")
    lines += ["", "## Owner Request", "", escape_paragraphs(view.request), ""]
    a = view.analysis
    if a is None:
        return document([*lines, "## Analysis", "", _ended_early(view, "analysis")])
    lines += [
        "## Codebase",
        "",
        f"### Modules ({len(a.modules)})",
        "",
        *capped(a.modules, LIST_CAP),
    ]
    for title, items in (
        ("Entry Points", a.entry_points),
        ("Test Directories", a.test_dirs),
        ("Configuration Files", a.config_files),
    ):
        lines += ["", f"### {title}", "", *capped(items, LIST_CAP)]
    lines += ["", "## Coordination Points", "", *capped(a.coordination_points, LIST_CAP)]
    strategy = escape_paragraphs(a.scope_strategy) if a.scope_strategy.strip() else "_none given_"
    lines += ["", "## Scope Allocation Strategy", "", strategy]
    return document(lines)


# --- plan ---------------------------------------------------------------------------


def _objective_plan(o: ObjectiveView) -> list[str]:
    obj = o.objective
    lines = [
        f"#### {code(obj.id)} {escape(obj.title)}",
        "",
        f"- **Worker:** {code(obj.worker) if obj.worker else 'any matching worker'}",
        f"- **Capabilities:** {codes(obj.capabilities, 'any')}",
        f"- **Depends on:** {codes(obj.depends_on)}",
        f"- **Scope touch:** {codes(obj.scope_touch)}",
        f"- **Scope forbid:** {codes(obj.scope_forbid)}",
    ]
    if obj.command:
        lines.append(f"- **Command:** {code(obj.command)}")
    if obj.description.strip():
        lines += ["", escape_paragraphs(obj.description)]
    return [*lines, ""]


def _approval(view: SessionView) -> str:
    if view.approved_by:
        if view.approved_by == "auto":
            return "✓ Approved automatically (auto-approve)."
        return f"✓ Approved by {escape(view.approved_by)}."
    # projections keeps a rejection only in ``reason`` ("plan rejected by <who>[: why]").
    if view.reason.startswith("plan rejected by "):
        return f"✗ Rejected by {escape(view.reason.removeprefix('plan rejected by '))}."
    if view.status == "awaiting_approval":
        return f"Awaiting the owner's approval since {_iso(view.awaiting_since)}."
    if view.ended:
        return f"Not approved: the session {view.status} before approval."
    if view.valid is False and not view.resolving:
        return "Not submitted for approval: the plan is invalid."
    return "Not requested yet: the plan is being validated."


def _validation(view: SessionView) -> list[str]:
    if view.valid is None:
        return ["**Status:** not validated yet"]
    if view.valid:
        return ["**Status:** ✓ VALID (no two objectives of a wave can touch a common path)"]
    lines = [f"**Status:** ✗ INVALID ({_plural(len(view.conflicts), 'conflict')})", ""]
    if view.invalid_reason:
        lines += [escape_paragraphs(view.invalid_reason), ""]
    for c in view.conflicts:
        lines.append(
            f"- Wave {c.wave}: {code(c.objective_a)} {code(c.pattern_a)} and "
            f"{code(c.objective_b)} {code(c.pattern_b)} both match {code(c.witness)}"
        )
    if view.resolving:
        lines += ["", "The scope validator is revising the plan to resolve these conflicts."]
    return lines


def _revisions(view: SessionView) -> list[str]:
    """What the plans that revisions replaced had wrong (their witness paths)."""
    lines: list[str] = []
    for old in view.revised:
        found = _plural(len(old.conflicts), "conflict") if old.conflicts else "no conflict"
        lines.append(f"- {code(old.plan_id)} ({_plural(old.objectives, 'objective')}): {found}")
        lines += [
            f"  - Wave {c.wave}: {code(c.objective_a)} {code(c.pattern_a)} and "
            f"{code(c.objective_b)} {code(c.pattern_b)} both match {code(c.witness)}"
            for c in old.conflicts
        ]
        if old.reason:
            lines.append(f"  - {escape(old.reason)}")
    return lines


def render_plan(view: SessionView) -> str:
    """Render the Coordination Plan: waves, objectives, contracts, validation, approval.

    Shows the current plan (the latest proposed or revised); conflicts are those of its
    latest validation. A session without a plan says why there is none.
    """
    lines = _header("Coordination Plan", view)
    if not view.plan_id:
        lines += [f"- **Task Type:** {_task_type(view)}", "", "## Plan", ""]
        if view.analysis is None and view.ended:
            why = f": {escape(view.reason)}." if view.reason else "."
            return document([*lines, f"No plan: the session {view.status} during analysis{why}"])
        return document([*lines, _ended_early(view, "planning")])
    waves = view.wave_numbers()
    revised = f" (revised {_plural(view.plan_revision, 'time')})" if view.plan_revision else ""
    lines += [
        f"- **Plan ID:** {code(view.plan_id)}",
        f"- **Revision:** {view.plan_revision}{revised}",
        f"- **Task Type:** {_task_type(view)}",
        f"- **Waves:** {len(waves)}",
        f"- **Objectives:** {len(view.objectives)}",
        "",
        "## Waves & Objectives",
        "",
    ]
    for n in waves:
        lines += [f"### Wave {n}", ""]
        for o in view.objectives_of(n):
            lines += _objective_plan(o)
    lines += ["## Integration Contracts", ""]
    for c in view.contracts:
        consumers = f"; consumed by {codes(c.consumers)}" if c.consumers else ""
        desc = f": {escape(c.description)}" if c.description.strip() else ""
        lines.append(f"- {code(c.name)}, provided by {code(c.provider)}{consumers}{desc}")
    if not view.contracts:
        lines.append("_none_")
    lines += ["", "## Scope Validation", "", *_validation(view), ""]
    if view.revised:
        lines += ["### Earlier Revisions", "", *_revisions(view), ""]
    lines += ["## Approval", "", _approval(view)]
    return document(lines)


# --- accomplishment -----------------------------------------------------------------

_OUTCOME = {
    "completed": "✓ COMPLETED",
    "failed": "✗ FAILED",
    "cancelled": "✗ CANCELLED",
}
_MARK = {"completed": "✓ ", "failed": "✗ "}


def _objective_result(o: ObjectiveView) -> list[str]:
    obj = o.objective
    lines = [f"#### {code(obj.id)} {escape(obj.title)}: {_MARK.get(o.status, '')}{o.status}", ""]
    if o.attempt:
        failed = f" ({o.failures} failed)" if o.failures else ""
        lines += [f"- **Worker:** {code(o.worker_id)}", f"- **Attempts:** {o.attempt}{failed}"]
    if o.status in ("completed", "failed"):
        lines.append(f"- **Duration:** {_duration(o.duration_s)}")
        exit_code = "unknown" if o.exit_code is None else str(o.exit_code)
        lines.append(f"- **Exit code:** {exit_code}")
        lines.append(f"- **Files modified ({len(o.files_modified)}):**")
        lines += [f"  - {code(p)}" for p in o.files_modified] or ["  - _none_"]
    if o.reason:
        label = "Failure reason" if o.status == "failed" else "Note"
        lines.append(f"- **{label}:** {escape(o.reason)}")
    if o.violations:
        lines.append(f"- **Scope violations:** {codes(o.violations)}")
    if o.input_tokens or o.output_tokens or o.cost_usd:
        lines.append(f"- **Usage:** {_usage(o.input_tokens, o.output_tokens, o.cost_usd)}")
    return [*lines, ""] if len(lines) > 2 else lines  # a pending objective: heading only


def _usage(input_tokens: int, output_tokens: int, cost_usd: float) -> str:
    parts = []
    if input_tokens or output_tokens:
        parts.append(f"{input_tokens:,} input / {output_tokens:,} output tokens")
    if cost_usd:
        parts.append(f"${cost_usd:.4f}")
    return ", ".join(parts)


def _wave_line(view: SessionView, n: int) -> str:
    w = view.waves.get(n)
    if w is None or w.status == "pending":
        return f"### Wave {n}: not started"
    if w.status == "merged":
        return f"### Wave {n}: merged at {code(w.commit) if w.commit else 'unknown commit'}"
    if w.status == "running":
        return f"### Wave {n}: running"
    return f"### Wave {n}: {w.status}, not merged"


def render_accomplishment(view: SessionView) -> str:
    """Render the Accomplishment Report: outcome, per wave and objective, per worker.

    Ends with the commit message: the one recorded on the session's end event when
    there is one, else :func:`commit_message` of the view. A running session renders
    as "IN PROGRESS".
    """
    lines = _header("Accomplishment Report", view)
    outcome = _OUTCOME.get(view.status, f"IN PROGRESS ({view.status})")
    lines += [
        f"- **Outcome:** {outcome}",
        f"- **Submitted:** {_iso(view.submitted_at)}",
        f"- **Ended:** {_iso(view.ended_at) if view.ended else 'not yet'}",
        f"- **Duration:** {_duration(view.duration_s())}",
        f"- **Branch:** {code(view.branch) if view.branch else '_none_'}",
        f"- **Task Type:** {_task_type(view)}",
    ]
    if view.plan_id:
        lines.append(f"- **Plan:** {code(view.plan_id)} (revision {view.plan_revision})")
    summary = view.summary if view.status == "completed" else view.reason
    heading = "Reason" if view.status in ("failed", "cancelled") else "Summary"
    lines += [
        "",
        f"## {heading}",
        "",
        escape_paragraphs(summary) if summary.strip() else "_none given_",
    ]
    lines += ["", "## Owner Request", "", escape_paragraphs(view.request), "", "## Waves", ""]
    for n in view.wave_numbers():
        lines += [_wave_line(view, n), ""]
        for o in view.objectives_of(n):
            lines += _objective_result(o)
    if not view.objectives:
        lines += ["No plan was executed.", ""]
    if (mc := view.merge_conflict) is not None:
        lines += [
            "## Merge Conflict",
            "",
            f"Objective {code(mc.objective_id)} of wave {mc.wave} did not merge"
            + (f" (branch {code(mc.branch)})" if mc.branch else "")
            + f"; conflicting paths: {codes(mc.paths)}.",
            "",
        ]
    lines += ["## Workers", ""]
    for wid in sorted(view.workers):
        w = view.workers[wid]
        tools = sorted(w.tools_used.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [
            f"### {code(wid)}",
            "",
            f"- **Tasks:** {w.tasks_completed} completed, {w.tasks_failed} failed",
            "- **Tools used:** " + (", ".join(f"{code(t)} ({n})" for t, n in tools) or "_none_"),
            f"- **Files modified:** {len(w.files_modified)}",
            f"- **Activities:** {w.activities} ({_plural(w.errors, 'error')})",
        ]
        if w.input_tokens or w.output_tokens or w.cost_usd:
            lines.append(f"- **Usage:** {_usage(w.input_tokens, w.output_tokens, w.cost_usd)}")
        lines.append("")
    if not view.workers:
        lines += ["_none_", ""]
    objs = list(view.objectives.values())
    done = sum(o.status == "completed" for o in objs)
    failed = sum(o.status == "failed" for o in objs)
    lines += [
        "## Totals",
        "",
        f"- **Objectives:** {done} completed, {failed} failed, "
        f"{len(objs) - done - failed} not finished (of {len(objs)})",
        f"- **Files modified:** {len(view.files_modified())}",
    ]
    usage = _usage(
        sum(o.input_tokens for o in objs),
        sum(o.output_tokens for o in objs),
        sum(o.cost_usd for o in objs),
    )
    if usage:
        lines.append(f"- **Usage:** {usage}")
    message = view.commit_message or commit_message(view)
    lines += ["", "## Commit Message", "", fenced(message, "text")]
    return document(lines)


# --- commit message -----------------------------------------------------------------


def _subject(prefix: str, request: str, session_id: str) -> str:
    text = " ".join(request.split()) or f"ap session {session_id}"
    room = SUBJECT_MAX - len(prefix)
    if len(text) > room:
        cut = text[: room + 1].rsplit(" ", 1)[0] if " " in text[: room + 1] else ""
        text = (cut or text[:room]).rstrip(" ,;:-")
    return prefix + (text.rstrip(".") or f"ap session {session_id}")


def _wrap(text: str, indent: str = "", subsequent: str = "") -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()),
        width=BODY_WIDTH,
        initial_indent=indent,
        subsequent_indent=subsequent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def commit_message(view: SessionView, *, co_authors: Iterable[str] = ()) -> str:
    """Return the conventional-commit message of the session's changes.

    Shape: ``<type>: <request>`` (at most ``SUBJECT_MAX`` characters, shortened at a word
    boundary), a blank line, a paragraph (the full request when the subject had to shorten
    it; the summary of a completed session, or why it failed or was cancelled; else how
    many objectives completed), "Objectives completed:" / "Objectives failed:" lists,
    ``Modified files: N`` and ``Session: <id>``. Body lines are wrapped at ``BODY_WIDTH`` columns
    (a single word longer than that stays whole). The type comes from the analysis's
    task type (``COMMIT_TYPES``), "chore" without one.

    Args:
        view: the session.
        co_authors: ``"Name <email>"`` of agents known to have written the changes; each
            becomes a ``Co-authored-by:`` trailer. None is added otherwise.
    """
    kind = COMMIT_TYPES.get(view.analysis.task_type, "chore") if view.analysis else "chore"
    subject = _subject(f"{kind}: ", view.request, view.session_id)
    request = " ".join(view.request.split())
    objs = list(view.objectives.values())
    done = [o for o in objs if o.status == "completed"]
    failed = [o for o in objs if o.status == "failed"]
    paragraphs = [request] if request and subject != f"{kind}: {request.rstrip('.')}" else []
    if view.status == "completed" and view.summary.strip():
        paragraphs.append(view.summary)
    elif view.status in ("failed", "cancelled"):
        paragraphs.append(f"Session {view.status}: {view.reason or 'no reason given'}")
    if not paragraphs:
        waves = _plural(len(view.wave_numbers()), "wave")
        paragraphs.append(f"{len(done)} of {len(objs)} objectives completed in {waves}.")
    lines = [subject, ""]
    for paragraph in paragraphs:
        lines += [*_wrap(paragraph), ""]
    if done:
        lines.append("Objectives completed:")
        for o in done:
            n = _plural(len(o.files_modified), "file")
            lines += _wrap(f"{o.objective.title} ({n})", "- ", "  ")
    else:
        lines.append("Objectives completed: none")
    if failed:
        lines += ["", "Objectives failed:"]
        for o in failed:
            why = f": {o.reason}" if o.reason else ""
            lines += _wrap(f"{o.objective.title}{why}", "- ", "  ")
    lines += ["", f"Modified files: {len(view.files_modified())}", f"Session: {view.session_id}"]
    trailers = [f"Co-authored-by: {' '.join(a.split())}" for a in co_authors if a.strip()]
    if trailers:
        lines += ["", *trailers]
    return "\n".join(lines) + "\n"


# --- files --------------------------------------------------------------------------

RENDERERS: dict[str, Callable[[SessionView], str]] = {
    "analysis": render_analysis,
    "plan": render_plan,
    "accomplishment": render_accomplishment,
}


def report_dir(state_dir: Path, kind: ReportKind) -> Path:
    """Return the folder of a kind of report: ``<state_dir>/docs/<analyses|plans|accomplishments>``.

    Raises:
        ValueError: ``kind`` is not a report kind.
    """
    if kind not in _DIRS:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {sorted(_DIRS)}")
    return Path(state_dir) / "docs" / _DIRS[kind][0]


def report_path(state_dir: Path, view: SessionView, kind: ReportKind) -> Path:
    """Return where a session's report of ``kind`` goes (the same path every time).

    Name: ``<PREFIX>_<yyyymmdd_HHMMSS of submitted_at, UTC>_<session id>.md``, e.g.
    ``PLAN_20260101_000000_01JGX.md`` (``19700101_000000`` while the submission time is
    unknown); characters of the session id outside
    ``[A-Za-z0-9._-]`` become ``_`` so the name cannot leave the folder.
    """
    folder = report_dir(state_dir, kind)
    stamp = datetime.fromtimestamp(view.submitted_at, UTC).strftime("%Y%m%d_%H%M%S")
    # Always behind a prefix, so even ".." stays one harmless name inside the folder.
    sid = re.sub(r"[^A-Za-z0-9._-]", "_", view.session_id)
    return folder / f"{_DIRS[kind][1]}_{stamp}_{sid}.md"


def write_report(state_dir: Path, view: SessionView, kind: ReportKind) -> Path:
    """Render a report and write it to :func:`report_path` atomically.

    The folder is created if needed; the text goes to a temporary file in the same
    folder, is fsynced, then renamed over the target (``os.replace``), so a reader sees
    the old report or the new one, never a part. Writing again replaces the file.

    The view's text is redacted first with the secret variables of this process's
    environment (:mod:`ap_actors.redaction`): the events the workers emit are redacted
    already; this also covers other actors' (a planner agent's error output) and logs
    written before redaction existed.

    Returns:
        The path written.

    Raises:
        OSError: the folder or the file cannot be written (the temporary file is removed).
    """
    path = report_path(state_dir, view, kind)
    data = RENDERERS[kind](_environment_redactor().event(view)).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would stick to the report; O_EXCL keeps the name ours.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@functools.cache
def _environment_redactor() -> Redactor:
    """The redactor of this process's environment, built once."""
    return Redactor.from_env(os.environ)
