"""The log monitor actor: turns its worker's transcript into activity events, live.

Source: ``DESIGN.md``, "Processes" and "Workers and agents"; seed 001, "MONITOR" and
"PARSE". One per worker of the team (``log_monitor.<id>``). On ``objective_started`` of
its worker it tails the objective's transcript (:func:`ap_actors.tailing.tail_lines`:
inotify, survives truncation and rotation) through the worker's adapter parser
(:mod:`ap_actors.agents`) and emits one ``worker_activity`` per parsed activity, plus a
``worker_error`` for each error; when the objective ends (``objective_completed`` /
``objective_failed``) it reads the transcript to its end, then emits ``transcript_read``:
every activity of that attempt is in the log before it.

Each activity's id derives from (session, objective, attempt, line generation, line
number, index), so a monitor that restarts and reads a transcript again appends nothing
twice: on recovery it re-reads every transcript without a ``transcript_read``, also
those whose objective ended while it was down.

Extra agent log files of the worker (``log_paths`` in the team file) are tailed from
their end for as long as the monitor runs; their lines are attributed to the objective
the worker is running at the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from ap_actors.actor import Actor
from ap_actors.agents import get_adapter
from ap_actors.agents.base import Activity
from ap_actors.events import (
    Event,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    Record,
    TranscriptRead,
    WorkerActivity,
    WorkerError,
    derive_id,
)
from ap_actors.tailing import tail_lines
from ap_actors.team import WorkerSpec

log = logging.getLogger(__name__)


class MonitorState(msgspec.Struct):
    unread: dict[str, ObjectiveStarted] = {}  # transcript path -> its objective, not read to end
    ended: set[str] = set()  # transcripts in `unread` whose objective attempt has ended


class LogMonitor(Actor[MonitorState]):
    """Tails one worker's transcripts and agent logs (module docstring)."""

    topics = ("objective_started", "objective_completed", "objective_failed", "transcript_read")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spec = msgspec.convert(self.options["worker"], WorkerSpec)
        self.worker_id = self.spec.id
        self.adapter = get_adapter(self.spec.agent)
        self.tails: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.current: ObjectiveStarted | None = None
        self.extra: list[asyncio.Task[None]] = []

    def initial_state(self) -> MonitorState:
        return MonitorState()

    def apply(self, state: MonitorState, event: Event) -> MonitorState:
        match event:
            case ObjectiveStarted(worker_id=w) if w == self.worker_id:
                state.unread[event.transcript] = event
            case ObjectiveCompleted(worker_id=w) | ObjectiveFailed(worker_id=w) if (
                w == self.worker_id
            ):
                state.ended.update(self._transcripts_of(state, event))
            case TranscriptRead(worker_id=w) if w == self.worker_id:
                state.unread.pop(event.transcript, None)
                state.ended.discard(event.transcript)
        return state

    @staticmethod
    def _transcripts_of(
        state: MonitorState, event: ObjectiveCompleted | ObjectiveFailed
    ) -> list[str]:
        """The unread transcripts of the objective an end event is about."""
        return [
            path
            for path, started in state.unread.items()
            if (started.session_id, started.objective_id) == (event.session_id, event.objective_id)
        ]

    async def on_recovered(self) -> None:
        # Transcripts not read to their end: read them again (ids make that idempotent);
        # those whose objective ended while this monitor was down are read to EOF now.
        for path, started in self.state.unread.items():
            self._start_tail(started, ended=path in self.state.ended)
        for raw in self.spec.log_paths:
            self.extra.append(asyncio.create_task(self._tail_extra(Path(raw).expanduser())))

    async def react(self, record: Record) -> None:
        event = record.event
        match event:
            case ObjectiveStarted(worker_id=w) if w == self.worker_id:
                self._start_tail(event)
            case ObjectiveCompleted(worker_id=w) | ObjectiveFailed(worker_id=w) if (
                w == self.worker_id
            ):
                for path in self._transcripts_of(self.state, event):
                    if path in self.tails:
                        self.tails[path][1].set()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        try:
            await super().run(ready)
        finally:
            tasks = [t for t, _ in self.tails.values()] + self.extra
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    # --- tailing --------------------------------------------------------------------

    def _start_tail(self, started: ObjectiveStarted, *, ended: bool = False) -> None:
        if not started.transcript or started.transcript in self.tails:
            return
        self.current = None if ended else started
        stop = asyncio.Event()
        if ended:
            stop.set()
        task = asyncio.create_task(self._tail_transcript(started, stop))
        self.tails[started.transcript] = (task, stop)

    async def _tail_transcript(self, started: ObjectiveStarted, stop: asyncio.Event) -> None:
        path = started.transcript
        parser = self.adapter.parser()
        key = f"{started.session_id}:{started.objective_id}:{started.attempt}"
        lines = 0
        try:
            async for line in tail_lines(Path(path), stop=stop):
                lines += 1
                where = f"{line.generation}:{line.number}"
                await self._emit_all(started, key, where, parser.feed(line.text))
            await self._emit_all(started, key, "end", parser.finish())
            await self.emit(
                TranscriptRead(
                    id=derive_id(key, self.name, "read"),
                    session_id=started.session_id,
                    objective_id=started.objective_id,
                    worker_id=self.worker_id,
                    attempt=started.attempt,
                    transcript=path,
                    lines=lines,
                )
            )
        except Exception:
            log.exception("tailing failed", extra={"transcript": path})
            raise
        finally:
            self.tails.pop(path, None)
            if self.current is started:
                self.current = None

    async def _emit_all(
        self, started: ObjectiveStarted, key: str, where: str, activities: list[Activity]
    ) -> None:
        for n, a in enumerate(activities):
            base = derive_id(key, self.name, f"{where}:{n}")
            await self.emit(self._activity(a, started, id=base))
            if a.activity_type == "error":
                await self.emit(
                    WorkerError(
                        id=derive_id(base, self.name, "error"),
                        session_id=started.session_id,
                        worker_id=self.worker_id,
                        objective_id=started.objective_id,
                        error=a.description,
                    )
                )

    async def _tail_extra(self, path: Path) -> None:
        parser = self.adapter.parser()
        async for line in tail_lines(path, from_start=False):
            for a in parser.feed(line.text):
                await self.emit(self._activity(a, self.current))

    def _activity(
        self, a: Activity, started: ObjectiveStarted | None, id: str = ""
    ) -> WorkerActivity:
        """The event of a parsed activity of the objective run ``started`` (None: none)."""
        return WorkerActivity(
            id=id,
            session_id=started.session_id if started else "",
            worker_id=self.worker_id,
            objective_id=started.objective_id if started else "",
            activity_type=a.activity_type,
            tool_name=a.tool_name,
            description=a.description,
            file_path=a.file_path,
            exit_code=a.exit_code,
        )
