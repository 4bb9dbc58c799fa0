"""The client processes of the WebSocket fan-out benchmark (:mod:`benchmarks.ws_fanout`).

Each process runs :func:`ws_clients` on uvloop: ``count`` aiohttp WebSockets to the
dashboard, every one read by its own task that decodes each message (msgspec, only the
fields below) and checks the seqs; optionally one stalled client besides.
"""

from __future__ import annotations

import array
import asyncio
import base64
import fcntl
import os
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import msgspec

from benchmarks.processes import Result

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Barrier
    from multiprocessing.synchronize import Event as MpEvent

    import aiohttp

DRAIN_S = 2.0  # after the emitter's last ack, how long a client may take to get the rest
LAT_SAMPLE = 10  # the latency is recorded for the events whose seq is a multiple of this
CONNECT_WINDOW = 50  # handshakes in flight per client process
WARMUP = "warmup"  # objective_id of the events that are not measured


class Message(msgspec.Struct):
    """What a client reads of each message (the rest of the JSON is skipped)."""

    type: str = ""
    seq: int = 0
    ts: float = 0.0  # the event's ts, stamped at emit (Unix s)
    derived: bool = False  # a worker card, not an event of the log
    objective_id: str = ""


@dataclass
class Reader:
    """One client's counts; ``lat`` holds the latency of its measured events whose seq is a
    multiple of ``LAT_SAMPLE`` (or :func:`read_all`'s ``sample``), s, and ``lat_seqs``
    their seqs."""

    head: int  # the seq of its caught_up: live events follow from head + 1
    last_seq: int
    received: int = 0  # log events after head
    gaps: int = 0
    duplicates: int = 0
    resyncs: int = 0
    finished_at: float = 0.0  # monotonic time the final event arrived; 0 = it did not
    lat: array.array[float] = field(default_factory=lambda: array.array("d"))
    lat_seqs: array.array[int] = field(default_factory=lambda: array.array("q"))  # seq per lat

    def kept_up(self, final: int, deadline: float) -> bool:
        """Every event up to ``final``, in order, no resync, the last by ``deadline``."""
        return (
            0 < self.finished_at <= deadline
            and not (self.gaps or self.duplicates or self.resyncs)
            and self.last_seq == final
            and self.received == final - self.head
        )


async def read_all(
    ws: aiohttp.ClientWebSocketResponse, r: Reader, final: list[int], sample: int = LAT_SAMPLE
) -> None:
    """Read until the server closes, or the event ``final[0]`` (once known) arrived.

    The latency is recorded for the events whose seq is a multiple of ``sample``.
    """
    import aiohttp

    decode = msgspec.json.Decoder(Message | list[Message]).decode  # a frame: one or many
    async for msg in ws:
        now = time.time()
        if msg.type != aiohttp.WSMsgType.TEXT:
            return
        got = decode(msg.data)
        for m in got if isinstance(got, list) else (got,):
            if m.type == "resync":
                r.resyncs += 1
                return
            if not m.seq or m.derived or m.type in ("caught_up", "connected"):
                continue
            if m.seq <= r.last_seq:
                r.duplicates += 1
                continue
            if m.seq != r.last_seq + 1:
                r.gaps += 1
            r.last_seq = m.seq
            r.received += 1
            if not m.seq % sample and m.type == "worker_activity" and m.objective_id != WARMUP:
                r.lat.append(now - m.ts)
                r.lat_seqs.append(m.seq)
            if final[0] and m.seq >= final[0]:
                r.finished_at = time.monotonic()
                return


async def connect(
    http: aiohttp.ClientSession, url: str, since: int, deflate: bool
) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    """Open a client WebSocket, read up to its ``caught_up``; return it and that seq.

    ``deflate`` asks for permessage-deflate with a 15-bit window, as Chromium does;
    aiohttp's client asks for no extension by default.
    """
    ws = await http.ws_connect(f"{url}ws?since={since}", max_msg_size=0, compress=15 * deflate)
    while True:
        got = msgspec.json.decode(await ws.receive_str(), type=Message | list[Message])
        for m in got if isinstance(got, list) else (got,):
            if m.type == "caught_up":
                return ws, m.seq


