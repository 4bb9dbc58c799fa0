"""An agent that prints its keys: they reach neither the log, nor the reports, nor the
dashboard, and ``[redacted:NAME]`` stands in their place.

A real mesh (``ap up``) whose one ``command`` worker has two model keys in its team
``env``, and a GitHub token and the dashboard token in the mesh's own environment. Its
agent prints its environment, names the keys in tool lines, edit lines and a file name,
and fails with a key in its last error line. Every byte of the log files, every report
(the reporter's and ``ap report``'s), ``ap show --json`` and every REST and WebSocket
answer of the dashboard are then searched for the raw values. The transcript keeps the
raw output (README, Security: the state directory is as safe as its permissions).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from ap_actors.events import (
    ObjectiveFailed,
    ReportWritten,
    SessionFailed,
    TranscriptRead,
    WorkerActivity,
    WorkerError,
    WorkerStarted,
)
from tests.e2e.conftest import PipelineMesh, ended, rebuilt_reports, team_toml, write_plan
from tests.support.dashboard import read_until, ws_url

pytestmark = pytest.mark.timeout(300)

KEYS = {
    "OPENAI_API_KEY": f"sk-test-{secrets.token_hex(16)}",
    "ANTHROPIC_API_KEY": f"sk-ant-test-{secrets.token_hex(16)}",
}
MESH_KEYS = {"GITHUB_TOKEN": f"ghp_{secrets.token_hex(16)}", "AP_TOKEN": secrets.token_hex(16)}
ALL = {**KEYS, **MESH_KEYS}

AGENT = (
    "env; "
    'echo "key is $OPENAI_API_KEY"; '
    'echo "[2026-01-01T00:00:00Z] TOOL: $OPENAI_API_KEY - calls with $ANTHROPIC_API_KEY"; '
    'echo "[2026-01-01T00:00:00Z] EDIT: keys/$GITHUB_TOKEN.py"; '
    'printf %s "$AP_TOKEN" > "pkg/leak-$OPENAI_API_KEY.txt"; '
    'echo "fatal: the server refused $ANTHROPIC_API_KEY" >&2; '
    "exit 3"
)


def leaks(data: bytes | str) -> list[str]:
    """The names of the secrets whose raw value is in ``data``."""
    raw = data if isinstance(data, bytes) else data.encode()
    return [name for name, value in ALL.items() if value.encode() in raw]


async def dashboard_output(base: str, session_id: str) -> list[str]:
    """Every answer of the dashboard about the session: REST bodies and the WebSocket
    stream from seq 0 to ``caught_up``."""
    auth = {"Authorization": f"Bearer {MESH_KEYS['AP_TOKEN']}"}
    paths = [
        "api/health",
        "api/sessions",
        f"api/sessions/{session_id}",
        f"api/sessions/{session_id}/events?limit=10000",
        "api/workers",
        "metrics",
    ]
    out = []
    async with aiohttp.ClientSession(headers=auth) as http:
        for path in paths:
            async with http.get(base + path) as r:
                assert r.status == 200, path
                out.append(await r.text())
        async with http.ws_connect(ws_url(base, since=0)) as ws:
            messages = await read_until(ws, lambda m: m.get("type") == "caught_up")
        out.append(json.dumps(messages))
    return out


def test_an_agents_keys_never_reach_the_log_the_reports_or_the_dashboard(
    pipeline_mesh: Callable[..., PipelineMesh],
    small_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in MESH_KEYS.items():
        monkeypatch.setenv(name, value)  # the mesh's environment, which agents inherit
    team = team_toml([{"id": "w1", "command": "true", "env": KEYS}], max_attempts=1)
    mesh = pipeline_mesh(team).up()
    plan = write_plan(
        tmp_path / "plan.json",
        {"id": "only", "title": "Leak", "scope_touch": ["pkg/"], "command": f"sh -c '{AGENT}'"},
    )
    out = mesh.submit("Fix it", "--repo", str(small_repo), "--plan", plan, "--approve", "--json")
    sid = json.loads(out.stdout)["session_id"]
    end = mesh.wait_for(ended, session_id=sid)
    assert isinstance(end.event, SessionFailed)
    read = mesh.wait_for(lambda r: isinstance(r.event, TranscriptRead), session_id=sid)
    # The accomplishment report written after both (on the later of the two).
    mesh.wait_for(
        lambda r: (
            isinstance(r.event, ReportWritten)
            and r.event.kind == "accomplishment"
            and r.seq > max(read.seq, end.seq)
        ),
        session_id=sid,
    )

    # The agent did print them all (so the test would see a leak).
    transcript = next((mesh.state_dir / "transcripts" / sid).glob("only.*.log")).read_text()
    assert leaks(transcript) == list(ALL)

    events = [r.event for r in mesh.records(sid)]
    activities = [e for e in events if isinstance(e, WorkerActivity)]
    said = {a.description for a in activities}
    assert "key is [redacted:OPENAI_API_KEY]" in said
    assert "OPENAI_API_KEY=[redacted:OPENAI_API_KEY]" in said
    assert "GITHUB_TOKEN=[redacted:GITHUB_TOKEN]" in said
    assert "AP_TOKEN=[redacted:AP_TOKEN]" in said
    tool = next(a for a in activities if a.activity_type == "tool_use")
    assert tool.tool_name == "[redacted:OPENAI_API_KEY]"
    assert tool.description == "calls with [redacted:ANTHROPIC_API_KEY]"
    edit = next(a for a in activities if a.activity_type == "file_change")
    assert edit.file_path == "keys/[redacted:GITHUB_TOKEN].py"
    errors = [e.error for e in events if isinstance(e, WorkerError)]
    assert "fatal: the server refused [redacted:ANTHROPIC_API_KEY]" in errors
    failed = next(e for e in events if isinstance(e, ObjectiveFailed))
    assert "[redacted:ANTHROPIC_API_KEY]" in (failed.reason or "")
    assert failed.files_modified == ["pkg/leak-[redacted:OPENAI_API_KEY].txt"]
    started = next(e for e in events if isinstance(e, WorkerStarted))
    assert "$OPENAI_API_KEY" in " ".join(started.argv)  # the command, not the environment

    # Every byte the log holds (all its files), not only what decodes.
    log_files = [p for p in (mesh.state_dir / "eventlog").rglob("*") if p.is_file()]
    assert log_files
    for path in log_files:
        assert leaks(path.read_bytes()) == [], path

    reports = list((mesh.state_dir / "docs").rglob("*.md"))
    reports += rebuilt_reports(mesh, sid, tmp_path / "rebuilt").values()
    assert len(reports) >= 4
    for path in reports:
        assert leaks(path.read_bytes()) == [], path
    accomplishment = next(p for p in reports if p.name.startswith("ACCOMPLISHMENT"))
    assert "redacted:ANTHROPIC_API_KEY" in accomplishment.read_text()
    assert leaks(mesh.ap("show", sid, "--json").stdout) == []
    assert leaks(mesh.ap("tail", "--json", "--no-follow", "--session", sid).stdout) == []

    base = mesh.info().dashboard
    assert base is not None
    answers = asyncio.run(dashboard_output(base, sid))
    for answer in answers:
        assert leaks(answer) == [], answer[:300]
    assert any("[redacted:OPENAI_API_KEY]" in a for a in answers)
