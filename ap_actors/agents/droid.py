"""The ``droid`` agent: Factory's Droid CLI run headless, and the parser of its stream.

Command (``../shared/fixtures/agent-streams/FORMATS.md`` §5,
https://docs.factory.ai/cli/droid-exec/overview)::

    droid exec --output-format stream-json --skip-permissions-unsafe [-m MODEL] PROMPT

in the worktree; ``--skip-permissions-unsafe`` lets it run any tool without asking
(the worktree is the objective's own). Installed from factory.ai.

No real ``droid exec`` recording is public: :class:`DroidParser` follows the event
shapes of FORMATS.md §5, taken from the parser in
``BloopAI/vibe-kanban:crates/executors/src/executors/droid/normalize_logs.rs@9b5d2c4``.
One object a line:

- ``system`` → quiet; ``message`` with ``role`` user (the prompt) → quiet, assistant →
  message.
- ``tool_call`` is folded into its ``tool_result``, matched by ``id`` (a result without
  one takes the oldest call still waiting). By ``toolName``: ``Execute`` → command
  (description ``parameters.command``; ``exit_code`` from the last
  ``[Process exited with code N]`` of the result text); ``Edit``, ``MultiEdit``,
  ``Create``, ``ApplyPatch`` → file_change (ApplyPatch's path from its ``*** Update
  File:`` / ``*** Add File:`` / ``*** Delete File:`` line); any other (``Read``,
  ``LS``, ``Glob``, ``Grep``, ``TodoWrite``, ``WebSearch``, ``FetchUrl``, ...) →
  tool_use. ``file_path`` from ``file_path``, ``path`` or ``directory_path``. A result
  with ``isError`` or an ``error`` object → error ``<tool> <target> failed:
  <message>`` (an Execute result with an exit code stays a command).
- ``error`` → error ``<source>: <message>``; a log line ``{"level", "error":
  {message}}`` printed on stdout → error.
- ``completion`` → a message with ``finalText`` unless it repeats the last assistant
  message, and a usage from ``usage`` when present: input = ``input_tokens`` plus
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` (Anthropic's
  convention, which the field names follow: the three are disjoint), output =
  ``output_tokens``, cost from ``total_cost_usd``/``cost_usd`` when given (else 0).
"""

from __future__ import annotations

import re
from typing import Any

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, render_prompt
from ap_actors.agents.streams import JsonStreamParser, as_cost, as_int, one_line
from ap_actors.events import ActivityType

_EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Create", "ApplyPatch"})
_PATH_KEYS = ("file_path", "path", "directory_path", "folder")
_TARGET_KEYS = ("command", "pattern", "patterns", "query", "url")
_EXIT = re.compile(r"\[Process exited with code (-?\d+)\]")
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File:\s*(.+?)\s*$", re.MULTILINE)


class DroidAdapter(CliAdapter):
    """Runs ``droid exec`` with its ``stream-json`` output."""

    name = "droid"
    program = "droid"
    package = "factory.ai (droid)"

    def argv(self, task: AgentTask) -> list[str]:
        return [
            "droid",
            "exec",
            "--output-format",
            "stream-json",
            "--skip-permissions-unsafe",
            *(["-m", task.model] if task.model else []),
            render_prompt(task),
        ]

    def parser(self, workdir: str | None = None) -> DroidParser:
        return DroidParser(workdir)


