"""The ``claude`` agent: Anthropic's Claude Code, run as ``claude -p --output-format stream-json``.

Formats: ``../shared/fixtures/agent-streams/FORMATS.md`` §2; recordings in
``../shared/fixtures/agent-streams/claude/``. :class:`ClaudeStreamParser` reads both, told
apart line by line (a stream line has ``session_id``, a session-log line ``sessionId``):

- ``stream-json`` (``claude -p ... --verbose``; also pretty-printed one message per
  file): ``system`` ``init`` and other lifecycle subtypes are quiet, ``compact_boundary``
  → message; ``assistant`` → one activity per content block: ``text`` → message,
  ``thinking`` → reasoning (an empty one, only a signature, gives nothing),
  ``tool_use`` → tool_use with ``tool_name`` (Bash: the command; Read, Write, Edit,
  MultiEdit: ``file_path``; NotebookEdit: ``notebook_path``; Glob, Grep: the pattern);
  ``user`` ``tool_result`` blocks → for Bash a ``command`` with ``exit_code`` (0 when
  the result is not an error, N from ``Exit code N`` when it is), for Write, Edit,
  MultiEdit and NotebookEdit a ``file_change``, for any tool with ``is_error`` an
  ``error``; prompts (user text) are quiet. Assistant text that reports an API error
  or a failed local command (``/compact``) → error. ``result`` → a ``usage`` activity,
  preceded by an ``error`` when ``is_error`` or the subtype is ``error_*`` (unless the
  assistant text just before said the same). ``stream_event``
  partial messages are folded into the complete ``assistant`` message that follows;
  ``rate_limit_event`` is quiet.
- session logs (``~/.claude/projects/<dir>/<session>.jsonl``): the same ``user`` and
  ``assistant`` lines, plus ``summary``, ``file-history-snapshot``, ``progress``,
  ``queue-operation`` (quiet). There is no ``result``: each assistant message's
  ``message.usage`` gives a ``usage`` activity.

Usage: ``input_tokens`` counts all input the model read: ``input_tokens`` +
``cache_creation_input_tokens`` + ``cache_read_input_tokens`` (Anthropic reports them
apart; Codex counts cached input inside ``input_tokens``: this keeps them comparable).
Each usage activity carries an increment only, so summing a transcript's gives the
run's totals: a stream's ``result.usage`` is per turn (the API calls of that prompt), its
``total_cost_usd`` cumulative for the process (the increment since the previous result
of the same session is taken; a worker ``COMMAND:`` line starts a new process). One API
message is split over several ``assistant`` lines that repeat its usage (and a session
log's later lines may raise ``output_tokens``): per message id only the growth is
counted. In a stream, that message usage is shown only when no ``result`` follows
(:meth:`ClaudeStreamParser.end`: a run that was killed).
"""

from __future__ import annotations

import re
from typing import Any

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, render_prompt
from ap_actors.agents.streams import JsonStreamParser, as_cost, as_int, one_line

_EXIT_CODE = re.compile(r"\s*Exit code (-?\d+)")
_FILE_TOOLS = frozenset({"Read", "Write", "Edit", "MultiEdit"})
_EDITS = {"Write": "write", "Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit"}
_QUIET_TYPES = frozenset(
    {"rate_limit_event", "summary", "file-history-snapshot", "progress", "queue-operation"}
)
_QUIET_SYSTEM = frozenset(
    {
        "init",
        "status",
        "thinking_tokens",
        "hook_started",
        "hook_progress",
        "hook_response",
        "task_progress",
        "task_updated",
        "turn_duration",
        "stop_hook_summary",
        "local_command",
        "informational",
    }
)


class ClaudeAdapter(CliAdapter):
    """Runs Claude Code non-interactively (``claude -p``) in the worktree.

    The argv is the one verified in ``../shared/AGENTS-OFFLINE.md``: ``stream-json``
    output (which needs ``--verbose`` with ``-p``), no permission prompts
    (``bypassPermissions``: the worktree is the sandbox), ``--model`` only when the team
    file names a model.
    """

    name = "claude"
    program = "claude"
    package = "npm @anthropic-ai/claude-code"

    def argv(self, task: AgentTask) -> list[str]:
        return [
            "claude",
            "-p",
            render_prompt(task),
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            *(["--model", task.model] if task.model else []),
        ]

    def parser(self, workdir: str | None = None) -> ClaudeStreamParser:
        return ClaudeStreamParser(workdir)


