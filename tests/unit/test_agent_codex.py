"""The ``codex`` adapter: its command, and its parser on every recorded Codex format
(``tests/fixtures/agent-streams/codex/``, see SOURCES.md there: ``exec --json`` of several
versions, a session rollout, two codex-tui.log files) and on the shapes FORMATS.md §1
documents but no recording shows (the legacy ``msg`` stream, MCP calls, todo lists)."""

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
from ap_actors.agents.codex import (
    CodexAdapter,
    CodexStreamParser,
    error_text,
    patch_files,
    shell_command,
)
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

FIXTURES = AGENT_STREAMS / "codex"
WORKDIR = "/home/dev/project"  # the worktree of the scripted-model recording


def _parse(
    lines: list[str], workdir: str | None = WORKDIR
) -> tuple[list[Activity], CodexStreamParser]:
    return parse(CodexStreamParser(workdir), lines)


def _recording(name: str, workdir: str | None = WORKDIR) -> list[Activity]:
    return parse_file(CodexStreamParser(workdir), FIXTURES / name)[0]


def _shape(a: Activity) -> tuple[str, str, str | None, str | None, int | None]:
    return (a.activity_type, a.description, a.tool_name, a.file_path, a.exit_code)


def _kinds(activities: list[Activity]) -> Counter[str]:
    return Counter(a.activity_type for a in activities)


def _jsonl(*events: dict[str, Any]) -> list[str]:
    return [json.dumps(e) for e in events]


# --- the adapter --------------------------------------------------------------------


def test_the_codex_command_runs_exec_json_without_approvals_or_sandbox() -> None:
    task = agent_task("Fix the greeting")
    assert CodexAdapter().commands(task, None) == [
        [
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            render_prompt(task),
        ]
    ]
    assert (CodexAdapter.program, CodexAdapter.package) == ("codex", "npm @openai/codex")


def test_the_codex_command_names_the_model_before_the_prompt() -> None:
    task = agent_task("Fix the greeting", model="gpt-5.5")
    assert CodexAdapter().argv(task)[-3:] == ["-m", "gpt-5.5", render_prompt(task)]


def test_the_codex_adapter_is_registered_and_its_parser_reads_paths_under_the_workdir() -> None:
    adapter = get_adapter("codex")
    assert isinstance(adapter, CodexAdapter)
    parser = adapter.parser("/home/dev/project")
    assert isinstance(parser, CodexStreamParser)
    assert parser.path("/home/dev/project/app.py") == "app.py"


# --- every recording ----------------------------------------------------------------


def test_the_codex_recordings_are_there() -> None:
    names = {p.name for p in recordings("codex")}
    assert "exec-json_v0.169_real-cli-scripted-model_cat-patch.jsonl" in names
    assert len(names) >= 12


@pytest.mark.parametrize("path", recordings("codex"), ids=lambda p: p.name)
def test_every_line_of_every_codex_recording_is_accounted_for(path: Path) -> None:
    _, parser = parse_recording(CodexStreamParser(WORKDIR), path)
    assert parser.accounting["text"] == 0  # every format is recognised, none falls to text


def test_exec_json_from_the_real_cli_gives_the_command_the_patched_file_and_the_usage() -> None:
    activities = _recording("exec-json_v0.169_real-cli-scripted-model_cat-patch.jsonl")
    assert [_shape(a) for a in activities] == [
        ("command", "cat app.py", "shell", None, 0),
        ("file_change", "update app.py", "apply_patch", "app.py", None),
        ("message", "Changed the greeting.", None, None, None),
        ("usage", "turn completed: 3003 input, 153 output tokens", None, None, None),
    ]
    assert token_sums(activities) == (3003, 153)
    assert activities[-1].cost_usd == 0.0  # Codex reports no cost


def test_the_documented_sample_run_lists_files_and_answers() -> None:
    activities = _recording("exec-json_docs-exec-md-sample_readme-check.jsonl")
    assert [_shape(a)[:2] for a in activities] == [
        ("reasoning", "**Searching for README files**"),
        ("command", "ls"),
        ("reasoning", "**Checking repository root for README**"),
        ("message", "Yep — there\u2019s a `README.md` in the repository root."),
        ("usage", "turn completed: 24763 input, 122 output tokens"),
    ]
    assert activities[1].exit_code == 0
    assert token_sums(activities) == (24763, 122)


