"""The actor whose memory ``make bench`` measures, alone in its module.

The actor process imports this module (``benchmarks.idle_actor:IdleActor``, with
``scripts/`` on ``PYTHONPATH``): it must import nothing but the package, so that the RSS
measured is the actor's and not the bench's.
"""

from __future__ import annotations

from ap_actors.actor import Actor
from ap_actors.events import Event


class IdleActor(Actor[int]):
    """The smallest useful actor: counts worker errors, reacts to nothing."""

    topics = ("worker_error",)

    def initial_state(self) -> int:
        return 0

    def apply(self, state: int, event: Event) -> int:
        return state + 1
