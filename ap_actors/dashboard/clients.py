"""WebSocket clients of the dashboard: catch-up, one shared buffer, batched frames, slow clients.

Source: ``DESIGN.md``, "Dashboard". A client connects with ``since`` (the last seq it
applied) and an optional ``session`` filter. The broadcaster's actor loop folds every
record in seq order and hands each to :meth:`Fanout.publish` as JSON text encoded once
for all clients. A new client is registered *before* its history is read, at the seq
the actor has folded to (``head``): records after ``head`` wait in the buffer while the
history up to ``head`` is sent from the log, so the client gets every record once, in seq
order, with no gap between history and live.

Published messages go to one buffer shared by every client; each client has a cursor in
it. Publishing costs the same with 1 or 1,000 clients and never waits. A client's
sender takes everything between its cursor and the end of the buffer (at most
``max_frame`` messages) and sends it as few WebSocket frames as :data:`MAX_FRAME_BYTES`
allows: a frame is a JSON array of messages in order (a lone message goes as the object
itself). A client that keeps up gets frames
of one message; one that is busy gets fewer, larger frames, so the cost per message
falls as the load rises.

Slow clients: a client more than ``max_queue`` messages behind the end of the buffer
(checked at least every ``max_queue`` publishes) is cut off: it is sent
``{"type": "resync", "seq": S}`` (S = the last seq it was sent) and closed, so it
reconnects with ``since=S``. The buffer is trimmed to the slowest client still
connected, so it holds at most about ``2 * max_queue`` messages. A slow client therefore
costs the others nothing, and loses nothing.
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

MAX_FRAME_BYTES = 256 * 1024
"""Longest frame built from several messages, characters (a single longer message still
goes alone); well under the 4 MiB that aiohttp and browsers accept by default."""


@dataclass(eq=False)
class Client:
    """One WebSocket client.

    Attributes:
        ws: its socket.
        session: only this session's events, or None for everything.
        cursor: index in the fanout's buffer of the next message to look at (absolute:
            counts every message ever published).
        last_seq: the seq of the last event message sent to it.
        overflowed: it fell more than ``max_queue`` messages behind and is cut off.
    """

    ws: web.WebSocketResponse
    session: str | None
    cursor: int = 0
    last_seq: int = 0
    overflowed: bool = False
    id: int = field(default_factory=lambda: next(_ids))

    def wants(self, session_id: str) -> bool:
        """Whether an event of ``session_id`` goes to this client."""
        return self.session is None or self.session == session_id


class Fanout:
    """The registry of connected clients and their shared buffer (module doc).

    Args:
        max_queue: messages a client may be behind before it is told to resync.
        on_resync: called with the client when it is cut off (metrics).
        max_frame: most messages sent in one frame.
    """

    def __init__(
        self,
        max_queue: int = 10_000,
        on_resync: Callable[[Client], None] | None = None,
        max_frame: int = 1_000,
    ):
        self.max_queue = max_queue
        self.max_frame = max_frame
        self.clients: set[Client] = set()
        self.on_resync = on_resync
        self._buffer: list[tuple[int, str, str]] = []  # (seq, session id, text)
        self._base = 0  # absolute index of _buffer[0]
        self._check_at = max_queue  # len(_buffer) at which slow clients are looked for
        self._changed = asyncio.Event()
        self._waiting = 0  # senders waiting on _changed

    @property
    def end(self) -> int:
        """Absolute index one past the last published message."""
        return self._base + len(self._buffer)

    def register(self, ws: web.WebSocketResponse, session: str | None) -> Client:
        """Add a client; from now on every published message is there for it."""
        client = Client(ws=ws, session=session, cursor=self.end)
        self.clients.add(client)
        return client

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients:
            self._base, self._buffer = self.end, []

    def publish(self, seq: int, session_id: str, text: str) -> None:
        """Add one message for every client that wants ``session_id``; never waits.

        ``seq`` is the record's seq (0 for derived messages, which carry the seq of the
        event that caused them inside ``text`` and do not move the client's position).
        """
        self._buffer.append((seq, session_id, text))
        if self._waiting:
            self._waiting = 0
            self._changed.set()
            self._changed = asyncio.Event()
        if len(self._buffer) >= self._check_at:
            self._trim()

    def _trim(self) -> None:
        """Cut off clients more than ``max_queue`` behind; drop what all others have seen."""
        end = self.end
        low = end
        for client in self.clients:
            if client.overflowed:
                continue
            if end - client.cursor > self.max_queue:
                self._cut_off(client)
            else:
                low = min(low, client.cursor)
        del self._buffer[: low - self._base]
        self._base = low
        self._check_at = len(self._buffer) + self.max_queue

    def _cut_off(self, client: Client) -> None:
        client.overflowed = True
        if self._waiting:  # its sender may be waiting: wake it to send the resync
            self._waiting = 0
            self._changed.set()
            self._changed = asyncio.Event()
        if self.on_resync is not None:
            self.on_resync(client)
        log.info("client fell behind; resync", extra={"client": client.id, "seq": client.last_seq})

    async def drain(self, client: Client) -> None:
        """Send ``client`` the published messages until it falls behind or is cancelled.

        The WebSocket handler runs this next to its read loop and cancels it when the
        peer closes. After a resync it closes the socket itself and returns.
        """
        ws = client.ws
        while True:
            if client.overflowed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_json({"type": "resync", "seq": client.last_seq})
                    await ws.close(message=b"resync")
                return
            if client.cursor >= self.end:
                self._waiting += 1
                await self._changed.wait()
                continue
            start = client.cursor - self._base
            chunk = self._buffer[start : start + self.max_frame]
            client.cursor += len(chunk)
            texts = []
            last = client.last_seq
            session = client.session
            for seq, session_id, text in chunk:
                if session is not None and session_id != session:
                    continue
                if seq:
                    if seq <= last:
                        continue  # already sent as history
                    last = seq
                texts.append(text)
            if not texts:
                continue
            try:
                for text in frames(texts):
                    await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            client.last_seq = last


def frames(texts: list[str], max_bytes: int = MAX_FRAME_BYTES) -> list[str]:
    """Return the frames that carry the JSON messages ``texts`` in order (module doc).

    Each frame is one message, or a JSON array of messages at most ``max_bytes``
    characters long.
    """
    if len(texts) == 1:
        return texts
    out: list[str] = []
    group: list[str] = []
    size = 0
    for text in texts:
        if group and size + len(text) + 1 > max_bytes:
            out.append(group[0] if len(group) == 1 else "[" + ",".join(group) + "]")
            group, size = [], 0
        group.append(text)
        size += len(text) + 1
    if group:
        out.append(group[0] if len(group) == 1 else "[" + ",".join(group) + "]")
    return out
