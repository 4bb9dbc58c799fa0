"""The agent planner: a coding-agent CLI asked for a plan, and its answer read.

:func:`plan_prompt` asks for the plan in the plan file's JSON schema; :func:`agent_plan`
runs the agent non-interactively in its own process group, with a timeout;
:func:`parse_agent_plan` finds the plan in its output and checks it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ap_actors.analysis import RepoAnalysis
from ap_actors.planning.checks import check_plan
from ap_actors.planning.model import KeyPath, Plan, PlanError
from ap_actors.planning.planfile import plan_from_data
from ap_actors.team import Team

# --- reading the answer ---------------------------------------------------------------


def _find_plan(text: str) -> dict[str, Any] | None:
    """The last JSON object with an "objectives" key in ``text``, also inside a JSON
    string (an agent's stream-json event that carries the answer as text)."""
    decoder = json.JSONDecoder()
    for m in reversed(list(re.finditer(r"\{", text))):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found = _plan_in(value)
        if found is not None:
            return found
    return None


def _plan_in(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and "objectives" in value:
        return value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, str):
        return _find_plan(value) if '"objectives"' in value else None
    if isinstance(value, dict | list):
        for child in reversed(list(children)):
            found = _plan_in(child)
            if found is not None:
                return found
    return None


def parse_agent_plan(text: str, team: Team | None) -> Plan:
    """Read the plan from an agent's output and check it.

    The plan is the last JSON object with an ``"objectives"`` key: bare, in a
    ```` ```json ```` fence, or inside a string of a JSON event line (Claude Code
    ``--output-format stream-json``, Codex ``exec --json``). Prose around it is ignored.

    Raises:
        PlanError: no such object, or it is not a valid plan (unknown key, wrong type,
            a rule of :func:`check_plan`); the message starts with ``agent plan:``.
    """
    data = _find_plan(text)
    if data is None:
        raise PlanError(
            'agent plan: the agent printed no JSON object with an "objectives" key; ask it'
            " to end its answer with the plan in the schema of the prompt"
        )

    def fail(path: KeyPath, message: str) -> PlanError:
        return PlanError(f"agent plan: {message}")

    plan = plan_from_data(data, fail)
    try:
        check_plan(plan, team)
    except PlanError as e:
        raise PlanError(f"agent plan: {e}") from e
    return plan


# --- asking the agent -----------------------------------------------------------------


_PROMPT_LIST_MAX = 300  # Lines per list in the prompt; the agent can read the rest itself.

_SCHEMA = """\
{
  "objectives": [            // at least one
    {
      "id": "obj-1",         // unique; [a-z0-9][a-z0-9_-]*, at most 64 characters
      "title": "...",        // one line
      "description": "...",  // what to do, for the agent that carries it out
      "wave": 1,             // integer >= 1; objectives of one wave run in parallel
      "scope_touch": ["src/auth/", "/setup.py"],  // gitignore patterns it may change
      "scope_forbid": [".git/"],                  // patterns it must not change
      "worker": "",          // "" (any free worker) or a team worker id
      "depends_on": [],      // ids of objectives in earlier waves it needs
      "capabilities": []     // what the worker must offer, from the team's capabilities
    }
  ],
  "contracts": [             // interfaces one objective provides to others
    {"name": "auth.verify(token) -> Claims", "provider": "obj-1",
     "consumers": ["obj-2"], "description": "..."}
  ]
}"""


def _listing(items: list[str], empty: str = "(none)") -> str:
    if not items:
        return empty
    shown = items[:_PROMPT_LIST_MAX]
    more = [f"... and {len(items) - len(shown)} more"] if len(items) > len(shown) else []
    return "\n".join(f"- {item}" for item in [*shown, *more])


def plan_prompt(analysis: RepoAnalysis, request: str, team: Team) -> str:
    """Return the prompt that asks an agent for a plan in the plan file's JSON schema.

    It holds the request, the analysis (task type, suggested strategy, modules, entry
    points, test folders, config files, coordination points, hotspots, a summary of the
    import graph), the team (ids, agents, capabilities), the rules (exclusive scopes per
    wave, gitignore patterns, dependencies first, integration last) and the schema.
    Lists longer than 300 lines are cut; the agent runs in the repository and can look.
    """
    importers: dict[str, int] = {}
    for targets in analysis.imports.values():
        for t in targets:
            importers[t] = importers.get(t, 0) + 1
    busiest = sorted(importers.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
    edges = sum(len(t) for t in analysis.imports.values())
    folders: dict[tuple[str, str], int] = {}
    for src, targets in analysis.imports.items():
        for t in targets:
            a, b = posixpath.dirname(src) or ".", posixpath.dirname(t) or "."
            if a != b:
                folders[(a, b)] = folders.get((a, b), 0) + 1
    folder_lines = [f"{a} -> {b} ({n})" for (a, b), n in sorted(folders.items())]
    workers = [
        f"{w.id} (agent {w.agent}; capabilities: {', '.join(w.capabilities) or 'none'})"
        for w in team.workers
    ]
    per_wave = max(1, len(team.workers))
    return f"""\
You are the planner of an orchestrator that runs coding agents in parallel, each in its
own git worktree of this repository (the current directory). Split the owner's request
into objectives with exclusive file scopes, grouped into waves, and answer with the plan
as one JSON object. Do not change any file yourself.

# Owner request

{request.strip()}

# Analysis of the repository (commit {analysis.commit[:12] or "?"})

Task type: {analysis.task_type}
Suggested scope strategy: {analysis.scope_strategy}

Modules ({len(analysis.modules)}):
{_listing(analysis.modules)}

Entry points:
{_listing(analysis.entry_points)}

Test folders:
{_listing(analysis.test_dirs)}

Config files:
{_listing(analysis.config_files)}

Named by the request:
{_listing(analysis.named)}

Coordination points:
{_listing(analysis.coordination_points)}

Hotspots (shared files; only the last, integration objective may change them):
{_listing(analysis.hotspots)}

Import graph: {edges} internal imports among {len(analysis.imports)} importing files.
Most imported files (importers):
{_listing([f"{f} ({n})" for f, n in busiest])}
Imports between folders (count):
{_listing(folder_lines)}

# Team

{_listing(workers, "(no workers configured: plan for one)")}

# Rules

1. scope_touch and scope_forbid are gitignore patterns relative to the repository root:
   "src/auth/" is a folder and everything below it, "src/app.py" one file. A pattern
   with no slash before its end matches at any depth ("tests/" also matches
   "pkg/tests/", "*.py" every Python file), so anchor top-level names: "/setup.py",
   "/tests/". An objective may only change files its touch patterns match and no
   forbid pattern matches.
2. Two objectives of the same wave must not have touch patterns that can match a common
   path, existing or not yet created. Use at most {per_wave} objectives per wave (one
   per worker).
3. An objective that needs what another creates or changes lists it in depends_on and
   is in a later wave; providers come before their consumers. Keep independent work in
   the same wave so that it runs in parallel.
4. Shared files (the hotspots above, when they need changing) go into one integration
   objective in the last wave that depends on all others; every other objective lists
   them, and ".git/", in scope_forbid.
5. Ids are lowercase: [a-z0-9][a-z0-9_-]*. Waves are numbered from 1. worker is "" or
   one of the team's ids. Add a contract for each interface one objective provides to
   another.

# Answer

End your answer with the plan: exactly one JSON object in this schema (comments here
only explain; do not write them), in a ```json fence, with nothing after it.

{_SCHEMA}
"""


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, wait up to 2 s for its leader, then SIGKILL the group
    (what ignored SIGTERM, or a helper the agent started, must not outlive it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def agent_plan(
    analysis: RepoAnalysis,
    request: str,
    team: Team,
    argv: list[str],
    cwd: Path,
    timeout_s: float,
    on_start: Callable[[int], None] | None = None,
) -> Plan:
    """Ask an agent CLI for a plan, non-interactively, and check its answer.

    Every ``{prompt}`` in the argv template is replaced by :func:`plan_prompt`; when no
    token has one, the prompt goes to the agent's stdin. The agent runs in ``cwd`` in a
    new process group; on timeout the whole group gets SIGTERM, then SIGKILL once its
    leader is gone or after 2 s.

    Args:
        argv: the command template, e.g. ``["claude", "-p", "{prompt}"]``.
        cwd: where it runs (the repository).
        timeout_s: seconds it may take.
        on_start: called with the agent's process (and process group) id once it runs,
            so a caller can kill the group if it must stop first.

    Raises:
        PlanError: the command is empty or cannot start, it timed out, it exited
            non-zero, or its output holds no valid plan (see :func:`parse_agent_plan`);
            the message ends with the agent's last stderr line when it wrote one.
    """
    if not argv:
        raise PlanError("the agent planner has no command; configure its argv template")
    prompt = plan_prompt(analysis, request, team)
    in_argv = any("{prompt}" in token for token in argv)
    command = [token.replace("{prompt}", prompt) for token in argv]
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL if in_argv else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise PlanError(
            f"cannot run the agent planner {argv[0]!r}: {e.strerror or e};"
            " install it or fix its command"
        ) from e
    if on_start is not None:
        on_start(proc.pid)
    with proc:
        try:
            out, err = proc.communicate(None if in_argv else prompt.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=5.0)
            except subprocess.TimeoutExpired:  # a process that left the group holds a pipe
                err = b""
            last = _last_line(err)
            raise PlanError(
                f"the agent planner {argv[0]!r} did not finish within {timeout_s:g} s and was"
                f" killed; raise its timeout or check the agent"
                + (f" (its last error line: {last})" if last else "")
            ) from None
    last = _last_line(err)
    if proc.returncode != 0:
        raise PlanError(
            f"the agent planner {argv[0]!r} exited with status {proc.returncode}:"
            f" {last or 'no error output'}; check its command and credentials"
        )
    try:
        return parse_agent_plan(out.decode("utf-8", "replace"), team)
    except PlanError as e:
        raise PlanError(f"{e} (agent stderr: {last})" if last else str(e)) from e
