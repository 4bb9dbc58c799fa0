"""``ap parse`` and ``ap agents``, and the default team made of the installed agent CLIs.

Every recorded transcript of every agent is read through ``ap parse`` (the command a
user runs), which must account for each of its lines.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ap_actors.cli import main
from ap_actors.team import default_team
from tests.support.agent_streams import AGENT_STREAMS, recordings

AGENTS = ("codex", "claude", "gemini", "cursor", "aider")  # droid has no recording


def _files() -> list[tuple[str, Path]]:
    return [(agent, path) for agent in AGENTS for path in recordings(agent)]


@pytest.mark.parametrize(
    ("agent", "path"), _files(), ids=[str(p.relative_to(AGENT_STREAMS)) for _, p in _files()]
)
def test_ap_parse_accounts_for_every_line_of_every_recording(
    agent: str, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse", "--agent", agent, str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    activities = [json.loads(line) for line in out.splitlines()]
    # A recording of lifecycle events only (a truncated run) yields none, all quiet.
    assert activities or ("quiet" in err and "activity" not in err), err
    assert all(a["activity_type"] and a["description"] for a in activities)
    lines = path.read_bytes().count(b"\n") + (not path.read_bytes().endswith(b"\n"))
    assert err.startswith(f"ap parse: {lines:,} lines;"), err
    assert "unaccounted" not in err, err


def test_every_agent_has_recordings() -> None:
    for agent in AGENTS:
        assert recordings(agent), f"no recording for {agent} under {AGENT_STREAMS}"


def test_ap_parse_prints_one_line_per_activity_with_kind_tool_path_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = tmp_path / "codex.jsonl"
    stream.write_text(
        '{"type":"item.completed","item":{"id":"i","type":"command_execution",'
        '"command":"bash -lc ls","aggregated_output":"a","exit_code":2,"status":"failed"}}\n'
        '{"type":"brand.new","x":1}\n'
    )
    assert main(["parse", "--agent", "codex", str(stream)]) == 0
    out, err = capsys.readouterr()
    first, second = out.splitlines()
    assert first.startswith("command") and "(exit 2)" in first and first.endswith("ls")
    assert second.startswith("other") and "brand.new" in second
    assert "2 lines" in err and "other 1" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["parse", "--agent", "nope", "x"], "unknown agent 'nope'; known: aider, claude"),
        (["parse", "--agent", "codex", "/no/such/file"], "cannot read /no/such/file"),
        (["parse", "--agent", "codex", "/"], "/ is a directory"),
    ],
)
def test_ap_parse_bad_input_is_one_line_and_exit_code_3(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"ap: {message}") and err.count("\n") == 1, err


def _fake_cli(folder: Path, name: str, version: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_ap_agents_lists_the_clis_on_path_with_their_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_cli(tmp_path, "codex", "codex-cli 9.9.9")
    _fake_cli(tmp_path, "cursor-agent", "2026.01.01")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert main(["agents", "--json"]) == 0
    rows = {r["agent"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"codex", "claude", "gemini", "cursor", "droid", "aider"}
    assert rows["codex"]["path"] == str(tmp_path / "codex")
    assert rows["codex"]["version"] == "codex-cli 9.9.9"
    assert rows["cursor"]["version"] == "2026.01.01"
    assert rows["claude"]["path"] is None and rows["claude"]["version"] is None


def test_the_default_team_is_one_worker_per_installed_agent_cli(tmp_path: Path) -> None:
    assert default_team(path=str(tmp_path)).workers == []
    _fake_cli(tmp_path, "claude", "1")
    _fake_cli(tmp_path, "gemini", "1")
    team = default_team(path=str(tmp_path))
    assert [(w.id, w.agent) for w in team.workers] == [("claude", "claude"), ("gemini", "gemini")]


def test_a_lone_surrogate_in_a_json_line_is_read_as_text_not_raised() -> None:
    from ap_actors.agents import get_adapter

    for agent in ("codex", "claude", "gemini", "cursor", "droid"):
        parser = get_adapter(agent).parser()
        got = parser.feed('{"type": "x\ud800"}')
        got += parser.finish()
        assert got and parser.accounting["unaccounted"] == 0, agent  # type: ignore[attr-defined]
