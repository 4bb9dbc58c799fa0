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

Every event is redacted before it leaves (:mod:`ap_actors.redaction`): the values of the
secret variables of the agent's environment (the monitor's, which the worker's agent
inherits, plus the worker's ``env``) become ``[redacted:NAME]`` in the descriptions,
commands, paths and errors an agent prints.

Events leave through an :class:`Outbox`: the tail does not wait for each event's
append; what piles up while one batch is in flight goes to the journal as the next
batch, in order. An agent printing 1,000 lines/s is thus read at the rate it writes,
not at one fsync per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
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
from ap_actors.redaction import Redactor
from ap_actors.tailing import tail_lines
from ap_actors.team import WorkerSpec

log = logging.getLogger(__name__)


class Outbox:
    """Emits events in their order, batching those that pile up while a batch is in flight.

    Args:
        emit_many: appends a list of events and returns when they are durable
            (:meth:`ap_actors.emitter.Emitter.emit_many`).
        limit: events held before :meth:`put` waits (back-pressure on the reader).

    An append that fails makes every later :meth:`put` and :meth:`flush` raise that
    error (the events after it are not sent: the tail fails as it did event by event).
    """

    def __init__(
        self, emit_many: Callable[[list[Event]], Awaitable[object]], limit: int = 4096
    ) -> None:
        self._emit_many = emit_many
        self._limit = limit
        self._pending: list[Event] = []
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def put(self, event: Event) -> None:
        """Queue ``event``; wait while ``limit`` events are already queued.

        Raises:
            Exception: the error of an earlier failed append.
        """
        while len(self._pending) >= self._limit and self._error is None:
            self._space.clear()
            await self._space.wait()
        if self._error is not None:
            raise self._error
        self._pending.append(event)
        self._idle.clear()
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="log-monitor-outbox")

    async def flush(self) -> None:
        """Return once every queued event is appended.

        Raises:
            Exception: the error of a failed append.
        """
        await self._idle.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Stop sending; events still queued are dropped (a restart re-reads them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                self._space.set()
                try:
                    await self._emit_many(batch)
                except Exception as e:
                    self._error = e
                    self._pending.clear()
                    self._space.set()
                    self._idle.set()
                    return
            self._idle.set()


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
        self.redactor = Redactor.from_env(os.environ, self.spec.env)
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

    async def emit(self, event: Event, *, cause: Event | None = None) -> int:
        """Append ``event`` with the agent's secrets redacted (module docstring)."""
        return await super().emit(self.redactor.event(event), cause=cause)

    async def _emit_many(self, events: list[Event]) -> object:
        """The outboxes' append: a batch, redacted."""
        return await self.emitter.emit_many(self.redactor.events(events))

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
        parser = self.adapter.parser(started.workdir or None)
        key = f"{started.session_id}:{started.objective_id}:{started.attempt}"
        lines = 0
        outbox = Outbox(self._emit_many)
        try:
            async for line in tail_lines(Path(path), stop=stop):
                lines += 1
                where = f"{line.generation}:{line.number}"
                await self._emit_all(outbox, started, key, where, parser.feed(line.text))
            await self._emit_all(outbox, started, key, "end", parser.finish())
            await outbox.flush()
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
            await outbox.close()
            self.tails.pop(path, None)
            if self.current is started:
                self.current = None

    async def _emit_all(
        self,
        outbox: Outbox,
        started: ObjectiveStarted,
        key: str,
        where: str,
        activities: list[Activity],
    ) -> None:
        for n, a in enumerate(activities):
            base = derive_id(key, self.name, f"{where}:{n}")
            await outbox.put(self._activity(a, started, id=base))
            if a.activity_type == "error":
                await outbox.put(
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
        outbox = Outbox(self._emit_many)
        try:
            async for line in tail_lines(path, from_start=False):
                for a in parser.feed(line.text):
                    await outbox.put(self._activity(a, self.current))
        finally:
            await outbox.close()

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