def test_v0_46_commands_are_shown_without_their_bash_wrapper() -> None:
    cat = _recording("exec-json_v0.46_command-cat.jsonl")
    assert [_shape(a) for a in cat if a.activity_type == "command"] == [
        ("command", "cat test.js", "shell", None, 0)
    ]
    assert _kinds(cat) == {"reasoning": 2, "command": 1, "message": 1, "usage": 1}
    assert token_sums(cat) == (6087, 204)
    ls = _recording("exec-json_v0.46_command-ls.jsonl")
    assert [_shape(a)[:2] for a in ls] == [
        ("reasoning", "**Preparing to list files with bash shell**"),
        ("command", "ls"),
        ("message", "Files here: `stream-output-1.jsonl`, `stream-output-2.jsonl`, `test.js`."),
        ("usage", "turn completed: 6040 input, 129 output tokens"),
    ]


def test_a_file_added_outside_the_worktree_keeps_its_absolute_path() -> None:
    added = "/private/tmp/codex-research-test/hello.txt"
    activities = _recording("exec-json_v0.46_file-change-add.jsonl")
    assert [_shape(a) for a in activities if a.activity_type == "file_change"] == [
        ("file_change", f"add {added}", "apply_patch", added, None)
    ]
    inside = _recording("exec-json_v0.46_file-change-add.jsonl", "/private/tmp/codex-research-test")
    assert [a.file_path for a in inside if a.file_path] == ["hello.txt"]
    assert token_sums(activities) == (6008, 51)


def test_an_answer_only_run_gives_reasoning_message_and_usage() -> None:
    activities = _recording("exec-json_v0.46_reasoning-answer-only.jsonl")
    assert [_shape(a)[:2] for a in activities] == [
        ("reasoning", "**Providing simple answer**"),
        ("message", "4"),
        ("usage", "turn completed: 2946 input, 7 output tokens"),
    ]
    ping = _recording("exec-json_v0.66_ping.jsonl")
    assert [_shape(a)[:2] for a in ping] == [
        ("message", "PING"),
        ("usage", "turn completed: 3523 input, 7 output tokens"),
    ]


def test_a_stream_that_stops_after_turn_started_gives_nothing_and_accounts_both_lines() -> None:
    activities, parser = parse_file(
        CodexStreamParser(WORKDIR), FIXTURES / "exec-json_v0.46_truncated-no-turn-end.jsonl"
    )
    assert activities == []
    assert parser.accounting == {"quiet": 2}


def test_failed_turns_give_the_inner_api_message_once_per_failure() -> None:
    activities, parser = parse_file(
        CodexStreamParser(WORKDIR), FIXTURES / "exec-json_turn-failed-invalid-request-x2.jsonl"
    )
    assert [_shape(a)[:2] for a in activities] == [
        (
            "error",
            "The following tools cannot be used with reasoning.effort 'minimal': web_search."
            " (invalid_request_error, status 400)",
        ),
        (
            "error",
            "Unsupported value: 'minimal' is not supported with the 'gpt-5.5' model."
            " Supported values are: 'none', 'low', 'medium', 'high', and 'xhigh'."
            " (invalid_request_error, status 400)",
        ),
    ]
    assert parser.accounting == {"activity": 2, "quiet": 2}  # each turn.failed repeats


def test_the_session_rollout_shows_each_shell_call_once_with_its_exit_code() -> None:
    activities, parser = parse_file(
        CodexStreamParser(WORKDIR), FIXTURES / "session-rollout_v0.40_codex_vscode.jsonl"
    )
    assert _kinds(activities) == {"reasoning": 32, "command": 34, "message": 1, "usage": 35}
    commands = [a for a in activities if a.activity_type == "command"]
    assert {(a.tool_name, a.exit_code) for a in commands} == {("shell", 0)}
    assert [a.description for a in commands[:3]] == ["ls", "ls packages", "ls packages/services"]
    assert "sed -n '1,200p' packages/services/src/createService.ts" in {
        a.description for a in commands
    }
    assert activities[0] == Activity(
        activity_type="reasoning", description="**Evaluating repo structure and planning**"
    )
    assert activities[-2].description.startswith("**Findings** - `@repo/services` wraps")
    # token_count's total is cumulative: the increments add up to the final total
    assert token_sums(activities) == (536834, 6654)
    assert parser.accounting == {"activity": 102, "folded": 34, "quiet": 73}


