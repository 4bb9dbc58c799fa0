"""Fixtures shared by the test suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ap_actors.events import Event, WorkerActivity


@pytest.fixture
def make_event() -> Callable[..., Event]:
    """Return a factory of valid, fully stamped events (what the journal accepts).

    ``make_event("e1")`` is a ``WorkerActivity`` with id ``"e1"``; keyword arguments
    override fields, and ``cls=`` with the class's required fields builds another type:
    ``make_event("e2", cls=PlanApproved, plan_id="p1", by="owner")``.
    """

    def make(event_id: str, *, cls: type[Event] = WorkerActivity, **fields: Any) -> Event:
        if cls is WorkerActivity:
            fields.setdefault("worker_id", "worker-1")
            fields.setdefault("description", f"activity {event_id}")
        fields.setdefault("ts", 1_767_225_600.0)
        fields.setdefault("source", "test")
        return cls(id=event_id, **fields)

    return make
