"""How the supervisor chooses its actors' nice values, with and without the privilege."""

from __future__ import annotations

import logging
import os

import pytest

from ap_actors.supervisor import PRIORITY_STEP, Priorities, choose_priorities


class _Kernel:
    """os.setpriority as the kernel answers it, with or without CAP_SYS_NICE."""

    def __init__(self, base: int, permitted: bool) -> None:
        self.base = base
        self.permitted = permitted
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, which: int, who: int, prio: int) -> None:
        if prio < self.base and not self.permitted:
            raise PermissionError(13, "Permission denied")
        self.calls.append((which, who, prio))


def test_with_the_privilege_the_serial_actors_are_lowered_and_the_others_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kernel = _Kernel(base=0, permitted=True)
    with caplog.at_level(logging.INFO, "ap_actors.supervisor"):
        chosen = choose_priorities(os.getpid(), 0, kernel)
    assert chosen == Priorities(serial=-PRIORITY_STEP, per_agent=None)
    assert kernel.calls[0] == (os.PRIO_PROCESS, os.getpid(), -PRIORITY_STEP)
    assert {c[2] for c in kernel.calls} == {-PRIORITY_STEP}  # every thread of it
    assert [chosen.of(n) for n in ("journal", "broadcaster", "scheduler")] == [-10] * 3
    assert [chosen.of(n) for n in ("worker.w1", "log_monitor.w1", "planner")] == [None] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "serial actors (broadcaster, journal, scheduler) run at nice -10, the other actors at 0"
    ]


def test_without_the_privilege_the_per_agent_actors_are_raised_instead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kernel = _Kernel(base=2, permitted=False)
    with caplog.at_level(logging.INFO, "ap_actors.supervisor"):
        chosen = choose_priorities(os.getpid(), 2, kernel)
    assert chosen == Priorities(serial=None, per_agent=2 + PRIORITY_STEP)
    assert kernel.calls == []
    assert [chosen.of(n) for n in ("journal", "scheduler", "planner")] == [None] * 3
    assert [chosen.of(n) for n in ("worker.w1", "log_monitor.w1")] == [12, 12]
    assert len(caplog.records) == 1 and "raising" in caplog.records[0].getMessage()


def test_nice_values_stay_within_the_kernels_range() -> None:
    assert choose_priorities(os.getpid(), -15, _Kernel(-15, True)).serial == -20
    assert choose_priorities(os.getpid(), 15, _Kernel(15, False)).per_agent == 19
