"""Scope validation: the exact overlap check of a 20-objective plan, cold caches.

The plan is the one of ``tests/unit/test_scope.py`` (twenty modules, five patterns each,
one of them unanchored ``**/<m>_*.json``, which overlaps every other objective's folders:
1,710 conflicts, each with a witness path). :func:`ap_actors.scope.find_conflicts` runs
with its pattern caches cleared before each run, as for a new plan; wall time, best and
median of ``REPS``. Informative, with the bound the planner works to (well under a
second, the owner waits for it).
"""

from __future__ import annotations

import time
from pathlib import Path

from ap_actors import scope
from ap_actors.events import Objective
from benchmarks.common import Row, median, row, spread

REPS = 5
MODULES = [
    "auth", "billing", "users", "api", "db", "cache", "ui", "cli", "docs", "jobs",
    "mail", "search", "admin", "reports", "sync", "export", "io", "stats", "logs", "queue",
]  # fmt: skip


def plan() -> list[Objective]:
    return [
        Objective(
            id=f"obj-{i}",
            title=m,
            wave=1,
            scope_touch=[
                f"src/{m}/",
                f"tests/{m}/",
                f"tests/test_{m}*.py",
                f"docs/{m}.md",
                f"**/{m}_*.json",
            ],
            scope_forbid=[f"src/{m}/generated/"],
        )
        for i, m in enumerate(MODULES)
    ]


def bench_scope(tmp: Path) -> list[Row]:
    """Row: seconds to validate the plan (best of REPS, cold caches)."""
    del tmp
    objectives = plan()
    times = []
    conflicts = 0
    for _ in range(REPS):
        for cached in (scope._parse, scope._compile, scope._pair_witness, scope._alphabet):
            cached.cache_clear()
        start = time.perf_counter()
        conflicts = len(scope.find_conflicts(objectives))
        times.append(time.perf_counter() - start)
    if conflicts != 1710:
        raise RuntimeError(f"the plan gave {conflicts} conflicts, expected 1710")
    return [
        row(
            "scope validation, 20 objectives x 5 patterns",
            min(times),
            "s",
            "<=",
            1.0,
            f"best of {REPS}, median {median(times):.2f} s, {spread(times, '{:.2f}')}; cold"
            " pattern caches; 1,710 conflicts with witnesses",
        )
    ]
