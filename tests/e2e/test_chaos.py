"""The short version of ``make chaos``: every kind of actor killed, the mesh restarted,
the journal killed during a burst, and the history checker finds nothing wrong.

The run is ``scripts/faults/run.py`` with small numbers (``make chaos`` runs 100
sessions). Recovery times are measured there, not asserted here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

from faults.run import KINDS, Options, run


def test_kills_a_restart_and_a_burst_lose_duplicate_and_gap_nothing(tmp_path: Path) -> None:
    opts = Options(
        sessions=10,
        workers=2,
        clients=2,
        rate=400.0,
        kill_every_s=0.4,
        burst_s=1.0,
        submit_every_s=0.6,
        settle_s=240.0,
        state=tmp_path / "chaos",
    )

    result = run(opts, say=lambda *_: None)

    report = result.report
    assert report.clean, report.summary()
    assert report.acked > 0 and report.malformed_lines == 0
    assert {k.kind for k in result.kills} == set(KINDS), result.kills
    assert [k.actor for k in result.kills if k.recovered_s is None] == []
    assert result.sessions_submitted == 10
    assert result.sessions_ended.get("unfinished", 0) == 0
    assert (
        sum(result.sessions_ended.get(k, 0) for k in ("session_completed", "session_failed")) == 10
    )
