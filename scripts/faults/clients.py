"""The load of a fault-injection run: client processes appending through the journal.

Each client is a ``spawn`` process with its own :class:`~ap_actors.emitter.Emitter`
(retrying forever: ``max_attempts=None``) and its own history file
(:class:`~ap_actors.history.HistoryWriter`), so its invokes and outcomes survive a kill
of anything else. It appends ``worker_activity`` events (worker ``chaos-<k>``, no
session) in batches of ``BATCH`` at the rate the controller sets in a shared value,
with up to ``IN_FLIGHT`` batches awaiting their acks; rate 0 pauses it, a negative rate
means "as fast as it can" (the burst). Client 0 also submits the sessions, each a
``request_submitted`` built by :func:`~ap_actors.submission.prepare_submission` from a
plan file, so that the acknowledged submissions are in the history too.
"""

from __future__ import annotations

import asyncio
import multiprocessing.synchronize
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH = 100  # events per emit_many at a set rate ...
BURST_BATCH = 500  # ... and as fast as it can
IN_FLIGHT = 8  # batches a client keeps awaiting acks


@dataclass(frozen=True)
class ClientSpec:
    """What one client process does.

    Args:
        index: the client's number (worker id ``chaos-<index>``; 0 submits sessions).
        ingest: the journal's ingest endpoint (fixed for the whole run).
        history: the client's history file.
        plans: plan files to submit, in order (client 0 only).
        repo, team_file: for the submissions.
        submit_every_s: seconds between two submissions.
    """

    index: int
    ingest: str
    history: Path
    plans: tuple[Path, ...] = ()
    repo: Path | None = None
    team_file: Path | None = None
    submit_every_s: float = 1.0


def run_client(
    spec: ClientSpec,
    rate: Any,  # multiprocessing.Value("d"): events/s; 0 = pause; < 0 = as fast as possible
    stop: multiprocessing.synchronize.Event,
    submitted: Any,  # multiprocessing.Value("i"): sessions acknowledged so far
) -> None:
    """The client process's entry point (spawn): run until ``stop`` is set.

    Its log (the emitter's resend warnings) goes next to its history, ``<history>.log``.
    """
    import logging

    import uvloop

    logging.basicConfig(
        filename=str(spec.history.with_suffix(".log")),
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    uvloop.run(_client(spec, rate, stop, submitted))


async def _client(spec: ClientSpec, rate: Any, stop: Any, submitted: Any) -> None:
    from ap_actors.bus import Emitter
    from ap_actors.errors import ApError
    from ap_actors.events import WorkerActivity
    from ap_actors.history import HistoryWriter

    history = HistoryWriter(spec.history, source=f"chaos-{spec.index}")
    emitter = Emitter(spec.ingest, source=f"chaos-{spec.index}", max_attempts=None)
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    n = 0

    async def send(batch: list[Any]) -> None:
        try:
            await history.emit_many(emitter, batch)
        except ApError:
            pass  # recorded as fail / info by the history
        finally:
            slots.release()

    submitter = None
    if spec.plans:
        submitter = asyncio.create_task(_submit(spec, history, emitter, stop, submitted))
    next_at = time.monotonic()
    while not stop.is_set():
        r = rate.value
        if r == 0:
            await asyncio.sleep(0.05)
            next_at = time.monotonic()
            continue
        if r > 0:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at, now - 1.0) + BATCH / r
        await slots.acquire()
        size = BATCH if r > 0 else BURST_BATCH
        batch = [
            WorkerActivity(worker_id=f"chaos-{spec.index}", description=f"chaos event {n + i}")
            for i in range(size)
        ]
        n += size
        task = asyncio.create_task(send(batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if submitter is not None:
        await submitter
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    await emitter.close()
    history.close()


async def _submit(spec: ClientSpec, history: Any, emitter: Any, stop: Any, submitted: Any) -> None:
    from ap_actors.errors import ApError
    from ap_actors.submission import prepare_submission
    from ap_actors.team import load_team

    assert spec.repo is not None and spec.team_file is not None
    team = load_team(spec.team_file)
    for plan in spec.plans:
        if stop.is_set():
            return
        event = prepare_submission(
            team, f"Chaos session {plan.stem}", spec.repo, plan=plan, approve=True
        )
        try:
            await history.emit_many(emitter, [event])
        except ApError:
            continue
        with submitted.get_lock():
            submitted.value += 1
        await asyncio.sleep(spec.submit_every_s)
