"""The reporter actor: the analysis, coordination plan and accomplishment reports.

Source: ``DESIGN.md``, "Processes"; seed 003, "Generated Documentation". It folds every
session (:mod:`ap_actors.projections`) and writes the markdown reports of
:mod:`ap_actors.reports` under ``<state dir>/docs/{analyses,plans,accomplishments}/``
(never inside the target repository):

- the analysis report on ``analysis_completed``;
- the coordination plan when the current plan is validated, approved or rejected;
- the accomplishment report, with the commit message, when the session ends, and again
  for each ``transcript_read`` that arrives after the end (a log monitor can still be
  reading an objective's last lines when the session ends).

Each write is followed by ``report_written`` (kind, path), with an id derived from the
session, the kind and the event that triggered it, so a restarted reporter that writes a
report again appends nothing twice. On recovery it writes the reports of sessions that
ended while it was down. ``ap report SESSION`` renders the same reports from the log
alone.
"""

from __future__ import annotations

import asyncio

from ap_actors.actors.sessions import SessionsActor
from ap_actors.events import (
    AnalysisCompleted,
    PlanApproved,
    PlanAwaitingApproval,
    PlanRejected,
    Record,
    ReportWritten,
    ScopeValidated,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    derive_id,
)
from ap_actors.projections import SessionView
from ap_actors.reports import ReportKind, write_report


class Reporter(SessionsActor):
    """Writes each session's three reports (module docstring)."""

    topics = ()  # every event: the accomplishment report counts the workers' activity

    async def on_recovered(self) -> None:
        for view in list(self.state.views.values()):
            if view.ended and "accomplishment" not in view.reports:
                if view.analysis is not None and "analysis" not in view.reports:
                    await self._write(view, "analysis", "recovered")
                if view.plan_id and "plan" not in view.reports:
                    await self._write(view, "plan", "recovered")
                await self._write(view, "accomplishment", "recovered")

    async def react(self, record: Record) -> None:
        event = record.event
        view = self.state.views.get(event.session_id) if event.session_id else None
        if view is None:
            return
        match event:
            case AnalysisCompleted():
                await self._write(view, "analysis", event.id)
            case ScopeValidated() | PlanAwaitingApproval() | PlanApproved() | PlanRejected():
                await self._write(view, "plan", event.id)
            case SessionCompleted() | SessionFailed() | SessionCancelled():
                if view.plan_id:
                    await self._write(view, "plan", event.id)
                await self._write(view, "accomplishment", event.id)
            case TranscriptRead() if view.ended:
                # The last activities of an objective can land after the session ended.
                await self._write(view, "accomplishment", event.id)

    async def _write(self, view: SessionView, kind: ReportKind, trigger: str) -> None:
        path = await asyncio.to_thread(write_report, self.state_dir, view, kind)
        await self.emit(
            ReportWritten(
                id=derive_id(view.session_id, self.name, f"{kind}:{trigger}"),
                session_id=view.session_id,
                kind=kind,
                path=str(path),
            )
        )
