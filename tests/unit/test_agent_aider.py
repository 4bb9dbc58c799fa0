"""The ``aider`` adapter: its command, and its plain-text parser on the recorded chat
histories (``tests/fixtures/agent-streams/aider/``, see SOURCES.md there) and on
``--no-pretty`` stdout built from the formats in aider's source."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings

from ap_actors.agents.aider import AiderAdapter, AiderParser
from ap_actors.agents.base import Activity, read_transcript, render_prompt, summarize
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

FIXTURES = AGENT_STREAMS / "aider"
RECORDINGS = recordings("aider")
HISTORY_2025 = FIXTURES / "chat-history_v0.86.1_diff-edits-commits-cost.md"
HISTORY_2023 = FIXTURES / "chat-history_2023-07_gpt-4-early-format.md"
WORKDIR_2025 = "/Users/abdulalkawasmeh/metadata-aider"  # "Git repository created in ..."
FENCE = "`" * 3


def _parse(lines: list[str], workdir: str | None = None) -> tuple[list[Activity], AiderParser]:
    return parse(AiderParser(workdir), lines)


def _shape(a: Activity) -> tuple[str, str | None, str | None]:
    return (a.activity_type, a.tool_name, a.file_path)


# --- the adapter --------------------------------------------------------------------


def test_the_aider_command_sends_one_message_without_commits_and_names_the_scope_files(
    tmp_path: Path,
) -> None:
    for name in ["src/app.py", "src/util.py", "docs/guide.md", "README.md", "-odd.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    task = agent_task(
        "Greet",
        model="gpt-4o",
        workdir=str(tmp_path),
        scope_touch=["src/app.py", "docs/", "missing.py", "*.md", "-odd.py"],
    )
    assert AiderAdapter().commands(task, None) == [
        [
            "aider",
            "--message",
            render_prompt(task),
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-check-update",
            "--model",
            "gpt-4o",
            "src/app.py",  # docs/ is a directory and missing.py does not exist
            "README.md",
            "./-odd.py",  # never read as an option
        ]
    ]
    assert AiderAdapter().package == "pip aider-chat"


# --- every recording ----------------------------------------------------------------


def test_the_aider_recordings_are_there() -> None:
    assert len(RECORDINGS) >= 2, f"no recordings under {FIXTURES}"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_line_of_every_aider_recording_is_accounted_for(path: Path) -> None:
    activities, _ = parse_recording(AiderParser(), path)
    assert activities


# --- each recording -----------------------------------------------------------------


def test_the_2025_history_gives_each_edit_block_applied_edit_commit_and_usage() -> None:
    activities, _ = parse_file(AiderParser(WORKDIR_2025), HISTORY_2025)
    assert Counter(a.activity_type for a in activities) == {
        "file_change": 42,  # 24 SEARCH/REPLACE blocks + 18 "Applied edit to"
        "message": 26,
        "command": 17,  # 14 commits + 3 declined shell commands
        "usage": 12,
        "error": 2,
        "tool_use": 1,
    }
    blocks = [a.file_path for a in activities if a.tool_name == "edit_block"]
    assert blocks[:6] == [
        ".aidar.json",
        "src/dataset.py",
        "src/model.py",
        "src/train.py",
        "scripts/generate_data.py",
        "scripts/generate_data.py",
    ]
    assert len(blocks) == 24 and blocks[-1] == "README.md"
    assert activities[2].description == "edit .aidar.json: SEARCH/REPLACE, 0 → 6 lines"
    applied = [a.file_path for a in activities if a.tool_name == "edit"]
    assert len(applied) == 18 and applied[:2] == [".aidar.json", "src/train.py"]
    assert [a.description for a in activities if a.tool_name == "shell"] == [
        "mkdir data (declined)",
        "mkdir results (declined)",
        "mkdir frontend (declined)",
    ]
    commits = [a.description.split()[1] for a in activities if a.tool_name == "git"]
    assert commits[:3] == ["1b2614a", "bf98f22", "e86dbf7"] and len(commits) == 14
    assert [(a.description, a.file_path) for a in activities if a.activity_type == "error"] == [
        (f"{WORKDIR_2025}/frontend/display.ts: file not found error", "frontend/display.ts"),
        (f"Repo-map can't include {WORKDIR_2025}/frontend/display.ts", "frontend/display.ts"),
    ]
    assert [_shape(a) for a in activities if a.activity_type == "tool_use"] == [
        ("tool_use", "drop", "frontend/display.ts")
    ]
    assert not [a for a in activities if "Please create an .aidar.json" in a.description]


def test_the_2025_history_token_and_cost_totals_are_the_sums_of_the_message_lines() -> None:
    summary = summarize(AiderParser(), read_transcript(HISTORY_2025))
    sent = [2.4, 2.7, 3.2, 3.9, 4.5, 5.6, 6.4, 8.0, 8.5, 9.0, 9.4, 10]
    received = [104, 195, 338, 293, 510, 338, 812, 342, 233, 489, 237, 412]
    assert summary.input_tokens == round(sum(sent) * 1000) == 73_600
    assert summary.output_tokens == sum(received) == 4_303
    # message costs, not the running session totals ($0.01 at the end, rounded by aider)
    assert summary.cost_usd == pytest.approx(0.01346)
    first = next(a for a in parse_file(AiderParser(), HISTORY_2025)[0] if a.input_tokens)
    assert (first.input_tokens, first.output_tokens, first.cost_usd) == (2400, 104, 0.00042)


def test_the_2023_history_gives_its_commits_and_notices_without_usage() -> None:
    activities, parser = parse_file(AiderParser(), HISTORY_2023)
    assert Counter(a.activity_type for a in activities) == {"message": 14, "command": 2}
    assert [a.description[:14] for a in activities if a.activity_type == "command"] == [
        "Commit 862549d",
        "Commit 6da9cb5",
    ]
    assert activities[0].description == (
        "Diff is too large for gpt-3.5-turbo to generate a commit message."
    )
    # quiet: 18 banner lines, 9 blank lines, 3 session starts (the 4th gives the notices
    # held before it) and the 2 user lines; folded: 9 notices held, 1 blank line among them
    assert parser.accounting == {"quiet": 32, "folded": 10, "activity": 8}


# --- stdout (--no-pretty), built from the formats in aider's source ------------------
# aider/io.py prints notices without the history's "> " prefix; the Tokens line is
# base_coder.py's; the SEARCH/REPLACE, whole-file and udiff replies are aider's edit
# formats; the worker adds its bracketed COMMAND/EXIT lines.

STDOUT = [
    "[2026-11-22T10:00:00Z] COMMAND: aider --message 'Greet louder' --yes-always",
    "Aider v0.86.1",
    "Main model: gpt-4o with diff edit format",
    "Git repo: .git with 3 files",
    "Repo-map: using 4096 tokens, auto refresh",
    "Added src/app.py to the chat.",
    "",
    "I will make the greeting louder.",
    "",
    "src/app.py",
    f"{FENCE}python",
    "<<<<<<< SEARCH",
    'print("hi")',
    "=======",
    'print("HELLO")',
    'print("!")',
    ">>>>>>> REPLACE",
    FENCE,
    "",
    "Then create the data folder:",
    "",
    f"{FENCE}bash",
    "mkdir data",
    FENCE,
    "",
    "Tokens: 1.2k sent, 2.1k cache hit, 45 received. Cost: $0.0031 message, $0.0031 session.",
    "Applied edit to src/app.py",
    "",
    "mkdir data",
    "Run shell command? (Y)es/(N)o/(S)kip all/(D)on't ask again [Yes]: n",
    "[2026-11-22T10:00:09Z] EXIT: 0",
]


def test_no_pretty_stdout_gives_the_same_activities_as_the_history_would() -> None:
    activities, parser = _parse(STDOUT, "/work/repo")
    assert [(*_shape(a), a.description) for a in activities] == [
        ("command", None, None, "aider --message 'Greet louder' --yes-always"),
        ("tool_use", "add", "src/app.py", "Added src/app.py to the chat."),
        ("message", None, None, "I will make the greeting louder."),
        ("file_change", "edit_block", "src/app.py", "edit src/app.py: SEARCH/REPLACE, 1 → 2 lines"),
        ("message", None, None, "Then create the data folder: mkdir data"),
        ("usage", None, None, STDOUT[25]),
        ("file_change", "edit", "src/app.py", "Applied edit to src/app.py"),
        ("command", "shell", None, "mkdir data (declined)"),
        ("command", None, None, "exit code 0"),
    ]
    usage = activities[5]
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (1200, 45, 0.0031)
    assert parser.accounting["unaccounted"] == 0
    assert parser.accounting["text"] == 2  # the worker's own lines


def test_an_approved_shell_command_is_the_command_aider_runs() -> None:
    activities, _ = _parse(
        [
            "> pytest -q  ",
            "> Run shell command? (Y)es/(N)o/(S)kip all/(D)on't ask again [Yes]: y  ",
            "> Running pytest -q  ",
            "> Add command output to the chat? (Y)es/(N)o/(D)on't ask again [Yes]: y  ",
        ]
    )
    assert [(a.activity_type, a.tool_name, a.description) for a in activities] == [
        ("command", "shell", "pytest -q"),
        ("message", None, "Add command output to the chat? (Y)es/(N)o/(D)on't ask again [Yes]: y"),
    ]


def test_several_proposed_commands_are_one_command_each() -> None:
    activities, _ = _parse(
        [
            "",
            "mkdir data",
            "touch data/.keep",
            "Run shell commands? (Y)es/(N)o/(S)kip all/(D)on't ask again [Yes]: n",
        ]
    )
    assert [a.description for a in activities] == [
        "mkdir data (declined)",
        "touch data/.keep (declined)",
    ]


def test_whole_file_udiff_and_patch_replies_give_one_file_change_per_file() -> None:
    activities, _ = _parse(
        [
            "Here is the new file:",
            "",
            "src/hello.py",
            FENCE,
            'print("hi")',
            "",
            FENCE,
            f"{FENCE}diff",
            "--- src/a.py",
            "+++ src/a.py",
            "@@ ... @@",
            "-x = 1",
            "+x = 2",
            FENCE,
            f"{FENCE}",
            "*** Begin Patch",
            "*** Update File: src/b.py",
            "@@",
            "-y",
            "+z",
            "*** End Patch",
            FENCE,
        ]
    )
    assert [(*_shape(a), a.description) for a in activities] == [
        ("message", None, None, "Here is the new file:"),
        ("file_change", "whole_file", "src/hello.py", "write src/hello.py: 2 lines"),
        ("file_change", "udiff", "src/a.py", "udiff src/a.py"),
        ("file_change", "patch", "src/b.py", "patch src/b.py"),
    ]


def test_blocks_after_the_first_in_a_fence_reuse_its_file_and_markdown_inside_is_content() -> None:
    activities, parser = _parse(
        [
            "README.md",
            f"{FENCE}markdown",
            "<<<<<<< SEARCH",
            "=======",
            "#### Install",  # a heading of the file, not a user line
            "> a quote",
            f"{FENCE}bash",
            "pip install x",
            FENCE,
            ">>>>>>> REPLACE",
            "<<<<<<< SEARCH",
            "old",
            "=======",
            "new",
            ">>>>>>> REPLACE",
            FENCE,
        ]
    )
    assert [(a.file_path, a.description) for a in activities] == [
        ("README.md", "edit README.md: SEARCH/REPLACE, 0 → 5 lines"),
        ("README.md", "edit README.md: SEARCH/REPLACE, 1 → 1 lines"),
    ]
    assert parser.accounting == {"folded": 13, "activity": 2, "quiet": 1}  # quiet: the end


def test_a_reply_cut_inside_a_block_gives_an_incomplete_edit() -> None:
    lines = list(read_transcript(HISTORY_2025))
    cut = lines[: lines.index("<<<<<<< SEARCH") + 3]
    activities, parser = _parse(cut)
    assert (
        activities[-1].description == "edit .aidar.json: SEARCH/REPLACE, 0 → 1 lines (incomplete)"
    )
    assert parser.accounting["unaccounted"] == 0


def test_a_tokens_line_ends_a_block_the_model_left_open() -> None:
    activities, _ = _parse(
        [
            "src/a.py",
            FENCE,
            "<<<<<<< SEARCH",
            "a",
            "> Tokens: 10k sent, 1.5k received.  ",
            "> Applied edit to src/a.py  ",
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("file_change", "edit src/a.py: SEARCH/REPLACE, 1 → 0 lines (incomplete)"),
        ("usage", "Tokens: 10k sent, 1.5k received."),
        ("file_change", "Applied edit to src/a.py"),
    ]
    assert (activities[1].input_tokens, activities[1].output_tokens) == (10_000, 1_500)


def test_a_thinking_part_is_reasoning_and_errors_are_errors() -> None:
    activities, _ = _parse(
        [
            "--------------",
            "► **THINKING**",
            "The user wants a louder greeting.",
            "------------",
            "► **ANSWER**",
            "Done.",
            "litellm.APIConnectionError: Connection refused",
            "The LLM did not conform to the edit format.",
            "Warning for gpt-x: Unknown context window size and costs, using sane defaults.",
        ]
    )
    assert [(a.activity_type, a.description) for a in activities] == [
        ("reasoning", "The user wants a louder greeting."),
        ("message", "Done."),
        ("error", "litellm.APIConnectionError: Connection refused"),
        ("error", "The LLM did not conform to the edit format."),
        ("error", "Warning for gpt-x: Unknown context window size and costs, using sane defaults."),
    ]


def test_a_traceback_is_one_error_from_the_text_parser() -> None:
    activities, parser = _parse(
        [
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3/site-packages/aider/main.py", line 10, in main',
            "    run()",
            "litellm.AuthenticationError: invalid key",
        ]
    )
    assert [(a.activity_type, a.description, a.file_path) for a in activities] == [
        (
            "error",
            "litellm.AuthenticationError: invalid key",
            "/usr/lib/python3/site-packages/aider/main.py",
        )
    ]
    assert parser.accounting == {"text": 4}


def test_paths_under_the_worktree_become_relative_and_others_are_kept_as_printed() -> None:
    activities, _ = _parse(
        ["Applied edit to /w/t/src/a.py", "Applied edit to ../elsewhere/b.py"], "/w/t"
    )
    assert [a.file_path for a in activities] == ["src/a.py", "../elsewhere/b.py"]


@settings(max_examples=300)
@given(mixed_lines(recorded_lines("aider") + STDOUT, max_size=60))
def test_any_mix_of_lines_is_parsed_with_every_line_accounted_for(lines: list[str]) -> None:
    _, parser = _parse(lines)
    assert_accounted(parser, lines)
