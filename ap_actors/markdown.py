"""Markdown for reports built from untrusted text: escaping, code spans, capped lists.

CommonMark 0.31 (https://spec.commonmark.org/0.31.2/): free text is escaped so that it
stays inside the line or paragraph it is put in (no heading, list item, thematic break,
fence or emphasis can start from it); code spans and fenced blocks get a fence longer
than any backtick run inside them, so no content can close them. Every function is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "capped",
    "code",
    "codes",
    "document",
    "escape",
    "escape_paragraphs",
    "fenced",
]

_INLINE = re.compile(r"([\\`*_\[\]<>])")
# A line start that would open a block: heading, list item, thematic break, setext
# underline, fence. The first character is escaped, or the dot of "1." / "1)".
_BLOCK_START = re.compile(r"^(#{1,6}(?:\s|$)|[-+](?:\s|$)|=+\s*$|-{2,}\s*$|~{3,})")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(\s|$)")


def escape(s: str) -> str:
    """Escape one line of free text for use inside a markdown line.

    Runs of white space, newlines included, become one space.
    """
    line = " ".join(s.split())
    line = _INLINE.sub(r"\\\1", line)
    # A trailing run of "#" would be read as a heading's closing sequence.
    line = re.sub(r"(\s)(#+)$", r"\1\\\2", line)
    if _BLOCK_START.match(line):
        return "\\" + line
    return _ORDERED.sub(r"\1\\\2\3", line)


def escape_paragraphs(s: str) -> str:
    """Escape multi-line free text as paragraphs: lines kept, blank lines collapsed.

    Returns ``_(empty)_`` for text that is empty or only white space.
    """
    lines = [escape(line) for line in s.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) or "_(empty)_"


def code(s: str) -> str:
    """Return ``s`` as an inline code span (CommonMark: fence longer than any run inside)."""
    s = " ".join(s.splitlines())
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def codes(items: Iterable[str], empty: str = "_none_") -> str:
    """Return ``items`` as comma-separated code spans, or ``empty`` when there are none."""
    out = ", ".join(code(i) for i in items)
    return out or empty


def fenced(text: str, info: str = "") -> str:
    """Return ``text`` as a fenced code block whose fence no line of it can close."""
    runs = [len(r) for r in re.findall(r"`{3,}", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def capped(items: Sequence[str], cap: int) -> list[str]:
    """Return the lines of a bullet list of ``items`` as code spans, at most ``cap`` of them.

    More items end the list with "- … and N more"; no items give ``["_none_"]``.
    """
    lines = [f"- {code(i)}" for i in items[:cap]]
    if len(items) > cap:
        lines.append(f"- … and {len(items) - cap} more")
    return lines or ["_none_"]


def document(lines: list[str]) -> str:
    """Join lines into one document ending with exactly one newline."""
    return "\n".join(lines).strip("\n") + "\n"
