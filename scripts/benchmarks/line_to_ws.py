"""A line written by an agent -> a WebSocket client of the dashboard, against the seeds'
100 ms polling tailer reading the same agent.

Side A, the mesh: as :mod:`benchmarks.line_to_browser` up to the broadcaster: ``ap up
--detach`` (pipeline on, a team of one ``command`` worker ``w1``), and per run a session
(``ap submit --plan --approve``) of one objective whose command is ``paced_lines.py GATE
3000 1000`` (waits for the file GATE, then 3,000 lines at 1,000 lines/s on an absolute
schedule, one ``write`` + flush each, each line carrying its own ``t=time.time()``).
Once the worker has started the agent, a client process (``spawn``, uvloop, aiohttp)
opens ``/ws?since=0&session=<id>``; when its ``caught_up`` arrives the gate is opened.
The client takes ``time.time()`` as each frame arrives, decodes it with msgspec (one
message or a JSON array of them: type, seq, description) and records the first arrival
of each line number. Latency = receive time - the line's own ``t`` (one machine, one
clock). After the session ends, the log gives the stages: the event's ``ts`` (stamped
by the log monitor's emitter), the journal's ``appended_at``, then the receipt.

Side B, the seeds' design (seed 001: an ``AsyncLogMonitor`` per worker, aiofiles, "Log
monitoring: ~100ms (check interval)", "Total latency: ~200ms"): the same agent command,
started by the bench with stdout appended to a file, as the worker does with its
transcript, and read by :class:`benchmarks.seed_tailer.PollingTailer` in a client process
(``spawn``, uvloop): every 100 ms it looks at the file's size and reads what was added
(file calls in a thread, as aiofiles does), splits complete lines, parses each with the
seed's ``[timestamp] TOOL: name - description`` format and hands the activity to a
callback, which takes ``time.time()``. Latency = that time - the line's ``t``: the floor of that
design before any bus or WebSocket (the seeds add their broadcast and the page).

``REPS`` runs a side in one mesh, alternating A B / B A rep by rep, so drift on the
machine hits both alike; the mesh is idle during B. p50 and p99 are medians of the
per-run values, max is over all runs; the notes list every run, the machine's busy share
(from the gate to the last line) and the rate the agent achieved.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import psutil

from ap_actors.events import TranscriptRead, WorkerStarted
from benchmarks.common import Row, median, percentile, row, spread
from benchmarks.line_to_browser import (
    LINE,
    LINES,
    PACED_LINES,
    RATE,
    ended,
    logged_lines,
    make_repo,
    per_second,
    submit,
    team_toml,
    wait_for,
)
from benchmarks.machine import busy_share
from benchmarks.mesh import ApMesh
from benchmarks.processes import Result, collect, join_all, spawn_context, start_worker
from benchmarks.seed_tailer import POLL_INTERVAL_S, poll_reader

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Event as MpEvent

REPS = 3  # per side
TARGET_P99_MS = 20.0
BUDGET_S = LINES / RATE + 15  # from the gate to the last line, at most


# --- side A: a WebSocket client of the broadcaster ------------------------------------


class LineMessage(msgspec.Struct):
    """What the client reads of each message (the rest of the JSON is skipped)."""

    type: str = ""
    seq: int = 0
    description: str = ""


async def ws_line_reader(url: str, session_id: str, lines: int, ready: MpEvent) -> Result:
    """Read ``/ws?since=0&session=ID`` until every line ``0..lines-1`` arrived.

    Sets ``ready`` on ``caught_up``. Returns ``received``, line number -> the arrival time
    (Unix s) of the frame that first carried it, and the frame and message counts; stops
    ``BUDGET_S`` after ``caught_up`` at the latest (``timed_out`` then).
    """
    import aiohttp

    decode = msgspec.json.Decoder(LineMessage | list[LineMessage]).decode
    received: dict[int, float] = {}
    frames = messages = 0
    timed_out = False
    cpu0 = time.process_time()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{url}ws?since=0&session={session_id}", max_msg_size=0)
        deadline = asyncio.get_running_loop().time() + 60 + BUDGET_S
        try:
            async with asyncio.timeout_at(deadline) as budget:
                async for msg in ws:
                    now = time.time()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    frames += 1
                    got = decode(msg.data)
                    for m in got if isinstance(got, list) else (got,):
                        messages += 1
                        if m.type == "caught_up":
                            ready.set()
                            budget.reschedule(asyncio.get_running_loop().time() + BUDGET_S)
                        elif m.type == "worker_activity" and (found := LINE.search(m.description)):
                            received.setdefault(int(found[2]), now)
                    if len(received) >= lines:
                        break
        except TimeoutError:
            timed_out = True
        await ws.close()
    return {
        "received": received,
        "frames": frames,
        "messages": messages,
        "timed_out": timed_out,
        "cpu": time.process_time() - cpu0,
    }


# --- runs ---------------------------------------------------------------------------


@dataclass
class LineRun:
    """One run of either side; latencies in ms, from the line's own time."""

    side: str  # "ws" or "poll"
    lat: list[float]  # sorted, per line received
    written: int  # lines the agent wrote
    received: int
    rate: float  # lines/s the agent wrote (from the lines' own times)
    machine_busy: float  # from the gate's opening to the last line
    reader_cpu: float  # the reading process, share of one core over the same time
    stages: dict[str, list[float]]  # side A only: per-stage latencies, ms (see STAGES)
    monitor_rate: float = 0.0  # side A: lines/s the log monitor emitted
    frames: int = 0  # side A: WebSocket frames received
    timed_out: bool = False


