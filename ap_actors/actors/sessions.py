"""A base for actors whose state is every session's view (:class:`Sessions`).

The worker and the reporter fold the same read model as the CLI
(:mod:`ap_actors.projections`); this base gives them its ``initial_state`` and
``apply`` so the fold is written once.
"""

from __future__ import annotations

from ap_actors.actor import Actor
from ap_actors.events import Event, Record
from ap_actors.projections import Sessions


class SessionsActor(Actor[Sessions]):
    """An actor whose state is :class:`Sessions`, folded from its topics."""

    def initial_state(self) -> Sessions:
        return Sessions()

    def apply(self, state: Sessions, event: Event) -> Sessions:
        state.apply(event)
        return state

    def apply_record(self, state: Sessions, record: Record) -> Sessions:
        state.apply(record.event, record.seq)  # the views keep seqs (feeds, last_seq)
        return state
