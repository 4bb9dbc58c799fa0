"""Garbled agent streams fed to every agent adapter's parser, as the log monitor does.

Each case is a transcript: lines of any text, JSON objects with the keys the parsers
look at holding values of any type, multi-line documents left open or closed, invalid
UTF-8 decoded the way :func:`~ap_actors.agents.base.read_transcript` decodes it, long
lines. Every parser reads it without raising; a parser built on
:class:`~ap_actors.agents.streams.JsonStreamParser` accounts for every line; every
activity is one line of at most ``MAX_DESCRIPTION`` characters; ``summarize`` adds up.
"""

from __future__ import annotations

import json

from hypothesis import example, given
from hypothesis import strategies as st

from ap_actors.agents import ADAPTERS
from ap_actors.agents.base import MAX_DESCRIPTION, Activity, LineParser, summarize
from ap_actors.agents.streams import JsonStreamParser
from tests.fuzz.conftest import FUZZ, run_cases, tried
from tests.fuzz.strategies import BAD_UTF8, NASTY_STRINGS, json_values
from tests.support.agent_streams import assert_accounted, recorded_lines

AGENTS = sorted(ADAPTERS)
SAMPLES = [
    line
    for agent in ("codex", "claude", "gemini", "cursor", "aider")
    for line in recorded_lines(agent)[:40]
]

KEYS = [
    "type",
    "subtype",
    "item",
    "msg",
    "payload",
    "message",
    "content",
    "tool_use_id",
    "name",
    "input",
    "usage",
    "result",
    "error",
    "role",
    "text",
    "command",
    "path",
    "file_path",
    "exit_code",
    "status",
    "id",
    "call_id",
    "session_id",
    "timestamp",
    "tool_calls",
    "delta",
    "total_cost_usd",
    "stats",
    "changes",
]
KINDS = [
    "item.completed",
    "item.started",
    "turn.completed",
    "turn.failed",
    "assistant",
    "user",
    "system",
    "result",
    "tool_call",
    "tool_use",
    "tool_result",
    "message",
    "error",
    "thread.started",
    "event_msg",
    "response_item",
    "init",
    "init",
]

# Long lines are one case in fifty: each costs every parser's regexes a full scan.
short_text = st.sampled_from([t for t in NASTY_STRINGS if len(t) < 1_000]) | st.text(max_size=40)
json_objects = st.dictionaries(
    st.sampled_from(KEYS) | short_text,
    json_values | st.sampled_from(KINDS),
    max_size=6,
) | st.fixed_dictionaries(
    {"type": st.sampled_from(KINDS)}, optional=dict.fromkeys(KEYS[1:], json_values)
)
json_lines = json_objects.map(lambda o: json.dumps(o, allow_nan=True))
bad_utf8_lines = st.lists(st.binary(max_size=20) | st.sampled_from(BAD_UTF8), max_size=4).map(
    lambda parts: b"".join(parts).replace(b"\n", b"").decode("utf-8", "replace")
)
common = st.one_of(
    json_lines,
    json_lines.map(lambda t: t[: len(t) // 2]),  # cut in the middle
    st.sampled_from(SAMPLES),
    st.text(st.characters(exclude_characters="\n\r"), max_size=80),
    st.sampled_from(
        [
            "{",
            "[",
            "}",
            "]",
            "",
            "  }",
            "Traceback (most recent call last):",
            "[2025-01-01T00:00:00] TOOL: edit - x",
            "USAGE: input_tokens=nan",
        ]
    ),
    bad_utf8_lines,
)
long_lines = st.sampled_from(["x" * 100_000, "{" + "x" * 70_000 + "}", "  " * 40_000 + "x"])
line = st.integers(0, 49).flatmap(lambda n: long_lines if n == 0 else common)
transcripts = st.lists(line, max_size=25)


class Recording:
    """A parser that keeps what the parser it wraps returns."""

    def __init__(self, parser: LineParser) -> None:
        self.parser = parser
        self.activities: list[Activity] = []

    def feed(self, line: str) -> list[Activity]:
        out = self.parser.feed(line)
        self.activities += out
        return out

    def finish(self) -> list[Activity]:
        out = self.parser.finish()
        self.activities += out
        return out


def test_every_parser_reads_any_stream_without_error_and_accounts_for_each_line() -> None:
    @FUZZ
    @given(transcripts)
    @example(['{"":"","subtype":"\\n"}'])  # found at 20,000 cases: a line break in "other"
    @example(['{"type":"result","subtype":"\\n"}'])  # found at 100,000: in a usage summary
    def property(lines: list[str]) -> None:
        tried("agent_streams")
        for agent in AGENTS:
            parser = ADAPTERS[agent]().parser("/repo")
            seen = Recording(parser)
            summary = summarize(seen, lines)
            if isinstance(parser, JsonStreamParser):
                assert_accounted(parser, lines)
            for a in seen.activities:
                assert "\n" not in a.description, (agent, a)
                assert len(a.description) <= MAX_DESCRIPTION, agent
                assert a.input_tokens >= 0 and a.output_tokens >= 0 and a.cost_usd >= 0, (agent, a)
            assert summary.lines == len(lines)
            assert sum(summary.activities.values()) == len(seen.activities)

    run_cases(property)
