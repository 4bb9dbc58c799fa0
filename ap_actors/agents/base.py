"""What every agent adapter implements, and the pieces they share.

Source: ``DESIGN.md``, "Workers and agents". A worker runs one objective through an
adapter (``ap_actors/agents/<name>.py``): :meth:`Adapter.commands` gives the argv of each
step, run in order in the objective's worktree; the worker writes their output to a
transcript file, and the log monitor feeds its lines to the adapter's
:class:`LineParser`, which turns them into :class:`Activity` values (the body of a
``worker_activity`` event).

A worker's configured command is a :class:`CommandSpec`: argv templates with
placeholders, expanded per task by :meth:`CommandSpec.argvs`.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import msgspec

from ap_actors.errors import AgentError
from ap_actors.events import ActivityType, Contract, Objective
from ap_actors.scope import check_pattern, matches

MAX_DESCRIPTION = 2_000
"""Longest activity description, characters; longer text is cut (see :func:`clip`)."""

PLACEHOLDERS = ("prompt", "objective", "title", "session", "workdir", "scope")
"""Names a command template may use, each written ``{name}``."""

_GLOB_CHARS = frozenset("*?[\\")  # With "\\": "\\#a" names "#a", found by matching.


class AgentTask(msgspec.Struct, frozen=True, kw_only=True):
    """One run of one objective by one agent: everything its prompt and command need."""

    session_id: str  # Owner session the objective belongs to.
    objective: Objective  # The objective to carry out (scopes included).
    workdir: str  # Absolute path of the objective's git worktree; commands run there.
    request: str = ""  # The owner request, free text.
    contracts: list[Contract] = []  # The plan's contracts (those of this objective are used).
    coordination_points: list[str] = []  # Paths several objectives depend on.
    attempt: int = 1  # 1-based attempt number of this objective.
    model: str = ""  # Model the agent should use (the team file's ``model``); "" = its default.


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """One thing an agent did, parsed from its output: a ``worker_activity`` without ids."""

    activity_type: ActivityType  # Kind of activity (tool_use, reasoning, message, ...).
    description: str  # What happened, one line, at most MAX_DESCRIPTION characters.
    tool_name: str | None = None  # Tool the agent used (edit, shell, read ...), if any.
    file_path: str | None = None  # Path the activity touches, as the agent printed it.
    exit_code: int | None = None  # Exit status of a command, if known.
    input_tokens: int = 0  # Model input tokens (usage activities).
    output_tokens: int = 0  # Model output tokens (usage activities).
    cost_usd: float = 0.0  # Model cost in US dollars (usage activities).


class LineParser(Protocol):
    """Turns an agent's output, one line at a time, into activities.

    Stateful: use one parser per transcript. ``feed`` never raises on odd input; a line
    it cannot classify becomes a ``message``.
    """

    def feed(self, line: str) -> list[Activity]:
        """Parse one line (without its newline); may hold it back as part of a block."""
        ...

    def finish(self) -> list[Activity]:
        """Return the activity of a block still held back when the stream has ended."""
        ...


class TranscriptSummary(msgspec.Struct, kw_only=True):
    """What a whole transcript says, read through an adapter's parser (:func:`summarize`)."""

    lines: int = 0  # Lines read.
    activities: dict[str, int] = {}  # Activity type -> count.
    input_tokens: int = 0  # Sum of the usage activities' input tokens.
    output_tokens: int = 0  # Sum of the usage activities' output tokens.
    cost_usd: float = 0.0  # Sum of the usage activities' cost, US dollars.
    last_error: str = ""  # Description of the last error activity, "" if none.


def summarize(parser: LineParser, lines: Iterable[str]) -> TranscriptSummary:
    """Feed ``lines`` (without newlines) to ``parser``; return the totals.

    Usage activities carry increments (each adapter's contract), so their sums are the
    run's token counts and cost.
    """
    out = TranscriptSummary()
    counts: dict[str, int] = {}
    n = 0

    def take(activities: list[Activity]) -> None:
        for a in activities:
            counts[a.activity_type] = counts.get(a.activity_type, 0) + 1
            if a.activity_type == "usage":
                out.input_tokens += a.input_tokens
                out.output_tokens += a.output_tokens
                out.cost_usd += a.cost_usd
            elif a.activity_type == "error":
                out.last_error = a.description

    for line in lines:
        n += 1
        take(parser.feed(line))
    take(parser.finish())
    out.lines = n
    out.activities = counts
    out.cost_usd = round(out.cost_usd, 6)
    return out


