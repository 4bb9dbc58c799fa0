"""The subscriber: a catch-up subscription to the log, history first, then live.

Source: ``DESIGN.md``, "The event log and the bus"; frames in `protocol.py`. Public
through :mod:`ap_actors.bus` and :mod:`ap_actors`::

    async for record in Subscriber.connect(topics=["worker_"]):
        print(record.seq, record.event)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq
import zmq.asyncio

from ap_actors import protocol as P
from ap_actors.errors import BusError, EventLogError
from ap_actors.eventlog import EventLog
from ap_actors.events import CODEC, Record, topic_of
from ap_actors.mesh import MeshInfo, find_mesh, zmq_context
from ap_actors.security import CurveKeys, mesh_keys

log = logging.getLogger(__name__)

_REPLAY_TIMEOUT_S = 5.0  # a replay request unanswered this long is sent again ...
_REPLAY_ATTEMPTS = 3  # ... this many times in all, then the endpoint is reported down


class _ReplayTimeout(Exception):
    """A replay request got no answer in time."""


def _decode(seq: int, data: bytes) -> Record | None:
    """Decode a record; None (and a warning) for one this version cannot read.

    A newer mesh may hold event types or field types this version does not know: the
    stream skips them instead of stopping.
    """
    try:
        return CODEC.decode_record(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        # RecursionError: nesting deeper than the decoder follows (a forged message).
        log.warning("record %d skipped, this version cannot decode it: %s", seq, e)
        return None


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
        curve: CurveZMQ keys for a mesh with ``[security] keys``
            (:mod:`ap_actors.security`); :meth:`connect` finds them in mesh.json.
        replay_attempts: replay requests sent for one page (each waits
            ``_REPLAY_TIMEOUT_S``) before :class:`BusError`; None = keep asking, as an
            actor on another machine does through a network outage (restarting it would
            not bring the journal back sooner, and a worker would abandon its objective).

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
        curve: CurveKeys | None = None,
        replay_attempts: int | None = _REPLAY_ATTEMPTS,
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
        self.ctx = context or zmq_context()
        self.curve = curve
        self.replay_attempts = replay_attempts
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
        info = find_mesh(state_dir, mesh)
        local = source == "log" or (
            source == "auto" and os.access(Path(info.log) / "data.mdb", os.R_OK)
        )
        kwargs.setdefault("curve", mesh_keys(info))
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
        if self.curve is not None:
            self.curve.connect(sub)
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
                    # Another topic's records (the SUB filter dropped them), or records
                    # ZeroMQ lost: read the range from the log (its by-type index skips
                    # the other topics' records without reading them).
                    async for record in self._fill_gap(seq - 1):
                        yield record
                    if seq <= self._covered:
                        continue
                    if seq > self._covered + 1:
                        # The log ends before this seq: the message is not the journal's
                        # (a log wiped and restarted on the same ports, a forged one).
                        log.warning("bus message with seq %d beyond the log's end ignored", seq)
                        continue
                live = _decode(seq, frames[2])
                self._covered = seq
                if live is not None and self._matches(live):
                    self.last_seq = seq
                    yield live
        finally:
            await self.close()

    def _matches(self, record: Record) -> bool:
        if self.session_id is not None and record.event.session_id != self.session_id:
            return False
        if self.topics and self._filter_locally():
            return topic_of(record.event).startswith(self.topics)
        return True

    async def _fill_gap(self, until: int | None = None) -> AsyncIterator[Record]:
        """Catch up to ``until`` (None = the log's end) after a jump or an idle spell,
        counting a gap if records were missed."""
        first = True
        async for record in self._catch_up(until):
            if first:
                self.gaps_filled += 1
                first = False
            yield record

    async def _catch_up(self, until: int | None = None) -> AsyncIterator[Record]:
        """Deliver every matching record in (covered, until or the log's end]."""
        if self._log is not None:
            # Never past the log's end: a seq the log does not hold is not covered.
            last = self._log.last_seq()
            until = last if until is None else min(until, last)
            records = self._log.read_raw(
                self._covered, until=until, topics=self.topics, session_id=self.session_id
            )
            for n, (seq, data) in enumerate(records, 1):
                record = _decode(seq, data)
                self._covered = seq
                if record is not None:
                    self.last_seq = seq
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
                elif item[1] < 0:  # a record this version cannot decode
                    self._covered = item[0]
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

        A request that gets no answer (the journal is restarting, the network is down)
        is sent again on a new socket, ``replay_attempts`` times in all, before
        :class:`BusError` is raised.
        """
        attempts = self.replay_attempts
        for attempt in itertools.count(1) if attempts is None else range(1, attempts + 1):
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
            f"the replay endpoint {self.replay} did not answer {attempts} requests"
            f" of {_REPLAY_TIMEOUT_S:.0f}s each; is the mesh running? (`ap status`)"
        )

    async def _replay_request(
        self, since: int, limit: int
    ) -> AsyncIterator[Record | tuple[int, int]]:
        assert self.replay is not None
        if self._replay_sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self.curve is not None:
                self.curve.connect(sock)
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
                    seq = P.unpack_seq(frames[1])
                    yield _decode(seq, frames[2]) or (seq, -1)
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
