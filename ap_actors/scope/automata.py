"""Automata of scope patterns and of valid paths, and the alphabet of witnesses.

Each gitignore(5) pattern parsed by :mod:`ap_actors.scope.patterns` becomes a small NFA
over path strings (:class:`_Automaton`), determinised lazily; ``_u_step`` is the
automaton of valid repository paths; :func:`_alphabet` gives the characters a witness is
made of, most readable first, with their costs. :mod:`ap_actors.scope.witness` searches
the product of these automata.

Character sets are greenery ``Charclass`` objects; :func:`_language` gives a pattern's
language as a greenery ``Fsm``. greenery's own ``to_fsm``/``&``/``-`` reduce every
intermediate automaton (200 ms to compile ``src/**/test_*.py``, 0.7 s for one ``&`` then
``-``), too slow for a plan of 100 patterns, so they serve the tests as an independent
check of the search.
"""

from __future__ import annotations

import itertools
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from greenery import Charclass, Fsm  # type: ignore[import-untyped]

from ap_actors.scope.patterns import _ANY, _DOT, _GLOBSTAR, _NOT_SLASH, _SLASH, _STAR, _Glob, _parse


class _Automaton:
    """A pattern's language as an NFA, determinised lazily (subsets are memoised)."""

    def __init__(self, glob: _Glob) -> None:
        self.trans: list[list[tuple[Charclass, int]]] = [[]]
        eps: list[list[int]] = [[]]

        def new() -> int:
            self.trans.append([])
            eps.append([])
            return len(self.trans) - 1

        def step(state: int, charclass: Charclass) -> int:
            target = new()
            self.trans[state].append((charclass, target))
            return target

        def optional_folders(state: int) -> int:  # (.*/)?
            inner, join = new(), new()
            eps[state] += [inner, join]
            self.trans[inner] += [(_ANY, inner), (_SLASH, join)]
            return join

        cur = 0
        prefix: list[str] = []
        literal = glob.anchored
        if not glob.anchored:
            cur = optional_folders(cur)  # A pattern without "/" matches at any depth.
        for index, segment in enumerate(glob.segments):
            last = index == len(glob.segments) - 1
            if segment is _GLOBSTAR:
                literal = False
                if last:
                    self.trans[cur].append((_ANY, cur))
                else:
                    cur = optional_folders(cur)
                continue
            for atom in segment:
                if atom is _STAR:
                    literal = False
                    self.trans[cur].append((_NOT_SLASH, cur))
                else:
                    literal = literal and atom.num_chars() == 1 and not atom.negated
                    if literal:
                        prefix.append(chr(atom.ord_ranges[0][0]))
                    cur = step(cur, atom)
            if not last:
                cur = step(cur, _SLASH)
                prefix.append("/" if literal else "")
        inside = step(cur, _SLASH)  # The path continues below a matched folder.
        self.trans[inside].append((_ANY, inside))
        self.finals = frozenset({inside} if glob.dir_only else {cur, inside})
        # A final state that loops on everything accepts every continuation.
        self._universal = frozenset(s for s in self.finals if (_ANY, s) in self.trans[s])
        self.prefix = "".join(prefix)  # Every matched path starts with it.

        closures = []
        for state in range(len(self.trans)):
            seen, todo = {state}, [state]
            while todo:
                for target in eps[todo.pop()]:
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            closures.append(frozenset(seen))
        self._closure = closures
        self.classes = frozenset(c for row in self.trans for c, _ in row)
        # Where its character classes start or end beyond ASCII.
        self.wide_cuts = frozenset(
            cut for c in self.classes for low, high in c.ord_ranges for cut in (low, high + 1)
        ) - frozenset(range(0x81))
        # Fewest characters from each NFA state to a final one: the search's heuristic.
        far = len(self.trans) + 1
        self._distance = [0 if s in self.finals else far for s in range(len(self.trans))]
        changed = True
        while changed:
            changed = False
            for state, row in enumerate(self.trans):
                best = min(
                    [self._distance[t] + 1 for _, t in row]
                    + [self._distance[t] for t in eps[state]]
                    + [self._distance[state]]
                )
                if best < self._distance[state]:
                    self._distance[state], changed = best, True
        # The DFA, built lazily: subsets of NFA states are numbered as they are met.
        self._subsets: list[frozenset[int]] = []
        self._ids: dict[frozenset[int], int] = {}
        self.final: list[bool] = []  # DFA state -> accepts.
        self.universal: list[bool] = []  # DFA state -> accepts every continuation.
        self.distance: list[int] = []  # DFA state -> fewest characters to accept.
        self.rows: list[dict[str, int]] = []  # DFA state -> the transitions met so far.
        self._ranges: list[tuple[tuple[int, int], ...]] = []  # DFA state -> ranges it tests.
        self._explicit: dict[tuple[int, int], int] = {}
        # DFA state -> bit mask of the _PREFERRED characters it treats specially; the
        # whole of explicit() for an automaton whose classes stay within ASCII.
        self.masks: list[int] = []
        self.ascii_only = all(high < 0x80 for c in self.classes for _, high in c.ord_ranges)
        self.dead = self._intern(frozenset())  # 0
        self.start = self._intern(closures[0])

    def _intern(self, subset: frozenset[int]) -> int:
        found = self._ids.get(subset)
        if found is None:
            found = self._ids[subset] = len(self._subsets)
            self._subsets.append(subset)
            self.rows.append({})
            self.final.append(not self.finals.isdisjoint(subset))
            self.universal.append(not self._universal.isdisjoint(subset))
            self.distance.append(min((self._distance[s] for s in subset), default=1 << 30))
            ranges = {
                r for s in subset for charclass, _ in self.trans[s] for r in charclass.ord_ranges
            }
            self._ranges.append(tuple(ranges))
            self.masks.append(
                sum(_BIT[o] for lo, hi in ranges for o in range(lo, min(hi, 0x7E) + 1) if o in _BIT)
            )
        return found

    def explicit(self, state: int, alphabet: _Alphabet) -> int:
        """Return the bit mask of ``alphabet.chars`` that ``state`` treats specially.

        All other characters take ``state`` to one same state.
        """
        if self.ascii_only:
            return self.masks[state]
        key = (state, alphabet.ident)
        mask = self._explicit.get(key)
        if mask is None:
            ranges = self._ranges[state]
            mask = sum(
                1 << i
                for i, char in enumerate(alphabet.chars)
                if any(low <= ord(char) <= high for low, high in ranges)
            )
            self._explicit[key] = mask
        return mask

    def step(self, state: int, char: str) -> int:
        """Return the DFA state after ``char``."""
        found = self.rows[state].get(char)
        if found is None:
            targets: set[int] = set()
            for nfa_state in self._subsets[state]:
                for charclass, target in self.trans[nfa_state]:
                    if charclass.accepts(char):
                        targets |= self._closure[target]
            found = self.rows[state][char] = self._intern(frozenset(targets))
        return found

    def accepts(self, path: str) -> bool:
        state = self.start
        for char in path:
            state = self.step(state, char)
        return self.final[state]


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> _Automaton:
    return _Automaton(_parse(pattern))


