"""The actor base: state as a pure fold over events, reactions only to live events.

Source: ``DESIGN.md``, "State". An actor process runs one :class:`Actor`:

1. **Recovery.** It starts from its snapshot if it has a usable one (opt-in,
   :attr:`Actor.snapshot_version`; see :mod:`ap_actors.snapshots`), else from
   :meth:`Actor.initial_state`, and folds the matching records after it up to the log's
   last seq (``apply`` only, no reactions), checking that seq increases. The bulk comes
   straight from the log files in chunks, the rest through its subscription.
2. **Resume.** :meth:`Actor.on_recovered` runs once with the rebuilt state: the place to
   resume work that was in flight when the previous incarnation died.
3. **Live.** Each later record is folded, then :meth:`Actor.react` runs. Events emitted
   while reacting get ids derived from their cause (:func:`~ap_actors.events.derive_id`),
   so reacting again after a restart appends nothing twice.

If ``react`` raises, the traceback is logged and the process exits with code 1; the
supervisor restarts it, and the event that caused the crash is then history, not
reacted to again (no crash loop on a poison event). SIGTERM/SIGINT stop it cleanly:
emits already awaited finish, the state is snapshotted (if the actor opted in), sockets
close, exit code 0.

Options every actor reads: ``snapshot_every`` (a snapshot is taken once the actor has
folded this many seqs past the last one, default :data:`SNAPSHOT_EVERY`; 0 = only when
stopping cleanly) and ``gc_freeze`` (freeze the process's objects after the rebuild,
see :func:`_gc_paused`; true in an actor process unless configured false, false for an
actor run inside another program).

Run as a process (the supervisor does this): ``python -m ap_actors.actor --name NAME
--class package.module:Class --state-dir DIR [--config F] [--ready-fd N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
import uvloop

from ap_actors.bus import Emitter, Subscriber
from ap_actors.config import load_config, resolve_state_dir
from ap_actors.errors import ApError, ConfigError, EventLogError, SequenceError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Event, Record, derive_id
from ap_actors.logs import setup_logging
from ap_actors.mesh import MeshInfo, read_mesh
from ap_actors.process import die_with_parent, signal_ready
from ap_actors.security import mesh_keys
from ap_actors.snapshots import SnapshotKeeper

S = TypeVar("S")

log = logging.getLogger(__name__)

_MAX_TRACKED_CAUSES = 10_000  # reaction counters kept per cause id (LRU)
SNAPSHOT_EVERY = 50_000  # seqs folded between two snapshots (option snapshot_every)


@contextlib.contextmanager
def _gc_paused(freeze: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector during a rebuild, which allocates millions of
    objects and no cyclic garbage: each collection would walk the growing state again.

    With ``freeze``, what is alive at the end moves to the permanent generation
    (``gc.freeze``, as the journal does once started): the rebuilt state lives as long
    as the process, and re-enabling the collector would otherwise start with a walk
    through all of it. Process-wide, hence only for an actor that owns its process.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def _decoded(chunk: list[bytes]) -> list[Record]:
    """Decode records; one this version cannot decode is skipped with a warning, as the
    subscriber does (a newer mesh may hold event types this version does not know)."""
    decode = CODEC.decode_record
    errors = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
    try:
        return [decode(data) for data in chunk]
    except errors:
        pass  # again one by one, to skip only what does not decode
    records = []
    for data in chunk:
        try:
            records.append(decode(data))
        except errors as e:
            try:
                seq: object = CODEC.decode_head(data).seq
            except (msgspec.DecodeError, msgspec.ValidationError):
                seq = "?"
            log.warning("record %s skipped, this version cannot decode it: %s", seq, e)
    return records


class Actor(Generic[S]):
    """Base class of every actor but the journal.

    Subclasses set :attr:`topics` and implement :meth:`initial_state` and :meth:`apply`;
    most also implement :meth:`react` and :meth:`on_recovered`. Those that set
    :attr:`snapshot_version` start from their snapshot: the constructor loads it.

    Args:
        name: the actor's name in the config (``worker-1``); its ``source`` on events.
        mesh: the running mesh (endpoints, log path).
        state_dir: the mesh's state directory (snapshots go to its ``snapshots/``).
        options: the ``options`` table of the actor's config.

    Raises:
        ConfigError: ``snapshot_every`` is not a whole number >= 0.
    """

    topics: ClassVar[tuple[str, ...]] = ()
    """Event type prefixes this actor folds and reacts to; empty = every event."""

    snapshot_version: ClassVar[int | None] = None
    """Opt in to snapshots (:mod:`ap_actors.snapshots`) with the schema version of the
    encoded state; None = none. Bump it whenever a snapshot of the previous code could
    differ from a fold by this code (the state's fields, :meth:`apply`, :attr:`topics`):
    snapshots of another version are ignored. The state must round-trip through
    :meth:`encode_state` and :meth:`decode_state`, and :meth:`apply` must keep nothing
    outside it."""

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
        self.snapshot_seq = 0  # seq of the snapshot this run started from; 0 = none
        self.recovered = False
        every = self.options.get("snapshot_every", SNAPSHOT_EVERY)
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ConfigError(
                f"actor {name!r}: snapshot_every must be a whole number >= 0 (seqs folded"
                f" between two snapshots; 0 = only at a clean stop), not {every!r}"
            )
        self.gc_freeze = bool(self.options.get("gc_freeze", False))
        self.snapshots: SnapshotKeeper | None = None
        if self.snapshot_version is not None:
            kind = f"{type(self).__module__}:{type(self).__qualname__}"
            self.snapshots = SnapshotKeeper(state_dir, name, kind, self.snapshot_version, every)
        self.emitter = Emitter(mesh.ingest, source=name, curve=mesh_keys(mesh))
        self._cause: Event | None = None
        self._reactions: OrderedDict[str, int] = OrderedDict()
        self._subscriber: Subscriber | None = None
        self._files: EventLog | None = None  # the log's files, read by the rebuild
        self._ready: Callable[[], None] | None = None
        self._restore()

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

    def encode_state(self, state: S) -> bytes:
        """Return ``state`` as bytes for a snapshot: msgpack of a msgspec-encodable value.

        Runs in the event loop, so that the state does not change while it is encoded.
        """
        return CODEC.encode(state)

    def decode_state(self, data: bytes | memoryview) -> S:
        """Return the state :meth:`encode_state` encoded (given a view into the snapshot
        file's bytes); the default decodes msgpack as the type of :meth:`initial_state`'s
        result.

        Raises:
            msgspec.DecodeError, msgspec.ValidationError: ``data`` is not such a state.
        """
        state: S = msgspec.msgpack.decode(data, type=type(self.initial_state()))
        return state

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
        self._fold_many((record,))

    def _fold_many(self, records: Iterable[Record]) -> None:
        """:meth:`fold` each record in turn, in one loop (a rebuild's hot loop)."""
        apply_record, state, last = self.apply_record, self.state, self.last_seq
        try:
            for record in records:
                if record.seq <= last:
                    raise SequenceError(f"{self.name}: record {record.seq} folded after {last}")
                state = apply_record(state, record)
                last = record.seq
        finally:
            self.state, self.last_seq = state, last

    def apply_record(self, state: S, record: Record) -> S:
        """Fold a whole record (event and seq); the default folds ``record.event`` with
        :meth:`apply`. Override it when the state keeps seq numbers."""
        return self.apply(state, record.event)

    def _local_log(self) -> EventLog | None:
        """The log opened read-only from its files, or None on another machine."""
        path = Path(self.mesh.log)
        if not os.access(path / "data.mdb", os.R_OK):
            return None
        try:
            return EventLog(path, readonly=True)
        except EventLogError as e:
            log.warning("event log unreadable here: %s", e)
            return None

    async def _fold_history(self) -> int:
        """Fold the records after :attr:`last_seq` up to the log's last seq, straight from
        the log files, a chunk at a time; return the seq up to which the log was read.

        The subscription would deliver the same records, one async step each; this is a
        rebuild's hot loop. Without the files (a remote actor) the subscription replays
        everything from the journal instead. A record this version cannot decode is
        skipped with a warning, as the subscriber does.
        """
        # Kept open while the actor runs: closing the last handle unmaps the log, which
        # the subscription would map again at once.
        self._files = elog = self._local_log()
        if elog is None:
            return self.last_seq
        with _gc_paused(self.gc_freeze):
            until = elog.last_seq()
            for chunk in elog.read_chunks(self.last_seq, until=until, topics=self.topics):
                self._fold_many(_decoded(chunk))
                await asyncio.sleep(0)  # let the loop breathe between chunks
        return max(until, self.last_seq)

    async def _caught_up(self, head: int) -> None:
        self.recovered = True
        log.info(
            "recovered",
            extra={"head": head, "folded_to": self.last_seq, "snapshot_seq": self.snapshot_seq},
        )
        await self.on_recovered()
        if self._ready is not None:
            self._ready()
        # A snapshot due after a long catch-up is for the next restart: encoding it (a
        # tenth of a second for a big state) waits until what is ready now has run.
        asyncio.get_running_loop().call_soon(self._snapshot_if_due)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Recover, resume, then fold and react to live events until cancelled.

        A cancellation (SIGTERM) is a clean stop: the state is snapshotted (when the
        actor opted in and folded anything since its last snapshot) before it returns.

        Args:
            ready: called (no arguments) once recovery and :meth:`on_recovered` are done.
        """
        self._ready = ready
        try:
            covered = await self._fold_history()
            # The log files when this machine has them, else the journal's replay endpoint,
            # asked for as long as it takes (a remote actor through a network outage).
            subscriber = Subscriber.connect(
                mesh=self.mesh,
                topics=self.topics,
                since=covered,
                on_caught_up=self._caught_up,
                replay_attempts=None,
            )
            self._subscriber = subscriber
            async for record in subscriber:
                self.fold(record)
                if self.recovered:
                    self._cause = record.event
                    try:
                        await self.react(record)
                    finally:
                        self._cause = None
                    self._snapshot_if_due()
        except asyncio.CancelledError:
            await self._snapshot_on_stop()
            raise
        finally:
            if self._subscriber is not None:
                await self._subscriber.close()
            if self._files is not None:
                self._files.close()
            await self.emitter.close()

    # --- snapshots ------------------------------------------------------------------

    def _restore(self) -> None:
        """Start from the snapshot if there is a usable one (:mod:`ap_actors.snapshots`).

        Snapshots need the log's files, to check the log's identity and last seq: an
        actor on another machine neither loads nor writes them.
        """
        if self.snapshots is None:
            return
        elog = self._local_log()
        if elog is None:
            return
        with elog:
            log_id, head = elog.log_id(), elog.last_seq()
        if not log_id:
            log.warning("no snapshots: the event log has no id yet (an older journal)")
            return
        with _gc_paused(self.gc_freeze):
            loaded = self.snapshots.load(log_id, head, self.decode_state)
        if loaded is not None:
            self.last_seq, self.state = loaded
            self.snapshot_seq = self.last_seq
            log.info("state restored from a snapshot", extra={"snapshot_seq": self.last_seq})

    def _encoded_state(self) -> bytes | None:
        """The state for a snapshot, encoded in the loop (nothing folds meanwhile)."""
        try:
            return self.encode_state(self.state)
        except (TypeError, ValueError, msgspec.EncodeError):
            log.exception("no snapshot: the state does not encode")
            return None

    def _snapshot_if_due(self) -> None:
        """Start a snapshot's write if one is due (``snapshot_every``)."""
        keeper = self.snapshots
        if keeper is not None and keeper.due(self.last_seq):
            state = self._encoded_state()
            if state is not None:
                keeper.save_soon(keeper.take(self.last_seq, state))

    async def _snapshot_on_stop(self) -> None:
        """Finish the write in flight, then save what was folded since (a clean stop)."""
        keeper = self.snapshots
        if keeper is None:
            return
        await keeper.written()
        if keeper.log_id and self.last_seq > keeper.seq:
            state = self._encoded_state()
            if state is not None:
                await keeper.save(keeper.take(self.last_seq, state))


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
        options = {"gc_freeze": True, **options}  # this process is the actor's alone
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
