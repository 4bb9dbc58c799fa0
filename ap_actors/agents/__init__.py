"""Agent adapters: one module per agent CLI, chosen by the team file's ``agent`` value.

Source: ``DESIGN.md``, "Workers and agents". The interface is in
:mod:`ap_actors.agents.base`; :func:`get_adapter` returns an adapter by name.
"""

from __future__ import annotations

from ap_actors.agents.base import (
    Activity,
    Adapter,
    AgentTask,
    CommandSpec,
    LineParser,
    render_prompt,
    scope_paths,
)
from ap_actors.agents.command import CommandAdapter
from ap_actors.errors import AgentError

ADAPTERS: dict[str, type[Adapter]] = {CommandAdapter.name: CommandAdapter}
"""Adapter classes by name (the team file's ``agent`` value)."""


def get_adapter(name: str) -> Adapter:
    """Return a new adapter for the agent ``name``.

    Raises:
        AgentError: no adapter has that name (the message lists the known ones).
    """
    try:
        cls = ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise AgentError(f"unknown agent {name!r}; known: {known}") from None
    return cls()


__all__ = [
    "ADAPTERS",
    "Activity",
    "Adapter",
    "AgentTask",
    "CommandAdapter",
    "CommandSpec",
    "LineParser",
    "get_adapter",
    "render_prompt",
    "scope_paths",
]
