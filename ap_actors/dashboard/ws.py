"""``GET /ws?since=SEQ&session=ID``: the event stream of the dashboard.

Messages are JSON objects; a text frame holds one message, or a JSON array of several
messages in order (sent when several were waiting: history pages, a busy client).
Frames are not compressed (permessage-deflate costs more CPU per client than it saves
on loopback and LAN links). Messages, in this order:

1. ``{"type": "connected", "message": "Connected to AP", "timestamp": ISO-8601,
   "since": S, "last_seq": H, "session": ID or null}`` (seed 001's greeting);
2. every event with ``S < seq <= H`` from the log (``{"seq", "appended_at", "type",
   ...fields}``, the shape of ``ap tail --json``), then ``{"type": "caught_up", "seq": H}``;
3. live events with ``seq > H``, and derived worker cards
   ``{"type": "worker_metrics", "derived": true, "seq", "session_id", "worker_id", ...}``;
4. ``{"type": "resync", "seq": S}`` and a close, if the client fell behind
   (:mod:`ap_actors.dashboard.clients`): reconnect with ``since=S``.

Every event reaches a client once, in seq order, with no gap, also across reconnects
that pass the last seq applied. WebSocket heartbeats (pings) keep idle connections alive
and drop dead ones. Messages from the client are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from ap_actors.dashboard.api import _error, _int
from ap_actors.dashboard.clients import frames
from ap_actors.ingest import MAX_SESSION_BYTES
from ap_actors.protocol import MAX_SEQ

if TYPE_CHECKING:
    from ap_actors.actors.broadcaster import Broadcaster

HISTORY_PAGE = 2_000  # records read from the log per step of a client's catch-up
HEARTBEAT_S = 15.0


def add_routes(app: web.Application, b: Broadcaster) -> None:
    """Add ``/ws`` to ``app``."""

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        since = _int(request, "since", 0, MAX_SEQ)
        session = request.query.get("session") or None
        if session is not None and (
            len(session.encode()) > MAX_SESSION_BYTES or "\x00" in session
        ):  # what the journal takes as a session id (ingest)
            raise _error(web.HTTPBadRequest, "session must be a session id")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False)
        await ws.prepare(request)
        # Registered at `head` with no await in between: records after head queue up.
        head = b.last_seq
        client = b.fanout.register(ws, session)
        b.metrics.clients.inc()
        drain: asyncio.Task[None] | None = None
        try:
            await ws.send_json(
                {
                    "type": "connected",
                    "message": "Connected to AP",
                    "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "since": since,
                    "last_seq": head,
                    "session": session,
                }
            )
            pos = since
            while pos < head and not ws.closed:
                texts, covered = await asyncio.to_thread(
                    b.read_history, pos, head, session, HISTORY_PAGE
                )
                for text in frames([text for _, text in texts]):
                    await ws.send_str(text)
                if texts:
                    client.last_seq = texts[-1][0]
                pos = covered
            # A client ahead of this broadcaster (it restarted) gets nothing twice either.
            client.last_seq = max(client.last_seq, head, since)
            await ws.send_json({"type": "caught_up", "seq": head})
            drain = asyncio.create_task(b.fanout.drain(client))
            async for msg in ws:  # until the peer (or a resync) closes it
                if msg.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, RuntimeError):
            pass  # the peer went away mid-send
        finally:
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
            b.fanout.unregister(client)
            b.metrics.clients.dec()
        return ws

    app.router.add_get("/ws", websocket)
