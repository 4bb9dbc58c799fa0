"""A busy agent for the team benchmarks: transcript lines at random times, at a mean rate.

Run as a worker's objective command: ``python busy_agent.py GATE SECONDS RATE SEED``.
It waits until the file GATE exists, then for SECONDS writes lines to stdout with
exponentially distributed gaps of mean 1/RATE s (a Poisson process: lines come alone
and in bursts, as a streaming agent's messages, tool calls and results do), one
``write`` + flush per line, in the seed's transcript format::

    [2026-01-02T03:04:05.678901] TOOL: edit - t=1767322245.678901 n=17

``t`` is ``time.time()`` just before the line is written and ``n`` its number from 0.
SEED seeds the gaps, so the agents of a team are independent of each other (agents
paced on one schedule from one gate would write in step, and the journal would commit
their lines together) and each run repeats the same gaps. Only the standard library:
the command runs in the worker's worktree.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from pathlib import Path

GATE_POLL_S = 0.005


def main(gate: Path, seconds: float, rate: float, seed: int) -> None:
    gaps = random.Random(seed)
    while not gate.exists():
        time.sleep(GATE_POLL_S)
    out = sys.stdout
    start = time.monotonic()
    due = start + gaps.expovariate(rate)
    n = 0
    while due < start + seconds:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = time.time()
        stamp = dt.datetime.fromtimestamp(t).isoformat(timespec="microseconds")
        out.write(f"[{stamp}] TOOL: edit - t={t:.6f} n={n}\n")
        out.flush()
        n += 1
        due += gaps.expovariate(rate)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