def test_the_tui_log_of_v0_106_gives_its_exec_command_calls_and_multi_line_errors() -> None:
    activities, parser = parse_file(
        CodexStreamParser(WORKDIR),
        FIXTURES / "codex-tui-log_v0.106_spans-toolcall-exec_command.log",
    )
    assert Counter((a.activity_type, a.tool_name) for a in activities) == {
        ("tool_use", "exec_command"): 22,
        ("error", None): 4,
    }
    calls = [a.description for a in activities if a.activity_type == "tool_use"]
    assert calls[0] == (
        "pwd && ls -la .codex/skills/majority-minority-change"
        " && sed -n '1,220p' .codex/skills/majority-minority-change/SKILL.md"
    )
    assert calls[-1].startswith("Rscript .codex/skills/majority-minority-change/scripts/")
    errors = [a.description for a in activities if a.activity_type == "error"]
    assert all(e.startswith("Shell snapshot validation failed: Snapshot command") for e in errors)
    assert errors[0].endswith("syntax error near unexpected token `('")
    # 22 one-line calls, and 4 ERROR records each spanning two lines (a blank one follows)
    assert parser.accounting == {"activity": 30, "quiet": 60}


def test_the_coloured_tui_log_gives_shell_plan_and_patch_calls_with_their_files() -> None:
    activities, parser = parse_file(
        CodexStreamParser(WORKDIR),
        FIXTURES / "codex-tui-log_2025-10_toolcall-shell-apply_patch.log",
    )
    assert Counter((a.activity_type, a.tool_name) for a in activities) == {
        ("tool_use", "shell"): 213,
        ("tool_use", "apply_patch"): 96,  # 28 apply_patch calls, 68 through the shell
        ("tool_use", "update_plan"): 7,
        ("error", None): 1,
    }
    assert [_shape(a) for a in activities[:4]] == [
        (
            "error",
            "Failed to read auth.json: No such file or directory (os error 2)",
            None,
            None,
            None,
        ),
        ("tool_use", "sed -n '1,200p' .specify/memory/constitution.md", "shell", None, None),
        ("tool_use", "plan: 0/3 done", "update_plan", None, None),
        ("tool_use", "ls", "shell", None, None),
    ]
    patches = [a for a in activities if a.tool_name == "apply_patch"]
    assert _shape(patches[0]) == (
        "tool_use",
        "update .specify/memory/constitution.md",
        "apply_patch",
        ".specify/memory/constitution.md",
        None,
    )
    assert all(a.file_path for a in patches)
    assert Counter(a.file_path for a in patches)["specs/001-schedule-cook-timer/tasks.md"] == 14
    assert not any("\x1b" in a.description for a in activities)
    assert sum(parser.accounting.values()) == 1342


# --- formats no recording shows -----------------------------------------------------


def test_a_started_command_that_never_completes_is_shown_at_the_end_without_exit_code() -> None:
    lines = _jsonl(
        {"type": "thread.started", "thread_id": "t"},
        {"type": "turn.started"},
        {
            "type": "item.started",
            "item": {
                "id": "item_0",
                "type": "command_execution",
                "command": "bash -lc 'sleep 100'",
                "aggregated_output": "",
                "status": "in_progress",
            },
        },
    )
    activities, parser = _parse(lines)
    assert [_shape(a) for a in activities] == [("command", "sleep 100", "shell", None, None)]
    assert parser.accounting == {"quiet": 2, "folded": 1}


def test_a_failed_command_keeps_its_exit_code_and_a_failed_patch_is_an_error() -> None:
    activities, _ = _parse(
        _jsonl(
            {
                "type": "item.completed",
                "item": {
                    "id": "item_0",
                    "type": "command_execution",
                    "command": "bash -lc 'pytest -q'",
                    "aggregated_output": "1 failed",
                    "exit_code": 1,
                    "status": "failed",
                },
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "item_1",
                    "type": "file_change",
                    "changes": [{"path": "/home/dev/project/a.py", "kind": "delete"}],
                    "status": "failed",
                },
            },
        )
    )
    assert [_shape(a) for a in activities] == [
        ("command", "pytest -q", "shell", None, 1),
        ("error", "failed: delete a.py", "apply_patch", "a.py", None),
    ]


