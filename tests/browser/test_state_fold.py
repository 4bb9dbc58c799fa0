"""The page's fold (web/js/state.js) against the Python projection (projections.py).

``web/tests/state_check.mjs`` folds recorded sessions (a real ``make demo`` log and
synthetic ones: a revised plan, retries, a scope violation, a rejection, a merge conflict,
late results) in Node and compares every field with ``view_to_json`` of the same events
(the fixtures are made by ``web/tests/make_fixture.py``). A change to either fold that
the other does not follow fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_browser_fold_equals_the_python_projection_on_recorded_sessions() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the dashboard's fold check; install nodejs")
    done = subprocess.run(
        [node, str(WEB / "tests" / "state_check.mjs")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout
