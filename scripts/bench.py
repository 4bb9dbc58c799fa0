"""``make bench``: throughput, latency, replay rate and memory of the event log and bus.

Every number comes from real processes on this machine: the journal runs as its own
process (``python -m ap_actors.actors.journal``), emitters and subscribers run in
separate processes (multiprocessing, ``spawn``), sockets are ZeroMQ on 127.0.0.1 and
the LMDB / SQLite files live in ``bench/tmp-<pid>/`` under the repository (a real disk,
real fsync), removed at the end. Comparisons run side by side in the same invocation,
interleaved rep by rep; the table quotes medians of repeated runs and their ratios.

Output: a rich table on stdout and ``bench/results.json``::

    {"machine": {...}, "started_at": Unix s, "duration_s": s,
     "rows": [{"name", "value", "unit", "target", "meets_target", "notes"}, ...]}

``target`` is a string such as ``">= 100000"`` (None for informative rows, whose
``meets_target`` is None too). Exit code 0 when the suite ran, whatever the results;
1 when a benchmark failed to run (a process died, a count did not match).

The benchmarks themselves are in ``scripts/benchmarks/``, one module each.

``--only WORD`` (repeatable) runs only the benchmarks whose title contains WORD, e.g.
``scripts/bench.py --only browser --only websocket`` for the dashboard's; results.json
then holds those rows only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ap_actors.errors import ApError
from benchmarks.append import bench_append
from benchmarks.busy_memory import bench_busy_memory
from benchmarks.common import ROOT, Row, scratch_dir
from benchmarks.latency import bench_latency
from benchmarks.line_to_browser import bench_line_to_browser
from benchmarks.line_to_ws import bench_line_to_ws
from benchmarks.machine import machine_info
from benchmarks.memory import bench_memory
from benchmarks.orchestration import bench_orchestration
from benchmarks.parsing import bench_parsing
from benchmarks.rebuild import bench_rebuild
from benchmarks.replay import bench_replay
from benchmarks.scope_check import bench_scope
from benchmarks.ws_fanout import bench_ws_fanout
from benchmarks.ws_replay import bench_ws_replay

RESULTS = ROOT / "bench" / "results.json"
BUSY_WARNING = 0.15  # share of the machine busy before the run that gets a warning

Bench = Callable[[Path], list[Row]]
BENCHES: list[tuple[str, Bench]] = [
    ("append throughput (journal, raw LMDB, SQLite)", bench_append),
    ("emit -> subscriber latency", bench_latency),
    ("log replay", bench_replay),
    ("idle memory", bench_memory),
    ("busy actor memory", bench_busy_memory),
    ("actor state rebuild", bench_rebuild),
    ("agent stream parsing", bench_parsing),
    ("scope validation", bench_scope),
    ("dashboard: agent line -> browser", bench_line_to_browser),
    ("dashboard: websocket clients at 1,000 events/s", bench_ws_fanout),
    ("dashboard: agent line -> websocket client", bench_line_to_ws),
    ("dashboard: websocket replay of 1M events", bench_ws_replay),
    ("orchestration CPU, 20 busy workers", bench_orchestration),
]


def run_all(tmp: Path, benches: Sequence[tuple[str, Bench]], rows: list[Row]) -> dict[str, Any]:
    """Run every benchmark in ``tmp``, appending to ``rows``; return the machine info."""
    machine = machine_info(tmp)
    if machine["busy_before_run"] > BUSY_WARNING:
        print(
            f"bench: warning: the machine was {machine['busy_before_run']:.0%} busy before"
            " the run; other processes will skew the numbers",
            file=sys.stderr,
        )
    for title, bench in benches:
        t0 = time.monotonic()
        print(f"bench: {title} ...", file=sys.stderr, flush=True)
        rows += bench(tmp)
        print(f"bench: {title} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return machine


def print_table(rows: Sequence[Row], machine: dict[str, Any], seconds: float) -> None:
    """Print ``rows`` as a rich table, at least 160 columns wide."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"make bench ({seconds:.0f} s) on {machine['cpus']} x {machine['cpu']},"
        f" {machine['filesystem']}",
        title_justify="left",
    )
    table.add_column("benchmark", overflow="fold")
    table.add_column("value", justify="right")
    for name in ("unit", "target"):
        table.add_column(name)
    table.add_column("met", justify="center")
    table.add_column("notes", overflow="fold")
    for r in rows:
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[r.meets_target]
        value = f"{r.value:,.2f}" if abs(r.value) < 100 else f"{r.value:,.0f}"
        table.add_row(r.name, value, r.unit, r.target or "-", met, r.notes)
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)


def write_results(rows: Sequence[Row], machine: dict[str, Any], started: float) -> float:
    """Write ``bench/results.json`` (format in the module docstring); return the duration."""
    seconds = time.time() - started
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "machine": machine,
        "started_at": started,
        "duration_s": round(seconds, 1),
        "rows": [asdict(r) for r in rows],
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print the table, write results.json; 1 when a benchmark failed."""
    parser = argparse.ArgumentParser(description="Run the benchmarks (module docstring).")
    parser.add_argument(
        "--only",
        action="append",
        metavar="WORD",
        help="run only the benchmarks whose title contains WORD (repeatable)",
    )
    only = parser.parse_args(argv).only
    benches = [b for b in BENCHES if not only or any(w.lower() in b[0].lower() for w in only)]
    if not benches:
        parser.error(f"no benchmark title contains {' or '.join(only)}")
    started = time.time()
    rows: list[Row] = []
    try:
        with scratch_dir() as tmp:
            machine = run_all(tmp, benches, rows)
    except (RuntimeError, ApError, subprocess.SubprocessError) as e:
        print(f"bench: failed: {e}", file=sys.stderr)
        return 1
    seconds = write_results(rows, machine, started)
    print_table(rows, machine, seconds)
    print(f"results written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