def test_each_changed_path_of_a_file_change_is_one_activity() -> None:
    activities, _ = _parse(
        _jsonl(
            {
                "type": "item.completed",
                "item": {
                    "id": "item_3",
                    "type": "file_change",
                    "changes": [
                        {"path": "/home/dev/project/src/a.py", "kind": "update"},
                        {"path": "/home/dev/project/src/b.py", "kind": "add"},
                        {"path": "/etc/hosts", "kind": "update"},
                    ],
                    "status": "completed",
                },
            }
        )
    )
    assert [(a.description, a.file_path) for a in activities] == [
        ("update src/a.py", "src/a.py"),
        ("add src/b.py", "src/b.py"),
        ("update /etc/hosts", "/etc/hosts"),
    ]


def test_mcp_web_search_todo_list_and_warning_items() -> None:
    todo: dict[str, Any] = {
        "id": "item_9",
        "type": "todo_list",
        "items": [{"text": "read", "completed": False}, {"text": "fix", "completed": False}],
    }
    lines = _jsonl(
        {"type": "item.started", "item": todo},
        {"type": "item.updated", "item": todo},  # no change: quiet
        {"type": "item.updated", "item": {**todo, "items": [{"text": "read", "completed": True}]}},
        {
            "type": "item.started",
            "item": {"id": "item_4", "type": "mcp_tool_call", "server": "docs", "tool": "search"},
        },
        {
            "type": "item.completed",
            "item": {
                "id": "item_4",
                "type": "mcp_tool_call",
                "server": "docs",
                "tool": "search",
                "arguments": {"q": "msgspec"},
                "result": {"content": []},
                "error": None,
                "status": "completed",
            },
        },
        {
            "type": "item.completed",
            "item": {
                "id": "item_5",
                "type": "mcp_tool_call",
                "server": "docs",
                "tool": "fetch",
                "error": {"message": "timeout"},
                "status": "failed",
            },
        },
        {"type": "item.completed", "item": {"id": "item_6", "type": "web_search", "query": "ulid"}},
        {"type": "item.completed", "item": {"id": "item_7", "type": "error", "message": "slow"}},
    )
    activities, parser = _parse(lines)
    assert [_shape(a)[:3] for a in activities] == [
        ("tool_use", "todo list: 0/2 done; next: read", "todo_list"),
        ("tool_use", "todo list: 1/1 done", "todo_list"),
        ("tool_use", 'mcp__docs__search {"q":"msgspec"}', "mcp__docs__search"),
        ("error", "mcp__docs__fetch: timeout", "mcp__docs__fetch"),
        ("tool_use", "ulid", "web_search"),
        ("message", "warning: slow", None),
    ]
    assert parser.accounting == {"activity": 6, "quiet": 1, "folded": 1}  # the mcp start


def test_turn_usage_is_cumulative_in_a_thread_so_each_turn_gives_its_increment() -> None:
    usage = {"type": "turn.completed"}
    activities, _ = _parse(
        _jsonl(
            {"type": "thread.started", "thread_id": "a"},
            {
                **usage,
                "usage": {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10},
            },
            {
                **usage,
                "usage": {"input_tokens": 250, "cached_input_tokens": 90, "output_tokens": 30},
            },
            {"type": "thread.started", "thread_id": "b"},  # a new thread counts from zero
            {**usage, "usage": {"input_tokens": 40, "cached_input_tokens": 0, "output_tokens": 4}},
        )
    )
    assert [(a.input_tokens, a.output_tokens) for a in activities] == [
        (100, 10),
        (150, 20),
        (40, 4),
    ]


