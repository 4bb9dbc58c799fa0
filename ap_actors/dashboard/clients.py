"""WebSocket clients of the dashboard: catch-up, bounded queues and the slow-client policy.

Source: ``DESIGN.md``, "Dashboard". A client connects with ``since`` (the last seq it
applied) and an optional ``session`` filter. The broadcaster's actor loop folds every
record in seq order and hands each to :meth:`Fanout.publish` as JSON text encoded once
for all clients. A new client is registered *before* its history is read, at the seq
the actor has folded to (``head``): records after ``head`` queue up while the history up
to ``head`` is sent from the log, so the client gets every record once, in seq order,
with no gap between history and live.

Each client has a bounded queue (``max_queue`` messages). Publishing never waits: a client
whose queue is full is cut off: its queue is dropped, it is sent ``{"type": "resync",
"seq": S}`` (S = the last seq it was sent) and closed, so it reconnects with
``since=S``. A slow client therefore costs the others nothing, and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(eq=False)
class Client:
    """One WebSocket client.

    Attributes:
        ws: its socket.
        session: only this session's events, or None for everything.
        queue: (seq, text) messages waiting to be sent; seq 0 for messages without one.
        last_seq: the seq of the last event message sent to it.
    """

    ws: web.WebSocketResponse
    session: str | None
    max_queue: int
    queue: asyncio.Queue[tuple[int, str]] = field(init=False)
    last_seq: int = 0
    overflowed: bool = False
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.max_queue)

    def wants(self, session_id: str) -> bool:
        """Whether an event of ``session_id`` goes to this client."""
        return self.session is None or self.session == session_id


class Fanout:
    """The registry of connected clients; :meth:`publish` is called by the actor loop.

    Args:
        max_queue: messages a client may have waiting before it is told to resync.
        on_resync: called with the client when it is cut off (metrics).
    """

    def __init__(self, max_queue: int = 10_000, on_resync: Callable[[Client], None] | None = None):
        self.max_queue = max_queue
        self.clients: set[Client] = set()
        self.on_resync = on_resync

    def register(self, ws: web.WebSocketResponse, session: str | None) -> Client:
        """Add a client; from now on every published record reaches its queue."""
        client = Client(ws=ws, session=session, max_queue=self.max_queue)
        self.clients.add(client)
        return client

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, seq: int, session_id: str, text: str) -> None:
        """Queue one message for every client that wants ``session_id``; never waits.

        ``seq`` is the record's seq (0 for derived messages, which carry the seq of the
        event that caused them inside ``text`` and do not move the client's position).
        """
        for client in self.clients:
            if client.overflowed or not client.wants(session_id):
                continue
            try:
                client.queue.put_nowait((seq, text))
            except asyncio.QueueFull:
                self._cut_off(client)

    def _cut_off(self, client: Client) -> None:
        client.overflowed = True
        # The history it still had queued is dropped; it reconnects from last_seq.
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(_RESYNC)  # wakes its drain, which sends resync and closes
        if self.on_resync is not None:
            self.on_resync(client)
        log.info("client fell behind; resync", extra={"client": client.id, "seq": client.last_seq})

    async def drain(self, client: Client) -> None:
        """Send ``client`` its queued messages until it falls behind or is cancelled.

        The WebSocket handler runs this next to its read loop and cancels it when the
        peer closes. After a resync it closes the socket itself and returns.
        """
        ws = client.ws
        while True:
            seq, text = await client.queue.get()
            if (seq, text) == _RESYNC:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_json({"type": "resync", "seq": client.last_seq})
                    await ws.close(message=b"resync")
                return
            if seq and seq <= client.last_seq:
                continue  # already sent as history
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            if seq:
                client.last_seq = seq


_RESYNC = (-1, "")  # queue marker: the client fell behind
