"""CPU and memory of groups of processes over a window: each actor kind, the agents, the clients.

A :class:`UsageSampler` reads every process's CPU time and RSS once a second in a thread
(psutil). A process's CPU share is its CPU time (user + system, all threads) between
its first and last sample in the window, divided by the window's length: a process
that exits early counts for the part of the window it lived. RSS is the largest of its
samples; USS (the memory only it holds) is read once, at the end of the window, from
``/proc/<pid>/smaps`` (too slow to read every second for hundreds of processes).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil

from benchmarks.machine import busy_share
from benchmarks.team_load import KINDS as ACTOR_KINDS

SAMPLE_S = 1.0

KINDS = (*ACTOR_KINDS, "supervisor")
"""Actor kinds in table order: an actor ``worker.w001`` is of kind ``worker``."""


def kind_of(actor: str) -> str:
    """``"worker.w001"`` -> ``"worker"``."""
    return actor.split(".", 1)[0]


@dataclass
class _Proc:
    proc: psutil.Process
    cpu: list[float] = field(default_factory=list)  # CPU seconds at each sample
    rss: float = 0.0  # largest RSS seen, bytes
    uss: float = 0.0  # at the end of the window, bytes


@dataclass
class KindUsage:
    """One row of the resource table: CPU as a share of one core, memory in MB (10^6 B)."""

    kind: str
    processes: int
    cpu_sum: float
    cpu_max: float
    rss_sum_mb: float
    rss_max_mb: float
    uss_sum_mb: float
    uss_max_mb: float


class UsageSampler:
    """Samples groups of processes (``{kind: processes}``) from :meth:`start` to :meth:`stop`.

    Processes that are gone when sampled are skipped from then on.
    """

    def __init__(self, groups: Mapping[str, Iterable[psutil.Process]]) -> None:
        self.groups = {k: [_Proc(p) for p in procs] for k, procs in groups.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self._t0 = self._t1 = 0.0
        self._machine0: object = None
        self.machine_busy = float("nan")

    def _sample(self) -> None:
        for procs in self.groups.values():
            for p in procs:
                try:
                    with p.proc.oneshot():
                        t = p.proc.cpu_times()
                        rss = p.proc.memory_info().rss
                except psutil.Error:
                    continue
                p.cpu.append(t.user + t.system)
                p.rss = max(p.rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def start(self) -> None:
        """Take the first sample and keep sampling every second."""
        self._machine0 = psutil.cpu_times()
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()

    def stop(self) -> list[KindUsage]:
        """Take the last sample (and USS); return a row per group, in insertion order."""
        self._stop.set()
        self._thread.join()
        self._sample()
        self._t1 = time.monotonic()
        self.machine_busy = busy_share(self._machine0, psutil.cpu_times())  # type: ignore[arg-type]
        for procs in self.groups.values():
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.uss = p.proc.memory_full_info().uss
        return [self._row(k, procs) for k, procs in self.groups.items()]

    @property
    def seconds(self) -> float:
        """The window's length, s."""
        return self._t1 - self._t0

    def _row(self, kind: str, procs: list[_Proc]) -> KindUsage:
        wall = self.seconds
        cpu = [(p.cpu[-1] - p.cpu[0]) / wall if len(p.cpu) > 1 else 0.0 for p in procs]
        rss = [p.rss / 1e6 for p in procs]
        uss = [p.uss / 1e6 for p in procs]
        return KindUsage(
            kind=kind,
            processes=len(procs),
            cpu_sum=sum(cpu),
            cpu_max=max(cpu, default=0.0),
            rss_sum_mb=sum(rss),
            rss_max_mb=max(rss, default=0.0),
            uss_sum_mb=sum(uss),
            uss_max_mb=max(uss, default=0.0),
        )
