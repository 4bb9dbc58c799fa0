"""An actor with snapshots, run in-process or by the supervisor in the snapshot tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from ap_actors.actors.sessions import SessionsActor
from ap_actors.events import Record, WorkerError, WorkerMetrics


class SessionsKeeper(SessionsActor):
    """Folds every session (:class:`~ap_actors.projections.Sessions`, snapshots on) and
    answers each live ``worker_error`` with a ``worker_metrics`` carrying the worker's
    error count in that session.

    ``reacted`` lists the ids of the events this incarnation reacted to. With
    ``options["state_file"]`` it writes ``{"last_seq", "snapshot_seq", "reacted",
    "state"}`` (JSON, written atomically) after recovery and before each reaction's emit,
    so a test that sees the reaction on the bus can read what the actor had then.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reacted: list[str] = []

    async def on_recovered(self) -> None:
        self._dump()

    async def react(self, record: Record) -> None:
        event = record.event
        if isinstance(event, WorkerError):
            self.reacted.append(event.id)
            self._dump()
            errors = self.state.views[event.session_id].workers[event.worker_id].errors
            await self.emit(WorkerMetrics(worker_id=event.worker_id, tasks_failed=errors))

    def _dump(self) -> None:
        if "state_file" not in self.options:
            return
        path = Path(self.options["state_file"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "last_seq": self.last_seq,
                    "snapshot_seq": self.snapshot_seq,
                    "reacted": self.reacted,
                    "state": msgspec.to_builtins(self.state),
                }
            )
        )
        os.replace(tmp, path)
