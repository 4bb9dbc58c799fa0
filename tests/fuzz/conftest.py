"""Fuzzing every input surface (issue 7, "Bad input"): settings, the tally, shared fixtures.

One knob sets how many cases each surface gets: ``AP_FUZZ_EXAMPLES`` (default
:data:`DEFAULT_EXAMPLES`, small enough for ``make test``; ``make chaos`` sets 100,000).
Every surface is one hypothesis property whose examples are counted by :func:`tried`;
the summary (surface, cases tried, failures) is printed at the end of a run when the
knob is set, and written as JSON to ``$AP_FUZZ_SUMMARY`` when that is set.

The components are real: a journal process on loopback TCP with its LMDB log, a
broadcaster serving its aiohttp app in an event loop of its own thread
(:class:`Portal`), the real parsers and loaders.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from ap_actors.eventlog import EventLog
from tests.integration.conftest import FREE_PORTS, JournalProcess, start_journal

DEFAULT_EXAMPLES = 250
EXAMPLES = int(os.environ.get("AP_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
"""Generated cases per surface."""

RUN_EXAMPLES = 2_000
"""Cases per hypothesis run: :func:`run_cases` tries a surface's cases in runs of at most
this many. Hypothesis keeps what every case of a run drew (its tree of choices, to avoid
repeats), about 370 kB a case for the agent streams: 100,000 cases in one run grew by
1 GB a minute, towards 37 GB. Each run starts from a fresh random seed."""
RUNS = -(-EXAMPLES // RUN_EXAMPLES)

settings.register_profile(
    "fuzz",
    max_examples=min(EXAMPLES, RUN_EXAMPLES),
    deadline=None,
    derandomize=False,
    # Real sockets and processes: an example may take a while, and the strategies
    # deliberately build large and deeply nested inputs.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FUZZ = settings.get_profile("fuzz")

CASES: Counter[str] = Counter()  # counted where the tests run (an xdist worker, or here)
_SENT: Counter[str] = Counter()  # of CASES, how many the reports carried already
TALLY: Counter[str] = Counter()  # summed from the reports, where the summary is printed
FAILURES: Counter[str] = Counter()

# A journal that does not fsync: input handling is the same, and the fuzzing stays fast.
FUZZ_JOURNAL = FREE_PORTS + '\n[eventlog]\ndurability = "none"\n'


def run_cases(property: Callable[[], None]) -> None:
    """Run the hypothesis ``property`` (settings :data:`FUZZ`) :data:`RUNS` times: at least
    :data:`EXAMPLES` cases asked for; the first failure raises, as hypothesis reports it."""
    for _ in range(RUNS):
        property()


def tried(surface: str) -> None:
    """Count one generated case of ``surface`` (called by each property's body)."""
    CASES[surface] += 1


def surface_of(item: pytest.Item | pytest.TestReport) -> str | None:
    module = item.nodeid.split("::", 1)[0]
    name = Path(module).stem
    if "tests/fuzz/" not in module or not name.startswith("test_"):
        return None
    return name.removeprefix("test_")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The per-test timeout of pytest.ini fits the default count; 100,000 cases do not.
    for item in items:
        if surface_of(item) is not None:
            item.add_marker(pytest.mark.timeout(60 + EXAMPLES * 0.2))
            # A failing case of 70 kB is reported whole, not refused for its size.
            item.add_marker(pytest.mark.filterwarnings("ignore:Generating overly large repr"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # The cases a test tried travel in its report, so that the tally is whole also when
    # pytest-xdist runs the surfaces in worker processes (`make chaos` runs two).
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    surface = surface_of(item)
    if surface is not None and report.when == "call":
        report.user_properties.append(("fuzz_cases", CASES[surface] - _SENT[surface]))
        _SENT[surface] = CASES[surface]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    surface = surface_of(report)
    if surface is None:
        return
    for name, value in report.user_properties:
        if name == "fuzz_cases":
            TALLY[surface] += value if isinstance(value, int) else 0
    if report.failed:
        FAILURES[surface] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY and not FAILURES:
        return
    rows = [
        {"surface": s, "cases": TALLY[s], "failures": FAILURES[s]}
        for s in sorted(set(TALLY) | set(FAILURES))
    ]
    out = os.environ.get("AP_FUZZ_SUMMARY")
    if out:
        Path(out).write_text(json.dumps(rows, indent=1))
    if "AP_FUZZ_EXAMPLES" not in os.environ:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fuzzing: {EXAMPLES:,} cases asked per surface")
    table.add_column("surface")
    table.add_column("cases tried", justify="right")
    table.add_column("failures", justify="right")
    for row in rows:
        table.add_row(row["surface"], f"{row['cases']:,}", str(row["failures"]))
    Console(file=terminalreporter._tw._file, force_terminal=False, width=80).print(table)


# --- the log ------------------------------------------------------------------------


def log_records(path: str | Path) -> list[tuple[int, bytes]]:
    """Every ``(seq, record bytes)`` of the log at ``path``."""
    with EventLog(path, readonly=True) as log:
        return list(log.read_raw(0, until=log.last_seq()))


def digest(records: list[tuple[int, bytes]]) -> str:
    h = hashlib.sha256()
    for seq, data in records:
        h.update(seq.to_bytes(8, "big") + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def assert_log_kept(path: str | Path, before: list[tuple[int, bytes]]) -> None:
    """Assert that the records ``before`` are still the log's first records, byte for byte."""
    after = log_records(path)
    assert len(after) >= len(before)
    assert after[-1][0] == len(after) if after else True, "the seqs have a gap"
    assert digest(after[: len(before)]) == digest(before), "a record appended earlier changed"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JournalProcess]:
    """A journal process of this module, with a log of its own."""
    j = start_journal(tmp_path_factory.mktemp("journal") / "state", FUZZ_JOURNAL)
    yield j
    j.proc.terminate()
    j.proc.wait(timeout=20)


def journal_log_problems(j: JournalProcess) -> list[str]:
    """Lines of the journal's log that show a bug: errors, tracebacks, "unexpected"."""
    problems = []
    # JSON lines end at "\n" only: a message may hold U+2028 or U+0085, which the JSON
    # encoder leaves as they are and str.splitlines() would split at.
    text = (j.state_dir / "journal.log").read_text(errors="replace")
    for line in filter(None, text.split("\n")):
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(line)  # not a log line: something wrote to stderr
            continue
        if (
            entry.get("level") in ("ERROR", "CRITICAL")
            or "exc" in entry
            or "unexpected" in str(entry.get("msg", ""))
        ):
            problems.append(line)
    return problems


# --- an event loop in a thread --------------------------------------------------------

T = TypeVar("T")


class Portal:
    """An asyncio loop in a thread of its own, for synchronous hypothesis properties.

    Hypothesis runs each example as a plain call; the servers and clients under test
    live in this loop for the whole module, and :meth:`run` waits for one coroutine.
    """

    WAIT_S = 60.0  # a safety net: no single step of a property takes anywhere near this

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="portal", daemon=True)
        self._thread.start()
        self._exits: list[Any] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.WAIT_S)

    def enter(self, cm: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter ``cm`` in the loop; it is exited by :meth:`close`, last entered first."""
        value = self.run(cm.__aenter__())
        self._exits.append(cm)
        return value

    def close(self) -> None:
        while self._exits:
            cm = self._exits.pop()
            self.run(cm.__aexit__(None, None, None))

        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(_cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    p = Portal()
    yield p
    p.close()


# --- a dashboard --------------------------------------------------------------------


class Dashboard:
    """A real broadcaster (in :class:`Portal`'s loop) on a real journal, with one session.

    Attributes:
        base: its URL (``http://127.0.0.1:PORT/``). repo: a git repository to submit on.
        session_id: a session submitted before the fuzzing. http: a client session.
    """

    def __init__(self, journal: JournalProcess, portal: Portal, root: Path) -> None:
        import subprocess

        import aiohttp

        from tests.support.dashboard import running_broadcaster

        self.journal, self.portal = journal, portal
        self.repo = root / "repo"
        self.repo.mkdir()
        git = ["git", "-c", "user.name=fuzz", "-c", "user.email=fuzz@example.com"]
        subprocess.run([*git, "init", "-q", str(self.repo)], check=True)
        (self.repo / "README.md").write_text("fuzz\n")
        subprocess.run([*git, "-C", str(self.repo), "add", "."], check=True)
        subprocess.run([*git, "-C", str(self.repo), "commit", "-qm", "init"], check=True)
        team = {"workers": [{"id": "w1", "command": "true {scope}"}]}
        self.broadcaster = portal.enter(
            running_broadcaster(journal.mesh(), root / "state", team=team)
        )
        self.base = self.broadcaster.url

        async def client() -> aiohttp.ClientSession:
            return aiohttp.ClientSession()

        self.http = portal.run(client())
        status, body = self.request(
            "POST", "/api/sessions", {"request": "x", "repo": str(self.repo)}
        )
        assert status == 201, body
        self.session_id = json.loads(body)["session_id"]

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            data = json.dumps(body).encode() if body is not None else None
            async with self.http.request(method, self.base.rstrip("/") + path, data=data) as r:
                return r.status, await r.read()

        return self.portal.run(go())

    def alive(self) -> None:
        """Assert that the broadcaster still serves: its health answer, its actor task."""
        status, body = self.request("GET", "/api/health")
        assert status == 200 and json.loads(body)["status"] == "ok", body

    def close(self) -> None:
        self.portal.run(self.http.close())


@pytest.fixture(scope="module")
def dashboard(
    journal: JournalProcess, portal: Portal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    d = Dashboard(journal, portal, tmp_path_factory.mktemp("dashboard"))
    yield d
    d.close()