def test_a_repeated_token_count_is_quiet_and_the_sum_is_not_doubled() -> None:
    def count(total: int, last: int) -> dict[str, Any]:
        info = {
            "total_token_usage": {"input_tokens": total, "output_tokens": total // 10},
            "last_token_usage": {"input_tokens": last, "output_tokens": last // 10},
        }
        return {"type": "event_msg", "payload": {"type": "token_count", "info": info}}

    activities, parser = _parse(
        _jsonl(
            count(1000, 1000),
            count(1000, 1000),  # the same report again (a rate-limit update)
            count(1500, 500),
            {"type": "event_msg", "payload": {"type": "token_count", "info": None}},
            count(300, 300),  # the total went down: a new count, its last usage is taken
        )
    )
    assert [(a.input_tokens, a.output_tokens) for a in activities] == [
        (1000, 100),
        (500, 50),
        (300, 30),
    ]
    assert parser.accounting == {"activity": 3, "quiet": 2}


def test_the_legacy_msg_stream_gives_commands_patches_messages_and_usage() -> None:
    # Shapes from FORMATS.md §1 "Legacy format" (no recording of it was found).
    lines = _jsonl(
        {"model": "codex-mini-latest", "sandbox": "read-only", "workdir": WORKDIR},
        {"prompt": "fix the greeting"},
        {"id": "0", "msg": {"type": "task_started"}},
        {"id": "0", "msg": {"type": "agent_reasoning", "text": "**Reading app.py**"}},
        {
            "id": "0",
            "msg": {
                "type": "exec_command_begin",
                "call_id": "c1",
                "command": ["bash", "-lc", "cat app.py"],
                "cwd": WORKDIR,
            },
        },
        {"id": "0", "msg": {"type": "exec_command_output_delta", "call_id": "c1", "chunk": "x"}},
        {
            "id": "0",
            "msg": {"type": "exec_command_end", "call_id": "c1", "stdout": "", "exit_code": 0},
        },
        {
            "id": "0",
            "msg": {
                "type": "patch_apply_begin",
                "call_id": "c2",
                "auto_approved": True,
                "changes": {f"{WORKDIR}/app.py": {"update": {"unified_diff": "@@"}}},
            },
        },
        {"id": "0", "msg": {"type": "patch_apply_end", "call_id": "c2", "success": True}},
        {
            "id": "0",
            "msg": {
                "type": "exec_command_begin",
                "call_id": "c3",
                "command": ["pytest", "-q"],
                "cwd": WORKDIR,
            },
        },
        {"id": "0", "msg": {"type": "exec_command_end", "call_id": "c3", "exit_code": 2}},
        {"id": "0", "msg": {"type": "agent_message", "message": "Done."}},
        {
            "id": "0",
            "msg": {"type": "token_count", "input_tokens": 1200, "output_tokens": 80},
        },
        {"id": "0", "msg": {"type": "error", "message": "stream disconnected"}},
        {"id": "0", "msg": {"type": "task_complete", "last_agent_message": "Done."}},
    )
    activities, parser = _parse(lines)
    assert [_shape(a) for a in activities] == [
        ("reasoning", "**Reading app.py**", None, None, None),
        ("command", "cat app.py", "shell", None, 0),
        ("file_change", "update app.py", "apply_patch", "app.py", None),
        ("command", "pytest -q", "shell", None, 2),
        ("message", "Done.", None, None, None),
        ("usage", "tokens: 1200 input, 80 output", None, None, None),
        ("error", "stream disconnected", None, None, None),
    ]
    assert parser.accounting == {"activity": 7, "folded": 4, "quiet": 4}


def test_a_rollout_call_shown_by_its_event_is_not_shown_again_by_its_output() -> None:
    arguments = {"command": ["bash", "-lc", "make test"], "workdir": "."}
    result = {"output": 'text with exit_code":7 in it', "metadata": {"exit_code": 2}}
    call = {
        "type": "response_item",
        "payload": {
            "type": "function_call",
            "name": "shell",
            "arguments": json.dumps(arguments),
            "call_id": "call_1",
        },
    }
    output = {
        "type": "response_item",
        "payload": {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": json.dumps(result),
        },
    }
    end = {
        "type": "event_msg",
        "payload": {"type": "exec_command_end", "call_id": "call_1", "exit_code": 2},
    }
    for order in ([call, end, output], [call, output, end]):
        activities, parser = _parse(_jsonl(*order))
        assert [_shape(a) for a in activities] == [("command", "make test", "shell", None, 2)]
        assert parser.accounting == {"folded": 1, "activity": 1, "quiet": 1}


def test_rollout_patches_custom_tool_calls_and_text_outputs() -> None:
    patch = "*** Begin Patch\n*** Update File: app.py\n*** Move to: main.py\n*** End Patch\n"
    lines = _jsonl(
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call",
                "name": "apply_patch",
                "input": patch,
                "call_id": "p1",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call_output",
                "call_id": "p1",
                "output": json.dumps({"output": "Success.", "metadata": {"exit_code": 0}}),
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call",
                "name": "exec_command",
                "arguments": json.dumps({"cmd": "cargo build"}),
                "call_id": "e1",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call_output",
                "call_id": "e1",
                "output": "Wall time: 1.2 seconds\nProcess exited with code 101\nOutput:\nerror",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call",
                "name": "view_image",
                "arguments": json.dumps({"path": "/tmp/a.png"}),
                "call_id": "v1",
            },
        },
    )
    activities, _ = _parse(lines)
    assert [_shape(a) for a in activities] == [
        ("file_change", "update app.py", "apply_patch", "app.py", None),
        ("file_change", "move main.py", "apply_patch", "main.py", None),
        ("command", "cargo build", "exec_command", None, 101),
        ("tool_use", 'view_image {"path":"/tmp/a.png"}', "view_image", None, None),  # no output
    ]


