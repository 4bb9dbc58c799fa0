"""Agent stream parsing: lines/s per adapter on the recorded transcripts, per core.

Each adapter's parser (``ap_actors/agents/<name>.py``) reads every recording of its
agent under ``tests/fixtures/agent-streams/<agent>/`` (the real CLI outputs the tests
use: ``exec --json`` streams, session logs, TUI logs, chat histories), as the log monitor
feeds it: one ``feed`` per line, a new parser per file, ``finish`` at the end. The lines
are read into memory first, so the figure is the parser's alone. Time is CPU time of
this process (``time.process_time``), so it is per core; the best of ``REPS`` runs over
``ROUNDS`` passes is reported, with the spread.

Side by side, on the same lines: decoding each line with ``msgspec.json`` alone (the
floor of any JSON parser here) and with the standard library's ``json.loads`` (what the
seeds' parser does; they claim 10,000 lines/s). Droid has no real recording, so no row.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from ap_actors.agents import get_adapter
from ap_actors.agents.base import read_transcript
from benchmarks.common import ROOT, Row, row, spread

STREAMS = ROOT / "tests" / "fixtures" / "agent-streams"
AGENTS = ("codex", "claude", "gemini", "cursor", "aider")
TARGET = {"codex": 300_000, "claude": 300_000}  # lines/s per core (the issue's)
REPS = 5
MIN_LINES = 200_000  # per run: passes over the recordings until at least this many
SEEDS_CLAIM = 10_000


def recordings(agent: str) -> list[list[str]]:
    """The lines of each recording of ``agent`` (without newlines)."""
    files = sorted(p for p in (STREAMS / agent).rglob("*") if p.is_file())
    return [list(read_transcript(p)) for p in files]


def _timed(run: Callable[[], int]) -> float:
    """Lines/s of CPU time for one call of ``run`` (which returns the lines it read)."""
    start = time.process_time()
    lines = run()
    return lines / max(time.process_time() - start, 1e-9)


def parse_rate(agent: str, files: list[list[str]], rounds: int) -> float:
    adapter = get_adapter(agent)

    def run() -> int:
        n = 0
        for _ in range(rounds):
            for lines in files:
                parser = adapter.parser("/home/dev/project")
                feed = parser.feed
                for line in lines:
                    feed(line)
                parser.finish()
                n += len(lines)
        return n

    return _timed(run)


def decode_rate(files: list[list[str]], rounds: int, decode: Callable[[str], object]) -> float:
    def run() -> int:
        n = 0
        for _ in range(rounds):
            for lines in files:
                for line in lines:
                    if line[:1] == "{":
                        with contextlib.suppress(ValueError):
                            decode(line)
                n += len(lines)
        return n

    return _timed(run)


def bench_parsing(tmp: Path) -> list[Row]:
    """Rows: per agent, the parser's lines/s, with msgspec and json decoding alone."""
    del tmp
    rows = []
    msgspec_decode = msgspec.json.Decoder().decode
    for agent in AGENTS:
        files = recordings(agent)
        total = sum(len(f) for f in files)
        if not total:
            raise RuntimeError(f"no recording under {STREAMS / agent}")
        rounds = max(1, -(-MIN_LINES // total))
        parsed = [parse_rate(agent, files, rounds) for _ in range(REPS)]
        floor = max(decode_rate(files, rounds, msgspec_decode) for _ in range(REPS))
        stdlib = max(decode_rate(files, rounds, json.loads) for _ in range(REPS))
        best = max(parsed)
        target = TARGET.get(agent)
        rows.append(
            row(
                f"parse {agent} transcripts",
                best,
                "lines/s",
                ">=" if target else None,
                target,
                f"best of {REPS}, {spread(parsed)}; {len(files)} recordings, {total:,} lines,"
                f" x{rounds} per run; CPU time, one core. Same lines, decode only:"
                f" msgspec {floor:,.0f}/s, json.loads {stdlib:,.0f}/s; seeds claim"
                f" {SEEDS_CLAIM:,}/s",
            )
        )
    return rows
