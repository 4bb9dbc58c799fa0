"""The ``cursor`` adapter: its command, and its parser on the recorded Cursor Agent CLI
streams (``tests/fixtures/agent-streams/cursor/``, see SOURCES.md there) and on the
tool shapes FORMATS.md §3 documents but no recording shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from ap_actors.agents.base import Activity, read_transcript, render_prompt
from ap_actors.agents.cursor import CursorAdapter, CursorParser
from tests.support.agent_streams import (
    AGENT_STREAMS,
    agent_task,
    assert_accounted,
    mixed_lines,
    parse,
    parse_file,
    parse_recording,
    recorded_lines,
    recordings,
)

FIXTURES = AGENT_STREAMS / "cursor"
RECORDINGS = recordings("cursor")
WORKDIR = "/home/user/project"  # the cwd of the recordings


def _parse(lines: list[str], workdir: str | None = WORKDIR) -> tuple[list[Activity], CursorParser]:
    return parse(CursorParser(workdir), lines)


def _recording(name: str) -> tuple[list[Activity], CursorParser]:
    return parse_file(CursorParser(WORKDIR), FIXTURES / name)


def _shape(a: Activity) -> tuple[str, str | None, str | None, int | None]:
    return (a.activity_type, a.tool_name, a.file_path, a.exit_code)


def _thinking_text(name: str) -> str:
    deltas = [json.loads(line) for line in read_transcript(FIXTURES / name)]
    return "".join(d["text"] for d in deltas if d["type"] == "thinking" and "text" in d)


def _call(sub: str, call_id: str, tool: str, args: dict[str, object], result: object = None) -> str:
    body: dict[str, object] = {"args": args}
    if result is not None:
        body["result"] = result
    return json.dumps(
        {"type": "tool_call", "subtype": sub, "call_id": call_id, "tool_call": {tool: body}}
    )


# --- the adapter --------------------------------------------------------------------


def test_the_cursor_command_prints_stream_json_and_runs_commands_without_asking() -> None:
    task = agent_task("Run the tests")
    assert CursorAdapter().commands(task, None) == [
        ["cursor-agent", "-p", "--force", "--output-format", "stream-json", render_prompt(task)]
    ]


def test_the_cursor_command_names_the_model_before_the_prompt() -> None:
    task = agent_task("Run the tests", model="gpt-5")
    assert CursorAdapter().argv(task)[-3:] == ["--model", "gpt-5", render_prompt(task)]
    assert CursorAdapter().program == "cursor-agent"


# --- every recording ----------------------------------------------------------------


def test_the_cursor_recordings_are_there() -> None:
    assert len(RECORDINGS) >= 3, f"no recordings under {FIXTURES}"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_line_of_every_cursor_recording_is_accounted_for(path: Path) -> None:
    activities, _ = parse_recording(CursorParser(WORKDIR), path)
    assert [a for a in activities if a.activity_type == "usage"] == []  # Cursor reports none


# --- each recording -----------------------------------------------------------------


def test_210_thinking_deltas_are_one_reasoning_and_two_sleeps_two_commands() -> None:
    name = "stream-json_2026.01_shell-sequential-with-thinking-deltas.jsonl"
    activities, parser = _recording(name)
    assert [_shape(a) for a in activities] == [  # the prompt echo is quiet
        ("reasoning", None, None, None),
        ("message", None, None, None),
        ("command", "shell", None, 0),
        ("command", "shell", None, 0),
        ("message", None, None, None),
    ]
    assert activities[0].description.startswith("**Planning sequential commands** I need to")
    assert activities[0].description == " ".join(_thinking_text(name).split())
    assert [a.description for a in activities if a.activity_type == "command"] == [
        "sleep 5",
        "sleep 3",
    ]
    assert activities[-1].description.startswith("Both commands have finished running")
    # 210 deltas and 2 started lines folded; init, the prompt and result quiet
    assert parser.accounting == {"folded": 212, "quiet": 3, "activity": 5}


def test_one_shell_call_without_thinking() -> None:
    activities, _ = _recording("stream-json_2026.01_shell-single-no-thinking.jsonl")
    assert [(*_shape(a), a.description) for a in activities] == [
        ("command", "shell", None, 0, "sleep 8"),
        ("message", None, None, None, "done"),
    ]


def test_one_shell_call_after_82_thinking_deltas() -> None:
    name = "stream-json_2026.01_shell-single-with-thinking.jsonl"
    activities, parser = _recording(name)
    assert [_shape(a) for a in activities] == [
        ("reasoning", None, None, None),
        ("message", None, None, None),
        ("command", "shell", None, 0),
        ("message", None, None, None),
    ]
    assert activities[0].description == " ".join(_thinking_text(name).split())
    assert activities[2].description == "sleep 10"
    assert activities[3].description == "complete"
    assert parser.accounting["folded"] == 82 + 1


# --- documented shapes and edge cases -----------------------------------------------
# The tool payloads below follow FORMATS.md §3 (editToolCall, readToolCall, ... are
# documented by jnarowski/agentcmd for CLI 2025.10.22; no recording here shows them).


def test_read_edit_write_and_grep_calls_give_their_kinds_and_relative_paths() -> None:
    path = f"{WORKDIR}/src/app.py"
    success = {"success": {"path": path, "linesAdded": 3, "linesRemoved": 1, "diffString": "…"}}
    activities, parser = _parse(
        [
            _call("started", "r", "readToolCall", {"path": path}),
            _call("completed", "r", "readToolCall", {"path": path}, {"success": {"content": "x"}}),
            _call("started", "e", "editToolCall", {"path": path, "streamContent": "y"}),
            _call("completed", "e", "editToolCall", {"path": path}, success),
            _call("completed", "w", "writeToolCall", {"path": "/tmp/elsewhere.txt"}, {}),
            _call("completed", "g", "grepToolCall", {"pattern": "TODO"}, {"success": {}}),
        ]
    )
    assert [(*_shape(a), a.description) for a in activities] == [
        ("tool_use", "read", "src/app.py", None, "read src/app.py"),
        ("file_change", "edit", "src/app.py", None, "edit src/app.py (+3 -1)"),
        ("file_change", "write", "/tmp/elsewhere.txt", None, "write /tmp/elsewhere.txt"),
        ("tool_use", "grep", None, None, "grep TODO"),
    ]
    assert parser.accounting == {"folded": 2, "activity": 4}


def test_a_failed_call_is_an_error_and_a_failed_command_keeps_its_exit_code() -> None:
    activities, _ = _parse(
        [
            _call(
                "completed",
                "e",
                "editToolCall",
                {"path": "src/a.py"},
                {"error": {"error": "old string not found"}},
            ),
            _call(
                "completed",
                "s",
                "shellToolCall",
                {"command": "pytest"},
                {"failure": {"command": "pytest", "exitCode": 1, "stderr": "1 failed"}},
            ),
            _call("completed", "t", "shellToolCall", {"command": "sleep 99"}, {"rejected": {}}),
        ]
    )
    assert [(*_shape(a), a.description) for a in activities] == [
        ("error", "edit", "src/a.py", None, "edit src/a.py failed: old string not found"),
        ("command", "shell", None, 1, "pytest"),
        ("error", "shell", None, None, "sleep 99 failed: rejected"),
    ]


def test_a_stream_cut_mid_call_and_mid_thinking_still_gives_both() -> None:
    lines = list(read_transcript(FIXTURES / "stream-json_2026.01_shell-single-with-thinking.jsonl"))
    started = next(i for i, line in enumerate(lines) if '"started"' in line)
    cut = [
        *lines[: started + 1],
        json.dumps({"type": "thinking", "subtype": "delta", "text": "Hm"}),
    ]
    activities, parser = _parse(cut)
    assert [_shape(a) for a in activities][-3:] == [
        ("message", None, None, None),
        ("command", "shell", None, None),
        ("reasoning", None, None, None),
    ]
    assert activities[-2].description == "sleep 10 (no result)"
    assert activities[-1].description == "Hm"
    assert parser.accounting["unaccounted"] == 0


def test_an_error_result_is_an_error_and_a_usage_object_would_be_counted() -> None:
    activities, _ = _parse(
        [
            json.dumps({"type": "result", "subtype": "error", "is_error": True, "result": "boom"}),
            json.dumps(
                {
                    "type": "result",
                    "subtype": "success",
                    "usage": {"inputTokens": 100, "outputTokens": 7, "cacheReadTokens": 50},
                    "total_cost_usd": 0.01,
                }
            ),
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("error", "result: boom"),
        ("usage", "157 tokens (150 input, 7 output)"),
    ]
    assert (activities[1].input_tokens, activities[1].cost_usd) == (150, 0.01)


def test_an_unknown_type_is_an_other_activity_carrying_its_raw_type() -> None:
    activities, parser = _parse([json.dumps({"type": "interaction_query", "subtype": "x"})])
    assert [a.activity_type for a in activities] == ["other"]
    assert activities[0].description.startswith("interaction_query.x: ")
    assert parser.accounting == {"other": 1}


def test_invalid_json_and_stderr_are_read_as_text() -> None:
    activities, parser = _parse(['{"type":"assistant","message":', "Error: not logged in"])
    assert [a.activity_type for a in activities] == ["message", "error"]
    assert parser.accounting == {"text": 2}


def test_paths_outside_the_worktree_are_kept_as_printed() -> None:
    activities, _ = _parse(
        [_call("completed", "r", "readToolCall", {"path": "../other/x.py"}, {"success": {}})]
    )
    assert activities[0].file_path == "../other/x.py"


@settings(max_examples=200)
@given(mixed_lines(recorded_lines("cursor") or ["{}"], max_size=40))
def test_any_mix_of_lines_is_parsed_with_every_line_accounted_for(lines: list[str]) -> None:
    _, parser = _parse(lines)
    assert_accounted(parser, lines)
