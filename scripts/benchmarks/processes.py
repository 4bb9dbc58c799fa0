"""The processes a benchmark runs: the journal as a subprocess, and spawn workers.

Workers are ``multiprocessing`` "spawn" processes. Their target is :func:`uvloop_worker`
with a coroutine function of a ``benchmarks`` module, which the child imports by name
(the child inherits the parent's ``sys.path``, so ``scripts/`` is on it).
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ap_actors.process import spawn_with_ready
from benchmarks.common import ANY_PORT

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

Result = dict[str, Any]
"""What a worker reports: a dict of plain values, pickled through a queue."""


class JournalProcess:
    """The journal as a real subprocess with ``tcp://127.0.0.1:*`` endpoints.

    A context manager: entering starts it and waits for its ready line (raises
    ``RuntimeError`` with the tail of its log if it exits first); leaving sends SIGTERM
    and kills it after 15 s.

    Attributes:
        endpoints: the ready line, ``{"ingest", "bus", "replay", "log"}``.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, str] = {}

    def __enter__(self) -> JournalProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "ap_actors.actors.journal"]
        argv += ["--state-dir", str(self.state_dir)]
        argv += ["--ingest", ANY_PORT, "--bus", ANY_PORT, "--replay", ANY_PORT]
        log_path = self.state_dir / "journal.log"
        self.proc, line = spawn_with_ready(argv, log_path=log_path)
        if not line:
            self.__exit__()
            raise RuntimeError(f"journal did not start: {log_path.read_text()[-2000:]}")
        self.endpoints = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        """The journal's process id (only while it runs)."""
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used by the journal so far (all threads)."""
        t = psutil.Process(self.pid).cpu_times()
        return float(t.user + t.system)


# --- spawn workers ------------------------------------------------------------------


def spawn_context() -> SpawnContext:
    """The "spawn" multiprocessing context: no state inherited from the bench process."""
    return multiprocessing.get_context("spawn")


def uvloop_worker(
    results: Queue[Result],
    main: Callable[..., Coroutine[Any, Any, Result]],
    *args: Any,
) -> None:
    """Run ``main(*args)`` on uvloop in a worker process; put its result on ``results``."""
    import uvloop

    results.put(uvloop.run(main(*args)))


def start_worker(
    ctx: SpawnContext,
    name: str,
    results: Queue[Result],
    main: Callable[..., Coroutine[Any, Any, Result]],
    *args: Any,
) -> SpawnProcess:
    """Start a daemon process (it never outlives a failed run) running :func:`uvloop_worker`.

    ``main`` must be a module-level coroutine function of an importable module.
    """
    proc = ctx.Process(target=uvloop_worker, name=name, daemon=True, args=(results, main, *args))
    proc.start()
    return proc


def _check_alive(procs: Sequence[BaseProcess]) -> None:
    for p in procs:
        if p.exitcode not in (None, 0):
            raise RuntimeError(f"worker {p.name} exited with {p.exitcode}")


def pass_barrier(barrier: Barrier, procs: Sequence[BaseProcess], timeout: float = 120.0) -> None:
    """Wait at ``barrier`` with the workers; fail fast when one of them died first."""
    waiter = threading.Thread(target=barrier.wait, daemon=True)
    waiter.start()
    deadline = time.monotonic() + timeout
    while waiter.is_alive():
        waiter.join(0.1)
        try:
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not reach the start barrier")
        except RuntimeError:
            barrier.abort()
            raise


def collect(
    results: Queue[Result], procs: Sequence[BaseProcess], timeout: float = 300.0
) -> list[Result]:
    """Return one result per worker; fail fast when one of them died without one."""
    out: list[Result] = []
    deadline = time.monotonic() + timeout
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=0.2))
        except queue.Empty:
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not report in time") from None
    return out


def join_all(procs: Sequence[BaseProcess], timeout: float = 60.0) -> None:
    """Join worker processes; raise if one failed."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.terminate()
            p.join()
            raise RuntimeError(f"worker {p.name} did not finish")
        if p.exitcode != 0:
            raise RuntimeError(f"worker {p.name} exited with {p.exitcode}")
