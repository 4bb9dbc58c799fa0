"""What the numbers depend on: hardware, library versions, commit, how busy the machine is."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import lmdb
import msgspec
import psutil
import uvloop
import zmq

from benchmarks.common import ROOT


class CpuTimes(Protocol):
    """What :func:`busy_share` reads of a ``psutil.cpu_times()`` reading (Linux)."""

    @property
    def idle(self) -> float: ...

    @property
    def iowait(self) -> float: ...

    def __iter__(self) -> Iterator[float]: ...


def busy_share(before: CpuTimes, after: CpuTimes) -> float:
    """Share of CPU time not idle between two ``psutil.cpu_times()`` readings.

    iowait counts as idle: a core waiting for fsync could run something else.
    """
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total > 0 else float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    for p in psutil.disk_partitions(all=True):
        if str(path).startswith(p.mountpoint) and len(p.mountpoint) > len(best):
            best, kind = p.mountpoint, f"{p.fstype} on {p.device} ({p.mountpoint})"
    return kind


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout


def machine_info(tmp: Path) -> dict[str, Any]:
    """Describe the machine, the libraries and the commit; takes 1 s (``busy_before_run``).

    Args:
        tmp: the scratch directory, whose filesystem is reported.
    """
    before = psutil.cpu_times()
    time.sleep(1.0)
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "filesystem": _filesystem(tmp),
        "libzmq": zmq.zmq_version(),
        "pyzmq": zmq.__version__,
        "lmdb": ".".join(map(str, lmdb.version())),
        "py-lmdb": lmdb.__version__,
        "msgspec": msgspec.__version__,
        "uvloop": uvloop.__version__,
        "sqlite": sqlite3.sqlite_version,
        "commit": _git("rev-parse", "--short", "HEAD").strip(),
        # The package as measured: uncommitted changes to it are part of the result.
        "package_changes": _git("status", "--porcelain", "--", "ap_actors").split("\n")[:-1],
        # Share of the machine busy in the second before the run: other work skews it all.
        "busy_before_run": round(busy_share(before, psutil.cpu_times()), 3),
    }
