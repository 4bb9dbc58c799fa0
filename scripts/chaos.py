"""``make chaos``: faults injected into a loaded mesh, checked against the clients' histories.

What one run does is in ``scripts/faults/run.py``; the history checker is
:mod:`ap_actors.history`. This prints two tables (the faults injected with their
recovery times; the checks: events acknowledged, lost, duplicated, gapped; sessions
ended) and writes ``bench/chaos-results.json``.

Exit codes: 0 when every check passed (0 lost, 0 duplicated, 0 gaps, every session
ended with a reason, every killed actor came back); 1 when one did not (the tables say
which; the run's state directory is kept); 2 for a bad command line; 3 when the mesh
could not start.

Run: ``make chaos`` (about 5 minutes with the defaults), or
``.venv/bin/python scripts/chaos.py --sessions 10 --rate 500`` for a short run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults.run import KINDS, Options, RunResult, run
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "chaos-results.json"
RECOVERY_TARGET_S = 2.0


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value

    return parse


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="chaos.py", description=__doc__.split("\n\n")[0])
    o = Options()
    p.add_argument("--sessions", type=_positive(int), default=o.sessions, help="sessions run")
    p.add_argument("--workers", type=_positive(int), default=o.workers, help="command workers")
    p.add_argument("--clients", type=_positive(int), default=o.clients, help="client processes")
    p.add_argument("--rate", type=_positive(float), default=o.rate, help="events/s, all clients")
    p.add_argument("--kill-every", type=_positive(float), default=o.kill_every_s, help="seconds")
    p.add_argument("--burst", type=_positive(float), default=o.burst_s, help="burst seconds")
    p.add_argument("--submit-every", type=_positive(float), default=o.submit_every_s)
    p.add_argument("--settle", type=_positive(float), default=o.settle_s, help="seconds")
    p.add_argument("--seed", type=int, default=o.seed)
    p.add_argument("--state", type=Path, help="state directory (default: a new one in $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the state directory")
    a = p.parse_args(argv)
    return Options(
        sessions=a.sessions,
        workers=a.workers,
        clients=a.clients,
        rate=a.rate,
        kill_every_s=a.kill_every,
        burst_s=a.burst,
        submit_every_s=a.submit_every,
        settle_s=a.settle,
        seed=a.seed,
        state=a.state,
        keep=a.keep,
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def rows(result: RunResult) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The faults table and the checks table, as dicts (also written as JSON)."""
    faults = []
    for kind in KINDS:
        kills = [k for k in result.kills if k.kind == kind]
        times = [k.recovered_s for k in kills if k.recovered_s is not None]
        faults.append(
            {
                "fault": f"kill -9 {kind}",
                "count": len(kills),
                "recovered": len(times),
                "p50_s": _percentile(times, 50),
                "max_s": max(times) if times else float("nan"),
            }
        )
    faults.append(
        {
            "fault": "ap down / ap up",
            "count": 1,
            "recovered": 1,
            "p50_s": result.down_up_s,
            "max_s": result.down_up_s,
        }
    )
    every = [k.recovered_s for k in result.kills if k.recovered_s is not None]
    r = result.report
    ended = result.sessions_ended
    p99 = round(_percentile(every, 99), 3)
    table: list[tuple[str, object, object]] = [
        ("events acknowledged", r.acked, "-"),
        ("acknowledged but lost", r.lost, 0),
        ("duplicated", r.duplicated, 0),
        ("gaps in seqs", r.gaps, 0),
        ("refused but present", r.failed_present, 0),
        ("unknown outcome (in the log)", r.indeterminate_present, "-"),
        ("unknown outcome (not in it)", r.indeterminate - r.indeterminate_present, "-"),
        ("sessions submitted", result.sessions_submitted, "-"),
        ("sessions completed", ended.get("session_completed", 0), "-"),
        ("sessions failed (with a reason)", ended.get("session_failed", 0), "-"),
        ("sessions unfinished or without reason", r.sessions_unfinished, 0),
        ("killed actors that never came back", len(result.kills) - len(every), 0),
        ("recovery p99 (s)", p99, f"<= {RECOVERY_TARGET_S}"),
        ("burst, acknowledged events/s", round(result.burst_events_per_s), "-"),
    ]
    checks = [{"check": c, "value": v, "target": t} for c, v, t in table]
    return faults, checks


def passed(result: RunResult) -> bool:
    """True when every check with a target met it."""
    every = [k.recovered_s for k in result.kills if k.recovered_s is not None]
    return (
        result.report.clean
        and len(every) == len(result.kills)
        and (not every or _percentile(every, 99) <= RECOVERY_TARGET_S)
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        result = run(opts, say=console.print)
    except RuntimeError as e:
        console.print(f"chaos: {e}", style="red")
        return 3
    faults, checks = rows(result)
    table = Table(title=f"faults injected ({result.duration_s:.0f} s run)")
    for col in ("fault", "count", "recovered", "p50 s", "max s"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    for f in faults:
        table.add_row(
            str(f["fault"]),
            str(f["count"]),
            str(f["recovered"]),
            f"{f['p50_s']:.2f}",
            f"{f['max_s']:.2f}",
        )
    console.print(table)
    table = Table(title="checks (history checker: ap_actors/history.py)")
    for col in ("check", "value", "target"):
        table.add_column(col, justify="left" if col == "check" else "right")
    for c in checks:
        table.add_row(str(c["check"]), str(c["value"]), str(c["target"]))
    console.print(table)
    ok = passed(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"faults": faults, "checks": checks, "passed": ok, "state": str(result.state)},
            indent=2,
            default=str,
        )
    )
    if not ok:
        summary = result.report.summary()
        console.print(f"chaos: checks failed: {summary}; state kept in {result.state}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
