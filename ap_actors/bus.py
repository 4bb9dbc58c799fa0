"""The bus client: :class:`Emitter` appends events, :class:`Subscriber` reads them.

Source: ``DESIGN.md``, "The event log and the bus"; frames in `protocol.py`.

Attach to a running mesh in a few lines::

    from ap_actors import Subscriber

    async for record in Subscriber.connect(topics=["worker_"]):
        print(record.seq, record.event)

Emit into it::

    async with Emitter.connect(source="my-tool") as emitter:
        seq = await emitter.emit(WorkerError(worker_id="w1", error="boom"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.config import resolve_state_dir
from ap_actors.errors import BusError, EventLogError, RejectedError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Event, Record, stamp, topic_of
from ap_actors.mesh import MeshInfo, read_mesh

log = logging.getLogger(__name__)

_REPLAY_TIMEOUT_S = 5.0  # a replay request unanswered this long is sent again ...
_REPLAY_ATTEMPTS = 3  # ... this many times in all, then the endpoint is reported down


class _ReplayTimeout(Exception):
    """A replay request got no answer in time."""


def _context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context.instance()


def _mesh(state_dir: str | os.PathLike[str] | None, mesh: MeshInfo | None) -> MeshInfo:
    return mesh if mesh is not None else read_mesh(resolve_state_dir(state_dir))


# --- Emitter ------------------------------------------------------------------------


class _Group:
    """The events of one ``emit_many`` call: one future for all their seqs."""

    __slots__ = ("future", "remaining", "seqs")

    def __init__(self, n: int, future: asyncio.Future[list[int]]) -> None:
        self.future = future
        self.seqs = [0] * n
        self.remaining = n

    def resolve(self, index: int, seq: int) -> None:
        self.seqs[index] = seq
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.seqs)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Pending:
    __slots__ = ("data", "group", "index")

    def __init__(self, data: bytes, group: _Group, index: int) -> None:
        self.data = data
        self.group = group
        self.index = index


class _Batch:
    """One ``append`` request in flight."""

    __slots__ = ("attempts", "items", "sent_at")

    def __init__(self, items: list[_Pending]) -> None:
        self.items = items
        self.attempts = 0
        self.sent_at = 0.0


class Emitter:
    """Appends events through the journal's ingest endpoint and returns their seqs.

    Concurrent :meth:`emit` calls are coalesced into batches, and up to
    ``max_in_flight`` batches are sent before the first ack comes back (replies arrive
    in order). If the oldest batch gets no reply within ``ack_timeout`` seconds, the
    DEALER socket is closed, a new one connects, and every unacknowledged batch is sent
    again with the *same* event ids (the ZeroMQ guide's Lazy Pirate, pipelined). The
    journal acknowledges an id it already holds with its original seq, so each event is
    appended exactly once even when the journal restarted in between.

    Order: the events of one emitter are appended in the order emitted, except that a
    batch the journal could not store (``storage_error``, e.g. a full disk) is sent again
    after batches that followed it.

    Args:
        ingest: the ingest endpoint, e.g. ``tcp://127.0.0.1:5555``.
        source: stamped on events whose ``source`` is empty.
        ack_timeout: seconds to wait for an ack before resending.
        max_attempts: sends of one batch before giving up with :class:`BusError`;
            None = retry until acknowledged or the emitter is closed.
        max_in_flight: batches sent and not yet acknowledged, at most.
        max_batch_events, max_batch_bytes: the journal's limits of one request.
    """

    def __init__(
        self,
        ingest: str,
        *,
        source: str,
        ack_timeout: float = 2.0,
        max_attempts: int | None = None,
        max_in_flight: int = 4,
        max_batch_events: int = P.DEFAULT_MAX_BATCH_EVENTS,
        max_batch_bytes: int = P.DEFAULT_MAX_BATCH_BYTES,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.ingest = ingest
        self.source = source
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.max_in_flight = max(1, max_in_flight)
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self._max_payload = max_batch_bytes - 16  # room for the msgpack array header
        self.ctx = context or _context()
        self.resends = 0  # batches sent again after a timeout (for tests and metrics)
        self._queue: deque[_Pending] = deque()
        self._in_flight: deque[_Batch] = deque()
        self._wakeup = asyncio.Event()  # work to send, or room in flight
        self._replies_due = asyncio.Event()  # something is in flight
        self._sock: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._storage_failures = 0  # consecutive storage_error replies: the back-off
        self._progress_at = 0.0  # monotonic time of the last reply

    @classmethod
    def connect(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        source: str,
        mesh: MeshInfo | None = None,
        **kwargs: Any,
    ) -> Emitter:
        """Return an emitter for the mesh of ``state_dir`` (found through mesh.json).

        Raises:
            MeshNotRunningError: no mesh runs there.
        """
        return cls(_mesh(state_dir, mesh).ingest, source=source, **kwargs)

    async def __aenter__(self) -> Emitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def emit(self, event: Event) -> int:
        """Append one event and return its seq once it is durable.

        Raises:
            RejectedError: the journal refused the event (invalid); it was not appended.
            BusError: ``max_attempts`` sends went unanswered, or the emitter was closed.
        """
        return (await self.emit_many([event]))[0]

    async def emit_many(self, events: Iterable[Event]) -> list[int]:
        """Append events (in this order) and return their seqs once durable.

        Raises:
            RejectedError, BusError: as :meth:`emit`. When one event of the call is
                refused, the call raises and the others may still have been appended.
        """
        if self._closed:
            raise BusError("emitter is closed")
        datas = [CODEC.encode(stamp(event, source=self.source)) for event in events]
        if not datas:
            return []
        for data in datas:
            if len(data) > self._max_payload:
                raise RejectedError(
                    P.E_BATCH_TOO_LARGE,
                    f"event is {len(data)} bytes; a batch may hold {self.max_batch_bytes}",
                )
        group = _Group(len(datas), asyncio.get_running_loop().create_future())
        self._queue.extend(_Pending(data, group, i) for i, data in enumerate(datas))
        self._wakeup.set()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._send_loop(), name="emitter-send"),
                asyncio.create_task(self._reply_loop(), name="emitter-replies"),
            ]
        return await group.future

    async def close(self) -> None:
        """Stop sending; events not yet acknowledged fail with :class:`BusError`."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        error = BusError("emitter closed before the ack")
        for batch in self._in_flight:
            self._fail(batch.items, error)
        self._fail(self._queue, error)
        self._in_flight.clear()
        self._queue.clear()
        self._reset_socket()

    # --- sending --------------------------------------------------------------------

    def _reset_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self._sock = None

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)  # unlimited: a send never blocks
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.connect(self.ingest)
            self._sock = sock
        return self._sock

    def _take_batch(self) -> _Batch:
        items: list[_Pending] = []
        size = 0
        queue = self._queue
        while queue and len(items) < self.max_batch_events:
            size += len(queue[0].data)
            if items and size > self._max_payload:
                break
            items.append(queue.popleft())
        return _Batch(items)

    async def _transmit(self, batch: _Batch) -> None:
        sock = self._socket()
        batch.attempts += 1
        batch.sent_at = time.monotonic()
        payload = CODEC.encode([msgspec.Raw(p.data) for p in batch.items])
        # The async socket's own send (HWM 0: it never waits): a send through a shadow
        # socket would swallow the edge that wakes the reply loop's poll.
        await sock.send_multipart([P.APPEND, payload])

    async def _send_loop(self) -> None:
        while True:
            if self._storage_failures:  # the journal's disk refused: give it time
                await asyncio.sleep(min(0.05 * 2**self._storage_failures, 2.0))
            while self._queue and len(self._in_flight) < self.max_in_flight:
                batch = self._take_batch()
                self._in_flight.append(batch)
                await self._transmit(batch)
                self._replies_due.set()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _reply_loop(self) -> None:
        try:
            while True:
                if not self._in_flight:
                    self._replies_due.clear()
                    await self._replies_due.wait()
                    continue
                sock = self._socket()
                # The journal answers in order: time out when the oldest batch has waited
                # ack_timeout and no reply at all came meanwhile (a batch queued behind
                # a slow group commit is not late yet).
                since = max(self._in_flight[0].sent_at, self._progress_at)
                wait_s = since + self.ack_timeout - time.monotonic()
                if wait_s > 0 and await sock.poll(max(int(wait_s * 1000), 1)):
                    await self._read_replies(sock)
                elif time.monotonic() >= since + self.ack_timeout:
                    await self._resend_all()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never leave callers waiting forever on a bug
            log.exception("emitter failed")
            error = BusError(f"emitter failed: {e}")
            for batch in self._in_flight:
                self._fail(batch.items, error)
            self._fail(self._queue, error)
            self._in_flight.clear()
            self._queue.clear()

    async def _read_replies(self, sock: zmq.asyncio.Socket) -> None:
        while self._in_flight:
            try:
                frames = await sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._progress_at = time.monotonic()
            batch = self._in_flight.popleft()
            again = self._handle_reply(batch.items, frames)
            if again:  # not stored: first in line for the next batch
                self._queue.extendleft(reversed(again))
            self._wakeup.set()

    async def _resend_all(self) -> None:
        """Lazy Pirate: drop the socket (and late replies with it), resend what is due."""
        self.resends += 1
        oldest = self._in_flight[0]
        log.warning(
            "no ack from the journal, resending",
            extra={"attempt": oldest.attempts, "batches": len(self._in_flight)},
        )
        self._reset_socket()
        if self.max_attempts is not None and oldest.attempts >= self.max_attempts:
            error = BusError(
                f"no ack from the journal at {self.ingest} after {self.max_attempts} sends"
                f" of {self.ack_timeout}s each; is the mesh running? (`ap status`)"
            )
            for batch in self._in_flight:
                self._fail(batch.items, error)
            self._in_flight.clear()
            self._wakeup.set()
            return
        for batch in list(self._in_flight):
            await self._transmit(batch)

    def _handle_reply(self, batch: list[_Pending], frames: list[bytes]) -> list[_Pending]:
        """Resolve a batch from its reply; return what must be sent again."""
        if len(frames) == 2 and frames[0] == P.OK:
            seqs = msgspec.msgpack.decode(frames[1], type=list[int])
            if len(seqs) != len(batch):
                self._fail(batch, BusError(f"journal acked {len(seqs)} of {len(batch)} events"))
                return []
            for p, seq in zip(batch, seqs, strict=True):
                p.group.resolve(p.index, seq)
            self._storage_failures = 0
            return []
        if len(frames) == 2 and frames[0] == P.ERROR:
            err = msgspec.msgpack.decode(frames[1])
            code, message, index = err.get("code"), err.get("message", ""), err.get("index", -1)
            if code == P.E_STORAGE:
                log.warning("journal could not store a batch, retrying: %s", message)
                self._storage_failures += 1
                return batch
            if isinstance(index, int) and 0 <= index < len(batch):
                # Only the offending event fails; its batch-mates were not appended.
                self._fail([batch[index]], RejectedError(code, message, index))
                return batch[:index] + batch[index + 1 :]
            self._fail(batch, RejectedError(str(code), str(message)))
            return []
        self._fail(batch, BusError(f"unexpected reply from the journal: {frames[:1]!r}"))
        return []

    @staticmethod
    def _fail(pending: Iterable[_Pending], error: Exception) -> None:
        for p in pending:
            p.group.fail(error)


