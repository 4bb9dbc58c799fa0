"""Paths that try to leave their folder, and clients without the dashboard's token.

- A session id is never a file name on the dashboard: ids with ``../``, encoded forms,
  absolute paths, NUL or backslashes in ``/api/sessions/{id}``, its events and the owner
  actions get 400 or 404, and nothing outside the state directory is touched.
- Paths beyond the routes serve nothing (the static files' own cases are in
  ``test_dashboard_api.py``).
- A session whose id is a path (the journal takes any id a client sends) has its
  reports written inside the reports folder, by ``ap report`` as by the reporter; ``ap``
  commands given such an id find no session.
- With ``AP_TOKEN``: no token, a wrong one, or the previous one after the token changed
  and the broadcaster restarted, gets 401 on REST, WebSocket and ``/metrics``, with the
  same body whatever the path, so that nothing is learnt: no data, no valid id.

Real broadcasters in-process against a real journal process, real ``ap`` processes.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ap_actors.bus import Emitter
from ap_actors.events import RequestSubmitted, SessionFailed
from tests.integration.conftest import AP, JournalProcess, _env
from tests.support.dashboard import (
    of_type,
    raw_request,
    running_broadcaster,
    wait_in_stream,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)

SESSION = "01JSESSIONTRAVERSALTEST000"
ESCAPING = "../../escape"  # a session id a client of the journal could send

# As they appear in the request line, after /api/sessions/.
BAD_IDS = [
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E/%2E%2E/etc/passwd",
    "..%252f..%252fetc%252fpasswd",
    "%2fetc%2fpasswd",
    "%2f%2fetc%2fpasswd",
    "..%5c..%5cetc%5cpasswd",
    "..\\..\\etc\\passwd",
    f"{SESSION}%00",
    f"{SESSION}%00..%2f..%2fetc%2fpasswd",
    "%00",
    f"{SESSION}%2f..%2f..%2fescape",
    "../../etc/passwd",
    "..",
    ".",
]


def snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` outside ``skip``, with size and mtime."""
    found = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
async def emitter(journal: JournalProcess) -> AsyncIterator[Emitter]:
    async with Emitter(journal.ingest, source="test") as e:
        yield e


async def sessions_in_log(emitter: Emitter, repo: Path) -> None:
    for sid in (SESSION, ESCAPING):
        await emitter.emit(RequestSubmitted(session_id=sid, request="Tidy", repo=str(repo)))
        await emitter.emit(SessionFailed(session_id=sid, reason="stopped by the test"))


async def test_a_session_id_that_is_a_path_gets_400_or_404_and_touches_no_file(
    journal: JournalProcess, emitter: Emitter, tmp_path: Path
) -> None:
    state = tmp_path / "deep" / "er" / "state"
    state.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0\n")
    await sessions_in_log(emitter, tmp_path)
    before = snapshot(tmp_path, (state, journal.state_dir))
    async with running_broadcaster(journal.mesh(), state) as b, aiohttp.ClientSession() as http:
        await wait_in_stream(http, b.url, ESCAPING, of_type("session_failed"))
        for bad in BAD_IDS:
            targets = [
                ("GET", f"/api/sessions/{bad}"),
                ("GET", f"/api/sessions/{bad}/events"),
                ("GET", f"/api/sessions/{bad}/events?since=0&limit=10"),
                *(("POST", f"/api/sessions/{bad}/{a}") for a in ("approve", "reject", "cancel")),
            ]
            for method, target in targets:
                status, body = await raw_request(b.url, method, target)
                assert status in (400, 404), (method, target, status, body[:200])
                assert b"root:x" not in body and b"Tidy" not in body, (target, body[:200])
        # The id the journal took is the session's name, not a path: it is served as
        # such, and only when asked for exactly.
        status, body = await raw_request(b.url, "GET", "/api/sessions/..%2f..%2fescape")
        assert status == 200 and b'"session_id":"../../escape"' in body
        for bad in ("a" * 201, f"{SESSION}\x00", f"{SESSION}\x00..%2f..%2fetc%2fpasswd"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(b.url, session=bad))
            assert refused.value.status == 400, bad
    assert snapshot(tmp_path, (state, journal.state_dir)) == before


