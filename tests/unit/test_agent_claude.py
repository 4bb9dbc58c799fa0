"""The ``claude`` adapter: its command, and its parser on every recorded Claude Code format
(``tests/fixtures/agent-streams/claude/``, see SOURCES.md there: ``stream-json`` lines,
the pretty-printed messages of one run, ``~/.claude/projects`` session logs) and on the
shapes FORMATS.md §2 documents but no recording shows (error results, partial messages,
several results in one process)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_actors.agents import get_adapter
from ap_actors.agents.base import (
    MAX_DESCRIPTION,
    Activity,
    read_transcript,
    render_prompt,
    summarize,
)
from ap_actors.agents.claude import ClaudeAdapter, ClaudeStreamParser, tokens
from tests.support.agent_streams import (
    AGENT_STREAMS,
    agent_task,
    assert_accounted,
    json_values,
    parse,
    parse_file,
    parse_recording,
    recordings,
    token_sums,
)

FIXTURES = AGENT_STREAMS / "claude"
MESSAGES = FIXTURES / "stream-json_v2.1.3_ls-bash_messages"
WORKDIR = "/home/dev/project"  # the worktree of the scripted-model recording
SESSION = "s-1"


def _parse(
    lines: list[str], workdir: str | None = WORKDIR
) -> tuple[list[Activity], ClaudeStreamParser]:
    return parse(ClaudeStreamParser(workdir), lines)


def _recording(
    name: str, workdir: str | None = WORKDIR
) -> tuple[list[Activity], ClaudeStreamParser]:
    return parse_file(ClaudeStreamParser(workdir), FIXTURES / name)


def _shape(a: Activity) -> tuple[str, str, str | None, str | None, int | None]:
    return (a.activity_type, a.description, a.tool_name, a.file_path, a.exit_code)


def _usage(activities: list[Activity]) -> tuple[int, int, float]:
    cost = sum(a.cost_usd for a in activities if a.activity_type == "usage")
    return (*token_sums(activities), round(cost, 8))


def _assistant(*blocks: dict[str, Any], msg_id: str = "msg_1", **usage: int) -> str:
    message = {"id": msg_id, "role": "assistant", "content": list(blocks), "usage": usage}
    return json.dumps({"type": "assistant", "message": message, "session_id": SESSION})


def _results(*blocks: dict[str, Any], **extra: Any) -> str:
    message = {"role": "user", "content": list(blocks)}
    return json.dumps({"type": "user", "message": message, "session_id": SESSION, **extra})


def _tool(tool_id: str, name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args}


def _result(**fields: Any) -> str:
    return json.dumps({"type": "result", "subtype": "success", "session_id": SESSION, **fields})


# --- the adapter --------------------------------------------------------------------


def test_the_claude_command_prints_stream_json_and_asks_no_permissions() -> None:
    task = agent_task("Write the README")
    assert ClaudeAdapter().commands(task, None) == [
        [
            "claude",
            "-p",
            render_prompt(task),
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ]
    ]
    assert (ClaudeAdapter.program, ClaudeAdapter.package) == (
        "claude",
        "npm @anthropic-ai/claude-code",
    )


def test_the_claude_command_names_the_model_last() -> None:
    assert ClaudeAdapter().argv(agent_task("Write the README", model="claude-sonnet-4-5"))[-2:] == [
        "--model",
        "claude-sonnet-4-5",
    ]


def test_the_claude_adapter_is_registered_and_its_parser_reads_paths_under_the_workdir() -> None:
    adapter = get_adapter("claude")
    assert isinstance(adapter, ClaudeAdapter)
    parser = adapter.parser("/home/dev/project")
    assert isinstance(parser, ClaudeStreamParser)
    assert parser.path("/home/dev/project/README.md") == "README.md"


# --- every recording ----------------------------------------------------------------


def test_the_claude_recordings_are_there() -> None:
    names = {p.name for p in recordings("claude")}
    assert "stream-json_v2.1.197_real-cli-scripted-model_bash-write.jsonl" in names
    assert {"system_message.json", "assistant_message.json"} <= names
    assert len(names) >= 8


@pytest.mark.parametrize("path", recordings("claude"), ids=lambda p: p.name)
def test_every_line_of_every_claude_recording_is_accounted_for(path: Path) -> None:
    _, parser = parse_recording(ClaudeStreamParser(WORKDIR), path)
    assert parser.accounting["text"] == 0  # every format is recognised, none falls to text


def test_stream_json_from_the_real_cli_gives_the_command_the_written_file_and_the_cost() -> None:
    activities, parser = _recording("stream-json_v2.1.197_real-cli-scripted-model_bash-write.jsonl")
    assert [_shape(a) for a in activities] == [
        ("tool_use", "ls", "Bash", None, None),
        ("command", "ls", "Bash", None, 0),
        ("tool_use", "Write README.md", "Write", "README.md", None),
        ("file_change", "create README.md", "Write", "README.md", None),
        ("message", "Wrote README.md.", None, None, None),
        ("usage", "success: 3 turns, 3003 input, 153 output tokens, $0.018840", None, None, None),
    ]
    # the result's usage, not the three messages' usage as well
    assert _usage(activities) == (3003, 153, 0.01884)
    assert parser.accounting == {"quiet": 1, "activity": 6}


def test_a_local_command_that_failed_gives_its_error_and_a_zero_usage() -> None:
    activities, _ = _recording("stream-json_v2.1.285_local-compact-command-no-messages.jsonl")
    assert [_shape(a)[:2] for a in activities] == [
        ("error", "Error: No messages to compact"),
        ("usage", "success: 0 turns, 0 input, 0 output tokens, $0.000000"),
    ]
    assert _usage(activities) == (0, 0, 0.0)


def test_the_pretty_printed_messages_of_one_run_read_in_order_give_the_whole_run() -> None:
    lines = [
        line
        for name in ("system_message", "assistant_message", "user_message", "result_success")
        for line in read_transcript(MESSAGES / f"{name}.json")
    ]
    activities, parser = _parse(lines, "/home/cyou/claude-agent-sdk-gleam")
    assert [_shape(a) for a in activities] == [
        ("tool_use", "ls -la", "Bash", None, None),
        ("command", "ls -la", "Bash", None, 0),
        (
            "usage",
            "success: 2 turns, 42339 input, 424 output tokens, $0.247224",
            None,
            None,
            None,
        ),
    ]
    # input = 18 + 25067 cache creation + 17254 cache read
    assert _usage(activities) == (42339, 424, 0.24722425)
    assert parser.accounting == {"quiet": 55, "activity": 37 + 23 + 40}


def test_an_assistant_message_without_its_result_reports_its_usage_at_the_end() -> None:
    activities, _ = parse_file(ClaudeStreamParser(WORKDIR), MESSAGES / "assistant_message.json")
    assert [_shape(a)[:3] for a in activities] == [
        ("tool_use", "ls -la", "Bash"),
        ("usage", "no result: messages used 20820 input, 4 output tokens", None),
    ]


def test_the_session_log_with_thinking_gives_the_write_the_refused_edit_and_usage() -> None:
    activities, parser = _recording(
        "session-log_v2.1.29_projects-jsonl_write-read-edit-thinking.jsonl"
    )
    shown = [a for a in activities if a.activity_type != "usage"]
    assert shown[0].activity_type == "reasoning"
    assert shown[0].description.startswith(
        'The user wants me to create a file called test.txt with the content "Hello World".'
        " I should use the Write tool to create this file. The Write tool requires: - file_path:"
    )
    assert shown[0].description.endswith("The working directory is `/tmp/workspace")
    assert [_shape(a)[:4] for a in shown[1:]] == [
        ("tool_use", "Write /tmp/workspace", "Write", "/tmp/workspace"),
        ("file_change", "create /tmp/workspace", "Write", "/tmp/workspace"),
        (
            "reasoning",
            'Great! The file has been created successfully with the content "Hello World"'
            " at the path /tmp/workspace",
            None,
            None,
        ),
        (
            "message",
            'Done! I\'ve created test.txt with the content "Hello World" in your current'
            " working directory.",
            None,
            None,
        ),
        (
            "reasoning",
            'The user wants me to edit test.txt and change "Hello" to "Goodbye". I need to:'
            " 1. First read the file to see its current content 2. Then edit it to replace"
            ' "Hello" with "Goodbye" Let me read the file first.',
            None,
            None,
        ),
        ("tool_use", "Read /tmp/workspace", "Read", "/tmp/workspace"),
        (
            "reasoning",
            'Good, I can see the file contains "Hello World". Now I\'ll edit it to change'
            ' "Hello" to "Goodbye".',
            None,
            None,
        ),
        ("tool_use", "Edit /tmp/workspace", "Edit", "/tmp/workspace"),
        (
            "error",
            "Edit: The user doesn't want to proceed with this tool use. The tool use was"
            " rejected (eg. if it was a file edit, the new_string was NOT written to the file)."
            " STOP what you are doing and wait for the user to tell you how to proceed.",
            "Edit",
            "/tmp/workspace",
        ),
    ]
    # four API messages, each split over two lines that repeat its usage: counted once
    assert [
        (a.input_tokens, a.output_tokens) for a in activities if a.activity_type == "usage"
    ] == [
        (10 + 2739 + 15364, 8),
        (13 + 442 + 18103, 1),
        (10 + 2956 + 15293, 8),
        (13 + 263 + 18249, 1),
    ]
    assert _usage(activities) == (73455, 18, 0.0)  # a session log has no cost
    # user lines: 2 prompts, the Read result, an interruption and 3 local-command lines
    assert parser.quiet_types == {"file-history-snapshot": 4, "user": 7, "progress": 2}


def test_the_session_log_with_mcp_tools_gives_each_tool_and_the_bash_results() -> None:
    activities, parser = _recording("session-log_v2.0.14_projects-jsonl_mcp-askuser-tools.jsonl")
    assert Counter((a.activity_type, a.tool_name) for a in activities) == {
        ("usage", None): 13,
        ("tool_use", "Bash"): 10,
        ("tool_use", "Read"): 9,
        ("command", "Bash"): 8,  # the last two Bash calls have no result in the log
        ("message", None): 4,
        ("tool_use", "mcp__happy__change_title"): 2,
        ("tool_use", "TodoWrite"): 2,
    }
    assert [_shape(a)[:3] for a in activities[2:4]] == [
        (
            "tool_use",
            'mcp__happy__change_title {"title":"New Chat Session"}',
            "mcp__happy__change_title",
        ),
        (
            "message",
            "<options> <option>Help me fix a bug</option> <option>Add a new feature</option>"
            " <option>Refactor some code</option> <option>Review or explain code</option>"
            " <option>Set up or configure something</option> </options>",
            None,
        ),
    ]
    todos = [a.description for a in activities if a.tool_name == "TodoWrite"]
    assert todos == [
        "todos: 0/7 done; now: Explore codebase structure and understand project layout",
        "todos: 1/7 done; now: Review package.json and dependencies",
    ]
    assert {a.exit_code for a in activities if a.activity_type == "command"} == {0}
    reads = [a.file_path for a in activities if a.tool_name == "Read"]
    assert (
        reads[0] == "/Users/jnarowski/Dev/sourceborn/src/agent-workflows-monorepo-v2/package.json"
    )
    relative = _recording(
        "session-log_v2.0.14_projects-jsonl_mcp-askuser-tools.jsonl",
        "/Users/jnarowski/Dev/sourceborn/src/agent-workflows-monorepo-v2",
    )[0]
    assert [a.file_path for a in relative if a.tool_name == "Read"][:2] == [
        "package.json",
        "README.md",
    ]
    # ten API messages; a message's later lines may raise output_tokens (25 -> 210)
    assert _usage(activities) == (208328, 833, 0.0)
    assert parser.accounting == {"activity": 35, "quiet": 14}


# --- shapes no recording shows ------------------------------------------------------


def test_a_failing_bash_command_is_an_error_with_its_exit_code() -> None:
    # The shape Claude Code 2.1.332 printed for `ls nonexistent-file` against the scripted
    # model (tests/support/model_server.py): the structured result is then a string.
    activities, _ = _parse(
        [
            _assistant(
                _tool("t1", "Bash", command="npm test"), _tool("t2", "Bash", command="sleep 9")
            ),
            _results(
                {
                    "type": "tool_result",
                    "content": "Exit code 1\nFAIL src/a.test.ts",
                    "is_error": True,
                    "tool_use_id": "t1",
                },
                tool_use_result="Error: Exit code 1\nFAIL src/a.test.ts",
            ),
            _results(
                {"type": "tool_result", "tool_use_id": "t2", "content": "", "is_error": False},
                tool_use_result={"stdout": "", "stderr": "", "interrupted": True},
            ),
        ]
    )
    assert [_shape(a) for a in activities if a.activity_type != "tool_use"] == [
        ("error", "npm test: Exit code 1 FAIL src/a.test.ts", "Bash", None, 1),
        ("error", "interrupted: sleep 9", "Bash", None, None),
    ]


def test_file_tools_give_their_paths_and_edits_give_file_changes() -> None:
    root = WORKDIR
    activities, _ = _parse(
        [
            _assistant(
                _tool("a", "Edit", file_path=f"{root}/src/app.py", old_string="a", new_string="b"),
                _tool("b", "MultiEdit", file_path=f"{root}/src/b.py", edits=[]),
                _tool("c", "NotebookEdit", notebook_path=f"{root}/nb.ipynb", new_source="x"),
                _tool("d", "Glob", pattern="**/*.py"),
                _tool("e", "Grep", pattern="TODO", path=f"{root}/src"),
                _tool("f", "Read", file_path="/etc/hosts"),
                _tool("g", "WebSearch", query="msgspec structs"),
                _tool("h", "Task", description="Explore the tests", prompt="..."),
                _tool("i", "mcp__docs__search", q="ulid"),
            ),
            _results(
                *(
                    {"type": "tool_result", "tool_use_id": i, "content": "ok"}
                    for i in ("a", "b", "c", "d", "e", "f", "g", "h", "i")
                )
            ),
            _results(
                {
                    "type": "tool_result",
                    "tool_use_id": "zz",
                    "content": [{"type": "text", "text": "x"}],
                }
            ),
        ]
    )
    assert [_shape(a)[:4] for a in activities] == [
        ("tool_use", "Edit src/app.py", "Edit", "src/app.py"),
        ("tool_use", "MultiEdit src/b.py", "MultiEdit", "src/b.py"),
        ("tool_use", "NotebookEdit nb.ipynb", "NotebookEdit", "nb.ipynb"),
        ("tool_use", "Glob **/*.py", "Glob", None),
        ("tool_use", "Grep TODO in src", "Grep", "src"),
        ("tool_use", "Read /etc/hosts", "Read", "/etc/hosts"),
        ("tool_use", "WebSearch msgspec structs", "WebSearch", None),
        ("tool_use", "Task: Explore the tests", "Task", None),
        ("tool_use", 'mcp__docs__search {"q":"ulid"}', "mcp__docs__search", None),
        ("file_change", "edit src/app.py", "Edit", "src/app.py"),
        ("file_change", "edit src/b.py", "MultiEdit", "src/b.py"),
        ("file_change", "edit nb.ipynb", "NotebookEdit", "nb.ipynb"),
    ]


def test_an_error_result_gives_an_error_and_still_its_usage() -> None:
    activities, _ = _parse(
        [
            _result(
                subtype="error_max_turns",
                is_error=True,
                num_turns=10,
                total_cost_usd=0.5,
                usage={"input_tokens": 100, "cache_read_input_tokens": 900, "output_tokens": 50},
                errors=["Reached maximum number of turns (10)"],
            )
        ]
    )
    assert [_shape(a)[:2] for a in activities] == [
        ("error", "error_max_turns: Reached maximum number of turns (10)"),
        ("usage", "error_max_turns: 10 turns, 1000 input, 50 output tokens, $0.500000"),
    ]
    assert _usage(activities) == (1000, 50, 0.5)


def test_an_api_error_said_by_the_assistant_is_not_repeated_by_the_result() -> None:
    text = "API Error: 500 scripted outage"
    activities, _ = _parse(
        [
            json.dumps(
                {
                    "type": "assistant",
                    "message": {
                        "id": "m",
                        "model": "<synthetic>",
                        "content": [{"type": "text", "text": text}],
                    },
                    "session_id": SESSION,
                    "error": "server_error",
                }
            ),
            _result(is_error=True, result=text, total_cost_usd=0, usage={}),
        ]
    )
    assert [_shape(a)[:2] for a in activities] == [
        ("error", text),
        ("usage", "error: 0 turns, 0 input, 0 output tokens, $0.000000"),
    ]


def test_several_results_in_one_process_give_per_turn_tokens_and_cost_increments() -> None:
    def result(cost: float, inp: int, session: str = SESSION) -> str:
        usage = {"input_tokens": inp, "output_tokens": 10}
        return json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "session_id": session,
                "total_cost_usd": cost,
                "usage": usage,
            }
        )

    activities, _ = _parse(
        [
            result(0.064, 100),
            result(0.118, 200),  # total_cost_usd is cumulative for the process
            result(0.02, 50, session="other"),  # another session counts on its own
            "[2026-11-22T01:29:45Z] COMMAND: claude -p 'again' --resume s-1",
            result(0.03, 70),  # a new process: its cost starts from zero again
        ]
    )
    usage = [
        (a.input_tokens, round(a.cost_usd, 6)) for a in activities if a.activity_type == "usage"
    ]
    assert usage == [(100, 0.064), (200, 0.054), (50, 0.02), (70, 0.03)]


def test_message_usage_waits_for_the_result_and_counts_each_message_once() -> None:
    lines = [
        _assistant(
            {"type": "thinking", "thinking": "", "signature": "abc"},
            input_tokens=10,
            output_tokens=2,
        ),
        _assistant(
            {"type": "text", "text": "Hi."}, input_tokens=10, output_tokens=7
        ),  # same message
        _assistant(
            {"type": "text", "text": "More."}, msg_id="msg_2", input_tokens=5, output_tokens=1
        ),
    ]
    truncated, parser = _parse(lines)
    assert [(a.activity_type, a.input_tokens, a.output_tokens) for a in truncated] == [
        ("message", 0, 0),
        ("message", 0, 0),
        ("usage", 15, 8),
    ]
    assert parser.quiet_types == {"assistant": 1}  # the empty thinking block
    finished, _ = _parse([*lines, _result(usage={"input_tokens": 15, "output_tokens": 8})])
    assert _usage(finished) == (15, 8, 0.0)


def test_partial_messages_system_events_and_unknown_types() -> None:
    activities, parser = _parse(
        [
            json.dumps({"type": "system", "subtype": "init", "session_id": SESSION, "tools": []}),
            json.dumps({"type": "stream_event", "event": {"type": "content_block_delta"}}),
            json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}}),
            json.dumps(
                {
                    "type": "system",
                    "subtype": "compact_boundary",
                    "compact_metadata": {"trigger": "manual"},
                }
            ),
            json.dumps({"type": "system", "subtype": "brand_new", "x": 1}),
            json.dumps({"type": "control_request", "request_id": "r1"}),
            _assistant({"type": "fancy_block", "data": 1}),
        ]
    )
    assert [_shape(a)[:2] for a in activities] == [
        ("message", "conversation compacted (manual)"),
        ("other", 'system/brand_new: {"type":"system","subtype":"brand_new","x":1}'),
        ("other", 'control_request: {"type":"control_request","request_id":"r1"}'),
        ("other", 'assistant/fancy_block: {"type":"fancy_block","data":1}'),
    ]
    assert parser.accounting == {"quiet": 2, "folded": 1, "activity": 1, "other": 3}


def test_invalid_json_plain_lines_and_a_huge_line() -> None:
    big = "x" * 1_000_000 + "\n" + "y" * 10
    activities, parser = _parse(
        [
            '{"type": "assistant", "message":',
            '{"type": nope}',
            "Error: Invalid API key · Please run /login",
            _assistant({"type": "text", "text": big}),
        ]
    )
    assert [a.activity_type for a in activities] == ["message", "message", "error", "message"]
    assert activities[3].description.endswith("…")
    assert len(activities[3].description) <= MAX_DESCRIPTION
    assert parser.accounting == {"text": 3, "activity": 1}


def test_summarize_gives_the_runs_tokens_cost_and_last_error() -> None:
    ok = summarize(
        ClaudeStreamParser(WORKDIR),
        read_transcript(FIXTURES / "stream-json_v2.1.197_real-cli-scripted-model_bash-write.jsonl"),
    )
    assert (ok.input_tokens, ok.output_tokens, ok.cost_usd, ok.last_error) == (
        3003,
        153,
        0.01884,
        "",
    )


def test_tokens_counts_the_cache_as_input() -> None:
    usage = {
        "input_tokens": 18,
        "cache_creation_input_tokens": 25067,
        "cache_read_input_tokens": 17254,
        "output_tokens": 424,
    }
    assert tokens(usage) == (42339, 424)
    assert tokens({"input_tokens": -1, "output_tokens": 2.0, "cache_read_input_tokens": True}) == (
        0,
        2,
    )
    assert tokens(None) == (0, 0)


# --- properties ---------------------------------------------------------------------

_blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "thinking", "tool_use", "tool_result", "image", "x"])},
    optional={
        "text": json_values,
        "thinking": json_values,
        "id": st.sampled_from(["t1", "t2"]),
        "tool_use_id": st.sampled_from(["t1", "t2"]),
        "name": st.sampled_from(["Bash", "Edit", "Read", "Grep", "TodoWrite", "mcp__a__b"]),
        "input": json_values,
        "content": json_values,
        "is_error": json_values,
    },
)
_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["assistant", "user", "result", "system", "stream_event", "summary", "z"]
        )
    },
    optional={
        "message": st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from(["m1", "m2"]),
                "content": st.lists(_blocks, max_size=3) | json_values,
                "usage": json_values,
            },
        ),
        "session_id": st.sampled_from(["s1", "s2"]),
        "subtype": st.sampled_from(
            ["init", "success", "error_during_execution", "compact_boundary", "q"]
        ),
        "usage": json_values,
        "total_cost_usd": json_values,
        "tool_use_result": json_values,
        "is_error": json_values,
    },
)
_lines = st.lists(
    st.one_of(_events.map(json.dumps), st.text(max_size=80), st.sampled_from(["{", "}", "  1,"])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_lines)
def test_any_lines_are_parsed_without_error_and_each_is_accounted_for(lines: list[str]) -> None:
    activities, parser = _parse(lines)
    assert_accounted(parser, lines)
    assert all(len(a.description) <= MAX_DESCRIPTION for a in activities)
    assert all(a.input_tokens >= 0 and a.output_tokens >= 0 and a.cost_usd >= 0 for a in activities)
