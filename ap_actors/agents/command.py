"""The ``command`` agent: runs any configured command, and reads its plain-text output.

``commands`` expands the worker's :class:`~ap_actors.agents.base.CommandSpec` (or the
objective's own ``command``, which overrides it) for the task. The worker runs each
argv in the worktree and writes the transcript: before each step the line
``[<ts>] COMMAND: <argv, shell-quoted>`` (:func:`command_line`), then the step's output,
then ``[<ts>] EXIT: <code>`` (:func:`exit_line`; a negative code is the number of the
signal that killed it). ``<ts>`` is ISO 8601 UTC, e.g. ``2025-10-08T10:36:45Z``.

:class:`CommandLineParser` turns the transcript's lines into activities. It reads:

- Bracketed lines (seed 001's activity log, ``[<timestamp>] KIND: text``; the timestamp
  starts with a digit, KIND is case-insensitive): ``TOOL: name - description`` →
  tool_use with ``tool_name``; ``ERROR:`` → error; ``THINKING:``/``REASONING:`` →
  reasoning; ``MESSAGE:`` → message; ``EDIT:``/``FILE:`` → file_change; ``TEST:`` →
  testing; ``COMMAND:`` → command; ``EXIT: <code>`` → command with ``exit_code``;
  ``USAGE: input_tokens=N output_tokens=N cost_usd=X`` → usage. Another KIND gives a
  message ``KIND: text``. TOOL, ERROR, EDIT, FILE and TEST take ``file_path`` from the
  first path-looking word of the text (one with a file extension, else one with ``/``).
- Python tracebacks: ``Traceback (most recent call last):`` up to the first following
  line that is not indented (``SomeError: message``) are ONE error activity: that last
  line is the description, ``file_path`` the last ``File "..."`` of the block that is
  not a ``<pseudo-file>``, kept as printed. Blank lines inside the block are skipped.
- pytest: the result summary (``=== 3 passed, 1 failed in 0.12s ===``, ``-q``'s
  ``3 passed in 0.12s``, ``no tests ran``), ``FAILED``/``ERROR``/``SKIPPED`` result
  lines, verbose ``path::test PASSED`` and progress ``path ..F. [ 50%]`` lines (with
  ``file_path``), and also the session banner and section rules
  (``=== test session starts ===``, ``___ test_x ___``) and header lines (platform,
  rootdir, plugins, collected N items) → testing. The banners are kept, not dropped,
  so that every line of the output is accounted for; the feed shows where a run began.
- ruff: ``--output-format concise`` findings ``path:line:col: CODE message`` → message
  with ``file_path`` (like any line starting with ``path:line:``, e.g. mypy's). The
  default "full" format's block (``CODE message``, `` --> path:line:col``, the source
  snippet and ``help:``, up to a blank line) → ONE message with ``file_path``; the
  header line waits for the next line to know whether a block follows. Summaries
  (``Found 3 errors (3 fixed, 0 remaining).``, ``2 files reformatted, 5 files left
  unchanged``) → message.
- A bare ``error: ...``/``ERROR: ...``/``fatal: ...`` line (git, pip, pytest usage
  errors, ``error[E0308]:``) → error.
- Blank lines give nothing; any other line → message with the line as description.

Descriptions are stripped and cut to ``MAX_DESCRIPTION`` characters.
"""

from __future__ import annotations

import math
import re
import shlex
import time
from collections.abc import Sequence

from ap_actors.agents.base import Activity, Adapter, AgentTask, CommandSpec, clip
from ap_actors.errors import AgentError
from ap_actors.events import ActivityType


class CommandAdapter(Adapter):
    """Runs the worker's configured command templates; parses plain-text output."""

    name = "command"

    def commands(self, task: AgentTask, spec: CommandSpec | None) -> list[list[str]]:
        """Return the expanded argv of each step (see :meth:`CommandSpec.argvs`).

        The objective's ``command`` (a string template), when set, replaces ``spec``.

        Raises:
            AgentError: no command is configured, or the objective's is invalid.
            ScopeError: a scope pattern is invalid.
        """
        if task.objective.command is not None:
            spec = CommandSpec.from_config(command=task.objective.command)
        if spec is None:
            raise AgentError(
                "the command agent has no command to run; set the worker's command"
                ' (command = "your-tool {scope}") or the objective\'s'
            )
        return spec.argvs(task)

    def parser(self, workdir: str | None = None) -> CommandLineParser:
        return CommandLineParser()


