"""The ``gemini`` agent: Google's Gemini CLI run headless, and the parser of its output.

Command (``../shared/fixtures/agent-streams/FORMATS.md`` §4; run this way against a
scripted model with gemini-cli 0.61.0, ``../shared/AGENTS-OFFLINE.md``)::

    gemini [-m MODEL] -p PROMPT --output-format stream-json --yolo

in the worktree; ``--yolo`` approves every tool call. Package: npm
``@google/gemini-cli``.

:class:`GeminiParser` reads the three formats the CLI writes (schema:
``google-gemini/gemini-cli:packages/core/src/output/types.ts``):

- ``stream-json``, one object a line: ``init`` → quiet (it also starts a new count of
  tokens, see below); ``message`` with ``role`` user (the prompt) → quiet, assistant →
  message; assistant chunks (``delta: true``) are concatenated into ONE
  message, given when a line of another kind arrives or the stream ends; ``tool_use``
  is folded into its ``tool_result`` (matched by ``tool_id``), which gives the tool's
  activity (below); ``error`` (``severity`` warning|error) → error; ``result`` →
  usage from ``stats``, plus an error when ``status`` is ``error``.
- ``--output-format json``: one pretty-printed document ``{session_id?, response,
  stats{models{<m>{api, tokens}}, tools, files}, error?}`` → a message (``response``),
  a usage (tokens summed over the models) and an error when ``error`` is set.
- chat-session files (``~/.gemini/tmp/<hash>/chats/session-*.json``), one
  pretty-printed document ``{sessionId, messages[...]}``: per message, ``user`` (a
  prompt) → nothing; ``gemini`` → one reasoning per ``thoughts`` entry
  (``subject: description``), a message for non-empty ``content``, one activity per
  ``toolCalls`` entry (``name``, ``args``, ``status``, ``result[].functionResponse``)
  and a usage from ``tokens``; ``error``/``warning`` → error; ``info`` → message.

A tool's activity: ``run_shell_command`` → command (description the command,
``exit_code`` from ``Exit Code: N`` or ``Command exited with code: N`` in the output,
None when the output says neither); ``write_file``, ``replace``, ``edit`` →
file_change; any other tool → tool_use; a failed call (status ``error``) → error
``<tool> <target> failed: <message>``. ``file_path`` comes from the arguments
``file_path``, ``absolute_path``, ``path`` or ``dir_path``.

Tokens: input = prompt tokens (cached ones included) plus tool-use prompt tokens;
output = candidate tokens plus thought tokens (both billed as output). The stream's
``result.stats`` has ``input_tokens`` (prompt) and ``total_tokens`` but leaves thoughts
out of ``output_tokens``, so output is ``total_tokens - input_tokens`` there (which
also holds the tool-use prompt tokens, which the stream does not break out). Those
stats are cumulative for the process: each usage activity carries the increase since
the previous ``result`` after the last ``init``. No cost is reported (``cost_usd`` 0).
"""

from __future__ import annotations

import re
from typing import Any

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, render_prompt
from ap_actors.agents.streams import JsonStreamParser, as_int, one_line
from ap_actors.events import ActivityType

_SHELL_TOOLS = frozenset({"run_shell_command"})
_EDIT_TOOLS = frozenset({"write_file", "replace", "edit", "smart_edit"})
_PATH_KEYS = ("file_path", "absolute_path", "path", "dir_path")
_TARGET_KEYS = ("command", "pattern", "query", "url", "prompt", "paths")
_EXIT = re.compile(r"(?:Exit Code|Command exited with code):\s*(-?\d+)")


class GeminiAdapter(CliAdapter):
    """Runs the Gemini CLI headless with its ``stream-json`` output."""

    name = "gemini"
    program = "gemini"
    package = "npm @google/gemini-cli"

    def argv(self, task: AgentTask) -> list[str]:
        return [
            "gemini",
            *(["-m", task.model] if task.model else []),
            "-p",
            render_prompt(task),
            "--output-format",
            "stream-json",
            "--yolo",
        ]

    def parser(self, workdir: str | None = None) -> GeminiParser:
        return GeminiParser(workdir)


