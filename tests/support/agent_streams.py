"""Where the recorded agent outputs are: ``tests/fixtures/agent-streams/``.

A copy of the team's shared recordings (``../shared/fixtures/agent-streams/``, their
``SOURCES.md`` says where each comes from) kept in the repository, so that a clean clone
runs its tests anywhere. One folder per agent; ``FORMATS.md`` describes the formats.
"""

from __future__ import annotations

from pathlib import Path

AGENT_STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "agent-streams"


def recordings(agent: str) -> list[Path]:
    """Every recorded file of ``agent``'s folder, recursively, sorted."""
    return sorted(p for p in (AGENT_STREAMS / agent).rglob("*") if p.is_file())