def timestamp(ts: float | None = None) -> str:
    """Return ``ts`` (Unix seconds; now when None) as ``2025-10-08T10:36:45Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def command_line(argv: Sequence[str], ts: float | None = None) -> str:
    """Return the transcript line the worker writes before running ``argv`` (no newline).

    Arguments holding control characters (a ``{prompt}`` spans lines) are written in
    bash's ``$'...'`` quoting, so the line stays one line and is still valid bash.
    """
    return f"[{timestamp(ts)}] COMMAND: {' '.join(_shell_quote(a) for a in argv)}"


def exit_line(code: int, ts: float | None = None) -> str:
    """Return the transcript line the worker writes after a step exits with ``code``."""
    return f"[{timestamp(ts)}] EXIT: {code}"


def _shell_quote(arg: str) -> str:
    if not any(ord(c) < 32 or ord(c) == 127 for c in arg):
        return shlex.quote(arg)
    escaped = []
    for c in arg:
        if c in "\\'":
            escaped.append("\\" + c)
        elif c == "\n":
            escaped.append("\\n")
        elif c == "\t":
            escaped.append("\\t")
        elif ord(c) < 32 or ord(c) == 127:
            escaped.append(f"\\x{ord(c):02x}")
        else:
            escaped.append(c)
    return "$'" + "".join(escaped) + "'"


# --- the parser ---------------------------------------------------------------------

BRACKETED = re.compile(r"\[(?P<ts>\d[^\]]*)\]\s+(?P<kind>[A-Za-z_]+):\s*(?P<rest>.*)")
"""A bracketed line, ``[<ts>] KIND: text``: the worker's own and seed 001's activity log."""
_KINDS: dict[str, ActivityType] = {
    "TOOL": "tool_use",
    "ERROR": "error",
    "THINKING": "reasoning",
    "REASONING": "reasoning",
    "MESSAGE": "message",
    "EDIT": "file_change",
    "FILE": "file_change",
    "TEST": "testing",
    "COMMAND": "command",
    "EXIT": "command",
    "USAGE": "usage",
}
_WITH_PATH = frozenset({"TOOL", "ERROR", "EDIT", "FILE", "TEST"})
_TOOL = re.compile(r"(?P<tool>\S+)(?:\s+-\s+(?P<desc>.*))?")
_EXIT = re.compile(r"(?P<code>[+-]?\d+)\b")
_USAGE_FIELD = re.compile(r"\b(input_tokens|output_tokens|cost_usd)=(\S+)")

TRACEBACK_HEAD = "Traceback (most recent call last):"
"""The first line of a Python traceback."""
_TB_FILE = re.compile(r'\s+File "(?P<path>[^"]+)", line \d+')

_PYTEST_RULE = re.compile(r"(?P<bar>[=_-])(?P=bar){2,} (?P<title>.+?) (?P=bar){3,}")
_PYTEST_QUIET_SUMMARY = re.compile(
    r"(?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun)"
    r"\b.*|no tests ran) in \d+(?:\.\d+)?s\b.*"
)
_PYTEST_RESULT = re.compile(
    r"(?:FAILED|ERROR|PASSED|XFAIL|XPASS|SKIPPED(?: \[\d+\])?) (?P<path>[^\s:\[]+\.\w+)[:\s]?"
)
_PYTEST_VERBOSE = re.compile(
    r"(?:\[gw\d+\] \[\s*\d+%\] \w+ )?(?P<path>[^\s:\[]+\.\w+)::\S.*?"
    r"(?:\s(?:PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*)?"
)
_PYTEST_PROGRESS = re.compile(r"(?:(?P<path>[^\s:]+\.\w+) )?[.FEsxXR]+\s*\[\s*\d+%\]")
_PYTEST_HEADER = re.compile(
    r"platform \S+ -- Python |rootdir: |configfile: |testpaths: |plugins: |cachedir: "
    r"|collecting |collected \d+ items?"
)

_DIAG_HEAD = re.compile(r"[A-Z]{1,4}\d{1,4}(?: \[\*\])? \S|unformatted: ")
_DIAG_LOCATION = re.compile(r"\s*--> (?P<path>[^\s:]+):\d+")
_DIAG_BODY = re.compile(r"\s|\d+\s*[|+-](?:\s|$)|[|+-](?:\s|$)|(?:help|note|info|hint)\b")

_BARE_ERROR = re.compile(r"(?:ERROR|Error|error|FATAL|Fatal|fatal)(?:\[[^\]]*\])?:\s")
_LOCATION = re.compile(r"(?P<path>[^\s:]+\.\w+):\d+(?::\d+)?(?::|\s|$)")

_FILE_WORD = re.compile(r"[\w./~+-]*\w\.[A-Za-z][A-Za-z0-9_+-]{0,9}")
_WORD_EDGES = "'\"`()[]{}<>,;!?"


def path_in(text: str) -> str | None:
    """Return the first path-looking word of ``text``, or None.

    A word with a file extension (``auth.py``, ``src/auth.py:12:3`` → ``src/auth.py``)
    is preferred to one that only holds a ``/`` (``src/auth/``). URLs are not paths.
    """
    slashed = None
    for raw in text.split():
        word = raw.strip(_WORD_EDGES).rstrip(".:")
        word = re.sub(r"(?::\d+)+$", "", word.split("::")[0])
        if not word or "://" in word or not any(c.isalnum() for c in word):
            continue
        if _FILE_WORD.fullmatch(word):
            return word
        if slashed is None and "/" in word:
            slashed = word
    return slashed


class _Traceback:
    """A Python traceback block being read."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.last = TRACEBACK_HEAD

    def activity(self, final: str | None = None) -> Activity:
        return Activity(
            activity_type="error", description=clip(final or self.last), file_path=self.path
        )


