"""A line written by an agent -> its entry rendered in the dashboard page, in Chromium.

The whole path runs as it does for a user: ``ap up --detach`` (pipeline on, a team of one
``command`` worker ``w1``), ``ap submit --plan`` with one objective whose command is
``paced_lines.py`` (lines at ``RATE`` lines/s, each carrying its own ``time.time()``),
the worker's transcript, the log monitor's tail and parser, the journal (fsync), the
broadcaster's WebSocket, and the page at ``#/session/<id>`` in headless Chromium
(Debian's package, driven by Playwright, the flags of ``tests/browser/conftest.py``).

An init script in the page records, with ``Date.now()`` (the machine's clock, as is
``time.time()`` in the agent), when each WebSocket message carrying a line arrives and
when each feed entry of ``w1`` is added to the DOM (a ``MutationObserver``: the feed keeps
~200 entries, so additions are counted, not the final DOM). The page adds entries inside
a ``requestAnimationFrame`` callback, so the DOM time is the frame that paints them.
Latency = DOM time - the line's own time. The log supplies the stages in between: the
event's ``ts`` (stamped by the log monitor's emitter) and ``appended_at`` (the journal).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ap_actors.bus import Subscriber
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    Record,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    WorkerActivity,
    WorkerStarted,
)
from benchmarks.common import Row, median, percentile, row, spread
from benchmarks.machine import busy_share
from benchmarks.mesh import ApMesh

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

LINES = 3_000  # per run
RATE = 1_000.0  # lines/s
REPS = 3
SEEDS_CLAIM_MS = 200  # the seeds' 100 ms polling tailer, as they describe it (not measured)
CHROMIUM = os.environ.get("AP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/browser/conftest.py: no reaching for the network
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WORKER = "w1"
PACED_LINES = Path(__file__).with_name("paced_lines.py")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ap bench",
    "GIT_AUTHOR_EMAIL": "bench@ap-actors.invalid",
    "GIT_COMMITTER_NAME": "ap bench",
    "GIT_COMMITTER_EMAIL": "bench@ap-actors.invalid",
}
LINE = re.compile(r"t=(\d+\.\d+) n=(\d+)")

# Recorded in the page: window.__apBench = {ws: [[ms, n], ...], dom: [[ms, n], ...],
# wsSeen, domSeen: the Sets of n}.
OBSERVER_JS = """
(() => {
  const LINE = /t=\\d+\\.\\d+ n=(\\d+)/;
  const LINE_ALL = /t=\\d+\\.\\d+ n=(\\d+)/g;
  const bench = { ws: [], dom: [], wsSeen: new Set(), domSeen: new Set() };
  window.__apBench = bench;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data !== "string") return;
        const now = Date.now();
        for (const m of e.data.matchAll(LINE_ALL)) {  // a frame may hold many messages
          bench.ws.push([now, Number(m[1])]);
          bench.wsSeen.add(Number(m[1]));
        }
      });
    }
  };
  const FEED = '[data-testid="worker-card-%WORKER%"] [data-testid="feed"]';
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) {
      for (const node of r.addedNodes) {
        if (node.nodeType !== 1) continue;
        const items = node.matches("li[data-seq]") ? [node] : node.querySelectorAll("li[data-seq]");
        for (const li of items) {
          if (!li.closest(FEED)) continue;
          const m = LINE.exec(li.textContent);
          if (m) {
            bench.dom.push([now, Number(m[1])]);
            bench.domSeen.add(Number(m[1]));
          }
        }
      }
    }
  }).observe(document, { childList: true, subtree: true });
})();
""".replace("%WORKER%", WORKER)


# --- the mesh side ------------------------------------------------------------------


def make_repo(path: Path) -> Path:
    """A one-package git repository with one commit (the session's target)."""
    (path / "pkg").mkdir(parents=True)
    (path / "pkg" / "__init__.py").write_text("")
    env = {**os.environ, **GIT_ENV}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--no-verify", "-m", "init"],
    ):
        subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True)
    return path


def team_toml() -> str:
    return f'[[workers]]\nid = "{WORKER}"\nagent = "command"\ncommand = "true"\n'


def submit(mesh: ApMesh, repo: Path, plan: Path, gate: Path) -> str:
    """``ap submit --approve`` a session of one objective running paced_lines.py."""
    command = shlex.join([sys.executable, str(PACED_LINES), str(gate), str(LINES), str(RATE)])
    objective = {
        "id": "lines",
        "title": "Write paced lines",
        "worker": WORKER,
        "scope_touch": ["pkg/"],
        "command": command,
    }
    plan.write_text(json.dumps({"objectives": [objective]}))
    args = ["submit", "Benchmark: lines to the browser", "--repo", str(repo)]
    done = mesh.ap(*args, "--plan", str(plan), "--approve", "--json")
    session_id: str = json.loads(done.stdout)["session_id"]
    return session_id


