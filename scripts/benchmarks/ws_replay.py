"""Log replay to a WebSocket client of the dashboard: 1,000,000 events from ``since=0``.

The log is filled before the mesh starts: ``EVENTS`` small ``worker_activity`` events
(:func:`benchmarks.common.stamped_events`, ~300 B of msgpack each, 8 sessions per
100,000) appended with ``EventLog(durability="none")`` in batches of ``FILL_BATCH``,
in ``bench/tmp-<pid>/ws-replay/eventlog``. Then ``ap up --detach`` on that state
directory (pipeline on, no team: :class:`benchmarks.mesh.ApMesh`); every actor
recovers from the log before it reports ready, and the bench waits until the
broadcaster uses under 1 ms of CPU per 0.25 s, twice (``wait_idle``).

A run: one client process (``spawn``, uvloop, one aiohttp ``ClientSession``) opens
``/ws?since=0`` (no session filter) and reads until the broadcaster's ``caught_up``,
decoding every frame with msgspec (a frame is one message or a JSON array of them; each
message as :class:`benchmarks.ws_clients.Message`: type, seq, ts, derived,
objective_id) and checking that the events arrive as seq 1, 2, ... with none missing.
The clock runs from just before ``ws_connect`` to the receipt of the frame holding
``caught_up``; events/s = events received / that time. The broadcaster serves the
history page by page: ``read_history`` (a thread) decodes ``HISTORY_PAGE`` records from
LMDB and encodes each as the dashboard's JSON, then the handler sends them as frames of
at most 256 KiB (:mod:`ap_actors.dashboard.ws`). The CPU of the broadcaster and of the
client over the run, and the machine's busy share, go in the notes. ``REPS`` runs in
one mesh, the broadcaster idle before each; the row quotes the median.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import psutil

from ap_actors.eventlog import EventLog
from benchmarks.common import Row, median, row, spread, stamped_events
from benchmarks.machine import busy_share
from benchmarks.memory import wait_idle
from benchmarks.mesh import ApMesh
from benchmarks.processes import Result, collect, join_all, spawn_context, start_worker
from benchmarks.ws_clients import Message

EVENTS = 1_000_000
FILL_CHUNK = 100_000  # events built at a time (8 sessions each)
FILL_BATCH = 5_000  # events per append
REPS = 3
TARGET_S = 5.0
RUN_TIMEOUT_S = 300.0
UP_TIMEOUT_S = 600.0  # every actor recovers from the 1M events before `ap up` returns


def fill(path: Path, count: int) -> float:
    """Append ``count`` events with durability "none"; return events/s."""
    start = time.perf_counter()
    with EventLog(path, durability="none") as log:
        for base in range(0, count, FILL_CHUNK):
            events = stamped_events(min(FILL_CHUNK, count - base), 8)
            for i in range(0, len(events), FILL_BATCH):
                log.append(events[i : i + FILL_BATCH])
        if log.last_seq() != count:
            raise RuntimeError(f"filled {log.last_seq()} records, expected {count}")
    return count / (time.perf_counter() - start)


async def replay_client(url: str) -> Result:
    """Read ``/ws?since=0`` to its ``caught_up``; return the time, counts and checks."""
    import aiohttp

    decode = msgspec.json.Decoder(Message | list[Message]).decode
    events = frames = gaps = last = 0
    head = -1
    cpu0 = time.process_time()
    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        ws = await http.ws_connect(f"{url}ws?since=0", max_msg_size=0)
        connected = time.perf_counter() - start
        first = 0.0
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frames += 1
            got = decode(msg.data)
            for m in got if isinstance(got, list) else (got,):
                if m.type == "caught_up":
                    head = m.seq
                elif m.seq and not m.derived:
                    if m.seq != last + 1:
                        gaps += 1
                    last = m.seq
                    events += 1
                    if events == 1:
                        first = time.perf_counter() - start
            if head >= 0:
                break
        seconds = time.perf_counter() - start
        await ws.close()
    return {
        "seconds": seconds,
        "connected": connected,
        "first": first,
        "events": events,
        "frames": frames,
        "gaps": gaps,
        "last": last,
        "head": head,
        "cpu": time.process_time() - cpu0,
    }


def run_once(mesh: ApMesh) -> Result:
    """One client from ``since=0`` to ``caught_up``, with the broadcaster's CPU."""
    broadcaster = mesh.process("broadcaster")
    wait_idle(broadcaster, timeout=60)
    ctx = spawn_context()
    results = ctx.Queue()
    cpu0, machine0 = sum(broadcaster.cpu_times()[:2]), psutil.cpu_times()
    proc = start_worker(ctx, "ws-replay-client", results, replay_client, mesh.dashboard)
    (out,) = collect(results, [proc], timeout=RUN_TIMEOUT_S)
    cpu1, machine1 = sum(broadcaster.cpu_times()[:2]), psutil.cpu_times()
    join_all([proc])
    # The mesh's own start-up events (actor_started, ...) follow the filled ones.
    if out["head"] < EVENTS or out["events"] != out["head"] or out["gaps"]:
        raise RuntimeError(
            f"ws replay: {out['events']} events to caught_up {out['head']}, {out['gaps']} gaps;"
            f" expected at least {EVENTS}, in order"
        )
    out["broadcaster_cpu"] = cpu1 - cpu0
    out["machine_busy"] = busy_share(machine0, machine1)
    return out


def bench_ws_replay(tmp: Path) -> list[Row]:
    """Row: time from connect to ``caught_up`` for 1M events (median of ``REPS``)."""
    state = tmp / "ws-replay"
    filled = fill(state / "eventlog", EVENTS)
    t0 = time.monotonic()
    with ApMesh(state, exist_ok=True, up_timeout=UP_TIMEOUT_S) as mesh:
        up_s = time.monotonic() - t0
        runs = [run_once(mesh) for _ in range(REPS)]
    seconds = [r["seconds"] for r in runs]
    rates = [EVENTS / s for s in seconds]
    share = "{:.0%}"
    return [
        row(
            f"ws replay {EVENTS:,} events since=0 -> caught_up",
            median(seconds),
            "s",
            "<=",
            TARGET_S,
            f"{spread(seconds, '{:.2f}')} s = {spread(rates)} events/s (median"
            f" {EVENTS / median(seconds):,.0f}); one aiohttp client decoding every message"
            f" (msgspec), frames {spread([r['frames'] for r in runs])}; handshake"
            f" {spread([r['connected'] * 1000 for r in runs], '{:.0f}')} ms, first event at"
            f" {spread([r['first'] * 1000 for r in runs], '{:.0f}')} ms; broadcaster CPU"
            f" {spread([r['broadcaster_cpu'] / r['seconds'] for r in runs], share)} of a core,"
            f" client {spread([r['cpu'] / r['seconds'] for r in runs], share)}; machine"
            f" {spread([r['machine_busy'] for r in runs], share)} busy; log filled at"
            f" {filled:,.0f} events/s (durability none), `ap up` took {up_s:.0f} s",
        ),
    ]