STAGES = {
    "tail": "line -> ts (log monitor)",
    "journal": "ts -> appended_at",
    "to_ws": "appended_at -> WebSocket receive",
}


def wait_ready(ready: MpEvent, procs: Sequence[BaseProcess], timeout: float = 60) -> None:
    """Wait for ``ready``; fail at once when a reader process died first."""
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        for p in procs:
            if p.exitcode not in (None, 0):
                raise RuntimeError(f"{p.name} exited with {p.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{', '.join(p.name for p in procs)} not ready in {timeout:.0f} s")


def run_ws(mesh: ApMesh, repo: Path, work: Path, rep: int) -> LineRun:
    """Side A: one session, read by a WebSocket client."""
    gate = work / f"ws-gate-{rep}"
    session_id = submit(mesh, repo, work / f"plan-{rep}.json", gate)
    wait_for(mesh, session_id, lambda r: isinstance(r.event, WorkerStarted))
    ctx = spawn_context()
    results, ready = ctx.Queue(), ctx.Event()
    proc = start_worker(
        ctx, "ws-line-reader", results, ws_line_reader, mesh.dashboard, session_id, LINES, ready
    )
    wait_ready(ready, [proc])
    machine0, t0 = psutil.cpu_times(), time.monotonic()
    gate.touch()
    (out,) = collect(results, [proc], timeout=60 + BUDGET_S)
    machine1, seconds = psutil.cpu_times(), time.monotonic() - t0
    join_all([proc])
    wait_for(mesh, session_id, lambda r: isinstance(r.event, TranscriptRead))
    wait_for(mesh, session_id, ended)
    logged = logged_lines(mesh, session_id)
    got: dict[int, float] = out["received"]
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    for n, (t, ts, appended) in logged.items():
        stages["tail"].append((ts - t) * 1000)
        stages["journal"].append((appended - ts) * 1000)
        if n in got:
            stages["to_ws"].append((got[n] - appended) * 1000)
    line_t = {n: t for n, (t, _, _) in logged.items()}
    return LineRun(
        side="ws",
        lat=sorted((got[n] - line_t[n]) * 1000 for n in got if n in line_t),
        written=len(logged),
        received=len(got),
        rate=per_second(line_t.values()),
        machine_busy=busy_share(machine0, machine1),
        reader_cpu=out["cpu"] / seconds,
        stages=stages,
        monitor_rate=per_second(ts for _, ts, _ in logged.values()),
        frames=out["frames"],
        timed_out=out["timed_out"],
    )


def written_lines(path: Path) -> dict[int, float]:
    """Line number -> the line's own time, from the agent's output file."""
    out: dict[int, float] = {}
    for line in path.read_text().splitlines():
        if m := LINE.search(line):
            out[int(m[2])] = float(m[1])
    return out


def run_poll(work: Path, rep: int) -> LineRun:
    """Side B: the same agent writing to a file, read by the 100 ms polling tailer."""
    gate, transcript = work / f"poll-gate-{rep}", work / f"poll-{rep}.log"
    transcript.touch()
    ctx = spawn_context()
    results, ready = ctx.Queue(), ctx.Event()
    proc = start_worker(
        ctx, "poll-tailer", results, poll_reader, str(transcript), LINES, ready, BUDGET_S
    )
    wait_ready(ready, [proc])
    with transcript.open("ab") as out_file:
        argv = [sys.executable, str(PACED_LINES), str(gate), str(LINES), str(RATE)]
        agent = subprocess.Popen(argv, stdout=out_file, cwd=work)
    try:
        machine0, t0 = psutil.cpu_times(), time.monotonic()
        gate.touch()
        (out,) = collect(results, [proc], timeout=60 + BUDGET_S)
        machine1, seconds = psutil.cpu_times(), time.monotonic() - t0
        if agent.wait(timeout=30) != 0:
            raise RuntimeError(f"the agent exited with {agent.returncode}")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    join_all([proc])
    line_t = written_lines(transcript)
    got: dict[int, float] = out["received"]
    return LineRun(
        side="poll",
        lat=sorted((got[n] - line_t[n]) * 1000 for n in got if n in line_t),
        written=len(line_t),
        received=len(got),
        rate=per_second(line_t.values()),
        machine_busy=busy_share(machine0, machine1),
        reader_cpu=out["cpu"] / seconds,
        stages={},
        timed_out=out["timed_out"],
    )


