"""A base for actors whose state is every session's view (:class:`Sessions`).

The worker, the reporter and the broadcaster fold the same read model as the CLI
(:mod:`ap_actors.projections`); this base gives them its ``initial_state`` and
``apply`` so the fold is written once, and snapshots of it (:mod:`ap_actors.snapshots`):
the reporter's and the broadcaster's fold every event of the log, the biggest states of
the mesh.
"""

from __future__ import annotations

from collections.abc import Iterable

from ap_actors.actor import Actor
from ap_actors.errors import SequenceError
from ap_actors.events import Event, Record
from ap_actors.projections import Sessions, SessionView, apply


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

    def _fold_many(self, records: Iterable[Record]) -> None:
        # The base's loop with apply_record and Sessions.apply inlined (same fold, same
        # seq check): a rebuild folds a million records here, and those two calls per
        # record were a tenth of the fold. A subclass's own apply_record gets the base's.
        if type(self).apply_record is not SessionsActor.apply_record:
            super()._fold_many(records)
            return
        views, last = self.state.views, self.last_seq
        try:
            for record in records:
                seq = record.seq
                if seq <= last:
                    raise SequenceError(f"{self.name}: record {seq} folded after {last}")
                event = record.event
                sid = event.session_id
                if sid:
                    view = views.get(sid)
                    if view is None:
                        view = views[sid] = SessionView(session_id=sid)
                    apply(view, event, seq)
                last = seq
        finally:
            self.last_seq = last
