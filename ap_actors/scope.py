"""The scope algebra: which files an objective may change, and which objectives collide.

An objective's ``scope_touch`` and ``scope_forbid`` are gitignore patterns (gitignore(5),
as git 2.39 implements it in ``dir.c`` and ``wildmatch.c``). Its effective scope is the
set of files matched by some touch pattern and by no forbid pattern. A file path is
repository-relative POSIX (``src/auth/jwt.py``: non-empty segments, no ``.``/``..``, no
leading ``/``); a pattern matches it when it matches the path itself or one of its
parent directories, and a pattern with a trailing ``/`` only matches directories.
So any pattern that can name a folder covers everything below it: ``/*.py`` and
``tests/`` share ``a.py/tests/a`` (git ignores it with either), and an unanchored
``src/`` overlaps ``docs/`` at ``docs/src/a``; anchored literal paths stay apart.

Concrete paths are matched by pathspec. Whether two patterns can ever match a common
path (one that may not exist yet) is decided exactly: each pattern becomes a small
automaton over path strings, and a cheapest-first search over the product of both
automata, the forbid automata and the automaton of valid paths finds the shortest
readable witness or proves that there is none. Character sets are greenery
``Charclass`` objects; ``_language`` gives a pattern's language as a greenery ``Fsm``.
greenery's own ``to_fsm``/``&``/``-`` reduce every intermediate automaton (200 ms to
compile ``src/**/test_*.py``, 0.7 s for one ``&`` then ``-``), too slow for a plan of
100 patterns, so they serve the tests as an independent check of this search.

Matching is per Unicode code point, as in pathspec; git compares bytes, which differs
only for ``?`` and ``[...]`` against non-ASCII characters.
"""

from __future__ import annotations

import heapq
import itertools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeAlias

import msgspec
from greenery import Charclass, Fsm  # type: ignore[import-untyped]
from pathspec import GitIgnoreSpec

from ap_actors.errors import ScopeError
from ap_actors.events import Objective, ScopeConflict

__all__ = [
    "check_changes",
    "check_pattern",
    "find_conflicts",
    "in_scope",
    "matches",
    "overlap",
    "recolour",
]

# --- parsing --------------------------------------------------------------------------

_SLASH = Charclass("/")
_NOT_SLASH = ~_SLASH
_ANY = ~Charclass()
_DOT = Charclass(".")
_STAR = None  # An atom: `*`, any run of characters other than "/".
_GLOBSTAR = None  # A segment: `**`, any number of whole folders.

Atom: TypeAlias = "Charclass | None"
Segment: TypeAlias = "tuple[Atom, ...] | None"

# Leading folders of absolute paths on Linux and macOS that are rarely top folders of a
# repository. "/home/alice/..." is rejected; "home/alice/..." means the same to git.
_SYSTEM_ROOTS = frozenset(
    ["home", "Users", "root", "private", "Volumes", "mnt", "media", "tmp", "usr", "opt", "nix"]
)
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


class _Glob(NamedTuple):
    """A parsed scope pattern (git semantics)."""

    text: str  # The pattern as given to pathspec: trimmed, with git's meaning.
    anchored: bool  # Matches from the root (a leading or middle "/").
    dir_only: bool  # Had a trailing "/": matches directories only.
    segments: tuple[Segment, ...]  # Between "/"s; _GLOBSTAR for a `**` segment.


def _fail(pattern: str, problem: str) -> ScopeError:
    return ScopeError(f"scope pattern {pattern!r} {problem}")


def _trim_trailing_spaces(text: str) -> str:
    # git's trim_trailing_spaces(): drop the trailing run of unescaped spaces.
    last_space = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            if last_space is None:
                last_space = i
        else:
            if char == "\\":
                i += 1
                if i == len(text):
                    return text
            last_space = None
        i += 1
    return text if last_space is None else text[:last_space]


