"""A mesh with a team of ``command`` workers under load, for the memory and CPU benchmarks.

:func:`team_toml` and :func:`submit_team` give a team of N workers ``w01``..``wNN`` and
a session of one objective per worker in one wave (disjoint scopes ``pkg/wNN/``), each
running ``busy_agent.py GATE SECONDS RATE SEED`` (:mod:`benchmarks.busy_agent`: waits
for the file GATE, then writes lines at random times, RATE lines/s on average, for
SECONDS; worker k has seed k, so every run repeats the same line times; agents paced on
one schedule from one gate would write in step, which a real team does not).
:func:`dashboard_readers` is a process of WebSocket clients of the session's page,
reading and decoding until told to stop.
:func:`actor_kind` maps an actor's name to its kind (``worker.w01`` -> ``worker``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ap_actors.bus import Subscriber
from ap_actors.config import ACTOR_KINDS
from ap_actors.events import Record, SessionCancelled, SessionCompleted, SessionFailed
from benchmarks.mesh import ApMesh
from benchmarks.processes import Result
from benchmarks.ws_clients import Message

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as MpEvent

KINDS = ACTOR_KINDS
"""The actor kinds of a mesh with the pipeline on and a team."""


def worker_ids(count: int) -> list[str]:
    return [f"w{i:02d}" for i in range(1, count + 1)]


def team_toml(count: int) -> str:
    """A team of ``count`` command workers (their command comes from the plan)."""
    return "".join(
        f'[[workers]]\nid = "{w}"\nagent = "command"\ncommand = "true"\n\n'
        for w in worker_ids(count)
    )


BUSY_AGENT = Path(__file__).with_name("busy_agent.py")


def submit_team(
    mesh: ApMesh, repo: Path, plan: Path, gate: Path, workers: int, seconds: float, rate: float
) -> str:
    """``ap submit --approve`` a session of one busy-agent objective per worker.

    Args:
        seconds: how long each agent writes once the file ``gate`` exists.
        rate: lines/s each agent writes on average.

    Returns:
        The session id.
    """
    objectives = [
        {
            "id": f"lines-{w}",
            "title": f"Write lines ({w})",
            "worker": w,
            "scope_touch": [f"pkg/{w}/"],
            "command": shlex.join(
                [sys.executable, str(BUSY_AGENT), str(gate), str(seconds), str(rate), str(k)]
            ),
        }
        for k, w in enumerate(worker_ids(workers))
    ]
    plan.write_text(json.dumps({"objectives": objectives}))
    args = ["submit", f"Benchmark: {workers} busy workers", "--repo", str(repo)]
    done = mesh.ap(*args, "--plan", str(plan), "--approve", "--json")
    session_id: str = json.loads(done.stdout)["session_id"]
    return session_id


def wait_count(
    mesh: ApMesh, session_id: str, kind: type | tuple[type, ...], count: int, timeout: float = 120
) -> Record:
    """Block until ``count`` events of ``kind`` of the session are in the log; return the
    last of them."""

    async def follow() -> Record:
        seen = 0
        sub = Subscriber.connect(mesh.state, session_id=session_id)
        try:
            async with asyncio.timeout(timeout):
                async for record in sub:
                    if isinstance(record.event, kind):
                        seen += 1
                        if seen >= count:
                            return record
        finally:
            await sub.close()
        raise RuntimeError(f"the subscription to session {session_id} ended")

    return asyncio.run(follow())


ENDED = (SessionCompleted, SessionFailed, SessionCancelled)


def actor_kind(name: str) -> str:
    """``worker.w01`` -> ``worker``; ``journal`` -> ``journal``."""
    return name.split(".", 1)[0]


async def dashboard_readers(
    url: str, count: int, session_id: str, ready: MpEvent, stop: MpEvent
) -> Result:
    """``count`` WebSocket clients of the session's page, reading until ``stop`` is set.

    Each connects with ``since=0&session=ID``, as the page does, and decodes every frame
    (msgspec, :class:`benchmarks.ws_clients.Message`). ``ready`` is set once every
    client has its ``caught_up``. Returns the messages and frames received and the
    resyncs the clients were sent.
    """
    import aiohttp

    decode = msgspec.json.Decoder(Message | list[Message]).decode
    counts = {"messages": 0, "frames": 0, "resyncs": 0}
    caught_up = asyncio.Event()
    pending = [count]

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            counts["frames"] += 1
            got = decode(msg.data)
            for m in got if isinstance(got, list) else (got,):
                counts["messages"] += 1
                if m.type == "caught_up":
                    pending[0] -= 1
                    if not pending[0]:
                        caught_up.set()
                elif m.type == "resync":
                    counts["resyncs"] += 1

    cpu0 = time.process_time()
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(f"{url}ws?since=0&session={session_id}", max_msg_size=0)
            for _ in range(count)
        ]
        tasks = [asyncio.create_task(read(ws)) for ws in sockets]
        await asyncio.wait_for(caught_up.wait(), timeout=60)
        ready.set()
        await loop.run_in_executor(None, stop.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {**counts, "cpu": time.process_time() - cpu0}
