"""Agent adapters: one module per agent CLI, chosen by the team file's ``agent`` value.

Source: ``DESIGN.md``, "Workers and agents". The interface is in
:mod:`ap_actors.agents.base`; :func:`get_adapter` returns an adapter by name, and
:func:`installed_agents` finds which agent CLIs this machine has (``ap agents``, the
default team).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import msgspec

from ap_actors.agents.aider import AiderAdapter
from ap_actors.agents.base import (
    Activity,
    Adapter,
    AgentTask,
    CliAdapter,
    CommandSpec,
    LineParser,
    TranscriptSummary,
    render_prompt,
    scope_paths,
    summarize,
)
from ap_actors.agents.claude import ClaudeAdapter
from ap_actors.agents.codex import CodexAdapter
from ap_actors.agents.command import CommandAdapter
from ap_actors.agents.cursor import CursorAdapter
from ap_actors.agents.droid import DroidAdapter
from ap_actors.agents.gemini import GeminiAdapter
from ap_actors.errors import AgentError

ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        CommandAdapter,
        CodexAdapter,
        ClaudeAdapter,
        GeminiAdapter,
        CursorAdapter,
        DroidAdapter,
        AiderAdapter,
    )
}
"""Adapter classes by name (the team file's ``agent`` value)."""

VERSION_TIMEOUT_S = 20.0
"""Longest wait for an agent CLI's ``--version``, seconds (node CLIs start slowly)."""


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


class InstalledAgent(msgspec.Struct, frozen=True, kw_only=True):
    """One agent CLI adapter and whether this machine has its program (``ap agents``)."""

    agent: str  # Adapter name, e.g. "codex".
    program: str  # Executable it runs, e.g. "codex", "cursor-agent".
    package: str  # Where the program comes from, e.g. "npm @openai/codex".
    path: str | None = None  # Where the program was found on PATH; None = not installed.
    version: str | None = None  # First line of its ``--version`` output, when asked for.
    error: str | None = None  # Why ``--version`` failed, if it did.


def installed_agents(*, versions: bool = False, path: str | None = None) -> list[InstalledAgent]:
    """Return every CLI adapter with where its program is on ``path`` (default ``$PATH``).

    With ``versions`` each found program is run with its version flag (in parallel, at
    most :data:`VERSION_TIMEOUT_S` each, stdin closed).
    """
    out = []
    for name, cls in ADAPTERS.items():
        if not issubclass(cls, CliAdapter):
            continue
        adapter = cls()
        found = shutil.which(adapter.program, path=path)
        out.append(
            InstalledAgent(agent=name, program=adapter.program, package=cls.package, path=found)
        )
    if versions:
        with ThreadPoolExecutor(max_workers=len(out) or 1) as pool:
            out = list(pool.map(lambda a: _with_version(a, path), out))
    return out


def _with_version(agent: InstalledAgent, path: str | None) -> InstalledAgent:
    if agent.path is None:
        return agent
    adapter = get_adapter(agent.agent)
    assert isinstance(adapter, CliAdapter)
    argv = [agent.path, *adapter.version_argv()[1:]]
    env = {**os.environ, "PATH": path} if path is not None else None
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=VERSION_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return msgspec.structs.replace(agent, error=str(e))
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines()]
    first = next((line for line in lines if line), "")
    if done.returncode != 0:
        return msgspec.structs.replace(agent, error=f"exit {done.returncode}: {first}"[:300])
    return msgspec.structs.replace(agent, version=first[:200])


__all__ = [
    "ADAPTERS",
    "Activity",
    "Adapter",
    "AgentTask",
    "CliAdapter",
    "CommandAdapter",
    "CommandSpec",
    "InstalledAgent",
    "LineParser",
    "TranscriptSummary",
    "get_adapter",
    "installed_agents",
    "render_prompt",
    "scope_paths",
    "summarize",
]
