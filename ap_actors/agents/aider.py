"""The ``aider`` agent: Aider run for one message, and the parser of its plain text.

Command (``../shared/fixtures/agent-streams/FORMATS.md`` §6; every option is in
``Aider-AI/aider:aider/website/docs/config/options.md``)::

    aider --message PROMPT --yes-always --no-pretty --no-stream --no-auto-commits
          --no-dirty-commits --no-check-update [--model MODEL] [FILE ...]

in the worktree: one turn, then exit. ``--no-auto-commits`` and ``--no-dirty-commits``
because the orchestrator commits (aider commits a dirty file before editing it unless
told not to, whatever ``--auto-commits`` says). The files named are the scope's
existing files (:func:`~ap_actors.agents.base.scope_paths` without its directories),
which aider adds to the chat. Package: pip ``aider-chat``. Aider prints no JSON events.

:class:`AiderParser` reads both its stdout under ``--no-pretty`` and its chat history
file (``.aider.chat.history.md``; grammar in ``aider/io.py``), where aider's own
notices are prefixed ``> `` (and end with two spaces) and the user's message is
written ``#### `` a line:

- ``# aider chat started at ...`` → quiet; the start-up banner (``Aider v…``,
  ``Model:``, ``Git repo:``, ``Repo-map:``, the aider command line, hints such as
  ``You can use /undo …``) → quiet.
- ``#### `` lines (the user's message: with ``--message``, the prompt) → quiet.
- ``Tokens: 2.4k sent[, N cache write][, N cache hit], 104 received. Cost: $0.00042
  message, $0.00042 session.`` → usage: input = sent (``k``/``M`` suffixes; aider
  rounds them to 2-3 digits), output = received, cost = the message cost (not the
  session's, which is a running total), so the usages of a transcript add up.
- ``Applied edit to PATH`` → file_change (tool ``edit``); ``Commit <hash> <msg>`` →
  command (tool ``git``); ``Running CMD`` → command (tool ``shell``); ``Added PATH to
  the chat`` → tool_use (``add``); ``Dropping PATH from the chat`` → tool_use
  (``drop``).
- A proposed shell command: the command line(s) then ``Run shell command(s)? … [Yes]:
  n`` → one command per line, ``(declined)`` when the answer is not yes (under
  ``--yes-always`` aider declines them); a yes is folded into the ``Running`` lines
  that follow. ``Create new file? …`` after a path is folded into the ``Applied
  edit`` that follows (a no → message). Another question → message.
- Edits in the reply: a SEARCH/REPLACE block (``<<<<<<< SEARCH``, ``=======``,
  ``>>>>>>> REPLACE``; 2023's ``ORIGINAL``/``UPDATED``), inside a fence or not, → ONE
  file_change (tool ``edit_block``; ``edit PATH: SEARCH/REPLACE, n → m lines``), the
  path being the line before the fence or before the block (else the fence's or the
  reply's previous one); a fence holding unified-diff (``--- a`` / ``+++ b``) or patch
  (``*** Update File: PATH``) headers → one file_change a file; a fence right after a
  path line that holds neither, in a language other than a shell's → a whole-file
  file_change (tool ``whole_file``). Inside a block or fence every line is content; a
  ``Tokens:`` line or a new session ends one left open (``(incomplete)``).
- aider's errors and warnings (``Error…:``, ``Warning…:``, ``litellm.*Error:``,
  ``Unable to …``, ``… file not found error``, ``The LLM did not conform to the edit
  format``, a SEARCH block that failed to match, ``Only N reflections allowed``, a
  token limit hit, ``Retrying in …``, ``Repo-map can't include …``) → error, with the
  first path of the line.
- The reply's other lines, code blocks included, → ONE message per run of them
  (ended by any line above); aider's other notices → one message each; a reasoning
  model's ``► **THINKING**`` … ``► **ANSWER**`` part → reasoning.
- The worker's ``[ts] COMMAND:``/``[ts] EXIT:`` lines (they also end an open block)
  and Python tracebacks go to the ``command`` agent's text parser.
"""

