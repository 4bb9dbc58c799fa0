"""Helpers of the dashboard tests: a broadcaster run in-process, WebSocket readers, raw HTTP.

The broadcaster is the real actor (:class:`~ap_actors.actors.broadcaster.Broadcaster`)
run as an asyncio task against a real journal process, so a test can choose its options
(``max_queue``, ``web_dir``, the bind URL) and its environment (``AP_TOKEN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from ap_actors.actors.broadcaster import Broadcaster
from ap_actors.mesh import MeshInfo

Message = dict[str, Any]

WAIT_S = 30.0  # the longest any single wait of these tests may take


@contextlib.asynccontextmanager
async def running_broadcaster(
    mesh: MeshInfo, state_dir: Path, **options: Any
) -> AsyncIterator[Broadcaster]:
    """Run a broadcaster in this event loop until the block ends; yield it once it serves.

    ``options`` are the actor's options; ``url`` defaults to a free loopback port.

    Raises:
        whatever the actor raised while starting (e.g. ``StartupError``).
    """
    options.setdefault("url", "http://127.0.0.1:*/")
    actor = Broadcaster("broadcaster", mesh, state_dir, options)
    ready = asyncio.Event()
    task = asyncio.create_task(actor.run(ready=ready.set))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # the startup error
        raise AssertionError("the broadcaster stopped before it was ready")
    assert ready.is_set(), "the broadcaster was not ready in time"
    try:
        yield actor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ws_url(base: str, **query: object) -> str:
    """The WebSocket URL of the dashboard at ``base`` (``http://host:port/``)."""
    return base + "ws" + (f"?{urlencode(query)}" if query else "")


def is_record(message: Message) -> bool:
    """True for a message that is an event of the log (not connected, caught_up,
    resync or a derived card): only those carry ``appended_at``."""
    return "appended_at" in message


def of_type(*types: str) -> Callable[[Message], bool]:
    """A ``read_until`` condition: a message of one of these types."""
    return lambda m: m.get("type") in types


def record_seqs(messages: list[Message]) -> list[int]:
    """The seqs of the log events among ``messages``, in the order received."""
    return [m["seq"] for m in messages if is_record(m)]


def unpack(data: str) -> list[Message]:
    """The messages of one WebSocket frame: an object, or an array of them in order."""
    got = json.loads(data)
    return got if isinstance(got, list) else [got]


async def read_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[Message], bool]
) -> list[Message]:
    """Read JSON messages until one satisfies ``done`` (included) and return them all.

    Raises:
        AssertionError: the socket closed first (the messages so far are in the text).
    """
    messages: list[Message] = []
    async with asyncio.timeout(WAIT_S):
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            for message in unpack(msg.data):
                messages.append(message)
                if done(message):
                    return messages
    raise AssertionError(f"the stream ended before the awaited message: {messages[-3:]}")


async def read_to_close(ws: aiohttp.ClientWebSocketResponse) -> list[Message]:
    """Read JSON messages until the server closes the socket; return them."""
    messages: list[Message] = []
    async with asyncio.timeout(WAIT_S):
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            messages += unpack(msg.data)
    return messages


class Follower:
    """Reads a WebSocket in a task, keeping every message, so a test can wait for a seq."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[Message] = []
        self.last_seq = 0  # of the last log event received
        self._progress = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                for message in unpack(msg.data):
                    self.messages.append(message)
                    if is_record(message):
                        async with self._progress:
                            self.last_seq = message["seq"]
                            self._progress.notify_all()
        finally:
            async with self._progress:
                self._progress.notify_all()

    async def reached(self, seq: int) -> None:
        """Wait until the log event ``seq`` (or a later one) was received.

        Raises:
            AssertionError: the socket closed first.
        """
        async with asyncio.timeout(WAIT_S), self._progress:
            await self._progress.wait_for(lambda: self.last_seq >= seq or self._task.done())
        assert self.last_seq >= seq, f"closed at seq {self.last_seq}: {self.messages[-3:]}"

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def wait_in_stream(
    session: aiohttp.ClientSession, base: str, session_id: str, done: Callable[[Message], bool]
) -> list[Message]:
    """Follow one session's stream on the dashboard at ``base`` (from its start) until a
    message satisfies ``done``; return the session's messages.

    Once the dashboard has sent an event it has also folded it, so its REST answers
    reflect that event afterwards: this is how the REST tests synchronise.
    """
    async with session.ws_connect(ws_url(base, session=session_id, since=0)) as ws:
        return await read_until(ws, done)


async def raw_get(
    base: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send ``GET target`` byte for byte (no client-side path normalisation); return the
    status code and the body."""
    return await raw_request(base, "GET", target, headers)


async def raw_request(
    base: str, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send ``method target`` (no body) byte for byte: no client-side path
    normalisation; return the status code and the body."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {url.netloc}", "Connection: close"]
    if method != "GET":
        lines.append("Content-Length: 0")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        async with asyncio.timeout(WAIT_S):
            response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
