"""The actor base: state as a pure fold over events, reactions only to live events.

Source: ``DESIGN.md``, "State". An actor process runs one :class:`Actor`:

1. **Recovery.** It subscribes to its topics and folds the whole matching history up
   to the log's last seq (``apply`` only, no reactions), checking that seq increases.
2. **Resume.** :meth:`Actor.on_recovered` runs once with the rebuilt state: the place to
   resume work that was in flight when the previous incarnation died.
3. **Live.** Each later record is folded, then :meth:`Actor.react` runs. Events emitted
   while reacting get ids derived from their cause (:func:`~ap_actors.events.derive_id`),
   so reacting again after a restart appends nothing twice.

If ``react`` raises, the traceback is logged and the process exits with code 1; the
supervisor restarts it, and the event that caused the crash is then history, not
reacted to again (no crash loop on a poison event). SIGTERM/SIGINT stop it cleanly:
emits already awaited finish, sockets close, exit code 0.

Run as a process (the supervisor does this): ``python -m ap_actors.actor --name NAME
--class package.module:Class --state-dir DIR [--config F] [--ready-fd N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
import uvloop

from ap_actors.bus import Emitter, Subscriber
from ap_actors.config import load_config, resolve_state_dir
from ap_actors.errors import ApError, ConfigError, SequenceError
from ap_actors.events import Event, Record, derive_id
from ap_actors.logs import setup_logging
from ap_actors.mesh import MeshInfo, read_mesh
from ap_actors.process import die_with_parent, signal_ready

S = TypeVar("S")

log = logging.getLogger(__name__)

_MAX_TRACKED_CAUSES = 10_000  # reaction counters kept per cause id (LRU)


class Actor(Generic[S]):
    """Base class of every actor but the journal.

    Subclasses set :attr:`topics` and implement :meth:`initial_state` and :meth:`apply`;
    most also implement :meth:`react` and :meth:`on_recovered`.

    Args:
        name: the actor's name in the config (``worker-1``); its ``source`` on events.
        mesh: the running mesh (endpoints, log path).
        state_dir: the mesh's state directory.
        options: the ``options`` table of the actor's config.
    """

    topics: ClassVar[tuple[str, ...]] = ()
    """Event type prefixes this actor folds and reacts to; empty = every event."""

    def __init__(
        self,
        name: str,
        mesh: MeshInfo,
        state_dir: Path,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.mesh = mesh
        self.state_dir = state_dir
        self.options = dict(options or {})
        self.state: S = self.initial_state()
        self.last_seq = 0  # seq of the last record folded
        self.recovered = False
        self.emitter = Emitter(mesh.ingest, source=name)
        self._cause: Event | None = None
        self._reactions: OrderedDict[str, int] = OrderedDict()
        self._subscriber: Subscriber | None = None
        self._ready: Callable[[], None] | None = None

    # --- to implement ---------------------------------------------------------------

    def initial_state(self) -> S:
        """Return the state before any event."""
        raise NotImplementedError

    def apply(self, state: S, event: Event) -> S:
        """Return the state after ``event``: a pure fold, no I/O, no emits.

        May mutate and return ``state`` for speed, as long as the result depends only on
        the state and the event.
        """
        raise NotImplementedError

    async def react(self, record: Record) -> None:
        """Act on a live record (after it was applied); emit with :meth:`emit`."""

    async def on_recovered(self) -> None:
        """Resume in-flight work once the history is folded (called once per start)."""

    def ready_info(self) -> dict[str, Any]:
        """Extra fields of the ready line the supervisor reads (e.g. a bound URL)."""
        return {}

    # --- services -------------------------------------------------------------------

    async def emit(self, event: Event, *, cause: Event | None = None) -> int:
        """Append ``event`` and return its seq.

        Inside :meth:`react` the cause defaults to the record being reacted to. With a
        cause and no ``id``, the id is derived from (cause id, actor name, n), n counting
        this actor's emits for that cause from 0, and an empty ``session_id`` is taken
        from the cause. Without a cause the event keeps its id (a new ULID if empty).

        Raises:
            RejectedError: the journal refused the event.
        """
        cause = cause if cause is not None else self._cause
        if cause is not None:
            changes: dict[str, Any] = {}
            if not event.id:
                index = self._reactions.get(cause.id, 0)
                self._reactions[cause.id] = index + 1
                self._reactions.move_to_end(cause.id)
                if len(self._reactions) > _MAX_TRACKED_CAUSES:
                    self._reactions.popitem(last=False)
                changes["id"] = derive_id(cause.id, self.name, index)
            if not event.session_id and cause.session_id:
                changes["session_id"] = cause.session_id
            if changes:
                event = msgspec.structs.replace(event, **changes)
        return await self.emitter.emit(event)

    # --- the loop -------------------------------------------------------------------

    def fold(self, record: Record) -> None:
        """Apply one record to :attr:`state`, checking that seq increases.

        Raises:
            SequenceError: ``record.seq`` is not above the last folded seq.
        """
        if record.seq <= self.last_seq:
            raise SequenceError(f"{self.name}: record {record.seq} folded after {self.last_seq}")
        self.state = self.apply_record(self.state, record)
        self.last_seq = record.seq

    def apply_record(self, state: S, record: Record) -> S:
        """Fold a whole record (event and seq); the default folds ``record.event`` with
        :meth:`apply`. Override it when the state keeps seq numbers."""
        return self.apply(state, record.event)

    async def _caught_up(self, head: int) -> None:
        self.recovered = True
        log.info("recovered", extra={"head": head, "folded_to": self.last_seq})
        await self.on_recovered()
        if self._ready is not None:
            self._ready()

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Recover, resume, then fold and react to live events until cancelled.

        Args:
            ready: called (no arguments) once recovery and :meth:`on_recovered` are done.
        """
        self._ready = ready
        # The log files when this machine has them, else the journal's replay endpoint.
        subscriber = Subscriber.connect(
            mesh=self.mesh,
            topics=self.topics,
            since=self.last_seq,
            on_caught_up=self._caught_up,
        )
        self._subscriber = subscriber
        try:
            async for record in subscriber:
                self.fold(record)
                if self.recovered:
                    self._cause = record.event
                    try:
                        await self.react(record)
                    finally:
                        self._cause = None
        finally:
            await subscriber.close()
            await self.emitter.close()