class DroidParser(JsonStreamParser):
    """Factory Droid ``stream-json`` (see the module doc)."""

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._calls: dict[str, dict[str, Any]] = {}  # tool_call lines by id, oldest first
        self._last_text = ""  # the last assistant message, which finalText may repeat
        self._anonymous = 0  # calls without an id so far

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj.get("type")
        match kind:
            case "system":
                self.quiet(f"system.{obj.get('subtype')}")
                return []
            case "message":
                return self._message(obj)
            case "tool_call":
                key = obj.get("id")
                if not isinstance(key, str) or not key:
                    self._anonymous += 1
                    key = f"#{self._anonymous}"
                self._calls[key] = obj
                self.fold("tool_call")
                return []
            case "tool_result":
                return [self._tool_result(obj)]
            case "error":
                source = obj.get("source")
                text = one_line(obj.get("message")) or "error"
                return [self.activity("error", f"{source}: {text}" if source else text)]
            case "completion":
                return self._completion(obj)
            case None if "level" in obj and isinstance(obj.get("error"), dict):
                text = one_line(obj["error"].get("message")) or one_line(obj["error"])
                return [self.activity("error", f"{obj.get('level')}: {text}")]
            case _:
                return [self.other(str(kind) if kind is not None else "untyped", obj)]

    def end(self) -> list[Activity]:
        out = [self._tool(c, None, done=False) for c in self._calls.values()]
        self._calls.clear()
        return out

    def _message(self, obj: dict[str, Any]) -> list[Activity]:
        text = t if isinstance(t := obj.get("text"), str) else ""
        if obj.get("role") == "user" or not text.strip():  # the prompt, or nothing
            self.quiet(f"message.{obj.get('role')}")
            return []
        self._last_text = text.strip()
        return [self.activity("message", text)]

    def _tool_result(self, obj: dict[str, Any]) -> Activity:
        key = obj.get("id")
        if isinstance(key, str) and key in self._calls:
            call = self._calls.pop(key)
        elif self._calls:  # no id, or one never seen: the oldest call waiting
            call = self._calls.pop(next(iter(self._calls)))
        else:
            call = {"toolName": obj.get("toolName") or obj.get("toolId") or "tool"}
        return self._tool(call, obj, done=True)

    def _tool(self, call: dict[str, Any], result: dict[str, Any] | None, *, done: bool) -> Activity:
        """The activity of ``call`` (a tool_call line) given its tool_result line."""
        name = str(call.get("toolName") or "tool")
        params = p if isinstance(p := call.get("parameters"), dict) else {}
        result = result or {}
        value = result.get("value")
        output = value if isinstance(value, str) else one_line(value) if value is not None else ""
        error = result.get("error")
        failed = bool(result.get("isError")) or isinstance(error, dict)
        reason = one_line(error.get("message") if isinstance(error, dict) else error) or output
        suffix = "" if done else " (no result)"
        if name == "Execute":
            command = one_line(params.get("command")) or name
            codes = _EXIT.findall(output)
            code = int(codes[-1]) if codes else None
            if not failed or code is not None:
                return self.activity("command", command + suffix, tool_name=name, exit_code=code)
            return self.activity("error", f"{command} failed: {reason}", tool_name=name)
        path = next((params[k] for k in _PATH_KEYS if isinstance(params.get(k), str)), None)
        if path is None and name == "ApplyPatch":
            m = _PATCH_FILE.search(params.get("input") or "")
            path = m[1] if m else None
        target = self.path(path) or next(
            (one_line(params[k]) for k in _TARGET_KEYS if params.get(k)), ""
        )
        if name == "TodoWrite" and isinstance(params.get("todos"), list):
            target = f"({len(params['todos'])} items)"
        what = f"{name} {target}".strip()
        if failed:
            return self.activity(
                "error", f"{what} failed: {reason}", tool_name=name, file_path=path
            )
        kind: ActivityType = "file_change" if name in _EDIT_TOOLS else "tool_use"
        return self.activity(kind, what + suffix, tool_name=name, file_path=path)

    def _completion(self, obj: dict[str, Any]) -> list[Activity]:
        out = []
        text = obj.get("finalText")
        if isinstance(text, str) and text.strip() and text.strip() != self._last_text:
            out.append(self.activity("message", text))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            total_in = sum(
                as_int(usage.get(k))
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            total_out = as_int(usage.get("output_tokens"))
            cost = as_cost(obj.get("total_cost_usd")) or as_cost(usage.get("cost_usd"))
            turns = obj.get("numTurns")
            out.append(
                self.usage(
                    f"{total_in + total_out} tokens ({total_in} input, {total_out} output)"
                    + (f", {turns} turns" if isinstance(turns, int) else ""),
                    total_in,
                    total_out,
                    cost,
                )
            )
        if not out:
            self.quiet("completion")
        return out