class ClaudeStreamParser(JsonStreamParser):
    """The ``claude`` adapter's parser: stream-json and session logs (see module doc).

    Args:
        workdir: the objective's worktree; absolute paths under it are made relative.
    """

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._tools: dict[str, tuple[str, dict[str, Any]]] = {}  # tool_use id -> name, input
        self._counted: dict[str, tuple[int, int]] = {}  # message id -> tokens counted
        self._unreported = (0, 0)  # stream message tokens since the last result
        self._costs: dict[str, float] = {}  # session id -> cumulative cost last reported
        self._error = ""  # text of the last error an assistant message reported

    def feed(self, line: str) -> list[Activity]:
        if line[:1] == "[" and "] COMMAND: " in line:  # the worker starts a new process
            self._costs.clear()
        return super().feed(line)

    def end(self) -> list[Activity]:
        inp, out = self._unreported
        self._unreported = (0, 0)
        if inp == out == 0:
            return []
        return [self.usage(f"no result: messages used {inp} input, {out} output tokens", inp, out)]

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj.get("type")
        match kind:
            case "assistant":
                return self._assistant(obj)
            case "user":
                return self._user(obj)
            case "result":
                return self._result(obj)
            case "system":
                return self._system(obj)
            case "stream_event":
                return self.fold(kind)
            case str() if kind in _QUIET_TYPES:
                return self.quiet(str(kind))
            case _:
                return [self.other(str(kind), obj)]

    # --- assistant --------------------------------------------------------------------

    def _assistant(self, obj: dict[str, Any]) -> list[Activity]:
        message = obj.get("message")
        if not isinstance(message, dict):
            return [self.other("assistant", obj)]
        # An API error or a failed local command (``/compact`` ...) comes as text.
        failed = bool(obj.get("isApiErrorMessage") or obj.get("error")) or (
            isinstance(outcome := obj.get("local_command_outcome"), dict)
            and outcome.get("kind") == "failed"
        )
        out: list[Activity] = []
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            match block.get("type"):
                case "text":
                    if text := block.get("text"):
                        if failed:
                            self._error = text
                        out.append(self.activity("error" if failed else "message", text))
                case "thinking":
                    if text := block.get("thinking"):
                        out.append(self.activity("reasoning", text))
                case "tool_use" | "server_tool_use" | "mcp_tool_use":
                    out.append(self._tool_use(block))
                case "redacted_thinking" | "web_search_tool_result" | "web_fetch_tool_result":
                    pass
                case other:
                    out.append(self.other(f"assistant/{other}", block))
        usage = self._message_usage(message)
        if usage is not None:
            if "session_id" in obj:  # a stream: the result reports the turn's usage
                self._unreported = (self._unreported[0] + usage[0], self._unreported[1] + usage[1])
            elif usage != (0, 0):  # a session log: no result will come
                inp, outp = usage
                out.append(self.usage(f"message: {inp} input, {outp} output tokens", inp, outp))
        return out or self.quiet("assistant")

    def _tool_use(self, block: dict[str, Any]) -> Activity:
        name = str(block.get("name") or "tool")
        raw = block.get("input")
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if isinstance(block.get("id"), str):
            self._tools[block["id"]] = (name, args)
        path = _tool_path(name, args)
        match name:
            case "Bash":
                text: object = args.get("command")
            case "Glob" | "Grep":
                text = f"{name} {args.get('pattern')}" + (f" in {self.path(path)}" if path else "")
            case "TodoWrite":
                text = _todos(args.get("todos"))
            case "Task" | "Agent":
                text = f"{name}: {args.get('description') or args.get('prompt')}"
            case "WebSearch":
                text = f"{name} {args.get('query')}"
            case "WebFetch":
                text = f"{name} {args.get('url')}"
            case _ if path is not None:
                text = f"{name} {self.path(path)}"
            case _:
                text = f"{name} {one_line(raw)}" if args else name
        return self.activity("tool_use", text, tool_name=name, file_path=path)

    def _message_usage(self, message: dict[str, Any]) -> tuple[int, int] | None:
        """The tokens of an API message not counted yet (None: it reports no usage)."""
        usage = message.get("usage")
        if not isinstance(usage, dict):
            return None
        inp, out = tokens(usage)
        key = message.get("id")
        if not isinstance(key, str):
            return inp, out
        seen = self._counted.get(key)
        if seen is None:
            self._counted[key] = (inp, out)
            return inp, out
        more_in, more_out = max(inp - seen[0], 0), max(out - seen[1], 0)
        if more_in or more_out:
            self._counted[key] = (seen[0] + more_in, seen[1] + more_out)
        return more_in, more_out

    # --- user -------------------------------------------------------------------------

    def _user(self, obj: dict[str, Any]) -> list[Activity]:
        message = obj.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        out: list[Activity] = []
        if isinstance(content, list):
            details = obj.get("tool_use_result", obj.get("toolUseResult"))
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out += self._tool_result(block, details if len(content) == 1 else None)
        return out or self.quiet("user")  # a prompt, or results with nothing to add

    def _tool_result(self, block: dict[str, Any], details: object) -> list[Activity]:
        """The activities of one ``tool_result`` block (``details``: ``tool_use_result``)."""
        tool_id = block.get("tool_use_id")
        name, args = self._tools.pop(tool_id, ("", {})) if isinstance(tool_id, str) else ("", {})
        failed = block.get("is_error") is True
        info = details if isinstance(details, dict) else {}
        if name == "Bash":
            command = one_line(args.get("command")) or "Bash"
            if info.get("interrupted") is True:
                return [self.activity("error", f"interrupted: {command}", tool_name=name)]
            if not failed:
                return [self.activity("command", command, tool_name=name, exit_code=0)]
            text = _text(block.get("content"))
            m = _EXIT_CODE.match(text)
            code = int(m[1]) if m else None
            return [self.activity("error", f"{command}: {text}", tool_name=name, exit_code=code)]
        path = _tool_path(name, args)
        if failed:
            text = _text(block.get("content"))
            return [
                self.activity(
                    "error",
                    f"{name or 'tool'}: {text}",
                    tool_name=name or None,
                    file_path=path,
                )
            ]
        if name in _EDITS:
            path = path or info.get("filePath")
            kind = info.get("type") if isinstance(info.get("type"), str) else _EDITS[name]
            return [
                self.activity(
                    "file_change", f"{kind} {self.path(path)}", tool_name=name, file_path=path
                )
            ]
        return []

    # --- result, system ---------------------------------------------------------------

    def _result(self, obj: dict[str, Any]) -> list[Activity]:
        self._unreported = (0, 0)
        inp, out = tokens(obj.get("usage"))
        cost = self._cost_increment(obj)
        subtype = str(obj.get("subtype") or "result")
        turns = as_int(obj.get("num_turns"))
        activities = []
        if obj.get("is_error") is True or subtype.startswith("error"):
            errors = obj.get("errors")
            reason = obj.get("result") or (
                "; ".join(map(str, errors)) if isinstance(errors, list) and errors else ""
            )
            if not subtype.startswith("error"):
                subtype = "error"
            if not reason or reason != self._error:  # else the assistant message said it
                activities.append(
                    self.activity("error", f"{subtype}: {reason}" if reason else subtype)
                )
        self._error = ""
        summary = f"{subtype}: {turns} turns, {inp} input, {out} output tokens, ${cost:.6f}"
        activities.append(self.usage(summary, inp, out, cost))
        return activities

    def _cost_increment(self, obj: dict[str, Any]) -> float:
        """The cost of this result alone: ``total_cost_usd`` is cumulative per process."""
        total = as_cost(obj.get("total_cost_usd", obj.get("cost_usd")))
        session = str(obj.get("session_id") or "")
        previous = self._costs.get(session)
        self._costs[session] = total
        if previous is None or total < previous:  # the first, or a new process
            return total
        return total - previous

    def _system(self, obj: dict[str, Any]) -> list[Activity]:
        subtype = obj.get("subtype")
        if isinstance(subtype, str) and subtype in _QUIET_SYSTEM:
            return self.quiet(f"system/{subtype}")
        match subtype:
            case "compact_boundary":
                meta = obj.get("compact_metadata")
                meta = meta if isinstance(meta, dict) else {}
                return [
                    self.activity(
                        "message", f"conversation compacted ({meta.get('trigger') or 'auto'})"
                    )
                ]
            case "api_error":
                return [self.activity("error", obj.get("content") or obj.get("error") or subtype)]
            case "task_started" | "task_notification":
                text = obj.get("description") or obj.get("summary") or obj.get("status")
                return [self.activity("message", f"{subtype}: {one_line(text)}")]
            case _:
                return [self.other(f"system/{subtype}", obj)]