def test_a_tui_record_ends_at_the_workers_own_line_and_at_the_end_of_the_stream() -> None:
    lines = [
        "[2026-11-22T01:29:40Z] COMMAND: codex exec --json 'fix it'",
        "2026-03-01T03:51:33.819363Z ERROR codex_core::exec: sandbox failed:",
        "  permission denied",
        "[2026-11-22T01:29:45Z] EXIT: 1",
        '2026-03-01T03:51:47Z  INFO ToolCall: exec_command {"cmd":"ls"} thread_id=1',
    ]
    activities, parser = _parse(lines)
    assert [_shape(a) for a in activities] == [
        ("command", "codex exec --json 'fix it'", None, None, None),
        ("error", "sandbox failed: permission denied", None, None, None),
        ("command", "exit code 1", None, None, 1),
        ("tool_use", "ls", "exec_command", None, None),
    ]
    assert parser.accounting == {"text": 2, "activity": 3}


def test_an_unknown_event_becomes_other_carrying_its_raw_type() -> None:
    activities, parser = _parse(
        _jsonl(
            {"type": "thread.resumed", "thread_id": "t"},
            {"type": "item.completed", "item": {"id": "i", "type": "collab_tool_call"}},
            {"type": "event_msg", "payload": {"type": "brand_new_event"}},
            {"type": "response_item", "payload": {"type": "brand_new_item"}},
            {"id": "0", "msg": {"type": "elicitation_request"}},
            {"neither": "type nor msg"},
        )
    )
    assert [a.activity_type for a in activities] == ["other"] * 6
    assert [a.description.split(":")[0] for a in activities] == [
        "thread.resumed",
        "item.completed/collab_tool_call",
        "msg/brand_new_event",
        "response_item/brand_new_item",
        "msg/elicitation_request",
        "untyped",
    ]
    assert parser.accounting == {"other": 6}


def test_invalid_json_and_plain_lines_go_to_the_text_parser() -> None:
    activities, parser = _parse(
        ['{"type": "turn.started"', '{"type": oops}', "Reading prompt from stdin...", ""]
    )
    assert [a.activity_type for a in activities] == ["message", "message", "message"]
    assert parser.accounting == {"text": 4}


def test_a_huge_line_gives_a_clipped_one_line_description() -> None:
    text = "word \n" * 400_000  # 2.4 MB
    message = {"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": text}}
    activities, parser = _parse([json.dumps(message), "x" * 3_000_000])
    assert [a.activity_type for a in activities] == ["message", "message"]
    assert all(len(a.description) <= MAX_DESCRIPTION for a in activities)
    assert (
        activities[0].description.startswith("word word") and "\n" not in activities[0].description
    )
    assert activities[0].description.endswith("…")
    assert parser.accounting == {"activity": 1, "text": 1}


