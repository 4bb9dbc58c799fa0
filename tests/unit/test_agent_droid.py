"""The ``droid`` adapter: its command, and its parser of ``droid exec`` stream-json.

No real Droid recording exists (``tests/fixtures/agent-streams/SOURCES.md``): every
stream line below is CONSTRUCTED from the documented shapes (FORMATS.md §5, from
``BloopAI/vibe-kanban:crates/executors/src/executors/droid/normalize_logs.rs@9b5d2c4``),
not captured from the CLI. When a real recording is added under
``agent-streams/droid/``, the accounting test below covers it automatically.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from ap_actors.agents.base import Activity, render_prompt
from ap_actors.agents.droid import DroidAdapter, DroidParser
from tests.support.agent_streams import (
    agent_task,
    assert_accounted,
    mixed_lines,
    parse,
    parse_recording,
    recordings,
)

RECORDINGS = recordings("droid")
WORKDIR = "/work/repo"
SESSION = "c1d2e3f4-0000-4000-8000-000000000001"


def _j(**obj: object) -> str:
    return json.dumps({**obj, "session_id": SESSION} if obj.get("type") != "error" else obj)


def _call(call_id: str, tool: str, **parameters: object) -> str:
    return _j(
        type="tool_call",
        id=call_id,
        messageId="m1",
        toolId=tool,
        toolName=tool,
        parameters=parameters,
        timestamp=1760000000000,
    )


def _result(call_id: str | None, value: object = None, **extra: object) -> str:
    obj: dict[str, object] = {
        "type": "tool_result",
        "messageId": "m1",
        "toolId": "x",
        "isError": False,
        "timestamp": 1760000001000,
    }
    if call_id is not None:
        obj["id"] = call_id
    if value is not None:
        obj["value"] = value
    return _j(**{**obj, **extra})


# A whole constructed session: every documented event type once or more.
CONSTRUCTED = [
    _j(type="system", subtype="init", cwd=WORKDIR, tools=["Read", "Execute"], model="glm-4.6"),
    _j(type="message", role="user", id="u1", text="Fix the failing test", timestamp=1),
    _j(type="message", role="assistant", id="a1", text="Let me look at the test.", timestamp=2),
    _call("c1", "Read", file_path=f"{WORKDIR}/tests/test_auth.py"),
    _result("c1", "def test_login(): ..."),
    _call("c2", "Execute", command="pytest -q tests/test_auth.py", timeout=60, riskLevel="low"),
    _result("c2", "F\n1 failed in 0.1s\n\n[Process exited with code 1]"),
    _call("c3", "Edit", file_path=f"{WORKDIR}/src/auth.py", old_string="a", new_string="b"),
    _result("c3", "Edited"),
    _call("c4", "ApplyPatch", input="*** Begin Patch\n*** Add File: src/new.py\n+x\n*** End Patch"),
    _result(None, {"file_path": f"{WORKDIR}/src/new.py", "diff": "+x"}),  # no id: FIFO
    _call("c5", "Grep", pattern="login", path="/usr/lib/python3"),
    _result("c5", isError=True, error={"type": "tool_error", "message": "permission denied"}),
    _call("c6", "Execute", command="pytest -q"),
    _result("c6", "1 passed\n[Process exited with code 0]"),
    _j(type="error", source="model", message="rate limited, retrying", timestamp=3),
    '{"level":"error","error":{"name":"Error","message":"telemetry upload failed"}}',
    _j(type="message", role="assistant", id="a2", text="Fixed the login check.", timestamp=4),
    _j(
        type="completion",
        finalText="Fixed the login check.",
        numTurns=3,
        durationMs=9000,
        usage={
            "input_tokens": 1200,
            "output_tokens": 300,
            "cache_read_input_tokens": 5000,
            "cache_creation_input_tokens": 800,
        },
    ),
]


def _parse(lines: list[str], workdir: str | None = WORKDIR) -> tuple[list[Activity], DroidParser]:
    return parse(DroidParser(workdir), lines)


def _shape(a: Activity) -> tuple[str, str | None, str | None, int | None]:
    return (a.activity_type, a.tool_name, a.file_path, a.exit_code)


# --- the adapter --------------------------------------------------------------------


def test_the_droid_command_is_exec_with_stream_json_and_no_permission_prompts() -> None:
    task = agent_task("Fix the failing test", workdir=WORKDIR)
    assert DroidAdapter().commands(task, None) == [
        [
            "droid",
            "exec",
            "--output-format",
            "stream-json",
            "--skip-permissions-unsafe",
            render_prompt(task),
        ]
    ]


def test_the_droid_command_names_the_model_before_the_prompt() -> None:
    task = agent_task("Fix the failing test", model="claude-sonnet-4-5", workdir=WORKDIR)
    assert DroidAdapter().argv(task)[-3:] == ["-m", "claude-sonnet-4-5", render_prompt(task)]


# --- the constructed session --------------------------------------------------------


def test_a_constructed_droid_session_gives_each_documented_event_its_activity() -> None:
    activities, parser = _parse(CONSTRUCTED)
    assert [(*_shape(a), a.description) for a in activities] == [
        ("message", None, None, None, "Let me look at the test."),
        ("tool_use", "Read", "tests/test_auth.py", None, "Read tests/test_auth.py"),
        ("command", "Execute", None, 1, "pytest -q tests/test_auth.py"),
        ("file_change", "Edit", "src/auth.py", None, "Edit src/auth.py"),
        ("file_change", "ApplyPatch", "src/new.py", None, "ApplyPatch src/new.py"),
        (
            "error",
            "Grep",
            "/usr/lib/python3",
            None,
            "Grep /usr/lib/python3 failed: permission denied",
        ),
        ("command", "Execute", None, 0, "pytest -q"),
        ("error", None, None, None, "model: rate limited, retrying"),
        ("error", None, None, None, "error: telemetry upload failed"),
        ("message", None, None, None, "Fixed the login check."),
        ("usage", None, None, None, "7300 tokens (7000 input, 300 output), 3 turns"),
    ]
    usage = activities[-1]
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (7000, 300, 0.0)
    # system and the prompt quiet; six tool calls folded into their results
    assert parser.accounting == {"quiet": 2, "folded": 6, "activity": 11}


def test_a_final_text_that_is_not_the_last_message_is_given_and_a_cost_is_kept() -> None:
    activities, _ = _parse(
        [
            _j(type="completion", finalText="All done.", total_cost_usd=0.25, usage={}),
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("message", "All done."),
        ("usage", "0 tokens (0 input, 0 output)"),
    ]
    assert activities[1].cost_usd == 0.25


def test_a_stream_cut_before_a_result_gives_the_call_without_a_result() -> None:
    activities, parser = _parse(CONSTRUCTED[:6])
    assert [(*_shape(a), a.description) for a in activities][-1] == (
        "command",
        "Execute",
        None,
        None,
        "pytest -q tests/test_auth.py (no result)",
    )
    assert parser.accounting["unaccounted"] == 0


def test_a_failed_execute_without_an_exit_code_is_an_error() -> None:
    activities, _ = _parse(
        [
            _call("x", "Execute", command="make"),
            _result("x", isError=True, error={"type": "timeout", "message": "timed out"}),
        ]
    )
    assert [(*_shape(a), a.description) for a in activities] == [
        ("error", "Execute", None, None, "make failed: timed out"),
    ]


def test_an_unknown_type_is_an_other_activity_carrying_its_raw_type() -> None:
    activities, parser = _parse([_j(type="todo_update", items=[])])
    assert [a.activity_type for a in activities] == ["other"]
    assert activities[0].description.startswith("todo_update: ")
    assert parser.accounting == {"other": 1}


def test_invalid_json_and_plain_log_lines_are_read_as_text() -> None:
    activities, parser = _parse(['{"type":"message","role":', "Error: not authenticated"])
    assert [a.activity_type for a in activities] == ["message", "error"]
    assert parser.accounting == {"text": 2}


def test_paths_outside_the_worktree_are_kept_as_printed() -> None:
    activities, _ = _parse([_call("r", "Read", file_path="/etc/hosts"), _result("r", "x")])
    assert activities[0].file_path == "/etc/hosts"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_line_of_every_droid_recording_is_accounted_for(path: Path) -> None:
    parse_recording(DroidParser(WORKDIR), path)


@settings(max_examples=200)
@given(mixed_lines(CONSTRUCTED, max_size=40))
def test_any_mix_of_lines_is_parsed_with_every_line_accounted_for(lines: list[str]) -> None:
    _, parser = _parse(lines)
    assert_accounted(parser, lines)