def wait_for(
    mesh: ApMesh, session_id: str, predicate: Callable[[Record], bool], timeout: float = 60
) -> Record:
    """Block until a record of the session (history or live) satisfies ``predicate``."""

    async def follow() -> Record:
        sub = Subscriber.connect(mesh.state, session_id=session_id)
        try:
            async with asyncio.timeout(timeout):
                async for record in sub:
                    if predicate(record):
                        return record
        finally:
            await sub.close()
        raise RuntimeError(f"the subscription to session {session_id} ended")

    # In a thread: Playwright's sync API keeps an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, follow()).result()


def ended(record: Record) -> bool:
    return isinstance(record.event, SessionCompleted | SessionFailed | SessionCancelled)


def logged_lines(mesh: ApMesh, session_id: str) -> dict[int, tuple[float, float, float]]:
    """Line number -> (the line's own time, the event's ts, the journal's appended_at),
    all Unix s, from the session's ``worker_activity`` records in the log."""
    out: dict[int, tuple[float, float, float]] = {}
    with EventLog(mesh.info["log"], readonly=True) as log:
        for r in log.read(0, session_id=session_id):
            if isinstance(r.event, WorkerActivity) and (m := LINE.search(r.event.description)):
                out[int(m[2])] = (float(m[1]), r.event.ts, r.appended_at)
    return out


# --- the browser side ---------------------------------------------------------------


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium at ``$AP_CHROMIUM`` (default /usr/bin/chromium)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium is not installed at {CHROMIUM}; run `make browser`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_session(page: Page, url: str, session_id: str) -> None:
    """Open the session's page and wait until it is live and shows the worker's card."""
    from playwright.sync_api import expect

    page.add_init_script(OBSERVER_JS)
    page.goto(f"{url}#/session/{session_id}")
    expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected", timeout=30_000
    )
    expect(page.get_by_test_id(f"worker-card-{WORKER}")).to_be_visible(timeout=30_000)


def first_seen(pairs: list[list[float]]) -> dict[int, float]:
    """n -> the first time (Unix s) it was seen, from the page's ``[ms, n]`` pairs."""
    out: dict[int, float] = {}
    for ms, n in pairs:
        out.setdefault(int(n), ms / 1000)
    return out


# --- one run ------------------------------------------------------------------------


@dataclass
class BrowserRun:
    """One run; latencies in ms, from the line's own time."""

    rendered: int  # distinct lines added to the feed's DOM
    logged: int  # distinct lines in the log as worker_activity
    dom: list[float]  # -> added to the DOM, per rendered line
    stages: dict[str, list[float]]  # per-stage latencies (see STAGES)
    rate: float  # lines/s the agent wrote (from the lines' own times)
    monitor_rate: float  # lines/s the log monitor emitted (from the events' ts)
    machine_busy: float  # share of both cores busy from the gate's opening to the last line
    errors: list[str]  # what the page threw; a timeout waiting for the lines


STAGES = {
    "tail": "line -> ts (log monitor: inotify, parse, emit)",
    "journal": "ts -> appended_at",
    "to_page": "appended_at -> WebSocket message in the page",
    "render": "message -> DOM",
}