from __future__ import annotations

import os
import re

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, render_prompt, scope_paths
from ap_actors.agents.command import BRACKETED, TRACEBACK_HEAD, path_in
from ap_actors.agents.streams import JsonStreamParser

_SIZE = r"\d+(?:\.\d+)?[kKmM]?"
_TOKENS = re.compile(
    rf"Tokens: (?P<sent>{_SIZE}) sent(?:, (?P<write>{_SIZE}) cache write)?"
    rf"(?:, (?P<hit>{_SIZE}) cache hit)?, (?P<received>{_SIZE}) received\."
    r"(?:\s+Cost: \$(?P<cost>\d+(?:\.\d+)?) message, \$(?P<session>\d+(?:\.\d+)?) session\.)?"
)
_SESSION = re.compile(r"# aider chat started at ")
_USER = re.compile(r"####(?: |$)")
_FENCE = re.compile(r"(?P<ticks>`{3,})\s*(?P<lang>[^`\s]*)\s*$")
_HEAD = re.compile(r"<{5,9} (?:SEARCH>?|ORIGINAL)\s*$")
_DIVIDER = re.compile(r"={5,9}\s*$")
_UPDATED = re.compile(r">{5,9} (?:REPLACE|UPDATED)\s*$")
_PATCH_FILE = re.compile(r"\*\*\* (?:Update|Add|Delete) File:\s*(?P<path>.+?)\s*$")
_THINKING, _ANSWER = "► **THINKING**", "► **ANSWER**"
_SHELL_LANGS = frozenset(
    {"bash", "sh", "shell", "zsh", "fish", "console", "cmd", "bat", "powershell", "ps1"}
)

_APPLIED = re.compile(r"Applied edit to (?P<path>.+?)\.?$")
_COMMIT = re.compile(r"Commit (?P<hash>[0-9a-f]{7,40}) (?P<message>.+)$")
_COMMITTING = re.compile(r"Committing .+ before applying edits\.?$")
_RUNNING = re.compile(r"Running (?P<command>.+)$")
_ADDED = re.compile(r"Added (?P<path>.+?) to the chat\.?$")
_DROPPED = re.compile(r"Dropping (?P<path>.+?) from the chat\.?$")
_RUN_SHELL = re.compile(r"Run shell command(?P<plural>s)?\?")
_FILE_QUESTION = re.compile(
    r"(?:Create new file|Allow edits to file that has not been added to the chat)\?"
)
_QUESTION = re.compile(r".*(?:\(Y\)es/\(N\)o|\[y/n)")
_BANNER = re.compile(
    r"Aider v\d\S*$|(?:Main |Weak |Editor )?[Mm]odel: |Git repo: |Repo-map: "
    r"|https://aider\.chat/|Use /help |You can use /undo |Use up-arrow to retry "
    r"|Added \.aider\* to \.gitignore|Git repository created in |Newer aider version "
    r"|Would you like to see what's new|Cur working dir: |Restored previous conversation "
    r"|\S*/aider(?:\s.*)?$"
)
_ERROR = re.compile(
    r"(?:error|warning|fatal)\b[^:]{0,60}:\s|[\w.]*(?:Error|Exception):\s"
    r"|Unable to |Failed to |.*: file not found error$"
    r"|The LLM did not conform to the edit format|# \d+ SEARCH/REPLACE blocks? failed"
    r"|## SearchReplaceNoExactMatch|Only \d+ reflections allowed|.* has hit a token limit"
    r"|Retrying in \d|Repo-map can't include ",
    re.IGNORECASE,
)


class AiderAdapter(CliAdapter):
    """Runs ``aider --message`` on the scope's files (see the module doc)."""

    name = "aider"
    program = "aider"
    package = "pip aider-chat"

    def argv(self, task: AgentTask) -> list[str]:
        """Return aider's argv; the scope's existing files are named last.

        Raises:
            ScopeError: a scope pattern is invalid.
        """
        root = task.workdir
        files = [
            f if not f.startswith("-") else f"./{f}"  # never read as an option
            for f in scope_paths(root, task.objective.scope_touch, task.objective.scope_forbid)
            if _is_file(root, f)
        ]
        return [
            "aider",
            "--message",
            render_prompt(task),
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-check-update",
            *(["--model", task.model] if task.model else []),
            *files,
        ]

    def parser(self, workdir: str | None = None) -> AiderParser:
        return AiderParser(workdir)


