"""The ``gemini`` adapter: its command, and its parser on the recorded Gemini CLI output
(``tests/fixtures/agent-streams/gemini/``, see SOURCES.md there) and on edge cases."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings

from ap_actors.agents.base import Activity, read_transcript, render_prompt, summarize
from ap_actors.agents.gemini import GeminiAdapter, GeminiParser
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
    token_sums,
)

FIXTURES = AGENT_STREAMS / "gemini"
RECORDINGS = recordings("gemini")
WORKDIR = "/home/dev/project"  # the working directory of the v0.61 recording


def _parse(lines: list[str], workdir: str | None = None) -> tuple[list[Activity], GeminiParser]:
    return parse(GeminiParser(workdir), lines)


def _recording(name: str, workdir: str | None = None) -> list[Activity]:
    return parse_file(GeminiParser(workdir), FIXTURES / name)[0]


def _shape(a: Activity) -> tuple[str, str | None, str | None, int | None]:
    return (a.activity_type, a.tool_name, a.file_path, a.exit_code)


def _line(**obj: object) -> str:
    return json.dumps(obj)


def _use(tool_id: str, name: str, **parameters: object) -> str:
    return _line(type="tool_use", tool_name=name, tool_id=tool_id, parameters=parameters)


# --- the adapter --------------------------------------------------------------------


def test_the_gemini_command_runs_headless_with_stream_json_and_auto_approval() -> None:
    task = agent_task("Change the greeting", scope_touch=["app.py"])
    assert GeminiAdapter().commands(task, None) == [
        ["gemini", "-p", render_prompt(task), "--output-format", "stream-json", "--yolo"]
    ]


def test_the_gemini_command_names_the_model_when_the_team_file_gives_one() -> None:
    argv = GeminiAdapter().argv(
        agent_task("Change the greeting", model="gemini-2.5-flash", scope_touch=["app.py"])
    )
    assert argv[:3] == ["gemini", "-m", "gemini-2.5-flash"]
    assert GeminiAdapter().package == "npm @google/gemini-cli"


# --- every recording ----------------------------------------------------------------


def test_the_gemini_recordings_are_there() -> None:
    assert len(RECORDINGS) >= 6, f"no recordings under {FIXTURES}"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_line_of_every_gemini_recording_is_accounted_for(path: Path) -> None:
    activities, _ = parse_recording(GeminiParser(WORKDIR), path)
    assert activities


# --- each recording -----------------------------------------------------------------


def test_the_real_v061_stream_gives_the_read_the_edit_the_answer_and_the_tokens() -> None:
    activities = _recording("stream-json_v0.61_real-cli-scripted-model_read-replace.jsonl", WORKDIR)
    assert [_shape(a) for a in activities] == [  # the prompt echo is quiet
        ("tool_use", "read_file", "app.py", None),
        ("file_change", "replace", "app.py", None),
        ("message", None, None, None),
        ("usage", None, None, None),
    ]
    assert activities[1].description == "replace app.py"
    assert activities[2].description == "Changed the greeting."
    assert token_sums(activities) == (3003, 153)
    assert activities[-1].cost_usd == 0.0


def test_the_v011_stream_gives_two_reads_an_edit_and_thoughts_counted_as_output() -> None:
    activities = _recording("stream-json_v0.11_read-replace-read.jsonl")
    path = "/private/tmp/gemini-test/created.txt"  # outside any worktree: kept as printed
    assert [_shape(a) for a in activities] == [
        ("tool_use", "read_file", path, None),
        ("file_change", "replace", path, None),
        ("tool_use", "read_file", path, None),
        ("message", None, None, None),
        ("usage", None, None, None),
    ]
    assert activities[3].description == "Done."
    # stats: total 22257, input 21694, output 77; the 486 thought tokens are output too.
    assert token_sums(activities) == (21694, 22257 - 21694)


def test_the_say_hello_stream_gives_the_answer_and_the_tokens() -> None:
    activities = _recording("stream-json_v0.11_say-hello-no-tools.jsonl")
    assert [(a.activity_type, a.description) for a in activities[:1]] == [
        ("message", "Hello! I'm ready to help. What can I do for you?"),
    ]
    assert [a.activity_type for a in activities] == ["message", "usage"]
    assert token_sums(activities) == (7352, 7386 - 7352)


def test_the_json_output_gives_the_response_and_the_tokens_of_both_models() -> None:
    activities = _recording("json-output_v0.11_web-search-answer.json")
    assert [(a.activity_type, a.description) for a in activities[:1]] == [
        ("message", "The capital of France is Paris.")
    ]
    assert [a.activity_type for a in activities] == ["message", "usage"]
    # input = prompt + tool-use prompt, output = candidates + thoughts, over both models
    assert token_sums(activities) == (15526 + 3814 + 43, 20 + 113 + 7 + 45)


def test_the_read_file_chat_session_gives_its_thoughts_tool_call_answer_and_tokens() -> None:
    activities = _recording("chat-session-file_v0.11_read-file_9c9a14e1.json")
    assert [_shape(a) for a in activities] == [
        ("reasoning", None, None, None),
        ("reasoning", None, None, None),
        ("tool_use", "read_file", "/private/tmp/gemini-test/sample.txt", None),
        ("usage", None, None, None),
        ("message", None, None, None),
        ("usage", None, None, None),
    ]
    assert activities[0].description.startswith("Reading the File: I've determined")
    assert token_sums(activities) == (5361 + 5707, 18 + 319 + 26)


def test_a_chat_session_file_and_the_stream_of_the_same_run_give_the_same_token_totals() -> None:
    session = _recording("chat-session-file_v0.11_read-replace_453aa339.json")
    stream = _recording("stream-json_v0.11_read-replace-read.jsonl")
    assert token_sums(session) == token_sums(stream) == (21694, 563)
    assert Counter(a.activity_type for a in session) == {
        "reasoning": 6,
        "usage": 4,
        "message": 1,
        "tool_use": 2,
        "file_change": 1,
    }
    tools = [_shape(a) for a in session if a.tool_name]
    assert tools == [_shape(a) for a in stream if a.tool_name]


def test_summarize_adds_up_the_usage_of_a_recording() -> None:
    path = FIXTURES / "stream-json_v0.61_real-cli-scripted-model_read-replace.jsonl"
    summary = summarize(GeminiParser(WORKDIR), read_transcript(path))
    assert (summary.input_tokens, summary.output_tokens, summary.lines) == (3003, 153, 8)


# --- edge cases ---------------------------------------------------------------------


def test_a_stream_cut_before_a_tool_result_gives_the_call_without_a_result() -> None:
    lines = list(
        read_transcript(FIXTURES / "stream-json_v0.61_real-cli-scripted-model_read-replace.jsonl")
    )
    cut = [line for line in lines if "replace" not in line or '"tool_use"' in line][:5]
    activities, parser = _parse(cut, WORKDIR)
    assert [_shape(a) for a in activities] == [
        ("tool_use", "read_file", "app.py", None),
        ("file_change", "replace", "app.py", None),
    ]
    assert activities[-1].description == "replace app.py (no result)"
    assert parser.accounting["unaccounted"] == 0


def test_assistant_chunks_are_one_message_given_when_another_kind_arrives() -> None:
    activities, parser = _parse(
        [
            _line(type="message", role="assistant", content="I will ", delta=True),
            _line(type="message", role="assistant", content="read it.", delta=True),
            _use("t1", "read_file", path="a"),
            _line(type="message", role="assistant", content="Done", delta=True),
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("message", "I will read it."),
        ("tool_use", "read_file a (no result)"),
        ("message", "Done"),
    ]
    assert parser.accounting == {"folded": 3, "activity": 1}


def test_a_shell_command_has_its_exit_code_and_a_failed_tool_is_an_error() -> None:
    activities, _ = _parse(
        [
            _use("s1", "run_shell_command", command="pytest -q", description="run tests"),
            _line(type="tool_result", tool_id="s1", status="success", output=""),
            _use("s2", "run_shell_command", command="false"),
            _line(
                type="tool_result",
                tool_id="s2",
                status="success",
                output="Command exited with code: 1",
            ),
            _use("w1", "write_file", file_path="/repo/src/a.py", content="x"),
            _line(
                type="tool_result",
                tool_id="w1",
                status="error",
                error={"type": "permission_denied", "message": "denied by policy"},
            ),
        ],
        workdir="/repo",
    )
    assert [_shape(a) for a in activities] == [
        ("command", "run_shell_command", None, None),
        ("command", "run_shell_command", None, 1),
        ("error", "write_file", "src/a.py", None),
    ]
    assert activities[0].description == "pytest -q"
    assert activities[2].description == "write_file src/a.py failed: denied by policy"


def test_results_are_cumulative_so_each_usage_carries_the_increase() -> None:
    def result(total_in: int, total_out: int) -> str:
        stats = {"input_tokens": total_in, "output_tokens": total_out}
        return _line(type="result", status="success", stats=stats)

    activities, _ = _parse(
        [
            _line(type="init", session_id="a", model="m"),
            result(100, 10),
            result(250, 30),
            _line(type="init", session_id="b", model="m"),  # a new process counts anew
            result(40, 4),
        ]
    )
    assert [(a.input_tokens, a.output_tokens) for a in activities] == [
        (100, 10),
        (150, 20),
        (40, 4),
    ]


def test_a_failed_result_is_an_error_followed_by_its_usage() -> None:
    activities, _ = _parse(
        [
            _line(
                type="result",
                status="error",
                error={"type": "FatalTurnLimitedError", "message": "Reached max session turns"},
                stats={"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
            ),
            _line(type="error", severity="warning", message="Loop detected"),
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("error", "result: Reached max session turns"),
        ("usage", "6 tokens (5 input, 1 output), 0 tool calls, 0.0 s"),
        ("error", "warning: Loop detected"),
    ]


def test_an_unknown_type_is_an_other_activity_carrying_its_raw_type() -> None:
    activities, parser = _parse([_line(type="thought_summary", text="hmm")])
    assert [a.activity_type for a in activities] == ["other"]
    assert activities[0].description.startswith("thought_summary: ")
    assert parser.accounting == {"other": 1}


def test_invalid_json_and_stderr_lines_are_read_as_text() -> None:
    activities, parser = _parse(['{"type": "message", "content": ', "Error: quota exceeded"])
    assert [a.activity_type for a in activities] == ["message", "error"]
    assert parser.accounting == {"text": 2}


def test_paths_under_the_worktree_become_relative_and_others_are_kept_as_printed() -> None:
    activities, _ = _parse(
        [
            _use("1", "read_file", absolute_path="/w/t/a.py"),
            _line(type="tool_result", tool_id="1", status="success"),
            _use("2", "read_file", file_path="/etc/hosts"),
            _line(type="tool_result", tool_id="2", status="success"),
        ],
        workdir="/w/t",
    )
    assert [a.file_path for a in activities] == ["a.py", "/etc/hosts"]


@settings(max_examples=200)
@given(mixed_lines(recorded_lines("gemini") or ["{}"], max_size=40))
def test_any_mix_of_lines_is_parsed_with_every_line_accounted_for(lines: list[str]) -> None:
    _, parser = _parse(lines, WORKDIR)
    assert_accounted(parser, lines)
