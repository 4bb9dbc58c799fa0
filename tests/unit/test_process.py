"""``TreeSampler``: CPU and memory of an agent's process tree, sample after sample."""

from __future__ import annotations

import subprocess
import sys

import psutil

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
