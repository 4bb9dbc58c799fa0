"""What every benchmark shares: result rows, statistics, test events, the scratch dir."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ap_actors.bus import Subscriber
from ap_actors.events import Event, Record, WorkerActivity, new_id, stamp

ROOT = Path(__file__).resolve().parents[2]
"""The repository."""
ANY_PORT = "tcp://127.0.0.1:*"


# --- results ------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table and of results.json."""

    name: str
    value: float
    unit: str
    target: str | None  # ">= 100000", "<= 1.0"; None = informative
    meets_target: bool | None
    notes: str = ""


def check(value: float, op: str, bound: float) -> bool:
    """Return whether ``value op bound`` holds (op is ">=" or "<=")."""
    return value >= bound if op == ">=" else value <= bound


def row(
    name: str, value: float, unit: str, op: str | None, bound: float | None, notes: str = ""
) -> Row:
    """Build a row; ``op``/``bound`` None make it informative."""
    if op is None or bound is None:
        return Row(name, value, unit, None, None, notes)
    return Row(name, value, unit, f"{op} {bound:g}", check(value, op, bound), notes)


def median(values: Sequence[float]) -> float:
    """The median as a float (``statistics.median`` of ints may return an int)."""
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """Return ``"runs a / b / c"`` for the notes column."""
    return "runs " + " / ".join(fmt.format(v) for v in values)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# --- events -------------------------------------------------------------------------


def activity(
    worker: int, n: int, session_id: str, *, ts: float = 0.0, objective_id: str = ""
) -> WorkerActivity:
    """A realistic ``worker_activity``: about 300 bytes of msgpack once stamped.

    msgpack maps carry their field names, so even an empty ``worker_activity`` with a
    ULID and a session id is about 210 bytes.
    """
    return WorkerActivity(
        session_id=session_id,
        ts=ts,
        worker_id=f"worker-{worker}",
        objective_id=objective_id or f"obj-{n % 7 + 1}",
        activity_type="tool_use",
        tool_name="Edit",
        description=f"Edited parse_args to accept --state-dir ({n})",
        file_path=f"ap_actors/module_{n % 50}.py",
    )


def stamped_events(count: int, workers: int) -> list[Event]:
    """``count`` events with ids, ts and source, as an Emitter would send them.

    Event ``i`` belongs to worker ``i % workers``, each worker with its own session.
    """
    sessions = [new_id() for _ in range(workers)]
    now = time.time()
    return [
        stamp(activity(i % workers, i, sessions[i % workers]), source="bench", now=now)
        for i in range(count)
    ]


def stream_of(sub: Subscriber) -> AsyncGenerator[Record, None]:
    """``sub``'s records as the async generator they are, for ``contextlib.aclosing``.

    Leaving ``async for`` early does not finalise a generator; ``aclose`` runs the
    subscriber's cleanup (sockets, log handle) at once.
    """
    return cast(AsyncGenerator[Record, None], aiter(sub))


# --- files --------------------------------------------------------------------------


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """``bench/tmp-<pid>/`` on the repository's disk, removed afterwards."""
    path = ROOT / "bench" / f"tmp-{os.getpid()}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
