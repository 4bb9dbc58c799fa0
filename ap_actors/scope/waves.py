"""Waves: the conflicts between objectives of one wave, and moving objectives apart.

Two objectives conflict when a touch pattern of each can match a common path that no
forbid pattern of either matches (gitignore(5) patterns anchored at the root; see
:func:`ap_actors.scope.overlap`). Conflicts name the patterns as the owner wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ap_actors.errors import ScopeError
from ap_actors.events import Objective, ScopeConflict
from ap_actors.scope.matching import _overlaps
from ap_actors.scope.patterns import check_pattern


def _check_patterns(objectives: Sequence[Objective]) -> None:
    for o in objectives:
        for pattern in (*o.scope_touch, *o.scope_forbid):
            check_pattern(pattern)


def _conflict(a: Objective, b: Objective) -> bool:
    pairs = _overlaps(a.scope_touch, b.scope_touch, (*a.scope_forbid, *b.scope_forbid))
    return next(pairs, None) is not None


def find_conflicts(objectives: Sequence[Objective]) -> list[ScopeConflict]:
    """Return every overlap between two objectives of the same wave.

    For each wave (ascending), each pair of its objectives in plan order, and each pair
    of their touch patterns that :func:`overlap` reports (with both objectives' forbid
    patterns subtracted), one :class:`ScopeConflict` with its witness path.

    Returns:
        The conflicts in that order; ``[]`` when every wave is conflict-free.

    Raises:
        ScopeError: a pattern is invalid (see :func:`check_pattern`).
    """
    _check_patterns(objectives)
    conflicts = []
    for wave in sorted({o.wave for o in objectives}):
        members = [o for o in objectives if o.wave == wave]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                forbid = (*a.scope_forbid, *b.scope_forbid)
                for pattern_a, pattern_b, witness in _overlaps(
                    a.scope_touch, b.scope_touch, forbid
                ):
                    conflicts.append(
                        ScopeConflict(
                            wave=wave,
                            objective_a=a.id,
                            objective_b=b.id,
                            pattern_a=pattern_a,
                            pattern_b=pattern_b,
                            witness=witness,
                        )
                    )
    return conflicts


def _dependencies(objectives: Sequence[Objective]) -> list[set[int]]:
    """Return each objective's dependencies as plan indices, after checking them."""
    index: dict[str, int] = {}
    for i, o in enumerate(objectives):
        if o.id in index:
            raise ScopeError(f"objective id {o.id!r} appears twice in the plan; make ids unique")
        index[o.id] = i
    deps = []
    for o in objectives:
        unknown = [d for d in o.depends_on if d not in index]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ScopeError(
                f"objective {o.id!r} depends on unknown objective(s) {names}; fix depends_on"
            )
        deps.append({index[d] for d in o.depends_on})
    # Kahn's algorithm: what it cannot order lies on or behind a cycle.
    waiting = [len(d) for d in deps]
    dependants: list[list[int]] = [[] for _ in objectives]
    for i, ds in enumerate(deps):
        for d in ds:
            dependants[d].append(i)
    ready = [i for i, w in enumerate(waiting) if not w]
    while ready:
        for j in dependants[ready.pop()]:
            waiting[j] -= 1
            if not waiting[j]:
                ready.append(j)
    if any(waiting):
        # Every objective left waits on another one left: walk back until one repeats.
        path = [min(i for i, w in enumerate(waiting) if w)]
        while path.count(path[-1]) < 2:
            path.append(min(d for d in deps[path[-1]] if waiting[d]))
        cycle = path[path.index(path[-1]) :]
        names = " -> ".join(objectives[i].id for i in reversed(cycle))
        raise ScopeError(f"depends_on has a cycle: {names}; remove one of these dependencies")
    return deps


def recolour(objectives: Sequence[Objective]) -> list[Objective]:
    """Move objectives to later waves so that no wave holds two conflicting objectives.

    Waves are filled in order. Wave w takes first the objectives planned for it, in plan
    order, then those moved out of earlier waves, by planned wave and plan order; an
    objective joins when every objective it depends on is in an earlier wave and it
    conflicts (see :func:`overlap`) with no objective that joined before it. So an
    objective keeps its wave when it can, and otherwise goes to the earliest later wave
    that works. Waves are then renumbered 1..n without holes, in order. Deterministic.

    Returns:
        The objectives in the given order, each with its new ``wave`` (the same object
        when its wave is unchanged).

    Raises:
        ScopeError: an invalid pattern, a duplicate objective id, a ``depends_on`` id
            that names no objective, or a ``depends_on`` cycle (the message names them).
    """
    _check_patterns(objectives)
    deps = _dependencies(objectives)
    placed: dict[int, int] = {}
    wave = min((o.wave for o in objectives), default=1)
    while len(placed) < len(objectives):
        ready = sorted(
            (
                i
                for i, o in enumerate(objectives)
                if i not in placed
                and o.wave <= wave
                and all(d in placed and placed[d] < wave for d in deps[i])
            ),
            key=lambda i: (objectives[i].wave != wave, objectives[i].wave, i),
        )
        members: list[int] = []
        for i in ready:
            if not any(_conflict(objectives[i], objectives[j]) for j in members):
                members.append(i)
                placed[i] = wave
        waiting = [o.wave for i, o in enumerate(objectives) if i not in placed]
        wave = wave + 1 if members or not waiting else max(wave + 1, min(waiting))
    number = {w: n for n, w in enumerate(sorted(set(placed.values())), start=1)}
    return [
        o if o.wave == number[placed[i]] else msgspec.structs.replace(o, wave=number[placed[i]])
        for i, o in enumerate(objectives)
    ]
