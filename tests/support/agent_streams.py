"""The recorded agent outputs (``tests/fixtures/agent-streams/``) and what their tests share.

The recordings are a copy of the team's shared ones (``../shared/fixtures/agent-streams/``,
their ``SOURCES.md`` says where each comes from) kept in the repository, so that a clean
clone runs its tests anywhere. One folder per agent; ``FORMATS.md`` describes the formats.

The helpers run a parser as the log monitor does and check the contract every parser
built on :class:`~ap_actors.agents.streams.JsonStreamParser` keeps: each line fed is
accounted for (:func:`assert_accounted`), and on a real recording each activity is
described in one line (:func:`parse_recording`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st

from ap_actors.agents.base import MAX_DESCRIPTION, Activity, AgentTask, read_transcript
from ap_actors.agents.streams import JsonStreamParser
from ap_actors.events import Objective

AGENT_STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "agent-streams"

P = TypeVar("P", bound=JsonStreamParser)


def recordings(agent: str) -> list[Path]:
    """Every recorded file of ``agent``'s folder, recursively, sorted."""
    return sorted(p for p in (AGENT_STREAMS / agent).rglob("*") if p.is_file())


def recorded_lines(agent: str) -> list[str]:
    """Every line of every recording of ``agent``, file after file (without newlines)."""
    return [line for path in recordings(agent) for line in read_transcript(path)]


def parse(parser: P, lines: Iterable[str]) -> tuple[list[Activity], P]:
    """Feed ``lines`` to ``parser`` one at a time, then finish it; the log monitor's way.

    Returns:
        Every activity, in order (those of ``finish`` last), and ``parser`` itself for
        its ``accounting``.
    """
    out = [a for line in lines for a in parser.feed(line)]
    return out + parser.finish(), parser


def parse_file(parser: P, path: Path) -> tuple[list[Activity], P]:
    """:func:`parse` the lines of the transcript file at ``path``."""
    return parse(parser, read_transcript(path))


def assert_accounted(parser: JsonStreamParser, lines: Sized) -> None:
    """Assert that each of the ``lines`` fed to ``parser`` is accounted for.

    None is ``unaccounted``, and the lines counted under each disposition add up to the
    lines fed (a multi-line document or TUI record counts all of its lines).
    """
    assert parser.accounting["unaccounted"] == 0
    assert sum(parser.accounting.values()) == len(lines)


def parse_recording(parser: P, path: Path) -> tuple[list[Activity], P]:
    """:func:`parse` the recording at ``path`` and check what any recording must give.

    Each line is accounted for (:func:`assert_accounted`), and each activity's
    description is one line of 1 to ``MAX_DESCRIPTION`` characters.
    """
    lines = list(read_transcript(path))
    activities, parser = parse(parser, lines)
    assert_accounted(parser, lines)
    for a in activities:
        assert "\n" not in a.description
        assert 0 < len(a.description) <= MAX_DESCRIPTION
    return activities, parser


def mixed_lines(samples: Sequence[str], max_size: int) -> st.SearchStrategy[list[str]]:
    """Lists of at most ``max_size`` lines, each one of ``samples`` or made-up text.

    Made-up lines are up to 40 characters without a line break.
    """
    made_up = st.text(st.characters(exclude_characters="\n\r"), max_size=40)
    return st.lists(st.sampled_from(samples) | made_up, max_size=max_size)


def token_sums(activities: Iterable[Activity]) -> tuple[int, int]:
    """The input and output tokens of the ``usage`` activities, summed."""
    usage = [a for a in activities if a.activity_type == "usage"]
    return sum(a.input_tokens for a in usage), sum(a.output_tokens for a in usage)


def agent_task(
    title: str, *, model: str = "", workdir: str = "/repo", **objective: Any
) -> AgentTask:
    """A run of objective ``obj-1`` of session ``s-1``, titled ``title``.

    ``objective`` holds more :class:`~ap_actors.events.Objective` fields (scopes ...).
    """
    return AgentTask(
        session_id="s-1",
        objective=Objective(id="obj-1", title=title, **objective),
        workdir=workdir,
        model=model,
    )


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
"""Any JSON value, small: what an agent may put where a parser expects something else."""
