"""The scope algebra: which files an objective may change, and which objectives collide.

An objective's ``scope_touch`` and ``scope_forbid`` are scope patterns: gitignore(5)
patterns (as git 2.39 implements them in ``dir.c`` and ``wildmatch.c``) anchored at the
repository root. A scope pattern is read as if it began with ``/``, unless it begins
with ``**/`` (any depth) or already begins with ``/`` (:func:`anchored`): in a
``.gitignore`` a pattern without a middle ``/`` floats to any depth, but ``tests/`` in a
scope means the root tests folder. Everything else is gitignore(5): ``*`` and ``?`` do
not cross ``/``, a trailing ``/`` matches folders only, ``**`` spans folders, and
character classes and escapes work as in git. So ``*.py`` is the Python files at the
root, ``**/*.py`` every Python file, ``tests/`` the root tests folder, and ``x`` and
``/x`` mean the same.

An objective's effective scope is the set of files matched by some touch pattern and by
no forbid pattern. A file path is repository-relative POSIX (``src/auth/jwt.py``:
non-empty segments, no ``.``/``..``, no leading ``/``); a pattern matches it when it
matches the path itself or one of its parent directories. So any pattern that can name
a folder covers everything below it: ``src/`` conflicts with ``src/auth.py``,
``src/**/test_*.py`` with ``src/a/test_b.py``, while ``*.py`` and ``tests/`` are
disjoint (a root entry cannot be both); ``*.py`` does cover a root folder named
``a.py``, so it shares ``a.py/tests/a`` with ``**/tests/``. Reported conflicts name the
patterns as the owner wrote them.

Every operation reads a pattern through one parser, which validates it as written
(:func:`check_pattern`) and compiles its anchored form. Concrete paths are matched by
pathspec on the anchored patterns. Whether two patterns can ever match a common
path (one that may not exist yet) is decided exactly, with the shortest readable
witness path when there is one.

Matching is per Unicode code point, as in pathspec; git compares bytes, which differs
only for ``?`` and ``[...]`` against non-ASCII characters.

One module per concept:

- :mod:`~ap_actors.scope.patterns`: :func:`anchored`, parsing and validating patterns,
  the error messages.
- :mod:`~ap_actors.scope.automata`: the automata of patterns and of valid paths, the
  witness alphabet, and a pattern's language as a greenery ``Fsm`` for the tests.
- :mod:`~ap_actors.scope.witness`: the cheapest-witness search over their product.
- :mod:`~ap_actors.scope.matching`: :func:`matches`, :func:`in_scope`, :func:`overlap`
  and :func:`check_changes`.
- :mod:`~ap_actors.scope.waves`: :func:`find_conflicts` and :func:`recolour`.
"""

# The private names are not in __all__: the tests clear these caches and check the search
# against greenery through the package.
from ap_actors.scope.automata import _alphabet as _alphabet
from ap_actors.scope.automata import _compile as _compile
from ap_actors.scope.automata import _language as _language
from ap_actors.scope.matching import check_changes, in_scope, matches, overlap
from ap_actors.scope.patterns import _parse as _parse
from ap_actors.scope.patterns import anchored, check_pattern
from ap_actors.scope.waves import find_conflicts, recolour
from ap_actors.scope.witness import _pair_witness as _pair_witness

__all__ = [
    "anchored",
    "check_changes",
    "check_pattern",
    "find_conflicts",
    "in_scope",
    "matches",
    "overlap",
    "recolour",
]