# The automaton of valid paths: states 0 = at a segment's start, 1 = ".", 2 = "..",
# 3 = inside a valid segment (final), -1 = dead. Control characters and lone surrogates
# are left out so that witnesses never contain them; patterns cannot name one, so a path
# with one has a twin without it (another character no pattern names) that the same
# patterns match.
_U_FINAL = 3
_U_DOT = {0: 1, 1: 2, 2: 3, 3: 3}
_U_INVALID = Charclass((("\0", "\x1f"), ("\x7f", "\x9f"), ("\ud800", "\udfff")))
_U_CLASSES = (_SLASH, _DOT, _U_INVALID)

# _u_step for the characters of an alphabet, which are all valid.
_U_NEXT = ({"/": -1, ".": 1}, {"/": -1, ".": 2}, {"/": -1, ".": 3}, {"/": 0})


def _u_step(state: int, char: str) -> int:
    if char == "/":
        return 0 if state == _U_FINAL else -1
    if char == ".":
        return _U_DOT[state]
    return -1 if _U_INVALID.accepts(char) else _U_FINAL


# Witness characters, most readable first; the first group costs 1 per character.
_CHEAP = "abcdefghijklmnopqrstuvwxyz0123456789_.-/"
_PREFERRED = (
    _CHEAP
    + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    + "".join(c for c in map(chr, range(0x20, 0x7F)) if not c.isalnum() and c not in _CHEAP)
)
_RANK = {c: i for i, c in enumerate(_PREFERRED)}
_BIT = {ord(c): 1 << i for i, c in enumerate(_PREFERRED)}