# --- the rows -----------------------------------------------------------------------


def side_notes(runs: list[LineRun]) -> str:
    """Counts shared by a side's rows."""
    share = "{:.0%}"
    return (
        f"{len(runs)} runs of {LINES:,} lines at {median([r.rate for r in runs]):,.0f} lines/s;"
        f" received {spread([r.received for r in runs])} of {spread([r.written for r in runs])}"
        f" written; machine {spread([r.machine_busy for r in runs], share)} busy; reader"
        f" process {spread([r.reader_cpu for r in runs], share)} of a core"
    )


def bench_line_to_ws(tmp: Path) -> list[Row]:
    """Rows: line -> WebSocket client p50 / p99 (target) / max, and the polling tailer's.

    Raises:
        RuntimeError: a reader process died, or a run received no line at all.
    """
    work = tmp / "line-to-ws"
    work.mkdir()
    repo = make_repo(work / "repo")
    runs: dict[str, list[LineRun]] = {"ws": [], "poll": []}
    with ApMesh(work / "state", team_toml()) as mesh:
        for rep in range(REPS):
            for side in ("ws", "poll") if rep % 2 == 0 else ("poll", "ws"):
                r = run_ws(mesh, repo, work, rep) if side == "ws" else run_poll(work, rep)
                runs[side].append(r)
    for r in runs["ws"] + runs["poll"]:
        if not r.lat:
            raise RuntimeError(f"line -> ws ({r.side}): no line received of {r.written}")
        if r.timed_out or r.received < r.written:
            print(
                f"bench: line -> ws ({r.side}): {r.received} of {r.written} lines received"
                f"{' (timed out)' if r.timed_out else ''}",
                file=sys.stderr,
            )
    ws, poll = runs["ws"], runs["poll"]
    ms = "{:.1f}"

    def p(rs: list[LineRun], q: float) -> list[float]:
        return [percentile(r.lat, q) for r in rs]

    stages = "; ".join(
        f"{label} p50 {median([percentile(sorted(r.stages[k]), 50) for r in ws]):.1f}"
        f" / p99 {median([percentile(sorted(r.stages[k]), 99) for r in ws]):.1f} ms"
        for k, label in STAGES.items()
    )
    ws_p99, poll_p99 = median(p(ws, 99)), median(p(poll, 99))
    return [
        row(
            "line -> ws client latency p50",
            median(p(ws, 50)),
            "ms",
            None,
            None,
            f"{spread(p(ws, 50), ms)}; {side_notes(ws)}; one command worker, fsync on, one"
            f" aiohttp client on /ws?session=; frames {spread([r.frames for r in ws])}; the log"
            f" monitor emitted {median([r.monitor_rate for r in ws]):,.0f} lines/s; stages"
            f" (medians of the runs): {stages}",
        ),
        row(
            "line -> ws client latency p99",
            ws_p99,
            "ms",
            "<=",
            TARGET_P99_MS,
            f"{spread(p(ws, 99), ms)}; the seeds' 100 ms polling tailer alone, same agent,"
            f" interleaved: p99 {poll_p99:.1f} ms ({poll_p99 / ws_p99:.1f} x)",
        ),
        row(
            "line -> ws client latency max",
            max(r.lat[-1] for r in ws),
            "ms",
            None,
            None,
            spread([r.lat[-1] for r in ws], ms),
        ),
        row(
            "line -> read, seeds' 100 ms polling tailer p50",
            median(p(poll, 50)),
            "ms",
            None,
            None,
            f"{spread(p(poll, 50), ms)}; {side_notes(poll)}; the agent's stdout appended to a"
            f" file, checked every {POLL_INTERVAL_S * 1000:.0f} ms (seed 001's AsyncLogMonitor,"
            " reimplemented); time at its callback; no bus, no WebSocket",
        ),
        row(
            "line -> read, seeds' 100 ms polling tailer p99",
            poll_p99,
            "ms",
            None,
            None,
            f"{spread(p(poll, 99), ms)}; max {max(r.lat[-1] for r in poll):.1f} ms; the floor"
            " of that design before its broadcast and page",
        ),
    ]
