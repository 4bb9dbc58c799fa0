"""The base of the parsers of agents that print JSON: line accounting, documents, paths.

Agent CLIs run non-interactively print one JSON object per line on stdout
(``../shared/fixtures/agent-streams/FORMATS.md``); the worker's transcript also holds
their stderr and its own ``[ts] COMMAND:`` / ``[ts] EXIT:`` lines, and some recorded
formats are one pretty-printed JSON document spread over many lines. A
:class:`JsonStreamParser` subclass implements :meth:`JsonStreamParser.event` for one
decoded object; the base:

- decodes a line that holds a JSON object and hands it to :meth:`~JsonStreamParser.event`;
- gathers a JSON document spread over lines (a line that is just ``{`` or ``[`` starts
  one) and hands the whole of it to :meth:`~JsonStreamParser.document`;
- gives every other line to the ``command`` agent's plain-text parser
  (:class:`~ap_actors.agents.command.CommandLineParser`): stderr, tracebacks, the
  worker's own lines;
- accounts for every line (:attr:`JsonStreamParser.accounting`): a line yields
  activities (``activity``), is folded into a later activity (``folded``: a delta, the
  start of a tool call whose end carries the result), is known and deliberately silent
  (``quiet``: lifecycle events such as ``turn.started``), is an unknown kind turned
  into an ``other`` activity carrying its raw type (``other``), or is plain text
  (``text``). A line the subclass returned nothing for without saying why counts as
  ``unaccounted``; the tests require none.

Paths: an absolute path under the objective's worktree is made relative to it (the
event catalog's ``file_path`` is repository-relative); any other path is kept as the
agent printed it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias, TypeVar

import msgspec

from ap_actors.agents.base import MAX_DESCRIPTION, Activity, clip
from ap_actors.agents.command import CommandLineParser
from ap_actors.events import ActivityType

Disposition: TypeAlias = Literal["activity", "folded", "quiet", "other", "text", "unaccounted"]
"""What became of one line (see the module doc)."""

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest multi-line JSON document gathered, bytes; a longer one is read as text."""

_decode = msgspec.json.Decoder().decode

_T = TypeVar("_T")


