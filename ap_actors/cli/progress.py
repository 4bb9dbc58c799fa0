"""Terminal progress of a session: a live rich view, milestone lines, or nothing.

``ap submit --wait`` feeds every record of its session to :meth:`Progress.update`. On a
terminal it redraws (at most 8 times a second) the phase, the waves, each objective with
its worker, status and attempt, and the latest activity of each worker. Elsewhere (a
pipe, a CI log) it prints one line per milestone: phase changes, waves, objective
results, scope violations, reports.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ap_actors.events import (
    MergeConflicted,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    Record,
    ReportWritten,
    ScopeValidated,
    ScopeViolated,
    WaveMerged,
    WaveStarted,
)
from ap_actors.projections import SessionView, apply

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "assigned": "cyan",
    "pending": "dim",
    "merged": "green",
}


class Progress:
    """Folds a session's records and shows them (module docstring)."""

    def __init__(self, session_id: str, *, live: bool, quiet: bool = False) -> None:
        self.view = SessionView(session_id=session_id)
        self.live = live
        self.quiet = quiet
        self.console = Console()
        self._live: Live | None = None
        self._status = ""
        self._reports: set[str] = set()
        self._last_draw = 0.0

    def __enter__(self) -> Progress:
        if self.live:
            self._live = Live(self.render(), console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.__exit__(exc_type, exc, tb)

    def update(self, record: Record) -> None:
        """Fold one record of the session and show what changed."""
        apply(self.view, record.event, record.seq)
        if self._live is not None:
            now = time.monotonic()
            if now - self._last_draw >= 0.125 or self.view.ended:
                self._live.update(self.render(), refresh=True)
                self._last_draw = now
        elif not self.quiet:
            line = self._milestone(record)
            if line:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    def _milestone(self, record: Record) -> str:
        lines = [self._phase(), self._event_line(record)]
        return "\n".join(line for line in lines if line)

    def _phase(self) -> str:
        v = self.view
        if v.status == self._status:
            return ""
        self._status = v.status
        extra = ""
        if v.status == "awaiting_approval":
            extra = f" (approve with: ap approve {v.session_id})"
        elif v.ended:
            extra = f": {v.summary or v.reason}"
        return f"[{v.status}]{extra}"

    def _event_line(self, record: Record) -> str:
        e = record.event
        match e:
            case ScopeValidated():
                return f"  scopes of {e.plan_id}: {'valid' if e.valid else 'CONFLICTS'}"
            case WaveStarted():
                return f"  wave {e.wave} started: {', '.join(e.objective_ids)}"
            case ObjectiveAssigned():
                return f"    {e.objective_id} -> {e.worker_id} (attempt {e.attempt})"
            case ObjectiveCompleted():
                return f"    {e.objective_id} completed: {len(e.files_modified)} files changed"
            case ObjectiveFailed():
                return f"    {e.objective_id} FAILED: {e.reason}"
            case ScopeViolated():
                return f"    {e.objective_id} SCOPE VIOLATED ({e.rule}): {', '.join(e.paths[:5])}"
            case WaveMerged():
                return f"  wave {e.wave} merged into {e.branch} at {e.commit[:10]}"
            case MergeConflicted():
                return f"  merge of {e.objective_id} CONFLICTED on {', '.join(e.paths)}"
            case ReportWritten() if e.path not in self._reports:
                self._reports.add(e.path)
                return f"  {e.kind} report: {e.path}"
        return ""

    # --- rendering ------------------------------------------------------------------

    def render(self) -> Any:
        """Return the rich renderable of the current view."""
        return render_view(self.view)

    def print_view(self, view: SessionView) -> None:
        """Print a view once (``ap show``)."""
        self.console.print(render_view(view, feed=5))


def render_view(v: SessionView, feed: int = 1) -> Any:
    """The rich renderable of a session view: header, objectives, workers."""
    head = Text()
    head.append(f"session {v.session_id}  ", style="bold")
    head.append(v.status, style=_STATUS_STYLE.get(v.status, "bold"))
    head.append(f"  {v.duration_s(time.time() if not v.ended else None):.0f}s\n")
    head.append(f"request: {v.request}\nrepo: {v.repo}")
    if v.analysis is not None:
        head.append(f"\ntask type: {v.analysis.task_type}")
    if v.waves:
        waves = "  ".join(f"W{n}:{w.status}" for n, w in v.waves.items())
        head.append(f"\nwaves: {waves}")
    if v.reason:
        head.append(f"\nreason: {v.reason}", style="red" if v.status == "failed" else "")
    parts: list[Any] = [head]
    if v.objectives:
        table = Table(title=f"plan {v.plan_id}", expand=False)
        for col in ("objective", "wave", "worker", "status", "try", "files", "scope"):
            table.add_column(col)
        for o in v.objectives.values():
            table.add_row(
                f"{o.objective.id} {o.objective.title}"[:60],
                str(o.objective.wave),
                o.worker_id or "-",
                Text(o.status, style=_STATUS_STYLE.get(o.status, "")),
                str(o.attempt),
                str(len(o.files_modified)),
                ", ".join(o.objective.scope_touch)[:40],
            )
        parts.append(table)
    if v.workers:
        table = Table(title="workers", expand=False)
        for col in ("worker", "status", "done", "failed", "activities", "latest"):
            table.add_column(col)
        for w in v.workers.values():
            latest = " | ".join(f"{a.activity_type}: {a.description}"[:70] for a in w.feed[-feed:])
            table.add_row(
                w.worker_id,
                w.status,
                str(w.tasks_completed),
                str(w.tasks_failed),
                str(w.activities),
                latest,
            )
        parts.append(table)
    if v.reports:
        parts.append(Text("\n".join(f"{k} report: {p}" for k, p in v.reports.items())))
    return Group(*parts)