def _rank_and_cost(char: str) -> tuple[int, int]:
    if char in _RANK:
        return _RANK[char], (1 if char in _CHEAP else 2)
    return 0x100 + ord(char), (3 if char.isprintable() else 4)


def _pick(low: int, high: int) -> str | None:
    """Return the most readable character in ``chr(low)..chr(high)``, never a control."""
    for char in _PREFERRED:
        if low <= ord(char) <= high:
            return char
    fallback = None
    for code in range(max(low, 0x80), min(high, low + 0x10000) + 1):
        char = unicodedata.category(chr(code))
        if char in ("Cc", "Cs"):  # Control characters and lone surrogates: never.
            continue
        if chr(code).isprintable():
            return chr(code)
        fallback = fallback or chr(code)
    return fallback


class _Alphabet(NamedTuple):
    """The characters a witness is made of: every printable ASCII character and one
    per range of other characters that no pattern tells apart."""

    chars: str  # Most readable first.
    costs: tuple[int, ...]  # Cost of each character in a witness.
    special: int  # Bit mask of the characters the universe treats specially ("/", ".").
    ident: int  # Unique id, keys the automata's per-alphabet caches.


_ALPHABET_IDS = itertools.count()


@lru_cache(maxsize=256)
def _alphabet(wide_cuts: frozenset[int]) -> _Alphabet:
    """Return the alphabet for patterns whose classes start or end at ``wide_cuts``."""
    cuts = sorted({0x80, 0x110000} | wide_cuts)
    wide = (_pick(low, end - 1) for low, end in itertools.pairwise(cuts))
    chars = _PREFERRED + "".join(sorted({c for c in wide if c}, key=_rank_and_cost))
    special = sum(1 << i for i, char in enumerate(chars) if char in "/.")
    costs = tuple(_rank_and_cost(char)[1] for char in chars)
    return _Alphabet(chars, costs, special, next(_ALPHABET_IDS))


def _language(pattern: str) -> Fsm:
    """Return the valid paths ``pattern`` matches as a complete greenery ``Fsm``.

    Exactly the language the overlap search works on, for greenery's set algebra
    (``&``, ``-``, ``.empty()``); the tests check the search against it.
    """
    automaton = _compile(pattern)
    classes = frozenset(_U_CLASSES) | automaton.classes
    cuts = sorted({0, 0x110000}.union(*({lo, hi + 1} for c in classes for lo, hi in c.ord_ranges)))
    pieces: dict[tuple[bool, ...], list[tuple[str, str]]] = {}
    for low, end in itertools.pairwise(cuts):
        signature = tuple(c.accepts(chr(low)) for c in classes)
        pieces.setdefault(signature, []).append((chr(low), chr(end - 1)))
    alphabet = {}  # greenery wants the piece holding the last code point as a negation.
    for ranges in pieces.values():
        piece = Charclass(tuple(ranges))
        if ranges[-1][1] == chr(0x10FFFF):
            piece = ~Charclass(
                tuple(r for other in pieces.values() if other is not ranges for r in other)
            )
        alphabet[piece] = ranges[0][0]
    dead = (-1, automaton.dead)
    states, index = [(0, automaton.start)], {(0, automaton.start): 0}
    transitions: dict[int, dict[Charclass, int]] = {}
    for state in states:
        u, subset = state
        transitions[index[state]] = row = {}
        for piece, char in alphabet.items():
            u2 = _u_step(u, char) if u >= 0 else -1
            nxt = (u2, automaton.step(subset, char)) if u2 >= 0 else dead
            nxt = nxt if nxt[1] != automaton.dead else dead
            if nxt not in index:
                index[nxt] = len(states)
                states.append(nxt)
            row[piece] = index[nxt]
    finals = {i for (u, s), i in index.items() if u == _U_FINAL and automaton.final[s]}
    return Fsm(
        alphabet=alphabet, states=range(len(states)), initial=0, finals=finals, map=transitions
    )
