"""Checking a plan: the rules every plan passes, whatever made it (:func:`check_plan`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ap_actors.errors import ScopeError
from ap_actors.events import Objective
from ap_actors.planning.model import KeyPath, Plan, PlanError
from ap_actors.scope import check_pattern
from ap_actors.team import Team

if TYPE_CHECKING:
    from ap_actors.planning.planfile import PlanSource

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _name_of(plan: Plan, i: int) -> str:
    oid = plan.objectives[i].id
    return f"objective {oid!r}" if oid else f"objectives[{i}]"


def check_plan(plan: Plan, team: Team | None, *, source: PlanSource | None = None) -> None:
    """Check a plan's objectives, dependencies and contracts; raise on the first problem.

    Rules: at least one objective; ids unique and matching ``[a-z0-9][a-z0-9_-]*`` (at
    most 64 characters: an id names a git branch and a worktree folder, which must not
    differ only in case on a case-insensitive disk); titles not blank; waves from 1;
    every objective has a ``scope_touch`` pattern and every touch and forbid pattern
    passes :func:`ap_actors.scope.check_pattern`; a ``worker``, when set, is in the
    team (when a team is given); every ``depends_on`` id exists, there is no dependency
    cycle, and a dependency is in an earlier wave; a contract has a name, and its
    provider and consumers exist. Overlapping scopes are not checked here
    (:func:`ap_actors.scope.find_conflicts` does that).

    Args:
        plan: the plan.
        team: the team its workers must belong to, or None to skip that rule.
        source: the file text, to prefix the message with ``FILE:LINE:COL``.

    Raises:
        PlanError: one line, ``[FILE:LINE:COL: ]what is wrong; how to fix``.
    """

    def fail(path: KeyPath, message: str) -> PlanError:
        return source.error(path, message) if source else PlanError(message)

    if not plan.objectives:
        raise fail(("objectives",), "the plan has no objectives; add at least one")
    ids = [o.id for o in plan.objectives]
    known = ", ".join(ids)
    for i, o in enumerate(plan.objectives):
        name = _name_of(plan, i)
        if not _ID.fullmatch(o.id):
            raise fail(
                ("objectives", i, "id"),
                f"objectives[{i}] has the id {o.id!r}; use 1-64 lowercase letters, digits,"
                " '-' and '_', starting with a letter or digit (ids name git branches)",
            )
        if o.id in ids[:i]:
            raise fail(
                ("objectives", i, "id"),
                f"the id {o.id!r} is used by two objectives; give each its own id",
            )
        if not o.title.strip():
            raise fail(("objectives", i, "title"), f"{name} has no title; add a one-line title")
        if o.wave < 1:
            raise fail(
                ("objectives", i, "wave"),
                f"{name} has wave = {o.wave}; waves are numbered from 1",
            )
        if not o.scope_touch:
            raise fail(
                ("objectives", i, "scope_touch"),
                f"{name} has no scope_touch pattern; list the files or folders it may"
                ' change, e.g. scope_touch = ["src/auth/"]',
            )
        for key in ("scope_touch", "scope_forbid"):
            for k, pattern in enumerate(getattr(o, key)):
                try:
                    check_pattern(pattern)
                except ScopeError as e:
                    raise fail(("objectives", i, key, k), f"{name}: {key}: {e}") from e
        if o.worker and team is not None and team.worker(o.worker) is None:
            raise fail(
                ("objectives", i, "worker"),
                f"{name} names the worker {o.worker!r}, which is not in the team; use one"
                f" of {', '.join(team.ids()) or '(none: the team is empty)'}, or leave"
                " worker empty",
            )
    wave_of = {o.id: o.wave for o in plan.objectives}
    for i, o in enumerate(plan.objectives):
        for dep in o.depends_on:
            if dep not in wave_of:
                raise fail(
                    ("objectives", i, "depends_on"),
                    f"{_name_of(plan, i)} depends on {dep!r}, which is not an objective of"
                    f" this plan; use one of {known}",
                )
    cycle = _cycle(plan.objectives)
    if cycle:
        i = ids.index(cycle[0])
        raise fail(
            ("objectives", i, "depends_on"),
            f"dependency cycle: {' -> '.join(cycle)}; remove one of these depends_on entries",
        )
    for i, o in enumerate(plan.objectives):
        for dep in o.depends_on:
            if wave_of[dep] >= o.wave:
                raise fail(
                    ("objectives", i, "depends_on"),
                    f"{_name_of(plan, i)} (wave {o.wave}) depends on {dep!r} (wave"
                    f" {wave_of[dep]}); a dependency runs in an earlier wave: move"
                    f" {o.id!r} to wave {wave_of[dep] + 1} or later",
                )
    for j, c in enumerate(plan.contracts):
        label = f"contract {c.name!r}" if c.name.strip() else f"contracts[{j}]"
        if not c.name.strip():
            raise fail(("contracts", j, "name"), f"{label} has no name; name the interface")
        for key, value in [("provider", c.provider), *(("consumers", x) for x in c.consumers)]:
            if value not in wave_of:
                raise fail(
                    ("contracts", j, key),
                    f"{label}: {key} {value!r} is not an objective of this plan; use one of"
                    f" {known}",
                )


def _cycle(objectives: list[Objective]) -> list[str]:
    """A dependency cycle as ``[a, b, a]``, or [] (depth-first, in plan order)."""
    deps = {o.id: o.depends_on for o in objectives}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in deps.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for o in objectives:
        if o.id not in state:
            found = visit(o.id)
            if found:
                return found
    return []