# --- process entry point ------------------------------------------------------------


def load_actor_class(spec: str) -> type[Actor[Any]]:
    """Import ``"package.module:Class"`` and check it is an :class:`Actor`.

    Raises:
        ConfigError: the module or class cannot be found, or is not an Actor.
    """
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"actor class {spec!r} cannot be loaded: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigError(f"actor class {spec!r} is not a subclass of ap_actors.Actor")
    return cls


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ap-actor", description="Run one actor process.")
    p.add_argument("--name", required=True)
    p.add_argument("--class", dest="cls", default=None)
    p.add_argument("--state-dir", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--ready-fd", type=int, default=None)
    p.add_argument("--parent-pid", type=int, default=None)
    return p.parse_args(argv)


async def _serve(actor: Actor[Any], ready_fd: int | None) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await actor.run(
            ready=lambda: signal_ready(ready_fd, {"last_seq": actor.last_seq, **actor.ready_info()})
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one actor process until SIGTERM; exit 0, or 1 when the actor crashed."""
    args = _parse_args(argv)
    setup_logging(args.name)
    die_with_parent(args.parent_pid)
    try:
        state_dir = resolve_state_dir(args.state_dir)
        config = load_config(args.config)
        spec = args.cls or (config.actors[args.name].cls if args.name in config.actors else "")
        if not spec:
            raise ConfigError(f"no actor named {args.name!r} in the config")
        cls = load_actor_class(spec)
        mesh = read_mesh(state_dir, require_alive=False)
        options = config.actors[args.name].options if args.name in config.actors else {}
        actor = cls(args.name, mesh, state_dir, options)
    except ApError as e:
        print(f"{args.name}: {e}", file=sys.stderr)
        return e.exit_code
    try:
        uvloop.run(_serve(actor, args.ready_fd))
    except Exception:
        log.exception("actor crashed")
        return 1
    log.info("stopped", extra={"last_seq": actor.last_seq})
    return 0


if __name__ == "__main__":
    # Run main() of the importable module, not of __main__: actor classes subclass
    # ap_actors.actor.Actor, which is not this module's copy of the class.
    from ap_actors.actor import main as _main

    sys.exit(_main())
