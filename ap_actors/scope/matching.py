"""Matching paths against scope patterns, and the exact overlap of two scopes.

Patterns are gitignore(5) patterns anchored at the root (see
:func:`ap_actors.scope.anchored`). Concrete paths are matched by pathspec's
``GitIgnoreSpec`` on the anchored patterns, with git's reading where pathspec differs;
whether two scopes share a path is decided by the search of
:mod:`ap_actors.scope.witness`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

from pathspec import GitIgnoreSpec

from ap_actors.errors import ScopeError
from ap_actors.scope.automata import _compile
from ap_actors.scope.patterns import _parse, check_pattern
from ap_actors.scope.witness import _pair_witness


def _check_path(path: str) -> None:
    if (
        not isinstance(path, str)
        or "\0" in path
        or any(seg in ("", ".", "..") for seg in path.split("/"))
    ):
        raise ScopeError(
            f"path {path!r} is not a repository-relative file path "
            "(like 'src/a.py': no leading or trailing '/', no empty, '.' or '..' segment)"
        )


@lru_cache(maxsize=1024)
def _spec(patterns: tuple[str, ...]) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines([_parse(p).text for p in patterns])


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Return whether some pattern matches ``path`` or one of its parent directories.

    Each pattern is anchored at the root (see :func:`anchored`: ``tests/`` matches
    ``tests/a`` but not ``a/tests/b``), then read with gitignore(5) semantics via
    pathspec's ``GitIgnoreSpec``, with git's reading where pathspec differs (see
    ``_parse``). A path containing a newline, which pathspec's
    regular expressions do not cross, is matched by the scope automaton instead.

    Args:
        path: repository-relative POSIX file path, e.g. ``"src/auth/jwt.py"``.
        patterns: scope patterns; none matches nothing.

    Raises:
        ScopeError: a pattern is invalid (see :func:`check_pattern`) or ``path`` is not
            a repository-relative path.
    """
    _check_path(path)
    for pattern in patterns:
        check_pattern(pattern)
    if "\n" in path:
        return any(_compile(p).accepts(path) for p in patterns)
    return bool(patterns) and _spec(tuple(patterns)).match_file(path)


def in_scope(path: str, touch: Sequence[str], forbid: Sequence[str]) -> bool:
    """Return whether ``path`` is in the effective scope: touched and not forbidden.

    Raises:
        ScopeError: as :func:`matches`.
    """
    return matches(path, touch) and not matches(path, forbid)


def _overlaps(
    touch_a: Sequence[str], touch_b: Sequence[str], forbid: Sequence[str]
) -> Iterator[tuple[str, str, str]]:
    for pattern in (*touch_a, *touch_b, *forbid):
        check_pattern(pattern)
    key = tuple(sorted(set(forbid)))
    for a in touch_a:
        for b in touch_b:
            # The witness is the cheapest path of a symmetric language: order-free key.
            witness = _pair_witness(*sorted((a, b)), key)
            if witness is not None:
                yield a, b, witness


def overlap(
    touch_a: Sequence[str],
    touch_b: Sequence[str],
    forbid_a: Sequence[str] = (),
    forbid_b: Sequence[str] = (),
) -> list[tuple[str, str, str]]:
    """Return every pair of touch patterns, one per side, that can match a common path.

    Exact: a pair is listed if and only if some valid path (existing or not) is matched
    by both patterns and by no forbid pattern of either side, all anchored at the root
    (see :func:`anchored`). Its witness is such a path, short and readable: characters
    from ``a-z``, then ``0-9_.-``, never a control character, no hidden segment unless
    the patterns demand one (``**/*.py`` and ``tests/`` give ``tests/a.py``; ``*.py``
    and ``tests/`` are disjoint).

    Returns:
        ``[(pattern_a, pattern_b, witness), ...]`` in the order of ``touch_a`` then
        ``touch_b``, each pattern as given; ``[]`` when the effective scopes are
        disjoint.

    Raises:
        ScopeError: a pattern is invalid (see :func:`check_pattern`).
    """
    return list(_overlaps(touch_a, touch_b, (*forbid_a, *forbid_b)))


def check_changes(
    paths: Sequence[str], touch: Sequence[str], forbid: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Split an objective's changed files into the two kinds of scope violation.

    Args:
        paths: repository-relative paths the objective changed (e.g. from ``git diff
            --name-only``).
        touch: the objective's ``scope_touch``.
        forbid: the objective's ``scope_forbid``.

    Returns:
        ``(outside_touch, inside_forbid)``: the changed paths no touch pattern matches,
        and those some forbid pattern matches; each sorted, without duplicates. A path
        can be in both.

    Raises:
        ScopeError: as :func:`matches`.
    """
    for pattern in (*touch, *forbid):
        check_pattern(pattern)
    outside = sorted({p for p in paths if not matches(p, touch)})
    inside = sorted({p for p in paths if matches(p, forbid)})
    return outside, inside