class JsonStreamParser:
    """A :class:`~ap_actors.agents.base.LineParser` for an agent's JSON stream.

    Args:
        workdir: the objective's worktree; absolute paths under it are made relative
            (None: paths are kept as printed).

    Subclasses implement :meth:`event` and may override :meth:`document` and
    :meth:`end`. Inside them, :meth:`fold` and :meth:`quiet` say why a line gives no
    activity, :meth:`other` builds the activity of an unknown kind, and :meth:`activity`
    and :meth:`usage` build the others. A subclass that overrides :meth:`feed` to read a
    format of its own hands a line it does not read to the base (``super().feed``) or to
    the text parser (:meth:`text`), reads one itself through :meth:`dispatch` (or counts
    it with :meth:`account`) so that it is accounted for, and checks :attr:`gathering`
    first: the lines of a multi-line document belong to the base.
    """

    def __init__(self, workdir: str | None = None) -> None:
        self.workdir = os.path.normpath(workdir) if workdir else None
        self.accounting: Counter[Disposition] = Counter()
        """Lines seen, by :data:`Disposition`."""
        self.quiet_types: Counter[str] = Counter()
        """Raw types of the ``quiet`` and ``folded`` lines, for ``ap parse``'s summary."""
        self._text = CommandLineParser()
        self._doc: list[str] | None = None  # lines of a multi-line document being read
        self._doc_bytes = 0
        self._why: Disposition | None = None

    # --- LineParser -------------------------------------------------------------------

    def feed(self, line: str) -> list[Activity]:
        if self._doc is not None:
            return self._feed_document(line)
        text = line.strip()
        if text in ("{", "["):
            self._doc, self._doc_bytes = [line], len(line)
            return []
        if text[:1] == "{" and text[-1:] == "}":
            try:
                obj = _decode(text)
            except (msgspec.DecodeError, UnicodeError):  # UnicodeError: a lone surrogate
                obj = None
            if isinstance(obj, dict):
                return self.dispatch(self.event, obj)
        return self.text(line)

    def finish(self) -> list[Activity]:
        out: list[Activity] = []
        if self._doc is not None:  # an unfinished document: its lines are text after all
            lines, self._doc = self._doc, None
            for held in lines:
                out += self.text(held)
        self._why = None
        end = self.end()
        out += end
        out += self._text.finish()
        return out

    # --- for subclasses ---------------------------------------------------------------

    @property
    def gathering(self) -> bool:
        """Whether a multi-line JSON document is being gathered (its lines go to the base)."""
        return self._doc is not None

    def text(self, line: str) -> list[Activity]:
        """Return the activities of a plain-text line, accounted for as ``text``.

        The line goes to the ``command`` agent's parser, which may hold it back as part
        of a block (a traceback) and give the block's activity with a later line.
        """
        self.accounting["text"] += 1
        return self._text.feed(line)

    def account(self, disposition: Disposition, lines: int = 1, kind: str = "") -> None:
        """Count ``lines`` lines read outside :meth:`dispatch` as ``disposition``.

        For a format whose unit spans lines and is read when it ends (a log record and
        its continuation lines). ``kind``: the raw type of ``folded`` or ``quiet`` lines,
        noted in :attr:`quiet_types` as :meth:`fold` and :meth:`quiet` do.
        """
        self.accounting[disposition] += lines
        if kind:
            self.quiet_types[kind] += 1

    def dispatch(
        self, handler: Callable[[_T], list[Activity]], arg: _T, *, lines: int = 1
    ) -> list[Activity]:
        """Return ``handler(arg)``, accounting for ``lines`` lines by what it said.

        The disposition (:data:`Disposition`) is what the handler's last call of
        :meth:`fold`, :meth:`quiet` or :meth:`other` said, except that it is
        ``activity`` when the handler returned activities and that call was not
        :meth:`other`, and ``unaccounted`` when it returned none without such a call.
        The base reads each JSON line (:meth:`event`) and document this way. Not to be
        called from inside a handler: one disposition is tracked at a time.
        """
        self._why = None
        out = handler(arg)
        why: Disposition | None = self._why
        if out and why != "other":
            why = "activity"
        elif why is None:
            why = "unaccounted"
        self.accounting[why] += lines
        return out

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        """Return the activities of one decoded JSON object (one line).

        Return ``[]`` only after :meth:`fold` or :meth:`quiet`; an unknown kind returns
        ``[self.other(kind, obj)]``.
        """
        raise NotImplementedError

    def document(self, obj: Any) -> list[Activity]:
        """Return the activities of a JSON document spread over several lines.

        The default hands a dict to :meth:`event` and each dict of a list to it in turn.
        """
        if isinstance(obj, dict):
            return self.event(obj)
        out: list[Activity] = []
        if isinstance(obj, list):
            for item in obj:
                if isinstance(item, dict):
                    self._why = None
                    got = self.event(item)
                    out += got
        if not out:
            self.quiet("document")
        return out

    def end(self) -> list[Activity]:
        """Return what a block still held back yields at the end of the stream."""
        return []

    def fold(self, kind: str) -> list[Activity]:
        """Mark the current line as folded into a later activity; return ``[]``."""
        self._why = "folded"
        self.quiet_types[kind] += 1
        return []

    def quiet(self, kind: str) -> list[Activity]:
        """Mark the current line as a known kind with nothing to show; return ``[]``."""
        self._why = "quiet"
        self.quiet_types[kind] += 1
        return []

    def other(self, kind: str, obj: Mapping[str, Any] | None = None) -> Activity:
        """Return the ``other`` activity of an unknown kind ``kind`` (its raw type)."""
        self._why = "other"
        kind = " ".join(kind.split())  # a type read from the stream may hold line breaks
        body = ""
        if obj is not None:
            body = msgspec.json.encode(obj).decode()
            if len(body) > 200:
                body = body[:199] + "…"
        return Activity(
            activity_type="other", description=clip(f"{kind}: {body}" if body else kind)
        )

    def path(self, raw: object) -> str | None:
        """Return ``raw`` as a path: relative to the worktree when it lies under it."""
        if not isinstance(raw, str) or not raw:
            return None
        if self.workdir and os.path.isabs(raw):
            norm = os.path.normpath(raw)
            if norm == self.workdir:
                return "."
            if norm.startswith(self.workdir + os.sep):
                return norm[len(self.workdir) + 1 :]
        return raw

    def activity(
        self,
        activity_type: ActivityType,
        description: object,
        *,
        tool_name: str | None = None,
        file_path: object = None,
        exit_code: object = None,
    ) -> Activity:
        """Build an activity: ``description`` is made one clipped string, the path relative."""
        return Activity(
            activity_type=activity_type,
            description=clip(one_line(description)) or activity_type,
            tool_name=tool_name or None,
            file_path=self.path(file_path),
            exit_code=exit_code
            if isinstance(exit_code, int) and not isinstance(exit_code, bool)
            else None,
        )

    def usage(
        self, description: str, input_tokens: int, output_tokens: int, cost_usd: float = 0.0
    ) -> Activity:
        """Build a ``usage`` activity: the tokens and cost (US dollars) of one report.

        Each usage activity carries an increment, so that a transcript's sum is the
        run's total (:func:`~ap_actors.agents.base.summarize`). ``description`` is the
        parser's summary of the report, made one line (it may quote a field of the
        stream, e.g. a result's subtype) and clipped to
        :data:`~ap_actors.agents.base.MAX_DESCRIPTION`.
        """
        return Activity(
            activity_type="usage",
            description=clip(one_line(description)) or "usage",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
        )

    # --- internals --------------------------------------------------------------------

    def _feed_document(self, line: str) -> list[Activity]:
        assert self._doc is not None
        self._doc.append(line)
        self._doc_bytes += len(line) + 1
        closes = line.rstrip()[-1:] in ("}", "]") and not line[:1].isspace()
        if not closes:
            if self._doc_bytes <= MAX_DOCUMENT_BYTES:
                return []
            lines, self._doc = self._doc, None  # too big: read as text
            out: list[Activity] = []
            for held in lines:
                out += self.text(held)
            return out
        try:
            obj = _decode("\n".join(self._doc))
        except (msgspec.DecodeError, UnicodeError):  # UnicodeError: a lone surrogate
            return []  # a closing bracket of an inner block; keep gathering
        lines, self._doc = self._doc, None
        return self.dispatch(self.document, obj, lines=len(lines))


def one_line(value: object) -> str:
    """Return ``value`` as one line of text: whitespace runs become one space.

    A value that is not a string is JSON-encoded first. Text longer than
    :data:`~ap_actors.agents.base.MAX_DESCRIPTION` is cut to that length before it is
    split, and ends `` …``: a description is clipped to that length anyway, and a huge
    text then costs no more than a long one.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    if len(text) > MAX_DESCRIPTION:
        text = text[:MAX_DESCRIPTION] + " …"
    return " ".join(text.split())


def as_int(value: object) -> int:
    """Return a token count from a JSON value: a non-negative int, else 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value) if 0 <= value < 1e18 else 0


def as_cost(value: object) -> float:
    """Return a cost in US dollars from a JSON value: a finite non-negative float, else 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if 0 <= value < 1e12 else 0.0
