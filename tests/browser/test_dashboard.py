"""The dashboard page in real headless Chromium against a running mesh with real sessions.

What the owner sees must equal what the log says: the worker cards' counts, the activity
feed (live, across a broadcaster restart, without duplicates or holes), the approve
button's effect, and the replay of a finished session.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ap_actors.events import (
    ObjectiveCompleted,
    PlanApproved,
    PlanAwaitingApproval,
    Record,
    ReportWritten,
    TranscriptRead,
    WorkerActivity,
    WorkerStarted,
)
from tests.browser.conftest import dashboard_url, screenshot
from tests.e2e.conftest import (
    PipelineMesh,
    actor_restarted,
    ended,
    gate_command,
    session_of,
    team_toml,
    write_plan,
)

pytestmark = pytest.mark.timeout(180)

TOOL_LINES = "; ".join(
    f"echo '[2025-10-08T10:36:{n:02d}] TOOL: edit - Editing pkg/core.py step {n}'"
    for n in range(10)
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineMesh]:
    from tests.e2e.conftest import PIPELINE_CONFIG

    root = tmp_path_factory.mktemp("browser")
    (root / "ap.toml").write_text(PIPELINE_CONFIG)
    (root / "team.toml").write_text(
        team_toml([{"id": "w1", "command": "true"}, {"id": "w2", "command": "true"}])
    )
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml").up()
    yield mesh
    mesh.down()


def settled(mesh: PipelineMesh, sid: str) -> None:
    """Wait until the session ended, its transcript was read and the accomplishment
    report was rewritten after that: no more events of it will come."""
    mesh.wait_for(ended, session_id=sid)
    read = mesh.wait_for(lambda r: isinstance(r.event, TranscriptRead), session_id=sid)
    mesh.wait_for(
        lambda r: (
            r.seq > read.seq
            and isinstance(r.event, ReportWritten)
            and r.event.kind == "accomplishment"
        ),
        session_id=sid,
    )


def activities(mesh: PipelineMesh, sid: str, worker: str) -> list[Record]:
    return [
        r
        for r in mesh.records(sid)
        if isinstance(r.event, WorkerActivity) and r.event.worker_id == worker
    ]


def run_session(
    mesh: PipelineMesh, repo: Path, tmp_path: Path, command: str, *, approve: bool = True
) -> str:
    plan = write_plan(
        tmp_path / f"plan-{len(list(tmp_path.glob('plan-*')))}.json",
        {
            "id": "edit",
            "title": "Edit core",
            "worker": "w1",
            "scope_touch": ["pkg/"],
            "command": command,
        },
    )
    args = ["Edit the core", "--repo", str(repo), "--plan", plan, "--json"]
    return session_of(mesh.submit(*args, *(["--approve"] if approve else [])))


def open_session(page: Page, mesh: PipelineMesh, sid: str) -> None:
    page.goto(f"{dashboard_url(mesh)}#/session/{sid}")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")


def feed_seqs(page: Page, worker: str) -> list[int]:
    card = page.get_by_test_id(f"worker-card-{worker}")
    values = (
        card.get_by_test_id("feed")
        .locator("[data-seq]")
        .evaluate_all("nodes => nodes.map(n => Number(n.dataset.seq))")
    )
    return [int(v) for v in values]


def test_the_worker_cards_show_the_counts_the_log_holds(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, page: Page
) -> None:
    command = f'sh -c "{TOOL_LINES}; echo x >> pkg/core.py"'
    sid = run_session(mesh, small_repo, tmp_path, command)
    settled(mesh, sid)

    open_session(page, mesh, sid)
    card = page.get_by_test_id("worker-card-w1")
    expect(card).to_be_visible()
    done = sum(isinstance(r.event, ObjectiveCompleted) for r in mesh.records(sid))
    expect(card.get_by_test_id("tasks-done")).to_have_text(str(done))
    expect(card.get_by_test_id("tasks-failed")).to_have_text("0")
    expect(card.get_by_test_id("activity-count")).to_have_text(
        str(len(activities(mesh, sid, "w1")))
    )
    expect(card.get_by_test_id("files-modified")).to_have_text("1")
    assert sorted(feed_seqs(page, "w1")) == [r.seq for r in activities(mesh, sid, "w1")]
    print(f"screenshot: {screenshot(page, 'session-view')}")


def test_the_activity_feed_updates_live(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, page: Page
) -> None:
    gate = tmp_path / "gate"
    sid = run_session(mesh, small_repo, tmp_path, gate_command(gate, TOOL_LINES))
    mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=sid)
    open_session(page, mesh, sid)
    expect(page.get_by_test_id("worker-card-w1")).to_be_visible()
    before = len(feed_seqs(page, "w1"))

    gate.touch()  # the agent prints its ten tool lines now, with the page open
    settled(mesh, sid)
    want = [r.seq for r in activities(mesh, sid, "w1")]
    expect(page.get_by_test_id("worker-card-w1").get_by_test_id("activity-count")).to_have_text(
        str(len(want))
    )
    assert len(want) > before
    assert sorted(feed_seqs(page, "w1")) == want


def test_the_approve_button_approves_the_plan(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, page: Page
) -> None:
    sid = run_session(mesh, small_repo, tmp_path, "true", approve=False)
    mesh.wait_for(lambda r: isinstance(r.event, PlanAwaitingApproval), session_id=sid)
    open_session(page, mesh, sid)
    button = page.get_by_test_id("approve-button")
    expect(button).to_be_enabled()
    button.click()
    approved = mesh.wait_for(lambda r: isinstance(r.event, PlanApproved), session_id=sid)
    assert approved.event.session_id == sid
    mesh.wait_for(ended, session_id=sid)
    expect(page.get_by_test_id("approve-button")).to_be_disabled()


def card_state(page: Page, worker: str) -> dict[str, str]:
    card = page.get_by_test_id(f"worker-card-{worker}")
    return {
        k: card.get_by_test_id(k).inner_text()
        for k in ("tasks-done", "tasks-failed", "files-modified", "activity-count")
    }


def test_replaying_a_finished_session_ends_in_the_live_state(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, page: Page
) -> None:
    command = f'sh -c "{TOOL_LINES}; echo y >> pkg/util.py"'
    sid = run_session(mesh, small_repo, tmp_path, command)
    settled(mesh, sid)
    open_session(page, mesh, sid)
    expect(page.get_by_test_id("worker-card-w1").get_by_test_id("activity-count")).to_have_text(
        str(len(activities(mesh, sid, "w1")))
    )
    live = card_state(page, "w1")

    page.get_by_test_id("replay-toggle").click()
    page.get_by_test_id("replay-speed").select_option("max")
    page.get_by_test_id("replay-play").click()
    last = mesh.records(sid)[-1].seq
    expect(page.get_by_test_id("replay-seq")).to_have_text(str(last), timeout=30_000)
    assert card_state(page, "w1") == live
    # Half-way, the cards show less: the replay really is a fold up to the scrubber.
    page.get_by_test_id("replay-scrubber").fill(str(activities(mesh, sid, "w1")[4].seq))
    expect(page.get_by_test_id("worker-card-w1").get_by_test_id("activity-count")).to_have_text("5")


def test_a_broadcaster_restart_mid_session_leaves_no_duplicate_or_missing_feed_entry(
    mesh: PipelineMesh, small_repo: Path, tmp_path: Path, page: Page
) -> None:
    gate = tmp_path / "gate"
    sid = run_session(mesh, small_repo, tmp_path, gate_command(gate, TOOL_LINES))
    mesh.wait_for(lambda r: isinstance(r.event, WorkerStarted), session_id=sid)
    open_session(page, mesh, sid)
    expect(page.get_by_test_id("worker-card-w1")).to_be_visible()

    before = mesh.records()[-1].seq
    os.kill(mesh.pid_of("broadcaster"), signal.SIGKILL)
    gate.touch()  # activities arrive while the page has no server
    mesh.wait_for(actor_restarted("broadcaster", before))
    settled(mesh, sid)

    want = [r.seq for r in activities(mesh, sid, "w1")]
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("worker-card-w1").get_by_test_id("activity-count")).to_have_text(
        str(len(want)), timeout=30_000
    )
    seqs = feed_seqs(page, "w1")
    assert len(seqs) == len(set(seqs)), "duplicated feed entries"
    assert sorted(seqs) == want, "missing feed entries"


Predicate = Callable[[Record], bool]
