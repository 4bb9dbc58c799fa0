"""The emitter: appends events to the log through the journal's ingest endpoint.

Source: ``DESIGN.md``, "The event log and the bus"; frames in `protocol.py`. Public
through :mod:`ap_actors.bus` and :mod:`ap_actors`::

    async with Emitter.connect(source="my-tool") as emitter:
        seq = await emitter.emit(WorkerError(worker_id="w1", error="boom"))
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from ap_actors import protocol as P
from ap_actors.errors import BusError, RejectedError
from ap_actors.events import CODEC, Event, stamp
from ap_actors.mesh import MeshInfo, find_mesh, zmq_context
from ap_actors.security import CurveKeys, mesh_keys

log = logging.getLogger(__name__)


_MONITORS = itertools.count(1)  # unique inproc names of the sockets' monitors


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

    __slots__ = ("attempts", "items", "timeouts", "waiting_since")

    def __init__(self, items: list[_Pending]) -> None:
        self.items = items
        self.attempts = 0  # sends
        self.timeouts = 0  # ack timeouts so far: each doubles the next wait
        self.waiting_since = 0.0  # monotonic time of the last send or ack timeout


class Emitter:
    """Appends events through the journal's ingest endpoint and returns their seqs.

    Concurrent :meth:`emit` calls are coalesced into batches, and up to
    ``max_in_flight`` batches are sent before the first ack comes back (replies arrive
    in order). A batch is sent again only when the journal looks gone: its connection
    dropped (it exited or restarted; or ZeroMQ heartbeats went unanswered for
    ``heartbeat_timeout`` seconds), or the ack timed out while no connection was up.
    Then the DEALER socket is closed (late replies with it), a new one connects, and
    every unacknowledged batch is sent again with the *same* event ids (the ZeroMQ
    guide's Lazy Pirate, pipelined). The journal acknowledges an id it already holds
    with its original seq, so each event is appended exactly once even when the journal
    restarted in between. A journal that is connected but slow is not sent anything
    again (that would only add to its work): the emitter keeps waiting, and each ack
    timeout doubles the next one, up to ``max_ack_timeout``.

    Order: the events of one emitter are appended in the order emitted, except that a
    batch the journal could not store (``storage_error``, e.g. a full disk) is sent again
    after batches that followed it.

    Args:
        ingest: the ingest endpoint, e.g. ``tcp://127.0.0.1:5555``.
        source: stamped on events whose ``source`` is empty.
        ack_timeout: seconds to wait for the first ack before logging that the journal
            is slow (and resending if it is not connected); doubled per timeout.
        max_ack_timeout: the longest wait between two ack timeouts, seconds.
        max_attempts: ack timeouts of one batch before giving up with
            :class:`BusError`; None = wait until acknowledged or the emitter is closed.
        max_in_flight: batches sent and not yet acknowledged, at most.
        heartbeat_ivl, heartbeat_timeout: seconds between ZeroMQ heartbeats on the
            connection, and without any traffic from the journal before the
            connection counts as dropped (ZMQ_HEARTBEAT_IVL, ZMQ_HEARTBEAT_TIMEOUT;
            the journal's ZeroMQ I/O thread answers, however busy the journal is).
        max_batch_events, max_batch_bytes: the journal's limits of one request.
        curve: the CurveZMQ keys when the journal requires them (a mesh with
            ``[security] keys``; :mod:`ap_actors.security`). Without the right keys the
            journal never answers: the handshake fails, and the emitter keeps trying.
    """

    def __init__(
        self,
        ingest: str,
        *,
        source: str,
        ack_timeout: float = 2.0,
        max_ack_timeout: float = 30.0,
        max_attempts: int | None = None,
        max_in_flight: int = 4,
        heartbeat_ivl: float = 1.0,
        heartbeat_timeout: float = 10.0,
        max_batch_events: int = P.DEFAULT_MAX_BATCH_EVENTS,
        max_batch_bytes: int = P.DEFAULT_MAX_BATCH_BYTES,
        context: zmq.asyncio.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.ingest = ingest
        self.curve = curve
        self.source = source
        self.ack_timeout = ack_timeout
        self.max_ack_timeout = max(max_ack_timeout, ack_timeout)
        self.max_attempts = max_attempts
        self.heartbeat_ivl = heartbeat_ivl
        self.heartbeat_timeout = heartbeat_timeout
        self.max_in_flight = max(1, max_in_flight)
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self._max_payload = max_batch_bytes - 16  # room for the msgpack array header
        self.ctx = context or zmq_context()
        self.resends = 0  # times the in-flight batches were sent again (tests, metrics)
        self.timeouts = 0  # ack timeouts (a slow or absent journal)
        self._queue: deque[_Pending] = deque()
        self._in_flight: deque[_Batch] = deque()
        self._wakeup = asyncio.Event()  # work to send, or room in flight
        self._replies_due = asyncio.Event()  # something is in flight
        self._sock: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None  # the DEALER's connection events
        self._monitor_now: zmq.Socket[bytes] | None = None  # the same, read without waiting
        self._poller: zmq.asyncio.Poller | None = None  # replies and connection events
        self._connected = False  # a ZMTP handshake succeeded and no drop since
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
        """Return an emitter for the mesh of ``state_dir`` (found through mesh.json),
        with the mesh's CurveZMQ client keys when it has keys.

        Raises:
            MeshNotRunningError: no mesh runs there.
            ConfigError: the mesh has keys and they cannot be read here.
        """
        info = find_mesh(state_dir, mesh)
        kwargs.setdefault("curve", mesh_keys(info))
        return cls(info.ingest, source=source, **kwargs)

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
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disable_monitor()
            self._sock.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._sock = self._monitor = self._monitor_now = self._poller = None
        self._connected = False

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)  # unlimited: a send never blocks
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.setsockopt(zmq.HEARTBEAT_IVL, int(self.heartbeat_ivl * 1000))
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.heartbeat_timeout * 1000))
            if self.curve is not None:
                self.curve.connect(sock)
            # Before connect, so that no connection event is missed. A name of its own:
            # pyzmq's default names the endpoint after the socket's fd, which the next
            # socket may get while the old endpoint is not unbound yet (EADDRINUSE).
            self._monitor = sock.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED,
                addr=f"inproc://ap-emitter-monitor-{next(_MONITORS)}",
            )
            self._monitor_now = zmq.Socket.shadow(self._monitor.underlying)
            sock.connect(self.ingest)
            self._poller = zmq.asyncio.Poller()
            self._poller.register(sock, zmq.POLLIN)
            self._poller.register(self._monitor, zmq.POLLIN)
            self._sock = sock
        return self._sock

    def _dropped(self) -> bool:
        """Read the connection events that arrived; return True if the connection dropped.

        Called before every reply is read: libzmq reports a drop before it reconnects,
        so a reply read after this returned False came over the connection its request
        went out on (never from a restarted journal answering a request queued for the
        old one, which would be matched to the wrong batch).
        """
        dropped = False
        monitor = self._monitor_now
        while monitor is not None and int(monitor.get(zmq.EVENTS)) & zmq.POLLIN:
            event = parse_monitor_message(monitor.recv_multipart())["event"]
            if event == zmq.EVENT_DISCONNECTED:
                dropped = True
                self._connected = False
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._connected = True
        return dropped

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
        batch.waiting_since = time.monotonic()
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
                poller = self._poller
                assert poller is not None
                # The journal answers in order: time out when the oldest batch has waited
                # its ack timeout and no reply at all came meanwhile (a batch queued
                # behind a slow group commit is not late yet).
                wait_s = self._deadline() - time.monotonic()
                if wait_s > 0 and await poller.poll(max(int(wait_s * 1000), 1)):
                    if not await self._read_replies(sock):
                        await self._resend_all("the connection to the journal dropped")
                elif time.monotonic() >= self._deadline():
                    await self._ack_timed_out()
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
        oldest = self._in_flight[0]
        wait_s = min(self.ack_timeout * 2**oldest.timeouts, self.max_ack_timeout)
        return max(oldest.waiting_since, self._progress_at) + wait_s

    async def _read_replies(self, sock: zmq.asyncio.Socket) -> bool:
        """Read the replies that arrived; return False if the connection dropped."""
        while self._in_flight:
            if self._dropped():
                return False
            try:
                frames = await sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            self._progress_at = time.monotonic()
            batch = self._in_flight.popleft()
            again = self._handle_reply(batch.items, frames)
            if again:  # not stored: first in line for the next batch
                self._queue.extendleft(reversed(again))
            self._wakeup.set()
        return True

    async def _ack_timed_out(self) -> None:
        """The oldest batch waited its ack timeout: give up, resend, or wait longer."""
        self._dropped()  # the connection state, up to date
        oldest = self._in_flight[0]
        waited = time.monotonic() - max(oldest.waiting_since, self._progress_at)
        oldest.timeouts += 1
        oldest.waiting_since = time.monotonic()
        self.timeouts += 1
        if self.max_attempts is not None and oldest.timeouts >= self.max_attempts:
            error = BusError(
                f"no ack from the journal at {self.ingest} after {oldest.timeouts} ack"
                " timeouts; is the mesh running? (`ap status`)"
            )
            async with self._sending:
                self._reset_socket()  # late replies must not be matched to later batches
                for batch in self._in_flight:
                    self._fail(batch.items, error)
                self._in_flight.clear()
            self._wakeup.set()
            return
        if not self._connected:
            await self._resend_all("no ack and no connection to the journal")
            return
        log.warning(
            "the journal is slow: no ack for %.1fs; waiting, not resending",
            waited,
            extra={"timeouts": oldest.timeouts, "batches": len(self._in_flight)},
        )

    async def _resend_all(self, why: str) -> None:
        """Lazy Pirate: drop the socket (and late replies with it), resend what is due."""
        async with self._sending:
            self._reset_socket()
            if not self._in_flight:
                return
            self.resends += 1
            log.warning(
                "%s: resending",
                why,
                extra={"attempt": self._in_flight[0].attempts, "batches": len(self._in_flight)},
            )
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