# --- Subscriber ---------------------------------------------------------------------


class Subscriber:
    """A catch-up subscription: every matching record after ``since``, then live, in order.

    It subscribes to the bus first, then reads the log from ``since``, then reads the bus,
    dropping what it already delivered. When a live seq jumps past what it has covered
    (ZeroMQ dropped messages at the high-water mark, or a slow join), the missing range
    is read from the log, so no matching record is skipped and none repeats. When idle
    for ``idle_check_s`` it checks the log's tail the same way.

    The log is read directly (LMDB, read-only) when its files are reachable, else
    through the journal's replay endpoint; a replay-only subscriber with a filter
    subscribes to every topic and filters itself, so that gaps stay detectable.

    Args:
        bus: the bus endpoint. log_path: the LMDB directory (None = not reachable).
        replay: the replay endpoint (needed when ``log_path`` is None).
        topics: event type prefixes to keep (``["worker_"]``); None = all.
        session_id: keep only this session's events.
        since: deliver records with ``seq > since``.
        rcvhwm: the SUB socket's receive high-water mark, in messages.
        idle_check_s: seconds without live traffic after which the log's tail is checked.
        on_caught_up: awaited once with ``head`` after the history up to ``head`` has been
            delivered and before any later record is (actors start reacting there).

    Attributes:
        last_seq: seq of the last record delivered (``since`` before any).
        head: the log's last seq when the subscription started (history ends there).
        gaps_filled: live gaps found and filled from the log.
    """

    def __init__(
        self,
        bus: str,
        *,
        log_path: str | os.PathLike[str] | None = None,
        replay: str | None = None,
        topics: Iterable[str] | None = None,
        session_id: str | None = None,
        since: int = 0,
        rcvhwm: int = 100_000,
        idle_check_s: float = 0.5,
        on_caught_up: Callable[[int], Awaitable[None]] | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        if log_path is None and replay is None:
            raise BusError("a subscriber needs the log's path or the replay endpoint")
        self.bus = bus
        self.log_path = Path(log_path) if log_path is not None else None
        self.replay = replay
        self.topics = tuple(topics) if topics else ()
        self.session_id = session_id
        self.since = since
        self.rcvhwm = rcvhwm
        self.idle_check_s = idle_check_s
        self.on_caught_up = on_caught_up
        self.ctx = context or _context()
        self.last_seq = since
        self.head = 0
        self.gaps_filled = 0
        self._covered = since  # every record <= this was considered
        self._log: EventLog | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._replay_sock: zmq.asyncio.Socket | None = None

    @classmethod
    def connect(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        topics: Iterable[str] | None = None,
        session_id: str | None = None,
        since: int = 0,
        mesh: MeshInfo | None = None,
        source: Literal["auto", "log", "replay"] = "auto",
        **kwargs: Any,
    ) -> Subscriber:
        """Return a subscriber to the mesh of ``state_dir`` (found through mesh.json).

        Args:
            source: where history and gaps come from: ``"log"`` (LMDB files),
                ``"replay"`` (the journal's endpoint) or ``"auto"`` (the files when
                readable).

        Raises:
            MeshNotRunningError: no mesh runs there.
        """
        info = _mesh(state_dir, mesh)
        local = source == "log" or (
            source == "auto" and os.access(Path(info.log) / "data.mdb", os.R_OK)
        )
        return cls(
            info.bus,
            log_path=info.log if local else None,
            replay=info.replay,
            topics=topics,
            session_id=session_id,
            since=since,
            **kwargs,
        )

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._iterate()

    async def close(self) -> None:
        """Close the sockets and the log handle (also done when iteration ends)."""
        for sock in (self._sub, self._replay_sock):
            if sock is not None:
                sock.close(linger=0)
        self._sub = self._replay_sock = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- the subscription -----------------------------------------------------------

    def _filter_locally(self) -> bool:
        return self.log_path is None and bool(self.topics or self.session_id is not None)

    async def _iterate(self) -> AsyncIterator[Record]:
        sub = self.ctx.socket(zmq.SUB)
        self._sub = sub
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sub.connect(self.bus)
        if self.topics and not self._filter_locally():
            for t in self.topics:
                sub.setsockopt(zmq.SUBSCRIBE, t.encode())
        else:
            sub.setsockopt(zmq.SUBSCRIBE, b"")
        if self.log_path is not None:
            try:
                self._log = EventLog(self.log_path, readonly=True)
            except EventLogError as e:
                await self.close()
                raise BusError(str(e)) from e
        try:
            self.head = await self._log_last_seq()
            async for record in self._catch_up(self.head):
                yield record
            if self.on_caught_up is not None:
                await self.on_caught_up(self.head)
            receive = zmq.Socket.shadow(sub.underlying).recv_multipart
            idle_ms = max(int(self.idle_check_s * 1000), 1)
            burst = 0
            while True:
                # Drain without awaiting while messages wait; await only when idle.
                try:
                    frames = receive(zmq.NOBLOCK)
                except zmq.Again:
                    burst = 0
                    if not await sub.poll(idle_ms):
                        # Live records missed at the tail show up here.
                        async for record in self._fill_gap():
                            yield record
                    continue
                burst += 1
                if burst % 256 == 0:
                    await asyncio.sleep(0)  # let other tasks run during a long burst
                if len(frames) != 3 or len(frames[1]) != 8:
                    log.warning("ignored a malformed bus message of %d frames", len(frames))
                    continue
                seq = P.unpack_seq(frames[1])
                if seq <= self._covered:
                    continue
                if seq > self._covered + 1:
                    async for record in self._fill_gap():
                        yield record
                    if seq <= self._covered:
                        continue
                try:
                    record = CODEC.decode_record(frames[2])
                except (msgspec.DecodeError, msgspec.ValidationError) as e:
                    # A record this version cannot decode: skip it, never stop the stream.
                    log.warning("undecodable record %d skipped: %s", seq, e)
                    self._covered = seq
                    continue
                self._covered = seq
                if self._matches(record):
                    self.last_seq = seq
                    yield record
        finally:
            await self.close()

    def _matches(self, record: Record) -> bool:
        if self.session_id is not None and record.event.session_id != self.session_id:
            return False
        if self.topics and self._filter_locally():
            return topic_of(record.event).startswith(self.topics)
        return True

    async def _fill_gap(self) -> AsyncIterator[Record]:
        """Catch up after a jump or an idle spell, counting a gap if records were missed."""
        first = True
        async for record in self._catch_up():
            if first:
                self.gaps_filled += 1
                first = False
            yield record

    async def _catch_up(self, until: int | None = None) -> AsyncIterator[Record]:
        """Deliver every matching record in (covered, until or the log's end]."""
        if self._log is not None:
            if until is None:
                until = self._log.last_seq()
            records = self._log.read_raw(
                self._covered, until=until, topics=self.topics, session_id=self.session_id
            )
            for n, (seq, data) in enumerate(records, 1):
                record = CODEC.decode_record(data)
                self._covered = self.last_seq = seq
                yield record
                if n % 1024 == 0:
                    await asyncio.sleep(0)  # let the loop breathe during long histories
            self._covered = max(self._covered, until)
            return
        while True:
            covered, last = 0, 0
            async for item in self._replay_page(self._covered):
                if isinstance(item, Record):
                    self._covered = item.seq
                    if self._matches(item):
                        self.last_seq = item.seq
                        yield item
                else:
                    covered, last = item
            self._covered = max(self._covered, covered)
            if self._covered >= (last if until is None else min(last, until)):
                return

    async def _log_last_seq(self) -> int:
        if self._log is not None:
            return self._log.last_seq()
        last = 0
        async for item in self._replay_page(self._covered, limit=1):
            if not isinstance(item, Record):
                last = item[1]
        return last

    async def _replay_page(
        self, since: int, limit: int = P.DEFAULT_REPLAY_LIMIT
    ) -> AsyncIterator[Record | tuple[int, int]]:
        """One replay request: yields records, then ``(covered, last)``.

        A request that gets no answer (the journal is restarting) is sent again on a new
        socket, ``_REPLAY_ATTEMPTS`` times in all, before :class:`BusError` is raised.
        """
        for attempt in range(1, _REPLAY_ATTEMPTS + 1):
            delivered = 0
            try:
                async for item in self._replay_request(since, limit):
                    if isinstance(item, Record):
                        since = item.seq  # a resend continues after what was delivered
                        delivered += 1
                    yield item
                return
            except _ReplayTimeout:
                log.warning(
                    "replay endpoint silent, asking again",
                    extra={"attempt": attempt, "since": since, "delivered": delivered},
                )
        raise BusError(
            f"the replay endpoint {self.replay} did not answer {_REPLAY_ATTEMPTS} requests"
            f" of {_REPLAY_TIMEOUT_S:.0f}s each; is the mesh running? (`ap status`)"
        )

    async def _replay_request(
        self, since: int, limit: int
    ) -> AsyncIterator[Record | tuple[int, int]]:
        assert self.replay is not None
        if self._replay_sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.replay)
            self._replay_sock = sock
        sock = self._replay_sock
        request: dict[str, Any] = {"since": since, "limit": limit}
        if self.topics and not self._filter_locally():
            request["topics"] = list(self.topics)
        await sock.send_multipart([P.REPLAY, CODEC.encode(request)])
        receive = zmq.Socket.shadow(sock.underlying).recv_multipart
        finished = False
        try:
            while True:
                try:  # drain what has arrived; await only when nothing has
                    frames = receive(zmq.NOBLOCK)
                except zmq.Again:
                    if not await sock.poll(int(_REPLAY_TIMEOUT_S * 1000)):
                        raise _ReplayTimeout from None
                    continue
                kind = frames[0]
                if kind == P.RECORD:
                    yield CODEC.decode_record(frames[2])
                elif kind == P.END:
                    covered = P.unpack_seq(frames[1])
                    last = P.unpack_seq(frames[2]) if len(frames) > 2 else covered
                    finished = True
                    yield (covered, last)
                    return
                else:
                    err = msgspec.msgpack.decode(frames[1]) if len(frames) > 1 else {}
                    finished = True
                    raise BusError(f"replay refused: {err}")
        finally:
            if not finished:  # frames of this reply may still come: never mix them up
                self._replay_sock = None
                sock.close(linger=0)