async def test_paths_beyond_the_routes_serve_no_file(
    journal: JournalProcess, tmp_path: Path
) -> None:
    web = tmp_path / "site" / "web"
    web.mkdir(parents=True)
    (web / "index.html").write_text("page")
    (tmp_path / "site" / "secret.txt").write_text("SECRET")
    async with running_broadcaster(journal.mesh(), tmp_path, web_dir=str(web)) as b:
        for target in [
            "/../secret.txt",
            "/../../etc/passwd",
            "/%2e%2e/secret.txt",
            "/%2e%2e%2fsecret.txt",
            "/..%5csecret.txt",
            "/..\\secret.txt",
            f"/{tmp_path}/site/secret.txt",
            f"/%2f{str(tmp_path).lstrip('/').replace('/', '%2f')}%2fsite%2fsecret.txt",
            "/index.html%00",
            "/static/%00",
            "/static/index.html%00.txt",
            "/static/..\\secret.txt",
            "/static/%5c..%5csecret.txt",
            "/static/.%2e/secret.txt",
            "/static/..%00/secret.txt",
            "/etc/passwd",
        ]:
            status, body = await raw_request(b.url, "GET", target)
            assert status in (400, 403, 404), (target, status)
            assert b"SECRET" not in body and b"root:" not in body, target


def test_ap_commands_given_a_path_as_session_find_none_and_reports_stay_in_their_folder(
    journal: JournalProcess, tmp_path: Path
) -> None:
    async def fill() -> None:
        async with Emitter(journal.ingest, source="test") as e:
            await sessions_in_log(e, tmp_path)

    asyncio.run(fill())

    def ap(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AP, *args, "--state-dir", str(journal.state_dir)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )

    out = tmp_path / "out" / "reports"
    for command in ("show", "replay", "report"):
        for key in ("../../etc/passwd", "/etc/passwd", "..\\..\\x", f"{SESSION}/../x"):
            result = ap(command, key, *(["--out", str(out)] if command == "report" else []))
            assert result.returncode == 3, (command, key, result)
            assert "no session" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()

    before = sorted(p.name for p in tmp_path.iterdir())
    result = ap("report", ESCAPING, "--out", str(out))
    assert result.returncode == 0, result
    written = [Path(line.split(maxsplit=1)[1]) for line in result.stdout.splitlines()]
    assert written
    for path in written:
        assert path.is_file() and out / "docs" in path.parents, path
        assert path.parent.parent == out / "docs"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])
    assert not (tmp_path / "escape").exists() and not any(tmp_path.parent.glob("escape*"))


# --- the token ---------------------------------------------------------------------------

OLD = "the-token-before-the-change-0123456789"
NEW = "the-token-after-the-change-9876543210"

# Every one answers 401 with the same body to a client without the token.
GUARDED = [
    "/api/health",
    "/api/sessions",
    f"/api/sessions/{SESSION}",
    "/api/sessions/no-such-session",
    f"/api/sessions/{SESSION}/events?since=0",
    "/api/sessions/..%2f..%2fescape",
    "/api/workers",
    "/metrics",
    "/ws",
    f"/ws?since=0&session={SESSION}",
    "/nothing-here",
    "/API/sessions",
    "//api/sessions",
    "/api//sessions",
    "/%61pi/sessions",
    "/api/sessions/%2e%2e/sessions",
    "/metrics/",
    "/index.html",
]
# Spellings of a data route that a lenient parser could map onto it: no data either.
SPELLINGS = ["/./api/sessions", "/static/../api/sessions", "/static/%2e%2e/api/sessions"]