def _check_characters(pattern: str) -> None:
    for char in pattern:
        if char == "\0":
            raise _fail(pattern, "contains a NUL character; remove it")
        if unicodedata.category(char) == "Cc":
            raise _fail(pattern, f"contains the control character U+{ord(char):04X}; remove it")
        if unicodedata.category(char) == "Cs":
            raise _fail(pattern, f"contains the lone surrogate U+{ord(char):04X}; remove it")
        if char.isspace() and char != " ":
            raise _fail(pattern, f"contains the whitespace U+{ord(char):04X}; use a plain space")


def _check_not_absolute(pattern: str, text: str) -> None:
    if _DRIVE.match(text) or text.startswith("\\\\"):
        raise _fail(pattern, "is a Windows absolute path; write it relative to the repository")
    if text.startswith("~"):
        raise _fail(
            pattern,
            "starts with '~', a home directory; write it relative to the repository "
            "(or '\\~' for a folder literally named '~')",
        )
    parts = text.split("/")
    if text.startswith("/") and parts[1] in _SYSTEM_ROOTS and len([p for p in parts if p]) > 1:
        raise _fail(
            pattern,
            f"looks like an absolute filesystem path; write it relative to the repository "
            f"root, or as {text[1:]!r} if {parts[1]!r} really is a top folder of it",
        )


def _parse_class(pattern: str, text: str, i: int) -> tuple[Charclass, int]:
    """Parse the bracket expression at ``text[i] == "["``; return it and the index after."""
    j = i + 1
    negated = j < len(text) and text[j] in "!^"
    j += negated
    end = text.find("]", j)
    if end == -1:
        raise _fail(pattern, "has an unclosed '['; close it, or write '\\[' for a literal '['")
    if end == j:
        raise _fail(pattern, "has '[]'; write a literal ']' as '\\]' outside [...]")
    body = text[j:end]
    for bad, why in (
        ("/", "a '/' inside [...]; a character class never matches '/'"),
        ("\\", "a '\\' inside [...]; write the characters themselves"),
        ("[", "a '[' inside [...]; write ranges such as [a-zA-Z] instead of [:alpha:]"),
    ):
        if bad in body:
            raise _fail(pattern, f"has {why}")
    for double in ("--", "&&", "~~", "||"):
        if double in body:
            raise _fail(pattern, f"has {double!r} inside [...]; write the character once")
    ranges: list[tuple[str, str]] = []
    k = 0
    while k < len(body):
        first = last = body[k]
        if k + 2 < len(body) and body[k + 1] == "-":
            last = body[k + 2]
            if "-" in (first, last):
                raise _fail(pattern, "has a range ending in '-'; put a literal '-' first or last")
            if first > last:
                raise _fail(
                    pattern, f"has the reversed range '{first}-{last}'; write '{last}-{first}'"
                )
            k += 2
        ranges.append((first, last))
        k += 1
    charclass = Charclass(tuple(ranges))
    return (~(charclass | _SLASH) if negated else charclass), end + 1


def _parse_segment(pattern: str, text: str) -> Segment:
    if text == "**":
        return _GLOBSTAR
    atoms: list[Atom] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            escaped = text[i + 1]  # A lone trailing backslash was rejected before.
            if escaped.isascii() and escaped.isalnum():
                raise _fail(
                    pattern,
                    f"escapes {escaped!r}, which needs no escape; separate folders with '/'",
                )
            atoms.append(Charclass(escaped))
            i += 2
        elif char == "*":
            run = len(text[i:]) - len(text[i:].lstrip("*"))
            if run > 2:
                raise _fail(pattern, "has '***'; write '**' to cross folders or '*' within one")
            if run == 2:
                # wildmatch reads it as "*", but git strips an anchored pattern's literal
                # prefix first, so "/a**/b" becomes a globstar after all and matches "ab".
                raise _fail(pattern, "has '**' inside a name; write '*', or '**' between slashes")
            atoms.append(_STAR)
            i += 1
        elif char == "?":
            atoms.append(_NOT_SLASH)
            i += 1
        elif char == "[":
            charclass, i = _parse_class(pattern, text, i)
            atoms.append(charclass)
        else:
            atoms.append(Charclass(char))
            i += 1
    if len(atoms) <= 2 and all(atom == _DOT for atom in atoms):
        raise _fail(pattern, "has a '.' or '..' segment; write the path from the repository root")
    return tuple(atoms)


