"""The emitter: appends events to the log through the journal's ingest endpoint.

Source: ``DESIGN.md``, "The event log and the bus"; frames in `protocol.py`. Public
through :mod:`ap_actors.bus` and :mod:`ap_actors`::

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
from collections.abc import Iterable
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.errors import BusError, RejectedError
from ap_actors.events import CODEC, Event, stamp
from ap_actors.mesh import MeshInfo, find_mesh, zmq_context

log = logging.getLogger(__name__)


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
        self.ctx = context or zmq_context()
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
        # Held while batches go out, so sends always follow the in-flight order that
        # replies are matched against (the send loop and a resend never interleave).
        self._sending = asyncio.Lock()

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
        return cls(find_mesh(state_dir, mesh).ingest, source=source, **kwargs)

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
            async with self._sending:
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
                wait_s = self._deadline() - time.monotonic()
                if wait_s > 0 and await sock.poll(max(int(wait_s * 1000), 1)):
                    await self._read_replies(sock)
                elif time.monotonic() >= self._deadline():
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

    def _deadline(self) -> float:
        """Monotonic time at which the oldest batch in flight counts as unanswered."""
        return max(self._in_flight[0].sent_at, self._progress_at) + self.ack_timeout

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
        async with self._sending:
            if self._in_flight and time.monotonic() >= self._deadline():  # still late?
                await self._resend_in_order()

    async def _resend_in_order(self) -> None:
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
