"""The seeds' log tailer, reimplemented: a file checked every 100 ms.

Seed 001 ("AP Orchestrator Architecture") runs an ``AsyncLogMonitor(log_path, worker_id,
callback)`` per worker, on asyncio with aiofiles, and gives "Log monitoring: ~100ms
(check interval)" and "Total latency: ~200ms (log -> dashboard)". The seeds hold no
code; :class:`PollingTailer` is the plain reading of that design, and
:func:`poll_reader` runs it in a benchmark process (:mod:`benchmarks.line_to_ws`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.line_to_browser import LINE
from benchmarks.processes import Result

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as MpEvent

POLL_INTERVAL_S = 0.1  # seed 001: "Log monitoring: ~100ms (check interval)"
# The seed's transcript line: "[2025-10-08T10:36:45] TOOL: search_replace - Editing src/auth.py"
SEED_LINE = re.compile(
    r"^\[(?P<timestamp>[^\]]*)\] (?P<kind>[A-Z_]+): (?P<tool>\S+)(?: - (?P<description>.*))?$"
)


Activity = dict[str, str]


class PollingTailer:
    """The seeds' ``AsyncLogMonitor(log_path, worker_id, callback)``, reimplemented.

    Every ``interval`` seconds (sleeping ``interval`` after each check, as an
    ``asyncio.sleep`` loop does) it compares the file's size with its read position;
    when the file grew it reads the new bytes, splits off the complete lines (a partial
    last line waits for the next check), parses each line of the seed's format into an
    activity dict and awaits ``callback(activity)`` for it, in order. A file that shrank
    is read again from the start. The file calls run in a thread, as aiofiles runs them.
    """

    def __init__(
        self,
        log_path: Path,
        worker_id: str,
        callback: Callable[[Activity], Awaitable[None]],
        interval: float = POLL_INTERVAL_S,
    ) -> None:
        self.log_path = log_path
        self.worker_id = worker_id
        self.callback = callback
        self.interval = interval
        self.position = 0
        self.partial = b""
        self.running = False

    async def start(self) -> None:
        """Check the file every ``interval`` until :meth:`stop`."""
        self.running = True
        while self.running:
            await self.check()
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        self.running = False

    async def check(self) -> None:
        """Read what was appended since the last check and hand over its activities."""
        size = await asyncio.to_thread(lambda: self.log_path.stat().st_size)
        if size < self.position:  # truncated: start over
            self.position, self.partial = 0, b""
        if size == self.position:
            return
        data = await asyncio.to_thread(self._read_from, self.position)
        self.position += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        for raw in complete:
            activity = self.parse(raw.decode(errors="replace"))
            if activity is not None:
                await self.callback(activity)

    def _read_from(self, position: int) -> bytes:
        with self.log_path.open("rb") as f:
            f.seek(position)
            return f.read()

    def parse(self, line: str) -> Activity | None:
        """A line of the seed's format as ``{"worker_id", "activity_type", ...}``."""
        m = SEED_LINE.match(line)
        if m is None:
            return None
        return {
            "worker_id": self.worker_id,
            "activity_type": "tool_use" if m["kind"] == "TOOL" else m["kind"].lower(),
            "tool_name": m["tool"],
            "description": m["description"] or "",
            "timestamp": m["timestamp"],
        }


async def poll_reader(path: str, lines: int, ready: MpEvent, budget_s: float) -> Result:
    """Tail ``path`` with :class:`PollingTailer` until lines ``0..lines-1`` were read.

    Returns ``received``, line number -> the time (Unix s) its activity reached the
    callback; stops ``60 + budget_s`` s after it started at the latest (``timed_out`` then).
    """
    received: dict[int, float] = {}
    cpu0 = time.process_time()

    async def on_activity(activity: Activity) -> None:
        now = time.time()
        if found := LINE.search(activity["description"]):
            received.setdefault(int(found[2]), now)
            if len(received) >= lines:
                tailer.stop()

    tailer = PollingTailer(Path(path), "w1", on_activity)
    ready.set()
    timed_out = False
    try:
        await asyncio.wait_for(tailer.start(), timeout=60 + budget_s)
    except TimeoutError:
        timed_out = True
    return {"received": received, "timed_out": timed_out, "cpu": time.process_time() - cpu0}
