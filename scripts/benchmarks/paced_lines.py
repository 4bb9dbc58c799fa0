"""The agent of the line -> browser benchmark: paced transcript lines, each with its time.

Run as a worker's objective command: ``python paced_lines.py GATE COUNT RATE``. It waits
until the file GATE exists (the benchmark creates it once the page is open), then writes
COUNT lines to stdout at RATE lines/s on an absolute schedule, one ``write`` + flush per
line, in the seed's transcript format (``[timestamp] TOOL: name - description``)::

    [2026-01-02T03:04:05.678901] TOOL: edit - t=1767322245.678901 n=17

``t`` is ``time.time()`` just before the line is written (s since the epoch) and ``n``
its number from 0. Only the standard library: the command runs in the worker's worktree.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

GATE_POLL_S = 0.005


def main(gate: Path, count: int, rate: float) -> None:
    while not gate.exists():
        time.sleep(GATE_POLL_S)
    out = sys.stdout
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = time.time()
        stamp = dt.datetime.fromtimestamp(t).isoformat(timespec="microseconds")
        out.write(f"[{stamp}] TOOL: edit - t={t:.6f} n={n}\n")
        out.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
