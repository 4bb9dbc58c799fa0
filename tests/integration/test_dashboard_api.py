"""The dashboard's REST API, static files and access policy, on real servers.

The REST cases run against one real pipeline mesh (``ap up --detach`` with a team of two
command workers) and compare what the API says with what the log holds. The policy
cases (token, bind address, static files of a chosen ``web_dir``) run the broadcaster
in-process against a real journal, so each can set its own environment and options.

Synchronised on the dashboard's own stream: once the broadcaster has sent an event over
its WebSocket it has folded it, so its REST answers reflect it from then on.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ap_actors.bus import Emitter
from ap_actors.dashboard import WEB_DIR
from ap_actors.dashboard.auth import check_bind
from ap_actors.errors import StartupError
from ap_actors.events import (
    CancelRequested,
    Objective,
    PlanApproved,
    PlanAwaitingApproval,
    PlanProposed,
    PlanRejected,
    RequestSubmitted,
    SessionCompleted,
    record_to_json_dict,
    topic_of,
)
from tests.e2e import conftest as e2e
from tests.e2e.conftest import (
    PIPELINE_CONFIG,
    PipelineMesh,
    gate_command,
    team_toml,
    write_plan,
)
from tests.integration.conftest import JournalProcess
from tests.support.dashboard import (
    of_type,
    raw_get,
    read_until,
    running_broadcaster,
    wait_in_stream,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)

small_repo = e2e.small_repo  # the e2e suite's fixture: a small Python package in git

ENDED = {"session_completed", "session_failed", "session_cancelled"}
TOKEN = "a-long-random-test-token"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineMesh]:
    """One mesh for the module: its sessions are independent of each other."""
    root = tmp_path_factory.mktemp("dashboard")
    (root / "ap.toml").write_text(PIPELINE_CONFIG)
    (root / "team.toml").write_text(
        team_toml(
            [
                {"id": "w1", "command": "true {scope}", "capabilities": ["python"]},
                {"id": "w2", "command": "true {scope}"},
            ],
            max_attempts=1,
        )
    )
    mesh = PipelineMesh(root / "state", root / "ap.toml", root / "team.toml").up()
    yield mesh
    mesh.down()


@pytest.fixture
def url(mesh: PipelineMesh) -> str:
    dashboard = mesh.info().dashboard
    assert dashboard is not None and dashboard.startswith("http://127.0.0.1:")
    return dashboard


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def two_objectives(tmp_path: Path) -> str:
    return write_plan(
        tmp_path / "plan.json",
        {"id": "a", "title": "Core", "scope_touch": ["pkg/"], "worker": "w1"},
        {"id": "b", "title": "Tests", "scope_touch": ["tests/"], "worker": "w2"},
    )


def gated_objective(tmp_path: Path, gate: Path) -> str:
    """A plan whose one objective (on w1) runs until ``gate`` exists."""
    return write_plan(
        tmp_path / "gated.json",
        {
            "id": "a",
            "title": "Core",
            "scope_touch": ["pkg/"],
            "worker": "w1",
            "command": gate_command(gate),
        },
    )


def reported(m: dict[str, Any]) -> bool:
    """The last event of a session that completed: its accomplishment report."""
    return m.get("type") == "report_written" and m.get("kind") == "accomplishment"


def answer(body: bytes) -> Any:
    """A JSON body decoded, or anything else as ``{"text": ...}`` (e.g. a 500 page)."""
    try:
        return json.loads(body)
    except ValueError:
        return {"text": body.decode(errors="replace")}


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes | str | dict[str, Any], **kw: Any
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body) if isinstance(body, dict) else body
    async with http.post(url, data=data, **kw) as r:
        return r.status, answer(await r.read())


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as r:
        return r.status, answer(await r.read())


async def submit(
    http: aiohttp.ClientSession, url: str, repo: Path, plan: str, *, approve: bool
) -> str:
    status, body = await post(
        http,
        url + "api/sessions",
        {"request": "Tidy the package", "repo": str(repo), "plan": plan, "approve": approve},
    )
    assert status == 201, body
    return str(body["session_id"])


async def completed_session(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, repo: Path, tmp_path: Path
) -> str:
    """Run a two-objective session with ``ap submit`` to its last report; return its id."""
    plan = two_objectives(tmp_path)
    args = ["Tidy the package", "--repo", str(repo), "--plan", plan, "--approve", "--json"]
    out = await asyncio.to_thread(mesh.submit, *args)
    sid = str(json.loads(out.stdout)["session_id"])
    await wait_in_stream(http, url, sid, reported)
    return sid


# --- reading ---------------------------------------------------------------------------


async def test_health_says_ok_with_the_folded_seq_and_the_connected_clients(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh
) -> None:
    async with http.ws_connect(ws_url(url)) as ws:
        caught_up = (await read_until(ws, of_type("caught_up")))[-1]
        status, health = await get(http, url + "api/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["last_seq"] >= caught_up["seq"] > 0
    assert health["clients"] >= 1
    assert health["uptime_s"] > 0


async def test_a_completed_session_is_listed_and_shown_with_the_counts_of_the_log(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await completed_session(http, url, mesh, small_repo, tmp_path)
    records = mesh.records(sid)
    types = Counter(topic_of(r.event) for r in records)

    status, rows = await get(http, url + "api/sessions")
    assert status == 200
    (row,) = [r for r in rows if r["session_id"] == sid]
    assert row["status"] == "completed"
    assert row["request"] == "Tidy the package"
    assert row["repo"] == str(small_repo)
    assert row["objectives"] == 2 == types["objective_assigned"]
    assert row["objectives_completed"] == types["objective_completed"] == 2
    assert row["branch"] == f"ap/{sid}"
    ended = next(r.event for r in records if isinstance(r.event, SessionCompleted))
    assert row["submitted_at"] == records[0].event.ts and row["ended_at"] == ended.ts
    submitted_at = [r["submitted_at"] for r in rows]
    assert submitted_at == sorted(submitted_at, reverse=True)  # newest first

    status, view = await get(http, url + f"api/sessions/{sid}")
    assert status == 200
    assert view["session_id"] == sid and view["status"] == "completed"
    assert view["events"] == len(records)
    assert [o["objective"]["id"] for o in view["objectives"]] == ["a", "b"]
    assert {o["status"] for o in view["objectives"]} == {"completed"}
    assert [w["number"] for w in view["waves"]] == [1]
    assert sorted(w["worker_id"] for w in view["workers"]) == ["w1", "w2"]
    assert sum(w["activities"] for w in view["workers"]) == types["worker_activity"]
    assert set(view["reports"]) == {"analysis", "plan", "accomplishment"}


async def test_the_session_view_carries_the_seq_of_its_last_event_and_of_each_activity(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await completed_session(http, url, mesh, small_repo, tmp_path)
    records = mesh.records(sid)
    _, view = await get(http, url + f"api/sessions/{sid}")
    assert view["last_seq"] == records[-1].seq
    activities = [r.seq for r in records if topic_of(r.event) == "worker_activity"]
    feeds = sorted(a["seq"] for w in view["workers"] for a in w["feed"])
    assert feeds == activities


async def test_a_sessions_events_page_by_since_and_limit_through_exactly_its_records(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await completed_session(http, url, mesh, small_repo, tmp_path)
    expected = [json.loads(msgspec.json.encode(record_to_json_dict(r))) for r in mesh.records(sid)]

    pages: list[list[dict[str, Any]]] = []
    since = 0
    while True:
        status, page = await get(http, url + f"api/sessions/{sid}/events?since={since}&limit=7")
        assert status == 200, page
        assert page["last_seq"] >= expected[-1]["seq"]
        if not page["events"]:
            assert page["next"] == since
            break
        assert len(page["events"]) <= 7
        assert page["next"] == page["events"][-1]["seq"]
        pages.append(page["events"])
        since = page["next"]
    assert [e for p in pages for e in p] == expected
    assert len(pages) == -(-len(expected) // 7)

    # From the middle, with the default limit: the rest, once each.
    middle = expected[len(expected) // 2]["seq"]
    status, rest = await get(http, url + f"api/sessions/{sid}/events?since={middle}")
    assert rest["events"] == [e for e in expected if e["seq"] > middle]


async def test_workers_lists_the_team_with_what_each_worker_is_doing_now(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    sid = await submit(http, url, small_repo, gated_objective(tmp_path, gate), approve=True)
    await wait_in_stream(http, url, sid, of_type("objective_started"))

    status, rows = await get(http, url + "api/workers")
    assert status == 200
    assert rows == [
        {
            "worker_id": "w1",
            "agent": "command",
            "capabilities": ["python"],
            "status": "busy",
            "session_id": sid,
            "objective_id": "a",
        },
        {
            "worker_id": "w2",
            "agent": "command",
            "capabilities": [],
            "status": "idle",
            "session_id": "",
            "objective_id": "",
        },
    ]

    gate.touch()
    await wait_in_stream(http, url, sid, reported)
    _, rows = await get(http, url + "api/workers")
    assert [(r["worker_id"], r["status"], r["session_id"]) for r in rows] == [
        ("w1", "idle", ""),
        ("w2", "idle", ""),
    ]


async def test_metrics_are_prometheus_text_with_the_dashboard_families(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh
) -> None:
    async with http.ws_connect(ws_url(url)) as ws:
        await read_until(ws, of_type("caught_up"))
        async with http.get(url + "metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        _, rows = await get(http, url + "api/sessions")
    families = {f.name: f for f in text_string_to_metric_families(text)}

    broadcast = families["ap_events_broadcast"]
    assert broadcast.type == "counter"
    by_type = {s.labels["type"]: s.value for s in broadcast.samples if s.name.endswith("_total")}
    assert by_type and all(v >= 1 for v in by_type.values())
    assert families["ap_ws_clients"].type == "gauge"
    assert families["ap_ws_clients"].samples[0].value >= 1
    assert families["ap_ws_resyncs"].type == "counter"
    sessions = families["ap_sessions"]
    assert sessions.type == "gauge"
    assert {s.labels["status"]: s.value for s in sessions.samples} == {
        status: float(n) for status, n in Counter(row["status"] for row in rows).items()
    }


# --- submitting and deciding -------------------------------------------------------------


async def test_a_session_submitted_over_http_gets_201_and_then_completes(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    status, body = await post(
        http,
        url + "api/sessions",
        {
            "request": "Tidy the package",
            "repo": str(small_repo),
            "plan": two_objectives(tmp_path),
            "approve": True,
            "workers": ["w1", "w2"],
        },
    )
    assert status == 201, body
    sid = body["session_id"]
    stream = await wait_in_stream(http, url, sid, of_type(*ENDED))
    assert stream[-1]["type"] == "session_completed"
    first = mesh.records(sid)[0]
    assert first.seq == body["seq"]
    assert isinstance(first.event, RequestSubmitted)
    assert first.event.repo == str(small_repo) and first.event.auto_approve
    assert first.event.team == ["w1", "w2"]


async def test_bad_submissions_get_400_with_one_line_and_append_nothing(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path
) -> None:
    def submitted() -> int:
        return sum(isinstance(r.event, RequestSubmitted) for r in mesh.records())

    before = submitted()
    good = {"request": "Do it", "repo": str(small_repo)}
    cases: list[tuple[bytes | str | dict[str, Any], str]] = [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ({**good, "colour": "red"}, "unknown field `colour`"),
        ({**good, "request": 42}, "$.request"),
        ({**good, "approve": "yes"}, "$.approve"),
        ({**good, "workers": "w1"}, "$.workers"),
        ("", "missing required field `request`"),
        ("{}", "missing required field `request`"),
        ("[]", "Expected `object`"),
        ({"request": "Do it"}, "missing required field `repo`"),
        ({**good, "request": "   "}, "the request is empty"),
        ({**good, "workers": ["nobody"]}, "unknown worker(s) nobody"),
    ]
    for body, says in cases:
        status, answer = await post(http, url + "api/sessions", body)
        assert status == 400, (body, answer)
        assert list(answer) == ["error"] and says in answer["error"], (body, answer)
        assert "\n" not in answer["error"]
    assert submitted() == before


async def test_a_submission_for_a_missing_repository_gets_400_with_the_line_ap_submit_prints(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, tmp_path: Path
) -> None:
    (tmp_path / "plain").mkdir()
    for repo in (tmp_path / "missing", tmp_path / "plain"):
        cli: subprocess.CompletedProcess[str] = await asyncio.to_thread(
            mesh.submit, "Do it", "--repo", str(repo), check=False
        )
        assert cli.returncode == 3 and cli.stderr.startswith("ap: "), cli
        status, answer = await post(
            http, url + "api/sessions", {"request": "Do it", "repo": str(repo)}
        )
        assert (status, answer) == (400, {"error": cli.stderr.strip().removeprefix("ap: ")})


async def test_paging_arguments_that_are_not_integers_or_out_of_range_get_400(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await submit(http, url, small_repo, two_objectives(tmp_path), approve=False)
    await wait_in_stream(http, url, sid, of_type("plan_awaiting_approval"))
    events = url + f"api/sessions/{sid}/events"
    for query, says in [
        ("since=abc", "since must be an integer"),
        ("since=", "since must be an integer"),
        ("since=1.5", "since must be an integer"),
        ("since=-1", "since must be 0 or more"),
        ("limit=ten", "limit must be an integer"),
        ("limit=-5", "limit must be 1 or more"),
        ("limit=0", "limit must be 1 or more"),
        ("limit=10001", "at most 10000"),
    ]:
        status, answer = await get(http, f"{events}?{query}")
        assert status == 400 and says in answer["error"], (query, answer)
    status, page = await get(http, f"{events}?limit=10000")
    assert status == 200 and page["events"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url(url, since="abc"))
    assert refused.value.status == 400


async def test_a_since_at_or_beyond_the_largest_seq_gets_an_empty_page_or_400(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await submit(http, url, small_repo, two_objectives(tmp_path), approve=False)
    await wait_in_stream(http, url, sid, of_type("plan_awaiting_approval"))
    events = url + f"api/sessions/{sid}/events"
    status, page = await get(http, f"{events}?since={2**64 - 1}")
    assert status == 200 and page.get("events") == [], page
    status, answer = await get(http, f"{events}?since={2**64}")
    assert status == 400 and "since" in answer["error"]


async def test_an_unknown_session_gets_404_on_every_route(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh
) -> None:
    for path in ("api/sessions/no-such-session", "api/sessions/no-such-session/events"):
        status, answer = await get(http, url + path)
        assert status == 404 and "no session 'no-such-session'" in answer["error"]
    for action in ("approve", "reject", "cancel"):
        status, answer = await post(http, url + f"api/sessions/no-such-session/{action}", "{}")
        assert status == 404, answer


async def test_approve_by_a_named_owner_lands_in_the_log_and_an_ended_session_refuses_all(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await submit(http, url, small_repo, two_objectives(tmp_path), approve=False)
    await wait_in_stream(http, url, sid, of_type("plan_awaiting_approval"))
    status, answer = await post(http, url + f"api/sessions/{sid}/cancel", "{not json")
    assert status == 400 and "not valid JSON" in answer["error"]

    status, answer = await post(http, url + f"api/sessions/{sid}/approve", {"by": "alice"})
    assert status == 200 and answer["session_id"] == sid
    approved = next(r for r in mesh.records(sid) if r.seq == answer["seq"])
    assert isinstance(approved.event, PlanApproved) and approved.event.by == "alice"

    stream = await wait_in_stream(http, url, sid, reported)
    assert "session_completed" in {m["type"] for m in stream}
    for action, says in [
        ("approve", "is completed; only a session awaiting approval can be approved"),
        ("reject", "is completed; only a session awaiting approval can be rejected"),
        ("cancel", "already completed; nothing to cancel"),
    ]:
        status, answer = await post(http, url + f"api/sessions/{sid}/{action}", {"by": "alice"})
        assert status == 409 and says in answer["error"], answer


async def test_reject_with_a_reason_lands_in_the_log_and_cancels_the_session(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await submit(http, url, small_repo, two_objectives(tmp_path), approve=False)
    await wait_in_stream(http, url, sid, of_type("plan_awaiting_approval"))
    status, answer = await post(
        http, url + f"api/sessions/{sid}/reject", {"by": "bob", "reason": "not now"}
    )
    assert status == 200
    rejected = next(r for r in mesh.records(sid) if r.seq == answer["seq"])
    assert isinstance(rejected.event, PlanRejected)
    assert (rejected.event.by, rejected.event.reason) == ("bob", "not now")
    stream = await wait_in_stream(http, url, sid, of_type(*ENDED))
    assert stream[-1]["type"] == "session_cancelled" and "not now" in stream[-1]["reason"]


async def test_a_running_session_cannot_be_approved_but_can_be_cancelled_once(
    http: aiohttp.ClientSession, url: str, mesh: PipelineMesh, small_repo: Path, tmp_path: Path
) -> None:
    sid = await submit(
        http, url, small_repo, gated_objective(tmp_path, tmp_path / "never"), approve=True
    )
    await wait_in_stream(http, url, sid, of_type("objective_started"))
    status, answer = await post(http, url + f"api/sessions/{sid}/approve", "{}")
    assert status == 409 and "is running" in answer["error"]

    status, answer = await post(
        http, url + f"api/sessions/{sid}/cancel", {"by": "carol", "reason": "changed my mind"}
    )
    assert status == 200
    cancel = next(r for r in mesh.records(sid) if r.seq == answer["seq"])
    assert isinstance(cancel.event, CancelRequested)
    assert (cancel.event.by, cancel.event.reason) == ("carol", "changed my mind")
    stream = await wait_in_stream(http, url, sid, of_type(*ENDED))
    assert stream[-1]["type"] == "session_cancelled"
    status, answer = await post(http, url + f"api/sessions/{sid}/cancel", "{}")
    assert status == 409 and "already cancelled" in answer["error"]


# --- static files ------------------------------------------------------------------------

TRAVERSALS = [
    "/static/../pyproject.toml",
    "/static/../../pyproject.toml",
    "/static/%2e%2e/pyproject.toml",
    "/static/%2E%2E/%2E%2E/pyproject.toml",
    "/static/%2e%2e%2fpyproject.toml",
    "/static/..%2fpyproject.toml",
    "/static/..%5cpyproject.toml",
    "/static/%252e%252e/pyproject.toml",
    "/static//%2e%2e/pyproject.toml",
    f"/static/{WEB_DIR.parent}/pyproject.toml",
    f"/static/{str(WEB_DIR.parent).replace('/', '%2f')}%2fpyproject.toml",
]


async def test_the_page_is_served_and_no_static_path_leaves_web(
    url: str, mesh: PipelineMesh
) -> None:
    secret = (WEB_DIR.parent / "pyproject.toml").read_bytes()
    for target in TRAVERSALS:
        status, body = await raw_get(url, target)
        assert status in (403, 404), (target, status)
        assert b"[project]" not in body and secret not in body, target
    status, body = await raw_get(url, "/")
    page = WEB_DIR / "index.html"
    if page.is_file():
        assert (status, body) == (200, page.read_bytes())
    else:
        assert status == 404 and b"the dashboard page is missing" in body


async def test_a_chosen_web_dir_is_served_and_neither_traversal_nor_symlinks_leave_it(
    journal: JournalProcess, tmp_path: Path
) -> None:
    web = tmp_path / "site" / "web"
    web.mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>AP</title>")
    (web / "app.js").write_text("export const ok = 1;\n")
    (tmp_path / "site" / "secret.txt").write_text("SECRET")
    (web / "link.txt").symlink_to(tmp_path / "site" / "secret.txt")
    async with running_broadcaster(journal.mesh(), tmp_path, web_dir=str(web)) as b:
        assert await raw_get(b.url, "/") == (200, b"<!doctype html><title>AP</title>")
        assert await raw_get(b.url, "/static/app.js") == (200, b"export const ok = 1;\n")
        for target in [
            *(t.replace("pyproject.toml", "secret.txt") for t in TRAVERSALS),
            "/static/link.txt",
            f"/static/{tmp_path}/site/secret.txt",
        ]:
            status, body = await raw_get(b.url, target)
            assert status in (403, 404) and b"SECRET" not in body, (target, status)


# --- who may use it --------------------------------------------------------------------


async def test_with_a_token_every_data_route_needs_it_and_the_page_does_not(
    journal: JournalProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AP_TOKEN", TOKEN)
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("page")
    async with (
        running_broadcaster(journal.mesh(), tmp_path, web_dir=str(web)) as b,
        aiohttp.ClientSession() as http,
    ):
        good = {"Authorization": f"Bearer {TOKEN}"}
        wrongs: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer not-the-token"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ]
        for path in ("api/health", "api/sessions", "api/workers", "metrics"):
            for headers in wrongs:
                async with http.get(b.url + path, headers=headers) as r:
                    assert r.status == 401, (path, headers)
                    assert "token" in (await r.json(content_type=None))["error"]
            async with http.get(b.url + path, headers=good) as r:
                assert r.status == 200, path
        # Refused before the body is even looked at.
        status, _ = await post(http, b.url + "api/sessions", "{}")
        assert status == 401
        status, answer = await post(http, b.url + "api/sessions", "{}", headers=good)
        assert status == 400 and "missing required field" in answer["error"]
        # The page holds no data.
        assert await raw_get(b.url, "/") == (200, b"page")

        for query in ({}, {"token": "not-the-token"}, {"token": ""}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(b.url, **query))
            assert refused.value.status == 401
        for ws in (
            await http.ws_connect(ws_url(b.url, token=TOKEN)),
            await http.ws_connect(ws_url(b.url), headers=good),
        ):
            assert (await ws.receive_json())["type"] == "connected"
            await ws.close()


def test_check_bind_refuses_an_address_beyond_loopback_without_a_token() -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "dashboard.example"):
        with pytest.raises(StartupError, match="AP_TOKEN"):
            check_bind(host, None)
        with pytest.raises(StartupError):
            check_bind(host, "")
        check_bind(host, TOKEN)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, None)


async def test_the_broadcaster_starts_without_a_deprecation_warning(
    journal: JournalProcess, tmp_path: Path
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with running_broadcaster(journal.mesh(), tmp_path):
            pass
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


async def test_a_broadcaster_on_a_non_loopback_address_without_a_token_refuses_to_start(
    journal: JournalProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AP_TOKEN", raising=False)
    with pytest.raises(StartupError, match="AP_TOKEN"):
        async with running_broadcaster(journal.mesh(), tmp_path, url="http://0.0.0.0:*/"):
            pass


async def test_an_owner_action_posted_from_another_sites_page_is_refused(
    journal: JournalProcess, tmp_path: Path
) -> None:
    async with (
        running_broadcaster(journal.mesh(), tmp_path) as b,
        Emitter(journal.ingest, source="test") as emitter,
        aiohttp.ClientSession() as http,
    ):
        await emitter.emit(RequestSubmitted(session_id="s1", request="x", repo=str(tmp_path)))
        await wait_in_stream(http, b.url, "s1", of_type("request_submitted"))
        status, _ = await post(
            http,
            b.url + "api/sessions/s1/cancel",
            "{}",
            headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
        )
        assert status == 403


async def test_an_approve_and_a_reject_sent_together_are_not_both_accepted(
    journal: JournalProcess, tmp_path: Path
) -> None:
    async with (
        running_broadcaster(journal.mesh(), tmp_path) as b,
        Emitter(journal.ingest, source="test") as emitter,
        aiohttp.ClientSession() as http,
    ):
        for sid in ("s1", "s2", "s3"):
            await emitter.emit_many(
                [
                    RequestSubmitted(session_id=sid, request="x", repo=str(tmp_path)),
                    PlanProposed(
                        session_id=sid, plan_id="p1", objectives=[Objective(id="a", title="A")]
                    ),
                    PlanAwaitingApproval(session_id=sid, plan_id="p1"),
                ]
            )
            await wait_in_stream(http, b.url, sid, of_type("plan_awaiting_approval"))
            answers = await asyncio.gather(
                post(http, b.url + f"api/sessions/{sid}/approve", "{}"),
                post(http, b.url + f"api/sessions/{sid}/reject", "{}"),
            )
            assert sorted(status for status, _ in answers) == [200, 409]