def _split(pattern: str, text: str) -> list[str]:
    """Split at unescaped "/" (a "\\/" is rejected: git and pathspec disagree on it)."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 == len(text):
                raise _fail(pattern, "ends with a lone '\\'; remove it or write '\\\\'")
            if text[i + 1] == "/":
                raise _fail(pattern, "escapes a '/'; a '/' always separates folders")
            i += 2
            continue
        if text[i] == "[":
            # A "/" inside [...] is rejected by _parse_class, so do not split there.
            end = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end != -1 and "/" in text[i:end]:
                raise _fail(pattern, "has a '/' inside [...]; a character class never matches '/'")
        if text[i] == "/":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


@lru_cache(maxsize=4096)
def _parse(pattern: str) -> _Glob:
    if not isinstance(pattern, str):
        raise ScopeError(f"scope pattern {pattern!r} is not a string")
    _check_characters(pattern)
    text = _trim_trailing_spaces(pattern)
    if not text:
        raise _fail(pattern, "is empty; write a path such as 'src/' or drop it")
    if text.startswith("#"):
        raise _fail(pattern, "starts with '#', which makes it a comment; write '\\#' instead")
    if text.startswith("!"):
        raise _fail(pattern, "negates; put the path in scope_forbid instead")
    if text == "/":
        raise _fail(pattern, "names the repository root; write '**' for every file")
    _check_not_absolute(pattern, text)
    parts = _split(pattern, text)
    rooted, dir_only = parts[0] == "", parts[-1] == ""
    body = parts[rooted : len(parts) - dir_only]
    anchored = rooted or len(body) > 1  # gitignore(5): a "/" other than a trailing one.
    if "" in body:
        raise _fail(pattern, "has an empty folder name ('//'); remove the extra '/'")
    segments = tuple(_parse_segment(pattern, part) for part in body)
    if dir_only and segments[-1] is _GLOBSTAR:
        # pathspec lets "foo/**/" match the file "foo/x"; git matches only what is inside
        # a folder in foo, which is what "foo/*/" means to both.
        text = text[:-3] + "*/"
    return _Glob(text, anchored, dir_only, segments)


def check_pattern(pattern: str) -> None:
    """Check that ``pattern`` is a valid scope pattern.

    A scope pattern is a gitignore(5) pattern without the features that make no sense in
    a scope: negation (``!``), comments (``#``), blank patterns. Also rejected: NUL and
    control characters, ``.``/``..`` or empty segments, ``\\/``, a lone trailing
    ``\\``, escaped letters or digits (a Windows separator in disguise), ``***``, ``**``
    inside a name, an
    unclosed ``[``, ``/``, ``\\``, ``[`` or a doubled ``-&~|`` inside ``[...]``,
    reversed ranges, and absolute filesystem paths (``~/x``, ``C:\\x``,
    ``/home/alice/repo/x``); most of these never match in git, the rest are read
    differently by git and pathspec.

    Raises:
        ScopeError: one line saying what is wrong and how to fix it.
    """
    _parse(pattern)


# --- automata ---------------------------------------------------------------------------


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
_HIDDEN_COST = 3  # A "." starting a segment makes a hidden file: avoid it when possible.


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


def _witness(touch: tuple[str, ...], forbid: tuple[str, ...]) -> str | None:
    """Return the cheapest valid path every ``touch`` and no ``forbid`` pattern matches.

    A* over the product automaton (heuristic: the most characters some touch pattern
    still needs); a path costs 1 per character of ``_CHEAP``, more for others and for
    a "." that starts a segment; ties go to characters earlier in ``_PREFERRED``. Of
    the characters that no automaton tells apart in a state only the best is tried.
    Returns None when there is no such path: the search then has exhausted the product.
    """
    positive = [_compile(p) for p in touch]
    longest = max((a.prefix for a in positive), key=len)
    if any(not longest.startswith(a.prefix) for a in positive):
        return None  # Anchored literal prefixes that diverge: disjoint, no search.
    # Every witness starts with `longest`; a forbid pattern whose prefix diverges from it
    # can match none of them.
    negative = [
        a
        for a in map(_compile, forbid)
        if longest.startswith(a.prefix) or a.prefix.startswith(longest)
    ]
    automata = positive + negative
    alphabet = _alphabet(frozenset().union(*(a.wide_cuts for a in automata)))
    chars, costs, size = alphabet.chars, alphabet.costs, len(alphabet.chars)
    split = len(positive) + 1
    masks = [a.masks if a.ascii_only else None for a in automata]
    touching = [(a.rows, a.step, a.distance, a.final) for a in positive]
    forbidding = [(a.rows, a.step, a.universal, a.final) for a in negative]
    # A state is (universe state, *automaton states). Paths are kept as strings of
    # chr(alphabet index) so that comparing them compares readability.
    start = (0, *(a.start for a in automata))
    heap: list[tuple[int, str, int, tuple[int, ...]]] = [(0, "", 0, start)]
    settled = set()
    while heap:
        _, path, cost, state = heapq.heappop(heap)
        if state in settled:
            continue
        settled.add(state)
        u = state[0]
        if (
            u == _U_FINAL
            and all([final[s] for (*_, final), s in zip(touching, state[1:], strict=False)])
            and not any(
                [final[s] for (*_, final), s in zip(forbidding, state[split:], strict=True)]
            )
        ):
            return "".join(chars[ord(c)] for c in path)
        mask = alphabet.special
        for a, m, s in zip(automata, masks, state[1:], strict=True):
            mask |= a.explicit(s, alphabet) if m is None else m[s]
        mask |= ~mask & (mask + 1)  # The best character that no automaton tells apart.
        u_next = _U_NEXT[u]
        while mask:
            low = mask & -mask
            mask ^= low
            i = low.bit_length() - 1
            if i >= size:
                break
            char = chars[i]
            u2 = u_next.get(char, _U_FINAL)
            if u2 < 0:
                continue
            nxt, h = [u2], 0
            for (rows, step, distance, _), s in zip(touching, state[1:], strict=False):
                t = rows[s].get(char)
                if t is None:
                    t = step(s, char)
                if not t:
                    break  # This touch pattern can no longer match.
                h = max(h, distance[t])
                nxt.append(t)
            else:
                for (rows, step, universal, _), s in zip(forbidding, state[split:], strict=True):
                    t = rows[s].get(char)
                    if t is None:
                        t = step(s, char)
                    if universal[t]:
                        break  # A forbid pattern matched a folder: all below is forbidden.
                    nxt.append(t)
                else:
                    key = tuple(nxt)
                    if key not in settled:
                        g = cost + costs[i] + (_HIDDEN_COST if u == 0 and char == "." else 0)
                        heapq.heappush(heap, (g + h, path + chr(i), g, key))
    return None


@lru_cache(maxsize=65536)
def _pair_witness(a: str, b: str, forbid: tuple[str, ...]) -> str | None:
    return _witness((a, b), forbid)


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


# --- public API --------------------------------------------------------------------------


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

    gitignore(5) semantics via pathspec's ``GitIgnoreSpec``, with git's reading where
    pathspec differs (see ``_parse``). A path containing a newline, which pathspec's
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


def overlap(
    touch_a: Sequence[str],
    touch_b: Sequence[str],
    forbid_a: Sequence[str] = (),
    forbid_b: Sequence[str] = (),
) -> list[tuple[str, str, str]]:
    """Return every pair of touch patterns, one per side, that can match a common path.

    Exact: a pair is listed if and only if some valid path (existing or not) is matched
    by both patterns and by no forbid pattern of either side. Its witness is such a
    path, short and readable: characters from ``a-z``, then ``0-9_.-``, never a control
    character, no hidden segment unless the patterns demand one (``*.py`` and
    ``tests/`` give ``tests/a.py``).

    Returns:
        ``[(pattern_a, pattern_b, witness), ...]`` in the order of ``touch_a`` then
        ``touch_b``; ``[]`` when the effective scopes are disjoint.

    Raises:
        ScopeError: a pattern is invalid (see :func:`check_pattern`).
    """
    return list(_overlaps(touch_a, touch_b, (*forbid_a, *forbid_b)))


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