def tokens(usage: object) -> tuple[int, int]:
    """``(input, output)`` tokens of an Anthropic usage object; input includes the cache.

    Input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.
    """
    if not isinstance(usage, dict):
        return 0, 0
    get = usage.get
    inp = (
        _count(get("input_tokens"))
        + _count(get("cache_creation_input_tokens"))
        + _count(get("cache_read_input_tokens"))
    )
    return inp, _count(get("output_tokens"))


def _count(value: object) -> int:
    """:func:`as_int`, with a fast path for the usual plain count."""
    return value if type(value) is int and 0 <= value < 10**18 else as_int(value)


def _tool_path(name: str, args: dict[str, Any]) -> str | None:
    """The path a tool call touches, as the agent wrote it (None: it names none)."""
    if name in _FILE_TOOLS:
        raw = args.get("file_path")
    elif name == "NotebookEdit":
        raw = args.get("notebook_path")
    elif name in ("Glob", "Grep"):
        raw = args.get("path")
    else:
        return None
    return raw if isinstance(raw, str) and raw else None


def _todos(todos: object) -> str:
    """A one-line summary of a ``TodoWrite`` list: items done, the one in progress."""
    items = [t for t in todos if isinstance(t, dict)] if isinstance(todos, list) else []
    done = sum(1 for t in items if t.get("status") == "completed")
    now = next((t.get("content") for t in items if t.get("status") == "in_progress"), None)
    return f"todos: {done}/{len(items)} done" + (f"; now: {now}" if now else "")


def _text(content: object) -> str:
    """The text of a ``tool_result``'s content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return ""
