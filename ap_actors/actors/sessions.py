"""A base for actors whose state is every session's view (:class:`Sessions`).

The worker, the reporter and the broadcaster fold the same read model as the CLI
(:mod:`ap_actors.projections`); this base gives them its ``initial_state`` and
``apply`` so the fold is written once, and snapshots of it (:mod:`ap_actors.snapshots`):
the reporter's and the broadcaster's fold every event of the log, the biggest states of
the mesh.
"""

from __future__ import annotations

from ap_actors.actor import Actor
from ap_actors.events import Event, Record
from ap_actors.projections import Sessions


class SessionsActor(Actor[Sessions]):
    """An actor whose state is :class:`Sessions`, folded from its topics."""

    # Bump when Sessions, its views or their fold change in a way that old snapshots
    # would not reproduce (a new field with a default is fine: it decodes as the default
    # only if a fold from zero would also leave the default; otherwise bump).
    snapshot_version = 1

    def initial_state(self) -> Sessions:
        return Sessions()

    def apply(self, state: Sessions, event: Event) -> Sessions:
        state.apply(event)
        return state

    def apply_record(self, state: Sessions, record: Record) -> Sessions:
        state.apply(record.event, record.seq)  # the views keep seqs (feeds, last_seq)
        return state
