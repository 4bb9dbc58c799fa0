"""The figures of a scale run as rows (the table and ``bench/scale-results.json``)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks.common import Row, percentile, row
from benchmarks.scale import ScaleRun
from benchmarks.scale_usage import KindUsage


def _p(values: Sequence[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def _pp(values: Sequence[float]) -> str:
    """``"p50 X / p99 Y / max Z ms (n)"``."""
    if not values:
        return "no samples"
    return (
        f"p50 {_p(values, 50):,.1f} / p99 {_p(values, 99):,.1f} / max {values[-1]:,.1f} ms"
        f" ({len(values):,} samples)"
    )


def rows(run: ScaleRun) -> list[Row]:
    """The rows of the figures table."""
    c, w, log = run.config, run.config.workload, run.log
    objs = log.objectives
    written = sum(o.written for o in objs)
    lost = sum(o.lost for o in objs)
    extra = sum(o.extra for o in objs)
    bad = [o for o in objs if not o.replay_ok]
    window = run.window[1] - run.window[0]
    cl = run.clients
    behind = cl.get("behind", [])
    kept = cl.get("kept_up", 0)
    drain = log.last_read_at - log.last_line_at
    phases = "; ".join(f"{k} {v:,.1f} s" for k, v in run.phases.items())
    e2e, e2e_over = (log.e2e_kept, "the clients that kept up") if kept else (log.e2e_all, "")
    if not kept:
        e2e_over = "EVERY client (none kept up): only the events they received, a lower bound"
    return [
        row(
            f"ap up: {run.actors} actor processes ready",
            run.phases.get("ap up", 0.0),
            "s",
            None,
            None,
            f"{run.phases.get('ap up', 0.0) / max(run.actors, 1) * 1000:,.0f} ms per actor,"
            f" started one after another by the supervisor; machine"
            f" {max(run.busy_before, 0.0):.0%} busy in the second before; phases: {phases}",
        ),
        row(
            "lines written by the replay tools",
            written,
            "lines",
            ">=",
            w.workers * w.lines,
            f"{w.workers} agents x {w.lines:,} lines ({w.rate:g} lines/s for {w.seconds:g} s) of"
            f" {w.recording.name} ({w.agent}), looped; slowest replay"
            f" {min((o.write_rate for o in objs), default=0):,.1f} lines/s first line to last",
        ),
        row(
            "events appended per second",
            log.appended_per_s,
            "events/s",
            None,
            None,
            f"every record appended in the {window:,.1f} s window; worker_activity"
            f" {log.activities_per_s:,.0f}/s; {log.records:,} records in the whole run",
        ),
        row(
            "events lost: activities the parser yields, not in the log",
            lost,
            "events",
            "<=",
            0,
            f"{sum(o.expected for o in objs):,} worker_activity expected (the adapter's parser"
            " on each transcript, ids derived as the log monitor does),"
            f" {sum(o.logged for o in objs):,} logged, {extra} extra; worker_error"
            f" {sum(o.errors_logged for o in objs)} of {sum(o.errors_expected for o in objs)};"
            " transcripts holding exactly the lines"
            f" written {len(objs) - len(bad)} of {len(objs)}"
            + (f" ({bad[0].objective_id}: {bad[0].why})" if bad else ""),
        ),
        row(
            "log monitors: last line written -> last transcript_read",
            drain * 1000,
            "ms",
            None,
            None,
            "how far behind the slowest log monitor was when the agents stopped (includes the"
            " worker noticing its agent's exit)",
        ),
        row(
            "emitter resends (no ack within 2 s)",
            sum(run.resends.values()),
            "resends",
            None,
            None,
            "each one sends every batch in flight again; by actor kind: "
            + (", ".join(f"{k} {v:,}" for k, v in run.resends.items()) or "none"),
        ),
        row(
            "journal lag p50 (appended_at - event ts)",
            _p(log.journal_lag, 50),
            "ms",
            None,
            None,
            f"every record of the run: {_pp(log.journal_lag)}",
        ),
        row("journal lag p99", _p(log.journal_lag, 99), "ms", None, None, ""),
        row(
            "line written -> appended to the log, p50",
            _p(log.line_to_log, 50),
            "ms",
            None,
            None,
            f"{_pp(log.line_to_log)}; of which line -> event ts (log monitor: inotify, parse,"
            f" batch): {_pp(log.line_to_ts)}",
        ),
        row("line written -> appended to the log, p99", _p(log.line_to_log, 99), "ms", None, None),
        row(
            "end to end: line written -> WebSocket client, p50",
            _p(e2e, 50),
            "ms",
            None,
            None,
            f"over {e2e_over or 'the clients that kept up'}: {_pp(e2e)}; sampled: the"
            f" worker_activity events whose seq is a multiple of {c.sample}",
        ),
        row(
            "end to end: line written -> WebSocket client, p99",
            _p(e2e, 99),
            "ms",
            None,
            None,
            f"every client, received events only: {_pp(log.e2e_all)}",
        ),
        row(
            f"WebSocket clients that kept up (of {c.clients:,})",
            kept,
            "clients",
            ">=",
            c.clients,
            f"every event to the log's last seq at the end, in order, no resync, within"
            f" 2 s of being told it; complete {cl.get('complete', 0)}, resyncs"
            f" {cl.get('resyncs', 0)}; {cl.get('received', 0):,} events received in all;"
            f" {c.client_processes} client processes; behind when they stopped: p50"
            f" {_p(behind, 50):,.0f} / max {behind[-1] if behind else 0:,} events",
        ),
        row(
            "WebSocket gaps + duplicates, every client",
            cl.get("gaps", 0) + cl.get("duplicates", 0),
            "",
            "<=",
            0,
            f"gaps {cl.get('gaps', 0)}, duplicates {cl.get('duplicates', 0)} over all"
            f" {c.clients:,} clients (those that kept up, and the others up to where they stopped)",
        ),
        row(
            "machine busy in the window",
            run.machine_busy * 100,
            "%",
            None,
            None,
            f"both cores; {window:,.1f} s from {c.warmup:g} s after the gate",
        ),
    ]


def usage_rows(usage: Sequence[KindUsage]) -> list[dict[str, Any]]:
    """The resource table's rows as plain dicts (JSON), CPU in % of one core."""
    return [
        {
            "kind": u.kind,
            "processes": u.processes,
            "cpu_sum_pct": round(u.cpu_sum * 100, 1),
            "cpu_max_pct": round(u.cpu_max * 100, 1),
            "rss_sum_mb": round(u.rss_sum_mb, 1),
            "rss_max_mb": round(u.rss_max_mb, 1),
            "uss_sum_mb": round(u.uss_sum_mb, 1),
            "uss_max_mb": round(u.uss_max_mb, 1),
        }
        for u in usage
    ]


def document(run: ScaleRun, figures: Sequence[Row], machine: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of ``bench/scale-results.json``."""
    w = run.config.workload
    objs = run.log.objectives
    return {
        "machine": machine,
        "config": {
            "workers": w.workers,
            "rate": w.rate,
            "seconds": w.seconds,
            "recording": str(w.recording),
            "agent": w.agent,
            "clients": run.config.clients,
            "client_processes": run.config.client_processes,
            "sample": run.config.sample,
            "warmup": run.config.warmup,
        },
        "phases_s": {k: round(v, 2) for k, v in run.phases.items()},
        "resends": run.resends,
        "window": list(run.window),
        "rows": [asdict(r) for r in figures],
        "usage": usage_rows(run.usage),
        "objectives": {
            "count": len(objs),
            "lost": [o.objective_id for o in objs if o.lost],
            "median_write_rate": statistics.median([o.write_rate for o in objs]) if objs else 0,
            "not_as_written": {o.objective_id: o.why for o in objs if not o.replay_ok},
        },
    }
