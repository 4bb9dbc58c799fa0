"""Actors used by the tests: small but real, run by the supervisor as OS processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ap_actors.actor import Actor
from ap_actors.events import Event, Record, WorkerActivity, WorkerError, WorkerMetrics


class Counter(Actor[dict[str, Any]]):
    """Folds worker activity and errors per worker; answers each live ``worker_error``
    with a ``worker_metrics`` carrying the worker's failure count.

    Its state is written to ``options["state_file"]`` (JSON ``{"last_seq", "state"}``)
    after recovery and after every reaction, so tests can compare states across restarts.
    """

    topics = ("worker_",)

    def initial_state(self) -> dict[str, Any]:
        return {"activities": {}, "errors": {}, "metrics_seen": 0}

    def apply(self, state: dict[str, Any], event: Event) -> dict[str, Any]:
        match event:
            case WorkerActivity(worker_id=worker):
                state["activities"][worker] = state["activities"].get(worker, 0) + 1
            case WorkerError(worker_id=worker):
                state["errors"][worker] = state["errors"].get(worker, 0) + 1
            case WorkerMetrics():
                state["metrics_seen"] += 1
        return state

    async def on_recovered(self) -> None:
        self._dump()

    async def react(self, record: Record) -> None:
        match record.event:
            case WorkerError(worker_id=worker):
                self._dump()
                await self.emit(
                    WorkerMetrics(worker_id=worker, tasks_failed=self.state["errors"][worker])
                )
            case WorkerMetrics():
                self._dump()

    def _dump(self) -> None:
        path = Path(self.options["state_file"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_seq": self.last_seq, "state": self.state}))
        os.replace(tmp, path)


class CrashOnError(Actor[int]):
    """Exits with an exception on every live ``worker_error`` whose text is ``crash``."""

    topics = ("worker_error",)

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Event) -> int:
        return state + 1

    async def react(self, record: Record) -> None:
        if isinstance(record.event, WorkerError) and record.event.error == "crash":
            raise RuntimeError("crash requested by the test")