def run_once(mesh: ApMesh, browser: Browser, repo: Path, tmp: Path, rep: int) -> BrowserRun:
    """One session: open the page, open the gate, observe until every line rendered."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    gate = tmp / f"gate-{rep}"
    session_id = submit(mesh, repo, tmp / f"plan-{rep}.json", gate)
    wait_for(mesh, session_id, lambda r: isinstance(r.event, WorkerStarted))
    # bypass_csp: wait_for_function evaluates its condition in the page; the page's CSP
    # (default-src 'self') forbids that, and nothing else of the page depends on it.
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        open_session(page, mesh.dashboard, session_id)
        machine0 = psutil.cpu_times()
        gate.touch()
        budget_ms = (LINES / RATE + 15) * 1000
        # Every line has reached the page and the last one is in the feed. When more than
        # the feed's 200 entries arrive between two frames, the older ones are never
        # added to the DOM at all: those count as not rendered.
        condition = (
            f"window.__apBench.wsSeen.size >= {LINES} && window.__apBench.domSeen.has({LINES - 1})"
        )
        try:
            page.wait_for_function(condition, timeout=budget_ms, polling=100)
        except PlaywrightTimeout:
            errors.append(f"not every line reached the page within {budget_ms / 1000:.0f} s")
        busy = busy_share(machine0, psutil.cpu_times())
        seen: dict[str, Any] = page.evaluate(
            "({ws: window.__apBench.ws, dom: window.__apBench.dom})"
        )
    finally:
        context.close()
    wait_for(mesh, session_id, lambda r: isinstance(r.event, TranscriptRead))
    wait_for(mesh, session_id, ended)
    return measure(mesh, session_id, seen, busy, errors)


def per_second(times: Iterable[float]) -> float:
    """How many per second from the first time to the last (0 for fewer than two)."""
    t = sorted(times)
    return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0


def measure(
    mesh: ApMesh, session_id: str, seen: dict[str, Any], busy: float, errors: list[str]
) -> BrowserRun:
    """Join the page's times with the log's, per line number."""
    logged = logged_lines(mesh, session_id)
    ws, dom = first_seen(seen["ws"]), first_seen(seen["dom"])
    line_t = {n: t for n, (t, _, _) in logged.items()}
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    for n, (t, ts, appended) in logged.items():
        stages["tail"].append(ts - t)
        stages["journal"].append(appended - ts)
        if n in ws:
            stages["to_page"].append(ws[n] - appended)
            if n in dom:
                stages["render"].append(dom[n] - ws[n])
    rate = per_second(line_t.values())
    monitor_rate = per_second(ts for _, ts, _ in logged.values())
    return BrowserRun(
        rendered=len(dom),
        logged=len(logged),
        dom=[(dom[n] - line_t[n]) * 1000 for n in dom if n in line_t],
        stages={k: [x * 1000 for x in v] for k, v in stages.items()},
        rate=rate,
        monitor_rate=monitor_rate,
        machine_busy=busy,
        errors=errors,
    )


# --- the rows -----------------------------------------------------------------------


def bench_line_to_browser(tmp: Path) -> list[Row]:
    """Rows: line -> browser p50, p99 (medians of the per-run values), max, lines rendered.

    Raises:
        RuntimeError: Chromium is missing, or a run rendered no line at all.
    """
    work = tmp / "line-to-browser"
    work.mkdir()
    repo = make_repo(work / "repo")
    with ApMesh(work / "state", team_toml()) as mesh, chromium() as browser:
        runs = [run_once(mesh, browser, repo, work, rep) for rep in range(REPS)]
    for r in runs:
        if r.errors:
            print(f"bench: line -> browser: {'; '.join(r.errors)}", file=sys.stderr)
        if not r.dom:
            raise RuntimeError(f"no line reached the page's feed ({r.logged} in the log)")
    dom = [sorted(r.dom) for r in runs]
    p50s, p99s = [percentile(d, 50) for d in dom], [percentile(d, 99) for d in dom]
    ms = "{:.1f}"
    stages = "; ".join(
        f"{label} p50 {median([percentile(sorted(r.stages[k]), 50) for r in runs]):.1f}"
        f" / p99 {median([percentile(sorted(r.stages[k]), 99) for r in runs]):.1f} ms"
        for k, label in STAGES.items()
    )
    rendered = [r.rendered for r in runs]
    return [
        row(
            "line -> browser latency p50",
            median(p50s),
            "ms",
            None,
            None,
            f"{spread(p50s, ms)}; {REPS} runs of {LINES:,} lines at"
            f" {median([r.rate for r in runs]):,.0f} lines/s, one command worker, fsync on,"
            f" the page in headless Chromium; machine {median([r.machine_busy for r in runs]):.0%}"
            f" busy; the log monitor emitted {median([r.monitor_rate for r in runs]):,.0f}"
            f" lines/s; stages (medians of the runs): {stages}",
        ),
        row(
            "line -> browser latency p99",
            median(p99s),
            "ms",
            "<=",
            50,
            f"{spread(p99s, ms)}; the seeds claim about {SEEDS_CLAIM_MS} ms for their 100 ms"
            " polling tailer (their figure, not measured here)",
        ),
        row(
            "line -> browser latency max",
            max(d[-1] for d in dom),
            "ms",
            None,
            None,
            spread([d[-1] for d in dom], ms),
        ),
        row(
            "lines rendered in the feed",
            median(rendered),
            "lines",
            None,
            None,
            f"of {LINES:,} per run; {spread(rendered)}; in the log"
            f" {spread([r.logged for r in runs])}; the feed keeps the newest 200: entries"
            " superseded before the next frame are never added to the DOM; page errors and"
            f" timeouts {sum(len(r.errors) for r in runs)}",
        ),
    ]