class _Diagnostic:
    """A ruff "full" format diagnostic block being read (header, location, snippet)."""

    def __init__(self, header: str, path: str) -> None:
        self.header = header
        self.path = path

    def activity(self) -> Activity:
        return Activity(activity_type="message", description=clip(self.header), file_path=self.path)


class CommandLineParser:
    """The ``command`` adapter's :class:`~ap_actors.agents.base.LineParser` (see module doc)."""

    def __init__(self) -> None:
        self._traceback: _Traceback | None = None
        self._diagnostic: _Diagnostic | None = None
        self._held: str | None = None  # a diagnostic header waiting for its next line

    def feed(self, line: str) -> list[Activity]:
        out: list[Activity] = []
        if self._traceback is not None:
            if not line.strip():
                return out
            if line.startswith(TRACEBACK_HEAD):  # a new traceback before the end of this one
                out.append(self._traceback.activity())
                self._traceback = _Traceback()
                return out
            if line[:1].isspace():
                if (m := _TB_FILE.match(line)) and not m["path"].startswith("<"):
                    self._traceback.path = m["path"]
                self._traceback.last = line
                return out
            out.append(self._traceback.activity(line))
            self._traceback = None
            return out
        if self._diagnostic is not None:
            if line.strip() and _DIAG_BODY.match(line):
                return out
            out.append(self._diagnostic.activity())
            self._diagnostic = None
            if not line.strip():
                return out
        if self._held is not None:
            header, self._held = self._held, None
            if m := _DIAG_LOCATION.match(line):
                self._diagnostic = _Diagnostic(header, m["path"])
                return out
            out.append(Activity(activity_type="message", description=clip(header)))
        out += self._line(line)
        return out

    def finish(self) -> list[Activity]:
        out = []
        if self._traceback is not None:
            out.append(self._traceback.activity())
        if self._diagnostic is not None:
            out.append(self._diagnostic.activity())
        if self._held is not None:
            out.append(Activity(activity_type="message", description=clip(self._held)))
        self._traceback = self._diagnostic = self._held = None
        return out

    def _line(self, line: str) -> list[Activity]:
        """Classify a line read outside any block."""
        text = line.strip()
        if not text:
            return []
        if line.startswith(TRACEBACK_HEAD):
            self._traceback = _Traceback()
            return []
        if m := BRACKETED.fullmatch(text):
            return [_bracketed(m["kind"].upper(), m["rest"].strip())]
        if _DIAG_HEAD.match(line):
            self._held = line
            return []
        kind: ActivityType = "message"
        path = None
        if (
            _PYTEST_RULE.fullmatch(text)
            or _PYTEST_QUIET_SUMMARY.fullmatch(text)
            or _PYTEST_HEADER.match(text)
        ):
            kind = "testing"
        elif m := (
            _PYTEST_RESULT.match(text)
            or _PYTEST_VERBOSE.fullmatch(text)
            or _PYTEST_PROGRESS.fullmatch(text)
        ):
            kind, path = "testing", m["path"]
        elif _BARE_ERROR.match(text):
            kind, path = "error", path_in(text.split(":", 1)[1])
        elif m := _LOCATION.match(text):
            path = m["path"]
        return [Activity(activity_type=kind, description=clip(text), file_path=path)]


def _bracketed(kind: str, rest: str) -> Activity:
    activity_type = _KINDS.get(kind)
    if activity_type is None:
        return Activity(activity_type="message", description=clip(f"{kind}: {rest}"))
    description = rest or kind
    tool = None
    exit_code = None
    if kind == "TOOL" and (m := _TOOL.fullmatch(rest)):
        tool, description = m["tool"], m["desc"] or m["tool"]
    elif kind == "EXIT" and (m := _EXIT.match(rest)):
        exit_code = int(m["code"])
        description = f"exit code {exit_code}"
    elif kind == "USAGE":
        return _usage(rest)
    return Activity(
        activity_type=activity_type,
        description=clip(description),
        tool_name=tool,
        file_path=path_in(description) if kind in _WITH_PATH else None,
        exit_code=exit_code,
    )


def _usage(rest: str) -> Activity:
    counts: dict[str, float] = {}
    for key, value in _USAGE_FIELD.findall(rest):
        try:
            counts[key] = float(value)
        except ValueError:
            continue
    return Activity(
        activity_type="usage",
        description=clip(rest or "USAGE"),
        input_tokens=_count(counts.get("input_tokens", 0.0)),
        output_tokens=_count(counts.get("output_tokens", 0.0)),
        cost_usd=cost if math.isfinite(cost := counts.get("cost_usd", 0.0)) else 0.0,
    )


def _count(value: float) -> int:
    """A token count from a parsed number; 0 for nan, infinities and negatives."""
    return int(value) if 0 <= value < 1e18 else 0
