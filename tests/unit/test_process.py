"""``TreeSampler``: CPU and memory of an agent's process tree, sample after sample."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from ap_actors.process import TreeSampler

SPIN = "import time\nwhile True: pass\n"


def test_a_busy_child_process_reads_as_busy_on_the_second_sample() -> None:
    # A shell whose child spins: the sampler must see the grandchild's CPU, and keep
    # its psutil objects between calls (a fresh object always reads 0 %).
    parent = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{SPIN}'; true"])
    try:
        spinner = None
        while spinner is None:  # the child appears once sh has forked it
            children = psutil.Process(parent.pid).children()
            spinner = children[0] if children else None
        sampler = TreeSampler()
        first_cpu, first_rss = sampler.sample(parent.pid)
        assert first_rss > 0
        burnt = spinner.cpu_times().user
        while spinner.cpu_times().user < burnt + 0.2:  # let it burn 0.2 s of CPU
            pass
        cpu, rss = sampler.sample(parent.pid)
        assert cpu > 0 and rss > 0, (first_cpu, cpu)
    finally:
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_samples_as_nothing() -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    assert TreeSampler().sample(done.pid) == (0.0, 0)


# The root starts a child on each line of its stdin; that child starts a grandchild that
# holds BALLAST bytes of memory, prints its pid on the root's stdout and waits to be killed.
BALLAST = 64 << 20
GRANDCHILD = (
    f"import os, signal\nb = bytearray({BALLAST})\nb[::4096] = b'x' * len(b[::4096])\n"
    "print(os.getpid(), flush=True)\nsignal.pause()\n"
)
CHILD = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {GRANDCHILD!r}])\n"
ROOT = (
    "import subprocess, sys\n"
    "for _ in sys.stdin:\n"
    f"    subprocess.Popen([sys.executable, '-c', {CHILD!r}])\n"
)


@pytest.mark.parametrize("rescan_every", [1, 1000])
def test_a_grandchild_started_after_the_first_sample_counts_until_it_exits(
    rescan_every: int,
) -> None:
    # rescan_every=1: every call looks at every process; 1000: the tree is followed
    # from one call to the next (the grandchild is found as a new pid).
    with subprocess.Popen(
        [sys.executable, "-c", ROOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as root:
        assert root.stdin is not None and root.stdout is not None
        try:
            sampler = TreeSampler(rescan_every=rescan_every)
            _, alone = sampler.sample(root.pid)
            root.stdin.write(b"go\n")
            root.stdin.flush()
            grandchild = psutil.Process(int(root.stdout.readline()))
            _, with_grandchild = sampler.sample(root.pid)
            assert with_grandchild >= alone + BALLAST
            grandchild.kill()
            grandchild.wait(timeout=30)  # reaped by its parent, which then exits too
            _, after = sampler.sample(root.pid)
            assert after < with_grandchild - BALLAST // 2
        finally:
            for p in psutil.Process(root.pid).children(recursive=True):
                p.kill()
            root.kill()