async def refusals(base: str, wrong: list[dict[str, str]], query: str = "") -> set[bytes]:
    """The bodies of the answers to every guarded request sent with each of the
    ``wrong`` headers (and ``query`` added), all asserted to be 401."""
    bodies = set()
    for headers in wrong:
        for path in GUARDED:
            target = path + (("&" if "?" in path else "?") + query if query else "")
            for method in ("GET", "POST"):
                status, body = await raw_request(base, method, target, headers)
                assert status == 401, (method, target, headers, status)
                bodies.add(body)
        for action in ("approve", "reject", "cancel"):
            target = f"/api/sessions/{SESSION}/{action}" + (f"?{query}" if query else "")
            status, body = await raw_request(base, "POST", target, headers)
            assert status == 401, (target, headers)
            bodies.add(body)
        for path in SPELLINGS:
            status, body = await raw_request(base, "GET", path, headers)
            assert status != 200 and SESSION.encode() not in body, (path, status)
    return bodies


async def test_without_the_token_every_path_but_the_page_is_refused_alike_and_says_nothing(
    journal: JournalProcess, emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AP_TOKEN", NEW)
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("page")
    await sessions_in_log(emitter, tmp_path)
    async with running_broadcaster(journal.mesh(), tmp_path, web_dir=str(web)) as b:
        wrong = [
            {},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {NEW[:-1]}"},
            {"Authorization": f"Bearer {NEW}x"},
            {"Authorization": f"bearer{NEW}"},
            {"Authorization": NEW},
            {"Authorization": f"Basic {NEW}"},
            {"Cookie": f"token={NEW}"},
            {"X-Token": NEW},
        ]
        bodies = await refusals(b.url, wrong)
        bodies |= await refusals(b.url, [{}], query="token=wrong")
        # One body for every path and every wrong token: no data, no hint of an id.
        assert len(bodies) == 1, bodies
        (body,) = bodies
        assert SESSION.encode() not in body and b"escape" not in body and b"Tidy" not in body
        assert await raw_request(b.url, "GET", "/") == (200, b"page")
        auth = {"Authorization": f"Bearer {NEW}"}
        status, body = await raw_request(b.url, "GET", f"/api/sessions/{SESSION}", auth)
        assert status == 200 and SESSION.encode() in body


async def test_the_previous_token_is_refused_once_the_broadcaster_restarted_with_a_new_one(
    journal: JournalProcess, emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sessions_in_log(emitter, tmp_path)
    monkeypatch.setenv("AP_TOKEN", OLD)
    async with running_broadcaster(journal.mesh(), tmp_path) as b:
        status, body = await raw_request(
            b.url, "GET", "/api/sessions", {"Authorization": f"Bearer {OLD}"}
        )
        assert status == 200 and SESSION.encode() in body

    monkeypatch.setenv("AP_TOKEN", NEW)
    async with running_broadcaster(journal.mesh(), tmp_path) as b, aiohttp.ClientSession() as http:
        bodies = await refusals(b.url, [{"Authorization": f"Bearer {OLD}"}])
        bodies |= await refusals(b.url, [{}], query=f"token={OLD}")
        assert len(bodies) == 1 and SESSION.encode() not in bodies.pop()
        for query in ({"token": OLD}, {"token": OLD, "since": 0, "session": SESSION}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(b.url, **query))
            assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(b.url), headers={"Authorization": f"Bearer {OLD}"})
        assert refused.value.status == 401

        new = {"Authorization": f"Bearer {NEW}"}
        for path in ("/api/sessions", f"/api/sessions/{SESSION}/events", "/metrics"):
            status, _ = await raw_request(b.url, "GET", path, new)
            assert status == 200, path
        async with http.ws_connect(ws_url(b.url, token=NEW, since=0, session=SESSION)) as ws:
            assert (await ws.receive_json())["type"] == "connected"
