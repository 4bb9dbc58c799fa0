"""``make bench-scale``: 100 agents at 50 lines/s each and 1,000 WebSocket clients, one mesh.

The scale run of issue 6: ``ap up --detach`` with a team of N workers whose agent is
``scripts/replay_transcript.py`` writing a real recorded transcript (Claude Code's
``stream-json`` by default, parsed by the ``claude`` adapter) at ``--rate`` lines/s for
``--seconds``; a plan of N objectives in one wave; M WebSocket clients attached to the
broadcaster before the agents start. How each figure is measured:
``scripts/benchmarks/scale.py`` (the run), ``scale_log.py`` (events lost, latencies),
``scale_usage.py`` (CPU and memory), and ``bench/NOTES.md``.

Output: two rich tables on stdout (the figures; CPU and memory per actor kind) and
``bench/scale-results.json``::

    {"machine": {...}, "config": {...}, "started_at", "duration_s", "phases_s": {...},
     "window": [from, to], "rows": [{"name", "value", "unit", "target", "meets_target",
     "notes"}], "usage": [{"kind", "processes", "cpu_sum_pct", "cpu_max_pct",
     "rss_sum_mb", "rss_max_mb", "uss_sum_mb", "uss_max_mb"}], "objectives": {...}}

Exit code 0 when the run completed, whatever the figures; 1 with one line on stderr when
it could not run (a process died, an objective failed, a wait timed out); 2 for a bad
command line. With the defaults it takes 3-4 minutes on the 2-core VM when nothing else
runs (up to 9 when other work keeps it busy), about a third of it starting 206 actor
processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ap_actors.errors import ApError
from benchmarks.common import ROOT, Row, scratch_dir
from benchmarks.machine import machine_info
from benchmarks.scale import ScaleConfig, run_scale
from benchmarks.scale_report import document, rows, usage_rows
from benchmarks.scale_workload import DEFAULT_RECORDING, Workload, agent_of

RESULTS = ROOT / "bench" / "scale-results.json"


def print_tables(
    figures: Sequence[Row], usage: list[dict[str, Any]], machine: dict[str, Any], seconds: float
) -> None:
    """The figures, then CPU and memory per kind, as rich tables at least 160 columns wide."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, shutil.get_terminal_size().columns))
    table = Table(
        title=f"make bench-scale ({seconds:.0f} s) on {machine['cpus']} x {machine['cpu']},"
        f" {machine['filesystem']}",
        title_justify="left",
    )
    table.add_column("figure", overflow="fold")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target")
    table.add_column("met", justify="center")
    table.add_column("notes", overflow="fold")
    for r in figures:
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[r.meets_target]
        value = f"{r.value:,.2f}" if abs(r.value) < 100 else f"{r.value:,.0f}"
        table.add_row(r.name, value, r.unit, r.target or "-", met, r.notes)
    console.print(table)
    cpu = Table(
        title="CPU (% of one core, over the window) and memory (MB) per kind of process",
        title_justify="left",
    )
    for name in ("kind", "processes", "CPU sum", "CPU max/process", "RSS sum", "RSS max"):
        cpu.add_column(name, justify="left" if name == "kind" else "right")
    cpu.add_column("USS sum", justify="right")
    cpu.add_column("USS max", justify="right")
    for u in usage:
        cpu.add_row(
            u["kind"],
            str(u["processes"]),
            f"{u['cpu_sum_pct']:,.1f}",
            f"{u['cpu_max_pct']:,.1f}",
            f"{u['rss_sum_mb']:,.0f}",
            f"{u['rss_max_mb']:,.1f}",
            f"{u['uss_sum_mb']:,.0f}",
            f"{u['uss_max_mb']:,.1f}",
        )
    console.print(cpu)


@contextmanager
def kept_dir() -> Iterator[Path]:
    """``bench/scale-<pid>/``, left in place (``--keep``)."""
    path = ROOT / "bench" / f"scale-{os.getpid()}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        print(f"bench-scale: the run's files are in {path}", file=sys.stderr)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The scale run (module docstring).")
    p.add_argument("--workers", type=int, default=100, help="agents, one objective each")
    p.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    p.add_argument("--client-processes", type=int, default=4, help="processes they run in")
    p.add_argument("--rate", type=float, default=50.0, help="lines/s per agent")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the agents write")
    p.add_argument("--warmup", type=float, default=5.0, help="s before the window starts")
    p.add_argument(
        "--recording", type=Path, default=DEFAULT_RECORDING, help="the transcript replayed"
    )
    p.add_argument(
        "--sample", type=int, default=100, help="client latency of every seq multiple of this"
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's files (log, transcripts, actor logs) in bench/scale-<pid>/",
    )
    args = p.parse_args(argv)
    if not 1 <= args.workers <= 999:
        p.error("--workers must be in 1..999")
    if args.clients < 1 or not 1 <= args.client_processes <= args.clients:
        p.error("--clients must be >= 1 and --client-processes in 1..clients")
    if args.rate <= 0 or args.seconds <= args.warmup + 1:
        p.error("--rate must be > 0 and --seconds > --warmup + 1")
    if not args.recording.is_file():
        p.error(f"--recording {args.recording} is not a file")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scale benchmark, print the tables, write the JSON; 1 when it failed to run."""
    args = _parse_args(argv)
    workload = Workload(
        workers=args.workers,
        rate=args.rate,
        seconds=args.seconds,
        recording=args.recording,
        agent=agent_of(args.recording),
    )
    config = ScaleConfig(
        workload,
        clients=args.clients,
        client_processes=args.client_processes,
        sample=args.sample,
        warmup=args.warmup,
    )
    started = time.time()
    try:
        with kept_dir() if args.keep else scratch_dir() as tmp:
            machine = machine_info(tmp)
            run = run_scale(config, tmp)
    except (RuntimeError, ApError, subprocess.SubprocessError, OSError) as e:
        print(f"bench-scale: failed: {e}", file=sys.stderr)
        return 1
    figures = rows(run)
    seconds = time.time() - started
    doc = {"started_at": started, "duration_s": round(seconds, 1)}
    doc |= document(run, figures, machine)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print_tables(figures, usage_rows(run.usage), machine, seconds)
    print(f"results written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