def test_summarize_gives_the_runs_tokens_and_last_error() -> None:
    ok = summarize(
        CodexStreamParser(WORKDIR),
        read_transcript(FIXTURES / "exec-json_v0.169_real-cli-scripted-model_cat-patch.jsonl"),
    )
    assert (ok.input_tokens, ok.output_tokens, ok.cost_usd, ok.last_error) == (3003, 153, 0.0, "")
    failed = summarize(
        CodexStreamParser(WORKDIR),
        read_transcript(FIXTURES / "exec-json_turn-failed-invalid-request-x2.jsonl"),
    )
    assert failed.last_error.startswith("Unsupported value: 'minimal' is not supported")


def test_a_turn_failed_is_quiet_only_when_the_error_of_its_own_turn_said_it() -> None:
    activities, parser = _parse(
        _jsonl(
            {"type": "turn.started"},
            {"type": "error", "message": "boom"},
            {"type": "turn.failed", "error": {"message": "boom"}},
            {"type": "turn.started"},
            {"type": "turn.failed", "error": {"message": "boom"}},
        )
    )
    assert [_shape(a)[:2] for a in activities] == [("error", "boom"), ("error", "boom")]
    assert parser.accounting == {"activity": 2, "quiet": 3}


# --- helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        ("bash -lc ls", "ls"),
        ("bash -lc 'cat test.js'", "cat test.js"),
        ("/bin/bash -lc 'cat app.py'", "cat app.py"),
        ("zsh -lc 'echo \"hi there\"'", 'echo "hi there"'),
        ("/bin/sh -c 'a' 'b'", "'a' 'b'"),
        ("bash -lc 'unbalanced", "'unbalanced"),
        ("python -m pytest", "python -m pytest"),
        (["bash", "-lc", "ls -a"], "ls -a"),
        (["/usr/bin/zsh", "-c", "make"], "make"),
        (["git", "commit", "-m", "a b"], "git commit -m 'a b'"),
        (None, ""),
    ],
)
def test_shell_command_strips_the_shell_wrapper(raw: object, command: str) -> None:
    assert shell_command(raw) == command


def test_patch_files_lists_each_file_header_in_order() -> None:
    patch = (
        "*** Begin Patch\n*** Add File: new.py\n+x\n*** Update File: old.py\n"
        "*** Move to: moved.py\n@@\n-a\n+b\n*** Delete File: gone.py\n*** End Patch"
    )
    assert patch_files(patch) == [
        ("add", "new.py"),
        ("update", "old.py"),
        ("move", "moved.py"),
        ("delete", "gone.py"),
    ]


def test_error_text_reads_the_message_inside_a_json_document() -> None:
    doc = '{\n  "error": {\n    "type": "rate_limit",\n    "message": "Slow down"\n  }\n}'
    assert error_text(doc) == "Slow down (rate_limit)"
    assert error_text('{"message": "plain"}') == "plain"
    assert error_text("{not json") == "{not json"
    assert error_text("line one\n  line two") == "line one line two"
    assert error_text(None) == "error"


# --- properties ---------------------------------------------------------------------

_TYPES = [
    "thread.started",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "item.started",
    "item.updated",
    "item.completed",
    "error",
    "event_msg",
    "response_item",
    "session_meta",
]
_events = st.fixed_dictionaries(
    {"type": st.sampled_from(_TYPES)},
    optional={
        "item": st.fixed_dictionaries(
            {"type": st.sampled_from(["command_execution", "file_change", "todo_list", "x"])},
            optional={
                "id": st.text(max_size=3),
                "changes": json_values,
                "command": json_values,
                "items": json_values,
            },
        ),
        "payload": st.fixed_dictionaries(
            {"type": st.sampled_from(["function_call", "token_count", "exec_command_end", "y"])},
            optional={
                "call_id": st.text(max_size=3),
                "info": json_values,
                "arguments": json_values,
            },
        ),
        "usage": json_values,
        "message": json_values,
        "error": json_values,
    },
)
_lines = st.lists(
    st.one_of(
        _events.map(json.dumps),
        st.text(max_size=80),
        st.sampled_from(
            ["{", "}", "[", "2025-10-19T02:04:10Z  INFO ToolCall: apply_patch x", "*** Add File: a"]
        ),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_lines)
def test_any_lines_are_parsed_without_error_and_each_is_accounted_for(lines: list[str]) -> None:
    activities, parser = _parse(lines)
    assert_accounted(parser, lines)
    assert all(len(a.description) <= MAX_DESCRIPTION for a in activities)