class GeminiParser(JsonStreamParser):
    """Gemini CLI ``stream-json``, ``json`` output and chat-session files (module doc)."""

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._delta: list[str] = []  # assistant chunks of the message being streamed
        self._calls: dict[str, dict[str, Any]] = {}  # tool_use lines by tool_id
        self._seen = (0, 0)  # input, output tokens reported by results since init

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj.get("type")
        streaming = kind == "message" and obj.get("delta") and obj.get("role") == "assistant"
        out = [] if streaming else self._end_message()
        match kind:
            case "init":
                self._seen = (0, 0)
                self.quiet("init")
            case "message" if streaming:
                self._delta.append(_text(obj.get("content")))
                self.fold("message.delta")
            case "message":
                out += self._message(obj.get("role"), obj.get("content"))
            case "tool_use":
                self._calls[str(obj.get("tool_id"))] = obj
                self.fold("tool_use")
            case "tool_result":
                out.append(self._tool_result(obj))
            case "error":
                severity = obj.get("severity") or "error"
                out.append(self.activity("error", f"{severity}: {one_line(obj.get('message'))}"))
            case "result":
                out += self._result(obj)
            case None if isinstance(obj.get("messages"), list):  # documents (base: event)
                out += self._session(obj)
            case None if {"response", "stats", "error"} & obj.keys():
                out += self._json_output(obj)
            case _:
                out.append(self.other(str(kind) if kind is not None else "untyped", obj))
        return out

    def end(self) -> list[Activity]:
        out = []
        for call in self._calls.values():  # the stream stopped before their result
            out.append(
                self._tool(
                    str(call.get("tool_name") or "tool"),
                    _args(call.get("parameters")),
                    ok=True,
                    output="",
                    pending=True,
                )
            )
        self._calls.clear()
        return out + self._end_message()  # the calls started before these chunks

    # --- stream-json -------------------------------------------------------------------

    def _end_message(self) -> list[Activity]:
        if not self._delta:
            return []
        text, self._delta = "".join(self._delta), []
        return [self.activity("message", text)] if text.strip() else []

    def _message(self, role: object, content: object) -> list[Activity]:
        text = _text(content)
        if role == "user" or not text.strip():  # the prompt, which the worker wrote
            self.quiet(f"message.{role}")
            return []
        return [self.activity("message", text)]

    def _tool_result(self, obj: dict[str, Any]) -> Activity:
        tool_id = str(obj.get("tool_id"))
        call = self._calls.pop(tool_id, {})
        name = call.get("tool_name") or _name_from_id(tool_id)
        error = obj.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return self._tool(
            str(name),
            _args(call.get("parameters")),
            ok=obj.get("status") != "error",
            output=_text(obj.get("output")),
            error=one_line(message),
        )

    def _result(self, obj: dict[str, Any]) -> list[Activity]:
        out = []
        if obj.get("status") == "error" or obj.get("error"):
            error = obj.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            out.append(self.activity("error", f"result: {one_line(message) or 'error'}"))
        stats = obj.get("stats")
        if isinstance(stats, dict):
            total_in = as_int(stats.get("input_tokens"))
            total = as_int(stats.get("total_tokens"))
            total_out = max(as_int(stats.get("output_tokens")), total - total_in)
            seen_in, seen_out = self._seen
            self._seen = (max(seen_in, total_in), max(seen_out, total_out))
            out.append(
                self.usage(
                    f"{total} tokens ({total_in} input, {total_out} output),"
                    f" {as_int(stats.get('tool_calls'))} tool calls,"
                    f" {as_int(stats.get('duration_ms')) / 1000:.1f} s",
                    max(0, total_in - seen_in),
                    max(0, total_out - seen_out),
                )
            )
        if not out:
            self.quiet("result")
        return out

    # --- documents ---------------------------------------------------------------------

    def _json_output(self, obj: dict[str, Any]) -> list[Activity]:
        out = self._message("assistant", obj.get("response")) if obj.get("response") else []
        error = obj.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            out.append(self.activity("error", one_line(message) or "error"))
        stats = obj.get("stats")
        models = stats.get("models") if isinstance(stats, dict) else None
        if isinstance(models, dict) and models:
            tokens = [_args(m.get("tokens")) for m in models.values() if isinstance(m, dict)]
            total_in = sum(as_int(t.get("prompt")) + as_int(t.get("tool")) for t in tokens)
            total_out = sum(as_int(t.get("candidates")) + as_int(t.get("thoughts")) for t in tokens)
            out.append(
                self.usage(
                    f"{total_in + total_out} tokens ({total_in} input, {total_out} output),"
                    f" models: {', '.join(models)}",
                    total_in,
                    total_out,
                )
            )
        if not out:
            self.quiet("json-output")
        return out

    def _session(self, obj: dict[str, Any]) -> list[Activity]:
        out: list[Activity] = []
        for m in obj["messages"]:
            if not isinstance(m, dict):
                continue
            kind = m.get("type")
            match kind:
                case "user":
                    out += self._message("user", m.get("content"))
                case "gemini":
                    out += self._turn(m)
                case "error" | "warning":
                    out.append(self.activity("error", f"{kind}: {_text(m.get('content'))}"))
                case "info":
                    out += self._message("info", m.get("content"))
                case _:
                    out.append(self.other(f"message.{kind}", m))
        if not out:
            self.quiet("chat-session")
        return out

    def _turn(self, m: dict[str, Any]) -> list[Activity]:
        """The activities of one ``gemini`` message of a chat-session file."""
        out = []
        for thought in m.get("thoughts") or []:
            if isinstance(thought, dict):
                subject, text = _text(thought.get("subject")), _text(thought.get("description"))
                out.append(self.activity("reasoning", f"{subject}: {text}" if subject else text))
        if _text(m.get("content")).strip():
            out.append(self.activity("message", _text(m.get("content"))))
        for call in m.get("toolCalls") or []:
            if isinstance(call, dict):
                output, error = _function_response(call.get("result"))
                out.append(
                    self._tool(
                        str(call.get("name") or "tool"),
                        _args(call.get("args")),
                        ok=call.get("status") not in ("error", "cancelled"),
                        output=output,
                        error=error or str(call.get("status") or ""),
                    )
                )
        tokens = m.get("tokens")
        if isinstance(tokens, dict):
            total_in = as_int(tokens.get("input")) + as_int(tokens.get("tool"))
            total_out = as_int(tokens.get("output")) + as_int(tokens.get("thoughts"))
            if total_in or total_out:
                out.append(
                    self.usage(
                        f"{total_in + total_out} tokens ({total_in} input, {total_out} output)",
                        total_in,
                        total_out,
                    )
                )
        return out

    # --- tools ---------------------------------------------------------------------------

    def _tool(
        self,
        name: str,
        args: dict[str, Any],
        *,
        ok: bool,
        output: str,
        error: str = "",
        pending: bool = False,
    ) -> Activity:
        """The activity of one tool call (see the module doc)."""
        path = next((args[k] for k in _PATH_KEYS if isinstance(args.get(k), str)), None)
        suffix = " (no result)" if pending else ""
        if name in _SHELL_TOOLS:
            codes = _EXIT.findall(output)
            code = int(codes[-1]) if codes else None
            command = one_line(args.get("command")) or name
            if ok or code is not None:
                return self.activity("command", command + suffix, tool_name=name, exit_code=code)
            return self.activity("error", f"{command} failed: {error}", tool_name=name)
        target = self.path(path) or _target(args)
        what = f"{name} {target}".strip()
        if not ok:
            return self.activity(
                "error", f"{what} failed: {error or output}", tool_name=name, file_path=path
            )
        kind: ActivityType = "file_change" if name in _EDIT_TOOLS else "tool_use"
        return self.activity(kind, what + suffix, tool_name=name, file_path=path)


def _text(value: object) -> str:
    """Text of a content value: a string, or the ``text`` of a list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(p.get("text")) for p in value if isinstance(p, dict))
    return ""


def _args(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _target(args: dict[str, Any]) -> str:
    """What a tool call without a path is about: its command, pattern, query or URL."""
    for key in _TARGET_KEYS:
        if args.get(key):
            return one_line(args[key])
    return ""


def _name_from_id(tool_id: str) -> str:
    """The tool name a ``tool_id`` starts with (``read_file-1761…``, ``replace__replace_…``)."""
    return re.split(r"__|-", tool_id, maxsplit=1)[0] or "tool"


def _function_response(result: object) -> tuple[str, str]:
    """(output, error) of a chat-session ``toolCalls[].result`` list of parts."""
    output, error = [], []
    for part in result if isinstance(result, list) else []:
        response = part.get("functionResponse") if isinstance(part, dict) else None
        body = response.get("response") if isinstance(response, dict) else None
        if isinstance(body, dict):
            output.append(_text(body.get("output")))
            error.append(one_line(body.get("error")))
    return "\n".join(o for o in output if o), " ".join(e for e in error if e)