def read_transcript(path: str | Path) -> Iterator[str]:
    """Yield the lines of a transcript file without their newlines (bad UTF-8 replaced).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        for raw in f:
            yield raw.rstrip(b"\r\n").decode("utf-8", "replace")


class Adapter(ABC):
    """An agent CLI: how to run it for a task, and how to read what it prints."""

    name: ClassVar[str]  # The ``agent`` value of the team file, e.g. "command", "codex".

    @abstractmethod
    def commands(self, task: AgentTask, spec: CommandSpec | None) -> list[list[str]]:
        """Return the argv of each step, to be run in order in ``task.workdir``.

        Args:
            task: the objective run.
            spec: the worker's configured command, None when it has none.

        Raises:
            AgentError: the adapter cannot build a command (e.g. it needs a spec).
        """

    @abstractmethod
    def parser(self, workdir: str | None = None) -> LineParser:
        """Return a new parser for one transcript.

        Args:
            workdir: the objective's worktree; a parser makes absolute paths under it
                relative to it (None: paths are kept as the agent printed them).
        """


class CliAdapter(Adapter):
    """An agent with its own CLI (codex, claude, ...): one run of :attr:`program` per task.

    Without a configured command the adapter builds the argv itself (:meth:`argv`); a
    worker's configured command (a :class:`CommandSpec`, e.g. to pass extra flags or a
    different executable) replaces it, and the adapter's parser still reads the output.
    """

    program: ClassVar[str]  # Executable looked up on PATH, e.g. "codex".
    package: ClassVar[str] = ""  # Where it comes from, e.g. "npm @openai/codex".

    def commands(self, task: AgentTask, spec: CommandSpec | None) -> list[list[str]]:
        """Return ``[argv(task)]``, or the expanded ``spec`` when the worker has one.

        Raises:
            ScopeError: a scope pattern is invalid (``{scope}`` in a spec, or an adapter
                that names the scope's files).
        """
        if spec is not None:
            return spec.argvs(task)
        return [self.argv(task)]

    @abstractmethod
    def argv(self, task: AgentTask) -> list[str]:
        """Return the argv that runs the agent non-interactively on ``task``.

        It runs in ``task.workdir``, prints the agent's machine-readable stream on
        stdout and is given :func:`render_prompt` as its prompt.
        """

    def version_argv(self) -> list[str]:
        """Return the argv that prints the CLI's version (``ap agents``)."""
        return [self.program, "--version"]


def clip(text: str) -> str:
    """Return ``text`` stripped and cut to :data:`MAX_DESCRIPTION` characters."""
    text = text.strip()
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def render_prompt(task: AgentTask) -> str:
    """Return the task prompt for an agent (deterministic: same task, same text).

    It holds the owner request, the objective (id, title, description), the scope
    patterns one per line under ``SCOPE_TOUCH`` and ``SCOPE_FORBID``, the contracts the
    objective provides and consumes, the coordination points, and the rules: touch
    nothing outside SCOPE_TOUCH, never touch SCOPE_FORBID, do not commit.
    """
    obj = task.objective
    out = [f"You are carrying out objective {obj.id} of session {task.session_id}."]
    if task.attempt > 1:
        out.append(f"This is attempt {task.attempt}; an earlier attempt did not succeed.")
    if task.request.strip():
        out += ["", "Owner request:", task.request.strip()]
    out += ["", f"Objective {obj.id}: {obj.title}"]
    if obj.description.strip():
        out.append(obj.description.strip())
    out += ["", "SCOPE_TOUCH (gitignore-style patterns: the only paths you may change):"]
    out += obj.scope_touch or ["(none)"]
    out += ["", "SCOPE_FORBID (patterns you must never change, even inside SCOPE_TOUCH):"]
    out += obj.scope_forbid or ["(none)"]
    provides = [c for c in task.contracts if c.provider == obj.id]
    consumes = [c for c in task.contracts if obj.id in c.consumers and c.provider != obj.id]
    if provides:
        out += ["", "Contracts you provide (others rely on them; implement them exactly):"]
        out += [_contract_line(c, "used by", c.consumers) for c in provides]
    if consumes:
        out += ["", "Contracts you consume (another objective implements them):"]
        out += [_contract_line(c, "provided by", [c.provider]) for c in consumes]
    if task.coordination_points:
        out += ["", "Coordination points (shared by several objectives; keep them compatible):"]
        out += [f"- {p}" for p in task.coordination_points]
    out += [
        "",
        "Rules:",
        "- Touch nothing outside SCOPE_TOUCH.",
        "- Never touch SCOPE_FORBID.",
        "- Do not commit; the orchestrator commits.",
    ]
    return "\n".join(out) + "\n"


def _contract_line(c: Contract, relation: str, others: list[str]) -> str:
    line = f"- {c.name}"
    if c.description.strip():
        line += f": {c.description.strip()}"
    return line + (f" ({relation} {', '.join(others)})" if others else "")


class CommandSpec(msgspec.Struct, frozen=True):
    """A worker's configured command: argv templates, run in order.

    A template is a list of tokens; a token may contain placeholders ``{prompt}``
    (:func:`render_prompt`), ``{objective}`` (objective id), ``{title}``, ``{session}``,
    ``{workdir}`` and ``{scope}`` (:func:`scope_paths`); ``{{`` and ``}}`` are literal
    braces. Substitution is plain token replacement, never ``str.format``. A token that
    is exactly ``{scope}`` becomes one argv element per scope path (none when the scope
    is empty); ``{scope}`` inside a longer token becomes the paths joined with spaces.
    ``{scope:GLOB}`` (e.g. ``{scope:*.py}``) is ``{scope}`` keeping its directories and
    only the files whose name matches GLOB (``fnmatch``), for a tool that rejects other
    files named on its command line.

    Raises:
        AgentError: on construction, an empty template, an unknown placeholder or a
            lone brace.
    """

    commands: list[list[str]]  # Argv templates, in run order.

    def __post_init__(self) -> None:
        if not self.commands:
            raise AgentError('no command configured; set command = "your-tool {scope}"')
        for template in self.commands:
            if not template:
                raise AgentError("a command is empty; give the program and its arguments")
            for token in template:
                _parse_token(token, template)

    @classmethod
    def from_config(
        cls,
        command: str | Sequence[str] | None = None,
        commands: Sequence[str | Sequence[str]] = (),
    ) -> CommandSpec:
        """Build a spec from the team file's ``command`` and ``commands`` values.

        A string template is split with :func:`shlex.split` (shell quoting, no
        expansion); a list of strings is taken as the argv tokens as they are.
        ``command`` runs first, then each of ``commands``.

        Raises:
            AgentError: neither is given, a template is empty or has unbalanced quotes,
                an element is not a string, or a placeholder is unknown.
        """
        templates = ([command] if command is not None else []) + list(commands)
        return cls([_split(t) for t in templates])

    def argvs(self, task: AgentTask) -> list[list[str]]:
        """Return the argv of each step with the task's values substituted.

        Raises:
            ScopeError: a scope pattern is invalid (only when ``{scope}`` is used).
        """
        cache: dict[str, list[str]] = {}
        values: dict[str, Callable[[], list[str]]] = {
            "prompt": lambda: [render_prompt(task)],
            "objective": lambda: [task.objective.id],
            "title": lambda: [task.objective.title],
            "session": lambda: [task.session_id],
            "workdir": lambda: [str(task.workdir)],
            "scope": lambda: scope_paths(
                task.workdir, task.objective.scope_touch, task.objective.scope_forbid
            ),
        }

        def value(name: str) -> list[str]:
            if name not in cache:
                glob = _scope_filter(name)
                if glob:  # {scope:*.py}: the scope's directories, and its files matching
                    root = Path(task.workdir)
                    cache[name] = [
                        p
                        for p in value("scope")
                        if (root / p).is_dir() or fnmatch.fnmatchcase(Path(p).name, glob)
                    ]
                else:
                    cache[name] = values[name]()
            return cache[name]

        out = []
        for template in self.commands:
            argv: list[str] = []
            for token in template:
                parts = _parse_token(token, template)
                if len(parts) == 1 and parts[0][1] and parts[0][0].startswith("scope"):
                    argv += value(parts[0][0])
                else:
                    argv.append(
                        "".join(" ".join(value(t)) if is_field else t for t, is_field in parts)
                    )
            out.append(argv)
        return out


def _scope_filter(name: str) -> str:
    """The glob of a ``{scope:GLOB}`` placeholder name, "" for any other name."""
    prefix, colon, glob = name.partition(":")
    return glob if prefix == "scope" and colon and glob else ""


def _split(template: object) -> list[str]:
    if isinstance(template, str):
        try:
            tokens = shlex.split(template)
        except ValueError as e:
            raise AgentError(f"command {template!r} cannot be split: {e}") from e
        if not tokens:
            raise AgentError("a command is empty; give the program and its arguments")
        return tokens
    if isinstance(template, list | tuple) and all(isinstance(t, str) for t in template):
        return list(template)
    raise AgentError(f"command {template!r} must be a string or a list of strings")


def _parse_token(token: str, template: list[str]) -> list[tuple[str, bool]]:
    """Split a token into (text, False) and (placeholder name, True) parts."""
    parts: list[tuple[str, bool]] = []
    text: list[str] = []
    i = 0
    while i < len(token):
        pair = token[i : i + 2]
        if pair in ("{{", "}}"):
            text.append(pair[0])
            i += 2
            continue
        ch = token[i]
        if ch == "{":
            end = token.find("}", i)
            name = token[i + 1 : end] if end >= 0 else ""
            if end < 0 or "{" in name:
                raise AgentError(
                    f"command {shlex.join(template)!r} has an unmatched '{{';"
                    " write {{ for a literal brace"
                )
            if name not in PLACEHOLDERS and not _scope_filter(name):
                raise AgentError(
                    f"command {shlex.join(template)!r} uses unknown placeholder {{{name}}};"
                    f" known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                    " (write {{ and }} for literal braces)"
                )
            if text:
                parts.append(("".join(text), False))
                text = []
            parts.append((name, True))
            i = end + 1
            continue
        if ch == "}":
            raise AgentError(
                f"command {shlex.join(template)!r} has an unmatched '}}';"
                " write }} for a literal brace"
            )
        text.append(ch)
        i += 1
    if text or not parts:
        parts.append(("".join(text), False))
    return parts


def scope_paths(workdir: str | Path, touch: Sequence[str], forbid: Sequence[str] = ()) -> list[str]:
    """Return the paths, relative to ``workdir``, that a ``{scope}`` placeholder names.

    Patterns are scope patterns, anchored at the worktree root and matched as
    :func:`ap_actors.scope.matches` matches them (``*.py`` names the root's Python
    files, ``**/*.py`` all of them). Each touch pattern gives, in pattern order (a path
    named twice is kept once):

    - with glob characters or escapes (``*?[\\``): the files of the worktree it matches,
      tracked and untracked but not ignored (``git ls-files -co --exclude-standard``;
      every file under ``workdir`` except ``.git`` when it is not a git worktree),
      minus those a forbid pattern matches, sorted;
    - otherwise: the pattern without its leading ``/`` and trailing ``/`` and spaces, if
      that path exists in ``workdir`` and no forbid pattern matches it or a parent.

    A literal directory is passed whole, unless a forbid pattern matches a file inside
    it: then it gives its files that no forbid pattern matches, sorted.

    Raises:
        ScopeError: a pattern is not a valid scope pattern (see
            :func:`ap_actors.scope.check_pattern`).
    """
    for pattern in (*touch, *forbid):
        check_pattern(pattern)
    root = Path(workdir)
    files: list[str] | None = None
    out: dict[str, None] = {}
    for pattern in touch:
        rel = pattern.rstrip(" ").lstrip("/").rstrip("/")
        if _GLOB_CHARS.intersection(rel):
            if files is None:
                files = _worktree_files(root)
            found = sorted(f for f in files if matches(f, [pattern]) and not matches(f, forbid))
        elif not os.path.lexists(root / rel) or matches(rel, forbid):
            found = []
        elif forbid and (root / rel).is_dir():
            # A forbidden file inside: name the directory's other files instead.
            if files is None:
                files = _worktree_files(root)
            under = [f for f in files if f.startswith(rel + "/")]
            allowed = [f for f in under if not matches(f, forbid)]
            found = allowed if len(allowed) < len(under) else [rel]
        else:
            found = [rel]
        for f in found:
            out.setdefault(f)
    return list(out)


def _worktree_files(root: Path) -> list[str]:
    """Tracked and untracked, not ignored, existing files under ``root`` (posix, relative)."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return sorted(_walk(root))
    names = done.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    return [n for n in names if n and os.path.lexists(root / n)]


def _walk(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        rel = Path(dirpath).relative_to(root)
        out += [(rel / f).as_posix() for f in filenames]
    return out
