"""The ``cursor`` agent: the Cursor Agent CLI run headless, and the parser of its stream.

Command (``../shared/fixtures/agent-streams/FORMATS.md`` §3, https://cursor.com/docs/cli/
reference/output-format)::

    cursor-agent -p --force --output-format stream-json [--model MODEL] PROMPT

in the worktree; ``-p`` (``--print``) runs without the terminal interface and
``--force`` allows commands without asking. Installed by cursor.com/install (the
binary is also called ``agent``).

:class:`CursorParser` reads ``stream-json``, one object a line:

- ``system`` (``init``) and ``user`` (the prompt) → quiet; ``assistant`` → message with
  the text of its content blocks.
- ``thinking`` ``delta`` lines are concatenated into ONE reasoning activity per run of
  thinking, given at the ``thinking`` ``completed`` line (or when a line of another
  kind arrives, or the stream ends); a ``completed`` line with nothing before it is
  quiet.
- ``tool_call`` ``started`` is folded into its ``completed`` line (matched by the exact
  ``call_id``, which may hold a newline), whose ``tool_call`` holds one
  ``<name>ToolCall: {args, result}``. ``shellToolCall`` → command (description the
  command, ``exit_code`` from the result's ``exitCode``); ``editToolCall``,
  ``writeToolCall``, ``deleteToolCall`` → file_change (``+added -removed`` lines when
  the result says); any other (``readToolCall``, ``lsToolCall``, ``grepToolCall``,
  ``globToolCall``, ...) → tool_use. ``tool_name`` is the key without ``ToolCall``;
  ``file_path`` is ``args.path`` (or the result's ``path``). Only ``result.success``
  has been seen: a result with another object-valued key is a failed call → error
  ``<tool> <target> failed: <message>`` (a shell call that has an exit code stays a
  command).
- ``result``: ``is_error`` or a subtype other than ``success`` → error; a ``usage``
  object, if a version reports one (none seen: Cursor reports no tokens or cost) →
  usage (``input_tokens``/``inputTokens``, ``output_tokens``/``outputTokens``, cache
  read/write tokens added to the input, ``total_cost_usd``/``cost_usd``); otherwise
  quiet (its ``result`` text repeats the assistant messages).
"""

from __future__ import annotations

from typing import Any

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, render_prompt
from ap_actors.agents.streams import JsonStreamParser, as_cost, as_int, one_line

_EDIT_TOOLS = frozenset({"edit", "write", "delete"})
_TARGET_KEYS = ("path", "pattern", "globPattern", "query", "url", "targetDirectory")


class CursorAdapter(CliAdapter):
    """Runs ``cursor-agent -p`` with its ``stream-json`` output."""

    name = "cursor"
    program = "cursor-agent"
    package = "cursor.com/install (cursor-agent)"

    def argv(self, task: AgentTask) -> list[str]:
        return [
            "cursor-agent",
            "-p",
            "--force",
            "--output-format",
            "stream-json",
            *(["--model", task.model] if task.model else []),
            render_prompt(task),
        ]

    def parser(self, workdir: str | None = None) -> CursorParser:
        return CursorParser(workdir)


