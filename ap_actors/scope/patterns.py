"""Scope patterns: parsing and validation, with the error messages a planner sees.

A scope pattern is a gitignore(5) pattern anchored at the repository root
(:func:`anchored`), read as git 2.39 reads it (``dir.c``: ``trim_trailing_spaces``,
anchoring on a leading or middle ``/``, a trailing ``/`` for folders only;
``wildmatch.c``: ``*``, ``?``, ``[...]``, ``**``), minus what makes no sense in a scope
or is read differently by git and pathspec. :func:`check_pattern` says which;
:func:`_parse` turns a valid pattern into the segments and atoms (greenery ``Charclass``
objects) that :mod:`ap_actors.scope.automata` compiles.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple, TypeAlias

from greenery import Charclass  # type: ignore[import-untyped]

from ap_actors.errors import ScopeError

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

    text: str  # The pattern as given to pathspec: anchored, trimmed, with git's meaning.
    anchored: bool  # Matches from the root (a leading or middle "/" once anchored).
    dir_only: bool  # Had a trailing "/": matches directories only.
    segments: tuple[Segment, ...]  # Between "/"s; _GLOBSTAR for a `**` segment.


def anchored(pattern: str) -> str:
    """Return the gitignore(5) pattern that means what the scope pattern ``pattern`` means.

    A scope pattern is anchored at the repository root, as if it began with ``/``,
    unless it begins with ``**/`` (any depth) or already begins with ``/``: in a scope,
    ``tests/`` is the root tests folder, not every folder named tests as in a
    ``.gitignore``. Everything else is gitignore(5). So ``*.py`` is the Python files
    at the root (and everything in a root folder named like ``x.py``), ``**/*.py``
    every Python file, ``tests/`` the root tests folder, ``/setup.py`` and
    ``setup.py`` the root ``setup.py``. git and pathspec read the result as the scope
    algebra reads ``pattern``.

    Args:
        pattern: a scope pattern; not validated (see :func:`check_pattern`).

    Returns:
        ``pattern`` with a leading ``/`` added when it needs one, else ``pattern``.
    """
    return pattern if pattern.startswith(("/", "**/")) else "/" + pattern


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
    # Checked as written (a pattern "home/x" is fine, "/home/x" is not); read anchored.
    text = anchored(text)
    parts = _split(pattern, text)
    rooted, dir_only = parts[0] == "", parts[-1] == ""
    body = parts[rooted : len(parts) - dir_only]
    # gitignore(5): a "/" other than a trailing one; only "**/" itself stays floating.
    is_anchored = rooted or len(body) > 1
    if "" in body:
        raise _fail(pattern, "has an empty folder name ('//'); remove the extra '/'")
    segments = tuple(_parse_segment(pattern, part) for part in body)
    if dir_only and segments[-1] is _GLOBSTAR:
        # pathspec lets "foo/**/" match the file "foo/x"; git matches only what is inside
        # a folder in foo, which is what "foo/*/" means to both.
        text = text[:-3] + "*/"
    return _Glob(text, is_anchored, dir_only, segments)


def check_pattern(pattern: str) -> None:
    """Check that ``pattern``, as written, is a valid scope pattern.

    A scope pattern is a gitignore(5) pattern, anchored at the root (see
    :func:`anchored`), without the features that make no sense in
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