def _is_file(root: str, rel: str) -> bool:
    return os.path.isfile(os.path.join(root, rel))


class _Fence:
    """A fenced block of the reply being read."""

    def __init__(self, ticks: str, lang: str, path: str | None) -> None:
        self.ticks = ticks  # the opening backticks; the same run closes it
        self.lang = lang.lower()  # its info string, e.g. "python"
        self.path = path  # the file named on the line before it, if any
        self.lines: list[str] = []  # content lines outside SEARCH/REPLACE blocks
        self.blocks = 0  # SEARCH/REPLACE blocks read inside it
        self.edits: list[tuple[str, str]] = []  # (tool, path) of diff and patch headers


class _Block:
    """A SEARCH/REPLACE block being read."""

    def __init__(self, path: str | None) -> None:
        self.path = path  # the file it edits; None: quoted text, not an edit
        self.search = 0  # lines in the SEARCH part
        self.replace = 0  # lines in the REPLACE part
        self.replacing = False  # past the ======= divider
        self.lines: list[str] = []  # its content, kept for a quoted block


class AiderParser(JsonStreamParser):
    """Aider's ``--no-pretty`` stdout and chat history (see the module doc).

    Same contract as the JSON parsers (:class:`JsonStreamParser`): ``feed``,
    ``finish`` and ``accounting``; Aider prints no JSON, so every line is read here
    except the worker's bracketed lines and tracebacks (``text``).
    """

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._run: list[str] = []  # held lines of one kind, "" for a blank line
        self._kind: str | None = None  # "prose", "notice" or "thinking"
        self._fence: _Fence | None = None
        self._block: _Block | None = None
        self._last_path: str | None = None  # file of the reply's previous block
        self._traceback = False  # lines go to the text parser until the traceback ends

    def feed(self, line: str) -> list[Activity]:
        if self._traceback:
            self._traceback = (
                not line.strip() or line[:1].isspace() or line.startswith(TRACEBACK_HEAD)
            )
            return self.text(line)
        inside = self._fence is not None or self._block is not None
        if BRACKETED.match(line) or (not inside and line.startswith(TRACEBACK_HEAD)):
            self._traceback = line.startswith(TRACEBACK_HEAD)
            out = self._close() + self._flush()
            return out + self.text(line)
        return self.dispatch(self._line, line)

    def end(self) -> list[Activity]:
        return self._close() + self._flush()

    # --- one line -----------------------------------------------------------------------

    def _line(self, line: str) -> list[Activity]:
        raw = line.rstrip()
        if self._fence is not None or self._block is not None:
            body = raw[2:] if raw.startswith("> ") else raw
            if not (_TOKENS.match(body) or _SESSION.match(raw)):
                return self._in_block(raw) if self._block is not None else self._in_fence(raw)
            return self._close() + self._outside(raw)  # a block left open: it has ended
        return self._outside(raw)

    def _outside(self, raw: str) -> list[Activity]:
        notice = raw.startswith("> ") or raw == ">"
        body = raw[2:].strip() if notice else raw.strip()
        if _USER.match(raw):
            return self._flush() or self.quiet("user")
        if not body:
            if self._run:
                self._run.append("")
                return self.fold("blank")
            return self.quiet("blank")
        if _SESSION.match(raw):
            self._last_path = None
            return self._flush() or self.quiet("session")
        if not notice:
            # What precedes an edit is given when the edit is (a fence may be a code
            # block of the reply after all).
            if m := _FENCE.match(raw):
                self._fence = _Fence(m["ticks"], m["lang"], self._pop_filename())
                return self.fold("fence")
            if _HEAD.match(raw):
                self._block = _Block(self._pop_filename())
                return self.fold("edit block")
            if body in (_THINKING, _ANSWER):
                if self._run and set(self._run[-1].strip()) == {"-"}:
                    self._run.pop()  # the rule aider prints above the marker
                out = self._flush()
                if body == _THINKING:
                    self._kind = "thinking"
                return out or self.fold("reasoning")
        return self._notice(body, notice)

    def _notice(self, body: str, notice: bool) -> list[Activity]:
        """A line outside blocks: one of aider's notices, or a line of the reply."""
        if m := _TOKENS.match(body):
            cost = float(m["cost"]) if m["cost"] else 0.0
            return [
                *self._flush(),
                self.usage(body, _count(m["sent"]), _count(m["received"]), cost),
            ]
        if m := _APPLIED.match(body):
            return [
                *self._flush(),
                self.activity("file_change", body, tool_name="edit", file_path=m["path"]),
            ]
        if _COMMIT.match(body):
            return [*self._flush(), self.activity("command", body, tool_name="git")]
        if m := _RUNNING.match(body):
            return [*self._flush(), self.activity("command", m["command"], tool_name="shell")]
        if (m := _ADDED.match(body)) or (m := _DROPPED.match(body)):
            tool = "add" if body.startswith("Added") else "drop"
            return [
                *self._flush(),
                self.activity("tool_use", body, tool_name=tool, file_path=m["path"]),
            ]
        if m := _RUN_SHELL.match(body):
            commands = self._subject(None if m["plural"] else 1)
            out = self._flush()
            if _yes(body):
                return out or self.fold("shell.approved")  # the Running lines carry them
            return out + [
                self.activity("command", f"{c} (declined)", tool_name="shell")
                for c in commands or [body]
            ]
        if _FILE_QUESTION.match(body):
            path = " ".join(self._subject(1))
            out = self._flush()
            if _yes(body):
                return out or self.fold("file.approved")  # "Applied edit to" carries it
            return [*out, self.activity("message", f"declined: {body} {path}".strip())]
        if _COMMITTING.match(body):
            return self._flush() or self.fold("commit")  # the Commit line carries it
        if _BANNER.match(body):
            return self._flush() or self.quiet("banner")
        if _ERROR.match(body):
            return [*self._flush(), self.activity("error", body, file_path=path_in(body))]
        if _QUESTION.match(body):
            return [*self._flush(), self.activity("message", body)]
        if notice:
            return self._hold("notice", [body])
        return self._hold("thinking" if self._kind == "thinking" else "prose", [body])

    def _in_block(self, raw: str) -> list[Activity]:
        block = self._block
        assert block is not None
        if not block.replacing and _DIVIDER.match(raw):
            block.replacing = True
        elif _UPDATED.match(raw):
            self._block = None
            return self._end_block(block, complete=True)
        else:
            block.lines.append(raw)
            if block.replacing:
                block.replace += 1
            else:
                block.search += 1
        return self.fold("edit block")

    def _in_fence(self, raw: str) -> list[Activity]:
        fence = self._fence
        assert fence is not None
        if raw.strip() == fence.ticks:
            self._fence = None
            return self._end_fence(fence)
        if _HEAD.match(raw):
            named = _filename(fence.lines[-1]) if fence.lines else None
            if named:
                fence.lines.pop()
            path = named or fence.path or self._last_path
            self._block = _Block(path)
            return self.fold("edit block")
        previous = fence.lines[-1] if fence.lines else ""
        if raw.startswith("+++ ") and previous.startswith("--- "):
            new, old = raw[4:].split("\t")[0].strip(), previous[4:].split("\t")[0].strip()
            fence.edits.append(("udiff", old if new == "/dev/null" else new))
        elif m := _PATCH_FILE.match(raw):
            fence.edits.append(("patch", m["path"]))
        fence.lines.append(raw)
        return self.fold("fence")

    # --- blocks -------------------------------------------------------------------------

    def _end_block(self, block: _Block, *, complete: bool) -> list[Activity]:
        if self._fence is not None:
            self._fence.blocks += 1
        if block.path is None:  # quoted, e.g. in an error message: it is text
            return self._hold("prose", block.lines)
        self._last_path = block.path
        what = f"edit {self.path(block.path)}: SEARCH/REPLACE, {block.search} → {block.replace}"
        what += " lines" + ("" if complete else " (incomplete)")
        return [
            *self._flush(),
            self.activity("file_change", what, tool_name="edit_block", file_path=block.path),
        ]

    def _end_fence(self, fence: _Fence) -> list[Activity]:
        if fence.edits:
            return self._flush() + [
                self.activity("file_change", f"{tool} {self.path(p)}", tool_name=tool, file_path=p)
                for tool, p in fence.edits
            ]
        if fence.blocks:
            return self.quiet("fence")
        if fence.path and fence.lang not in _SHELL_LANGS:
            self._last_path = fence.path
            what = f"write {self.path(fence.path)}: {len(fence.lines)} lines"
            return [
                *self._flush(),
                self.activity("file_change", what, tool_name="whole_file", file_path=fence.path),
            ]
        return self._hold("prose", [fence.path or "", *fence.lines])  # a code block

    def _close(self) -> list[Activity]:
        """End a block and a fence left open (the stream, or the reply, ended)."""
        out: list[Activity] = []
        if self._block is not None:
            block, self._block = self._block, None
            out += self._end_block(block, complete=False)
        if self._fence is not None:
            fence, self._fence = self._fence, None
            out += self._end_fence(fence)
        return out

    # --- held lines ---------------------------------------------------------------------

    def _hold(self, kind: str, lines: list[str]) -> list[Activity]:
        """Add ``lines`` to the held run; a run of another kind is given first."""
        out = self._flush() if self._kind not in (None, kind) else []
        self._kind = kind
        self._run += lines
        return out or self.fold(kind)

    def _flush(self) -> list[Activity]:
        """The activities of the held run (see the module doc); the run is emptied."""
        lines, kind = self._run, self._kind
        self._run, self._kind = [], None
        if not any(s.strip() for s in lines):
            return []
        if kind == "notice":
            return [self.activity("message", s) for s in lines if s.strip()]
        text = "\n".join(lines)
        return [self.activity("reasoning" if kind == "thinking" else "message", text)]

    def _pop_filename(self) -> str | None:
        """Take the held reply's last line when it names a file (it precedes an edit)."""
        if self._kind != "prose" or not self._run:
            return None
        name = _filename(self._run[-1])
        if name:
            self._run.pop()
        return name

    def _subject(self, count: int | None) -> list[str]:
        """Take the last ``count`` lines of the held run (None: those after a blank)."""
        run = self._run
        if self._kind not in ("notice", "prose"):
            return []
        while run and not run[-1].strip():
            run.pop()
        start = len(run)
        while start and run[start - 1].strip() and (count is None or len(run) - start < count):
            start -= 1
        subject = [s.strip() for s in run[start:]]
        del run[start:]
        return subject


def _count(size: str) -> int:
    """Tokens from aider's short form: ``104``, ``2.4k``, ``10k``, ``1.2M``."""
    scale = {"k": 1_000, "m": 1_000_000}.get(size[-1].lower(), 1)
    return round(float(size.rstrip("kKmM")) * scale)


def _yes(question: str) -> bool:
    """Whether the answer written after a question (``… [Yes]: y``) is yes or all."""
    at = question.rfind("]:")
    answer = question[at + 2 :] if at >= 0 else question[question.rfind("?") + 1 :]
    return answer.strip()[:1].lower() in ("y", "a")


def _filename(line: str) -> str | None:
    """The file a reply line names when it is only a file name (aider's edit format).

    Aider strips ``#``, backticks and ``*`` around it; a line ending with ``:`` or
    ``.`` or holding spaces is prose.
    """
    text = line.strip()
    if text.endswith((":", ".")):
        return None
    name = text.lstrip("#").strip().strip("`*").strip()
    if not name or any(c.isspace() for c in name) or not any(c.isalnum() for c in name):
        return None
    return name