class CursorParser(JsonStreamParser):
    """Cursor Agent CLI ``stream-json`` (see the module doc)."""

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._thinking: list[str] = []  # deltas of the current run of thinking
        self._calls: dict[str, dict[str, Any]] = {}  # started tool calls by call_id

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind, sub = obj.get("type"), obj.get("subtype")
        out = [] if kind == "thinking" else self._end_thinking()
        match kind, sub:
            case "system", _:
                self.quiet(f"system.{sub}")
            case "user", _:
                self.quiet("user")
            case "assistant", _:
                out += self._message(obj.get("message"))
            case "thinking", "delta":
                text = obj.get("text")
                self._thinking.append(text if isinstance(text, str) else "")
                self.fold("thinking.delta")
            case "thinking", "completed":
                out += self._end_thinking() or self.quiet("thinking.completed")
            case "tool_call", "started":
                self._calls[str(obj.get("call_id"))] = obj
                self.fold("tool_call.started")
            case "tool_call", "completed":
                self._calls.pop(str(obj.get("call_id")), None)
                out.append(self._tool(obj.get("tool_call"), done=True))
            case "result", _:
                out += self._result(obj)
            case _:
                out.append(self.other(f"{kind}.{sub}" if sub else str(kind), obj))
        return out

    def end(self) -> list[Activity]:
        # Calls still waiting started before the thinking held now.
        out = [self._tool(c.get("tool_call"), done=False) for c in self._calls.values()]
        self._calls.clear()
        return out + self._end_thinking()

    def _end_thinking(self) -> list[Activity]:
        if not self._thinking:
            return []
        text, self._thinking = "".join(self._thinking), []
        return [self.activity("reasoning", text)] if text.strip() else []

    def _message(self, message: object) -> list[Activity]:
        content = message.get("content") if isinstance(message, dict) else None
        blocks = content if isinstance(content, list) else []
        text = "".join(
            b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
        if not text.strip():
            self.quiet("message.empty")
            return []
        return [self.activity("message", text)]

    def _tool(self, payload: object, *, done: bool) -> Activity:
        """The activity of a tool call: ``payload`` is ``{<name>ToolCall: {args, result}}``."""
        key, body = next(iter(payload.items()), ("", {})) if isinstance(payload, dict) else ("", {})
        name = str(key).removesuffix("ToolCall") or "tool"
        body = _dict(body)
        args, result = _dict(body.get("args")), _dict(body.get("result"))
        outcome, failure = next(
            ((k, v) for k, v in result.items() if k != "success" and isinstance(v, dict)),
            ("", None),
        )
        detail = _dict(result.get("success")) or failure or {}
        reason = _reason(failure or {}) or outcome
        suffix = "" if done else " (no result)"
        if name == "shell":
            command = one_line(args.get("command") or detail.get("command")) or name
            code = detail.get("exitCode")
            if failure is None or isinstance(code, int):
                return self.activity("command", command + suffix, tool_name=name, exit_code=code)
            return self.activity("error", f"{command} failed: {reason}", tool_name=name)
        path = args.get("path") or detail.get("path")
        target = self.path(path) or next(
            (one_line(args[k]) for k in _TARGET_KEYS if args.get(k)), ""
        )
        what = f"{name} {target}".strip()
        if failure is not None:
            return self.activity(
                "error", f"{what} failed: {reason}", tool_name=name, file_path=path
            )
        if name in _EDIT_TOOLS:
            added, removed = detail.get("linesAdded"), detail.get("linesRemoved")
            if isinstance(added, int) and isinstance(removed, int):
                what += f" (+{added} -{removed})"
            return self.activity("file_change", what + suffix, tool_name=name, file_path=path)
        return self.activity("tool_use", what + suffix, tool_name=name, file_path=path)

    def _result(self, obj: dict[str, Any]) -> list[Activity]:
        out = []
        if obj.get("is_error") or obj.get("subtype") not in (None, "success"):
            reason = obj.get("error") or obj.get("result") or obj.get("subtype")
            out.append(self.activity("error", f"result: {one_line(reason) or 'error'}"))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            total_in = sum(
                as_int(usage.get(k))
                for k in (
                    "input_tokens",
                    "inputTokens",
                    "cache_read_input_tokens",
                    "cacheReadTokens",
                    "cache_creation_input_tokens",
                    "cacheWriteTokens",
                )
            )
            total_out = as_int(usage.get("output_tokens")) + as_int(usage.get("outputTokens"))
            cost = as_cost(obj.get("total_cost_usd")) or as_cost(usage.get("cost_usd"))
            out.append(
                self.usage(
                    f"{total_in + total_out} tokens ({total_in} input, {total_out} output)",
                    total_in,
                    total_out,
                    cost,
                )
            )
        if not out:
            self.quiet("result")
        return out


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reason(failure: dict[str, Any]) -> str:
    """The message of a failed tool result, else the result on one line ("" if empty)."""
    for key in ("error", "message", "stderr", "reason"):
        if failure.get(key):
            return one_line(failure[key])
    return one_line(failure) if failure else ""