async def stalled_client(url: str, since: int) -> socket.socket:
    """A WebSocket opened over a raw socket (no extension) that is never read again."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws?since={since} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: nothing past the headers
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the stalled client's handshake failed: {head[:100]!r}")
    return sock


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive buffer (``FIONREAD``)."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    value: int = struct.unpack("i", buf)[0]
    return value


async def ws_clients(
    url: str,
    count: int,
    since: int,
    deflate: bool,
    stall: bool,
    barrier: Barrier,
    emitted: MpEvent,
    final_seq: Synchronized[int],
    sample: int = LAT_SAMPLE,
) -> Result:
    """A client process: ``count`` readers (and the stalled client with ``stall``).

    Connects every client (reads to its ``caught_up``), waits at ``barrier``, reads
    until ``emitted`` is set and then up to ``DRAIN_S`` more for the event
    ``final_seq``; closes everything and returns the counts, the latencies (as the
    bytes of ``array("d")``, s) of the clients that kept up and of all of them, with
    the seq of each (``array("q")``; events whose seq is a multiple of ``sample``),
    and, for the lower bounds of the events a client had not received, each client's
    last seq and the time (Unix s) its reading stopped.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    final = [0]  # the emitter's last seq, once known
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        stalled = await stalled_client(url, since) if stall else None
        window = asyncio.Semaphore(CONNECT_WINDOW)

        async def opened() -> tuple[aiohttp.ClientWebSocketResponse, int]:
            async with window:
                return await connect(http, url, since, deflate)

        connected = await asyncio.gather(*(opened() for _ in range(count)))
        sockets = [ws for ws, _ in connected]
        readers = [Reader(head=head, last_seq=head) for _, head in connected]
        tasks = [
            asyncio.create_task(read_all(ws, r, final, sample))
            for ws, r in zip(sockets, readers, strict=True)
        ]
        await loop.run_in_executor(None, barrier.wait)
        cpu0 = time.process_time()
        await loop.run_in_executor(None, emitted.wait)
        final[0] = final_seq.value
        for task, r in zip(tasks, readers, strict=True):
            if r.last_seq >= final[0]:  # it had the final event before it was known
                r.finished_at = time.monotonic()
                task.cancel()
        deadline = time.monotonic() + DRAIN_S
        await asyncio.wait(tasks, timeout=DRAIN_S)
        stopped, cpu = time.time(), time.process_time() - cpu0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stalled_unread = unread_bytes(stalled) if stalled is not None else 0
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        if stalled is not None:
            stalled.close()
    lat_kept, lat_all = array.array("d"), array.array("d")
    seqs_kept, seqs_all = array.array("q"), array.array("q")
    kept = 0
    for r in readers:
        lat_all.extend(r.lat)
        seqs_all.extend(r.lat_seqs)
        if r.kept_up(final[0], deadline):
            kept += 1
            lat_kept.extend(r.lat)
            seqs_kept.extend(r.lat_seqs)
    return {
        "kept_up": kept,
        "received": sum(r.received for r in readers),
        "complete": sum(1 for r in readers if r.last_seq == final[0]),
        "gaps": sum(r.gaps for r in readers),
        "duplicates": sum(r.duplicates for r in readers),
        "resyncs": sum(r.resyncs for r in readers),
        "stalled_unread": stalled_unread,
        "last_seqs": [r.last_seq for r in readers],
        "stopped": stopped,
        "lat_kept": lat_kept.tobytes(),
        "lat_all": lat_all.tobytes(),
        "lat_kept_seqs": seqs_kept.tobytes(),
        "lat_all_seqs": seqs_all.tobytes(),
        "cpu": cpu,
    }
