"""The ``codex`` agent: OpenAI Codex CLI, run as ``codex exec --json``.

Formats: ``../shared/fixtures/agent-streams/FORMATS.md`` §1; recordings in
``../shared/fixtures/agent-streams/codex/``. :class:`CodexStreamParser` reads all of them,
told apart line by line:

- ``exec --json`` (``codex-rs/exec/src/exec_events.rs``): ``thread.*``/``turn.*``/``item.*``
  and ``error``. ``command_execution`` → command (the ``bash -lc '...'`` wrapper
  stripped, ``exit_code``, tool "shell": the item does not name the tool);
  ``file_change`` → one file_change per changed path, described ``<kind> <path>``;
  ``agent_message`` → message; ``reasoning`` → reasoning; ``mcp_tool_call`` (tool
  ``mcp__<server>__<tool>``), ``web_search``, ``todo_list`` → tool_use; an ``error``
  item (a non-fatal warning) → message ``warning: ...``. ``item.started``/``updated``
  are folded into the ``item.completed`` that carries the result (a tool item's start
  is shown at the end of a stream that stops before it completes). ``turn.failed`` and
  ``error`` → error, the inner ``message`` when the text is a JSON document; a
  ``turn.failed`` repeating the ``error`` of its own turn is quiet.
- the legacy stream (before ~0.44): a config summary line, ``{"prompt": ...}``, then
  ``{"id": ..., "msg": {...}}`` protocol events (``exec_command_begin``/``end``,
  ``patch_apply_begin``/``end``, ``agent_message``, ``token_count``, ``error`` ...).
- session rollouts (``~/.codex/sessions/.../rollout-*.jsonl``): ``session_meta`` and
  ``turn_context`` are quiet; ``event_msg`` payloads are the same protocol events as the
  legacy stream; ``response_item`` ``function_call``/``custom_tool_call`` are held until
  their ``*_output`` gives the exit code (a call shown by its ``exec_command_end`` event
  is not shown again by its output). ``response_item`` ``message`` and ``reasoning``
  are quiet: the ``agent_message``/``agent_reasoning`` event next to each carries the
  same text, and user messages are the prompt.
- ``codex-tui.log`` text (``tracing`` records, ANSI colours stripped; a record runs until
  the next one starts): ``ToolCall: shell|exec_command {...}`` → tool_use with the
  command, ``ToolCall: apply_patch`` → one tool_use per ``*** Update|Add|Delete File:``
  path, other ToolCalls → tool_use, ``ERROR`` records → error, the rest quiet. The log
  has no results, exit codes or token counts. A line that is the worker's own
  (``[<ts>] EXIT: 1``) or JSON ends a record.

In rollouts and the TUI log a shell call whose script is an ``apply_patch``
(``apply_patch <<'EOF'``, as older models call it) is shown as the patch: one activity
per file, tool "apply_patch" (``exec --json`` reports those as ``file_change`` items).

Usage: each usage activity carries the increment since the previous report, so summing a
transcript's usage activities gives the run's totals. ``input_tokens`` includes the
cached input tokens (Codex counts ``cached_input_tokens`` inside ``input_tokens``); Codex
reports no cost, so ``cost_usd`` is 0. ``turn.completed.usage`` and ``token_count``'s
``total_token_usage`` are cumulative since the thread started: the increment is the
difference with the previous report (``thread.started`` starts a new count; a total
that goes down is taken as a new count, ``last_token_usage`` when there is one).
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

import msgspec

from ap_actors.agents.base import Activity, AgentTask, CliAdapter, clip, render_prompt
from ap_actors.agents.streams import JsonStreamParser, as_int, one_line
from ap_actors.events import ActivityType

_decode = msgspec.json.Decoder().decode

_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh"})
_SHELL_TOOLS = frozenset({"shell", "exec_command", "local_shell_call", "container.exec"})
_WRAPPED = re.compile(r"(?:\S*/)?(?:ba|z|da|k)?sh\s+-l?c\s+(?P<script>.+)", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TUI_RECORD = re.compile(
    r"\d{4}-\d\d-\d\dT[\d:.]+Z\s+(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\s+(?P<message>.*)", re.S
)
# Span context and module path before a record's message:
# ``session_loop{thread_id=...}: codex_core::stream_events_utils: ``.
_TUI_TARGET = re.compile(r"(?:[\w-]+(?:\{[^}]*\})?(?::[\w-]+(?:\{[^}]*\})?)*: )?\w+(?:::\w+)+: ")
_EXIT_JSON = re.compile(r"\s*(-?\d+)")
_EXIT_TEXT = re.compile(r"(?:Exit code:?|Process exited with code) (-?\d+)")
_PATCH_FILE = re.compile(r"^\*\*\* (Update|Add|Delete) File: (.+)$|^\*\*\* Move to: (.+)$", re.M)
_RECORD_LINES_KEPT = 64  # continuation lines kept per TUI record, besides patch headers

# Protocol events (legacy ``msg`` and rollout ``event_msg``) with nothing to show, and
# those whose content a later event carries.
_QUIET_EVENTS = frozenset(
    {
        "task_started",
        "task_complete",
        "session_configured",
        "turn_diff",
        "shutdown_complete",
        "background_event",
        "user_message",
        "agent_reasoning_section_break",
        "get_history_entry_response",
        "mcp_list_tools_response",
        "list_custom_prompts_response",
        "entered_review_mode",
        "exited_review_mode",
        "context_compacted",
    }
)
_FOLDED_EVENTS = frozenset(
    {
        "agent_message_delta",
        "agent_reasoning_delta",
        "agent_reasoning_raw_content_delta",
        "exec_command_output_delta",
        "web_search_begin",
    }
)


class CodexAdapter(CliAdapter):
    """Runs OpenAI's Codex CLI non-interactively (``codex exec --json``) in the worktree.

    The argv is the one verified in ``../shared/AGENTS-OFFLINE.md``: no approvals and no
    sandbox (the worktree is the sandbox), no git-repository check (a worktree's ``.git``
    is a file), ``-m`` only when the team file names a model.
    """

    name = "codex"
    program = "codex"
    package = "npm @openai/codex"

    def argv(self, task: AgentTask) -> list[str]:
        return [
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            *(["-m", task.model] if task.model else []),
            render_prompt(task),
        ]

    def parser(self, workdir: str | None = None) -> CodexStreamParser:
        return CodexStreamParser(workdir)


class _Record:
    """A codex-tui.log record being read: its first line, and the lines that follow."""

    __slots__ = ("extra", "heads", "level", "lines", "message")

    def __init__(self, level: str, message: str) -> None:
        self.level = level
        self.message = message
        self.heads: list[str] = []  # continuation lines starting "*** " (patch headers)
        self.extra: list[str] = []  # the other continuation lines, the first few
        self.lines = 1  # lines of the transcript the record spans


class CodexStreamParser(JsonStreamParser):
    """The ``codex`` adapter's parser: every Codex format of the module doc, line by line.

    Args:
        workdir: the objective's worktree; absolute paths under it are made relative.
    """

    def __init__(self, workdir: str | None = None) -> None:
        super().__init__(workdir)
        self._pending: dict[str, list[Activity]] = {}  # call id -> activities awaiting result
        self._started: dict[str, dict[str, Any]] = {}  # item id -> tool item not completed
        self._done: set[str] = set()  # call ids whose result was shown
        self._turn_total: tuple[int, int] | None = None  # last turn.completed usage
        self._token_total: tuple[int, int] | None = None  # last token_count total
        self._last_error = ""  # the top-level ``error`` of the current turn
        self._todo = ""  # description of the last todo_list shown
        self._record: _Record | None = None  # codex-tui.log record being read

    # --- lines ------------------------------------------------------------------------

    def feed(self, line: str) -> list[Activity]:
        record = self._record
        if line[:1] == "{":  # JSON: the base reads it (it ends a TUI record)
            return super().feed(line) if record is None else self._flush() + super().feed(line)
        if record is None and self.gathering:  # a document's line (no record is open then)
            return super().feed(line)
        text = _ANSI.sub("", line) if "\x1b" in line else line
        if text[:1].isdigit() and (m := _TUI_RECORD.match(text)):
            out = self._flush()
            self._record = _Record(m["level"], m["message"])
            return out
        if record is None:
            return super().feed(text)
        if text[:1] == "[" and text[1:2].isdigit():  # the worker's own line ends a record
            return self._flush() + super().feed(text)
        record.lines += 1
        if text[:4] == "*** ":
            record.heads.append(text)
        elif len(record.extra) < _RECORD_LINES_KEPT:
            record.extra.append(text)
        return []

    def end(self) -> list[Activity]:
        out = self._flush()
        for held in self._pending.values():  # calls whose result never came
            out += held
        for item in self._started.values():  # items that never completed
            out += self._completed("item.started", item.get("type"), item)
        self._pending.clear()
        self._started.clear()
        return out

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj.get("type")
        match kind:
            case "item.completed" | "item.started" | "item.updated":
                item = obj.get("item")
                if isinstance(item, dict):
                    return self._item(kind, item)
                return [self.other(kind, obj)]
            case "response_item" | "event_msg":
                payload = obj.get("payload")
                if isinstance(payload, dict):
                    if kind == "event_msg":
                        return self._protocol(payload)
                    return self._response_item(payload)
                return [self.other(kind, obj)]
            case "turn.completed":
                return [self._turn_usage(obj.get("usage"))]
            case "turn.failed":
                error = obj.get("error")
                text = error_text(error.get("message") if isinstance(error, dict) else error)
                said, self._last_error = self._last_error, ""
                if text == said:  # the ``error`` just before said it
                    return self.quiet(kind)
                return [self.activity("error", text)]
            case "error":
                self._last_error = error_text(obj.get("message"))
                return [self.activity("error", self._last_error)]
            case "thread.started":
                self._turn_total = self._token_total = None
                return self.quiet(kind)
            case "turn.started":
                self._last_error = ""
                return self.quiet(kind)
            case "session.created" | "session_meta" | "turn_context":
                return self.quiet(kind)
            case "compacted" | "item.plan.delta":
                return self.quiet(kind)
            case None:
                return self._untyped(obj)
            case _:
                return [self.other(str(kind), obj)]

    # --- exec --json items ------------------------------------------------------------

    def _item(self, kind: str, item: dict[str, Any]) -> list[Activity]:
        item_type = item.get("type")
        if item_type == "todo_list":  # each state of the list is worth showing
            return self._todo_list(kind, item.get("items"))
        key = item.get("id") if isinstance(item.get("id"), str) else None
        if kind == "item.completed":
            if key is not None:
                self._started.pop(key, None)
            return self._completed(kind, item_type, item)
        if isinstance(item_type, str) and item_type in _TOOL_ITEMS:
            if key is None:  # nothing will match its completion: show it now
                return self._completed(kind, item_type, item)
            self._started[key] = item  # shown at the end if the run stops before it completes
            return self.fold(f"{kind}/{item_type}")
        if isinstance(item_type, str) and item_type in _TEXT_ITEMS:
            return self.fold(f"{kind}/{item_type}")
        return [self.other(f"{kind}/{item_type}", item)]

    def _completed(self, kind: str, item_type: object, item: dict[str, Any]) -> list[Activity]:
        """The activities of an item as it stands (``item.completed``: with its result)."""
        match item_type:
            case "agent_message" | "assistant_message":
                return [self.activity("message", item.get("text"))]
            case "reasoning":
                return [self.activity("reasoning", item.get("text"))]
            case "command_execution":
                command = shell_command(item.get("command"))
                if item.get("status") == "declined":
                    command += " (declined)"
                return [
                    self.activity(
                        "command", command, tool_name="shell", exit_code=item.get("exit_code")
                    )
                ]
            case "file_change":
                return self._file_changes(item.get("changes"), item.get("status") == "failed")
            case "mcp_tool_call":
                tool = f"mcp__{item.get('server')}__{item.get('tool')}"
                error = item.get("error")
                if error or item.get("status") == "failed":
                    message = error.get("message") if isinstance(error, dict) else error
                    return [self.activity("error", f"{tool}: {message}", tool_name=tool)]
                args = item.get("arguments")
                return [self.activity("tool_use", f"{tool} {one_line(args)}", tool_name=tool)]
            case "web_search":
                action = item.get("action")
                query = item.get("query") or (
                    action.get("query") if isinstance(action, dict) else ""
                )
                return [self.activity("tool_use", query or "web search", tool_name="web_search")]
            case "error":
                return [self.activity("message", f"warning: {item.get('message')}")]
            case _:
                return [self.other(f"{kind}/{item_type}", item)]

    def _file_changes(self, changes: object, failed: bool) -> list[Activity]:
        out = []
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict):
                out.append(self._change(str(change.get("kind") or "update"), change.get("path")))
        if not out:
            out.append(self.activity("file_change", "file change", tool_name="apply_patch"))
        return [_failed(a) for a in out] if failed else out

    def _change(
        self, kind: str, raw_path: object, activity_type: ActivityType = "file_change"
    ) -> Activity:
        path = self.path(raw_path)
        return self.activity(
            activity_type, f"{kind} {path}", tool_name="apply_patch", file_path=path
        )

    def _todo_list(self, kind: str, items: object) -> list[Activity]:
        steps = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        done = sum(1 for s in steps if s.get("completed") is True)
        now = next((s.get("text") for s in steps if s.get("completed") is not True), None)
        text = f"todo list: {done}/{len(steps)} done" + (f"; next: {now}" if now else "")
        if text == self._todo:
            return self.quiet(kind + "/todo_list")
        self._todo = text
        return [self.activity("tool_use", text, tool_name="todo_list")]

    def _turn_usage(self, usage: object) -> Activity:
        total = _tokens(usage)
        previous, self._turn_total = self._turn_total, total
        inp, out = _increment(total, previous, total)
        return self.usage(f"turn completed: {inp} input, {out} output tokens", inp, out)

    # --- protocol events (legacy ``msg``, rollout ``event_msg``) ----------------------

    def _untyped(self, obj: dict[str, Any]) -> list[Activity]:
        msg = obj.get("msg")
        if isinstance(msg, dict):
            return self._protocol(msg)
        if "prompt" in obj:
            return self.quiet("prompt")
        if "model" in obj or "workdir" in obj or "sandbox" in obj:
            return self.quiet("config")
        return [self.other("untyped", obj)]

    def _protocol(self, msg: dict[str, Any]) -> list[Activity]:
        kind = msg.get("type")
        match kind:
            case "agent_message":
                return [self.activity("message", msg.get("message"))]
            case "agent_reasoning" | "agent_reasoning_raw_content":
                return [self.activity("reasoning", msg.get("text"))]
            case "token_count":
                return self._token_count(msg)
            case "exec_command_begin":
                command = shell_command(msg.get("command"))
                held = [self.activity("command", command, tool_name="shell")]
                return self._hold(kind, msg.get("call_id"), held)
            case "exec_command_end":
                return self._result(kind, msg.get("call_id"), msg.get("exit_code"), msg)
            case "patch_apply_begin":
                return self._hold(kind, msg.get("call_id"), self._patch_changes(msg.get("changes")))
            case "patch_apply_end":
                code = 0 if msg.get("success") is not False else 1
                return self._result(kind, msg.get("call_id"), code, msg)
            case "mcp_tool_call_begin":
                return self._hold(kind, msg.get("call_id"), [self._mcp(msg.get("invocation"))])
            case "mcp_tool_call_end":
                code = 1 if _mcp_failed(msg.get("result")) else 0
                return self._result(kind, msg.get("call_id"), code, msg)
            case "web_search_end":
                return [self.activity("tool_use", msg.get("query"), tool_name="web_search")]
            case "plan_update":
                return [self.activity("tool_use", _plan(msg), tool_name="update_plan")]
            case "error" | "stream_error":
                return [self.activity("error", error_text(msg.get("message")))]
            case "turn_aborted":
                return [self.activity("error", f"turn aborted: {msg.get('reason')}")]
            case str() if kind in _QUIET_EVENTS:
                return self.quiet(str(kind))
            case str() if kind in _FOLDED_EVENTS:
                return self.fold(str(kind))
            case _:
                return [self.other(f"msg/{kind}", msg)]

    def _token_count(self, msg: dict[str, Any]) -> list[Activity]:
        info = msg.get("info", msg)  # before ~0.3x the event was the TokenUsage itself
        if not isinstance(info, dict):
            return self.quiet("token_count")  # rate limits only
        last = _tokens(info.get("last_token_usage")) if "last_token_usage" in info else None
        if "total_token_usage" in info:
            total = _tokens(info.get("total_token_usage"))
            previous, self._token_total = self._token_total, total
            inp, out = _increment(total, previous, last or total)
        else:
            inp, out = last or _tokens(info)
        if inp == out == 0:
            return self.quiet("token_count")  # repeated report: nothing new
        return [self.usage(f"tokens: {inp} input, {out} output", inp, out)]

    def _patch_changes(self, changes: object) -> list[Activity]:
        out = []
        if isinstance(changes, dict):  # {path: {"add": {...}} | {"type": "update", ...}}
            for path, change in changes.items():
                kind = "update"
                if isinstance(change, dict) and change:
                    kind = str(change.get("type") or next(iter(change)))
                out.append(self._change(kind, path))
        return out or [self.activity("file_change", "apply patch", tool_name="apply_patch")]

    def _mcp(self, invocation: object) -> Activity:
        inv = invocation if isinstance(invocation, dict) else {}
        tool = f"mcp__{inv.get('server')}__{inv.get('tool')}"
        return self.activity("tool_use", f"{tool} {one_line(inv.get('arguments'))}", tool_name=tool)

    # --- held calls -------------------------------------------------------------------

    def _hold(self, kind: str, call_id: object, held: list[Activity]) -> list[Activity]:
        """Keep a call's activities until its result gives the exit code."""
        if not isinstance(call_id, str):
            return held  # nothing will match it: show it now
        self._pending[call_id] = held
        return self.fold(kind)

    def _result(
        self,
        kind: str,
        call_id: object,
        exit_code: object,
        result: dict[str, Any],
    ) -> list[Activity]:
        """Return a held call's activities completed by its result (once per call id).

        When the call's start was not seen they are built from ``result`` itself. A
        non-zero exit code makes a tool_use or file_change an ``error`` ("failed: ...").
        """
        key = call_id if isinstance(call_id, str) else ""
        if key in self._done:
            return self.quiet(kind)  # shown already (rollout event and response item)
        held = self._pending.pop(key, None)
        if held is None:
            held = self._unseen(kind, result)
        if key:
            self._done.add(key)
        code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
        if code is None:
            return held
        out = []
        for a in held:
            if a.activity_type == "command":
                a = msgspec.structs.replace(a, exit_code=code)
            elif code:
                a = _failed(a)
            out.append(a)
        return out

    def _unseen(self, kind: str, result: dict[str, Any]) -> list[Activity]:
        """The activities of a result whose call's start was not seen."""
        if kind == "patch_apply_end":
            return self._patch_changes(result.get("changes"))
        if kind == "mcp_tool_call_end":
            return [self._mcp(result.get("invocation"))]
        if kind == "exec_command_end":
            command = shell_command(result.get("command")) or "command"
            return [self.activity("command", command, tool_name="shell")]
        return [self.activity("tool_use", f"result of call {result.get('call_id')}")]

    # --- rollout response items -------------------------------------------------------

    def _response_item(self, item: dict[str, Any]) -> list[Activity]:
        kind = item.get("type")
        match kind:
            case "function_call" | "custom_tool_call" | "local_shell_call":
                return self._hold(f"response_item/{kind}", item.get("call_id"), self._call(item))
            case "function_call_output" | "custom_tool_call_output":
                code = _exit(item.get("output"))
                return self._result(f"response_item/{kind}", item.get("call_id"), code, item)
            case "web_search_call":
                action = item.get("action")
                query = action.get("query") if isinstance(action, dict) else None
                return [self.activity("tool_use", query or "web search", tool_name="web_search")]
            case "message" | "reasoning" | "ghost_snapshot" | "compaction":
                return self.quiet(f"response_item/{kind}")
            case _:
                return [self.other(f"response_item/{kind}", item)]

    def _call(self, item: dict[str, Any]) -> list[Activity]:
        """The activities of a model's tool call (``function_call`` and kin)."""
        name = str(item.get("name") or "shell")
        raw = item.get("arguments", item.get("input"))
        args: Any = raw
        if isinstance(raw, str) and raw[:1] == "{":
            try:
                args = _decode(raw)
            except msgspec.DecodeError:
                args = raw
        action = item.get("action")
        if isinstance(action, dict):  # local_shell_call
            args = action
        return self._tool(name, args)

    def _tool(self, name: str, args: Any, requested: bool = False) -> list[Activity]:
        """The activities of a call of tool ``name`` with ``args`` (decoded JSON or text).

        A shell command is a ``command``, a patch one ``file_change`` per file, unless
        ``requested`` (the call is known, not its outcome): then they are ``tool_use``.
        """
        if isinstance(args, dict):
            command = args.get("command", args.get("cmd"))
            shell = name in _SHELL_TOOLS
            if name == "apply_patch" or (shell and _is_patch(command)):
                text = args.get("input", command)
                if isinstance(text, list):  # ["apply_patch", patch] or [shell, "-lc", script]
                    text = text[-1] if text else ""
                return self._patch(patch_files(text if isinstance(text, str) else ""), requested)
            if shell and command is not None:
                run: ActivityType = "tool_use" if requested else "command"
                return [self.activity(run, shell_command(command), tool_name=name)]
            if name == "update_plan":
                return [self.activity("tool_use", _plan(args), tool_name=name)]
        elif isinstance(args, str) and name == "apply_patch":
            return self._patch(patch_files(args), requested)
        return [self.activity("tool_use", f"{name} {one_line(args)}", tool_name=name)]

    def _patch(self, files: list[tuple[str, str]], requested: bool) -> list[Activity]:
        """One activity per file of a patch (see :meth:`_tool`)."""
        kind: ActivityType = "tool_use" if requested else "file_change"
        return [self._change(change, path, kind) for change, path in files] or [
            self.activity(kind, "apply patch", tool_name="apply_patch")
        ]

    # --- codex-tui.log ----------------------------------------------------------------

    def _flush(self) -> list[Activity]:
        """Return the activities of the TUI record being read, and account for its lines."""
        record, self._record = self._record, None
        if record is None:
            return []
        out = self._tui(record)
        if out:
            self.account("activity", record.lines)
        else:
            self.account("quiet", record.lines, f"tui.{record.level}")
        return out

    def _tui(self, record: _Record) -> list[Activity]:
        message = record.message
        if record.level != "ERROR" and "ToolCall: " not in message:  # nothing to show
            return []
        if "::" in message and (m := _TUI_TARGET.match(message)):
            message = message[m.end() :]
        if message.startswith("ToolCall: "):
            name, _, args = message[10:].partition(" ")
            if name == "apply_patch":
                files = patch_files("\n".join([args, *record.heads]))
                return self._patch(files, requested=True)
            decoded: Any = args
            end = args.rfind("}")  # newer logs add span fields after the JSON
            if args[:1] == "{" and end > 0:
                try:
                    decoded = _decode(args[: end + 1])
                except msgspec.DecodeError:
                    decoded = args
            return self._tool(name, decoded, requested=True)
        if record.level == "ERROR":
            return [self.activity("error", " ".join([message, *record.extra]))]
        return []


_TOOL_ITEMS = frozenset({"command_execution", "file_change", "mcp_tool_call", "web_search"})
_TEXT_ITEMS = frozenset({"agent_message", "assistant_message", "reasoning", "error"})


def shell_command(raw: object) -> str:
    """Return the command a shell wrapper runs, as one string.

    ``bash -lc ls`` → ``ls``; ``/bin/bash -lc 'cat app.py'`` → ``cat app.py``; an argv
    list (``["bash", "-lc", "ls -a"]``) → ``ls -a``; another list is shell-quoted and
    joined. Text that is no wrapper is returned as it is; a non-string gives "".
    """
    if isinstance(raw, list):
        argv = [str(a) for a in raw]
        if len(argv) == 3 and os.path.basename(argv[0]) in _SHELLS and argv[1] in ("-lc", "-c"):
            return argv[2]
        return shlex.join(argv)
    if not isinstance(raw, str):
        return ""
    m = _WRAPPED.fullmatch(raw)
    if m is None:
        return raw
    script = m["script"]
    if len(script) > 1 and script[0] == script[-1] == "'" and "'" not in script[1:-1]:
        return script[1:-1]  # single quotes: no escapes inside
    if script[:1] in ("'", '"'):
        try:
            words = shlex.split(script)
        except ValueError:
            return script
        if len(words) == 1:
            return words[0]
    return script


def patch_files(text: str) -> list[tuple[str, str]]:
    """Return ``(kind, path)`` for each file an ``apply_patch`` body names, in order.

    Kinds: ``update``, ``add``, ``delete`` (``*** Update File: path`` ...) and ``move``
    for the new name of a ``*** Move to: path`` line.
    """
    return [
        (m[1].lower(), m[2].strip()) if m[1] else ("move", m[3].strip())
        for m in _PATCH_FILE.finditer(text)
    ]


def error_text(raw: object) -> str:
    """Return an error message as one line of text.

    Codex passes API errors on as a pretty-printed JSON document inside the string
    (``{"type": "error", "error": {"type": ..., "message": ...}, "status": 400}``): then
    the inner ``message`` is returned, followed by the error type and HTTP status.
    """
    if not isinstance(raw, str):
        return one_line(raw) or "error"
    if raw.lstrip()[:1] == "{":
        try:
            doc = _decode(raw)
        except msgspec.DecodeError:
            return one_line(raw)
        if isinstance(doc, dict):
            inner = doc.get("error")
            body = inner if isinstance(inner, dict) else doc
            message = body.get("message")
            if isinstance(message, str) and message:
                notes = [str(body["type"])] if isinstance(body.get("type"), str) else []
                if isinstance(doc.get("status"), int):
                    notes.append(f"status {doc['status']}")
                return one_line(f"{message} ({', '.join(notes)})" if notes else message)
    return one_line(raw)


def _is_patch(command: object) -> bool:
    """Whether a shell call runs ``apply_patch`` (older models call it through the shell)."""
    if isinstance(command, list):
        return bool(command) and (
            command[0] == "apply_patch" or "*** Begin Patch" in str(command[-1])
        )
    return isinstance(command, str) and "*** Begin Patch" in command


def _mcp_failed(result: object) -> bool:
    """Whether an ``mcp_tool_call_end`` result (``{"Ok": {...}}``/``{"Err": ...}``) failed."""
    if not isinstance(result, dict):
        return False
    ok = result.get("Ok", result)
    return "Err" in result or (isinstance(ok, dict) and ok.get("isError") is True)


def _plan(args: dict[str, Any]) -> str:
    """A one-line summary of an ``update_plan`` call: steps done, the step in progress."""
    plan = args.get("plan")
    steps = [s for s in plan if isinstance(s, dict)] if isinstance(plan, list) else []
    done = sum(1 for s in steps if s.get("status") == "completed")
    now = next((s.get("step") for s in steps if s.get("status") == "in_progress"), None)
    return f"plan: {done}/{len(steps)} done" + (f"; now: {now}" if now else "")


def _exit(output: object) -> int | None:
    """The exit code in a ``function_call_output``: JSON ``metadata.exit_code`` or text."""
    if not isinstance(output, str):
        return None
    if output[:1] == "{":
        # {"output": "...", "metadata": {"exit_code": 0, ...}}: the metadata comes last,
        # after the command's output, which need not be decoded.
        at = output.rfind('"exit_code":')
        m = _EXIT_JSON.match(output, at + 12) if at >= 0 else None
        return int(m[1]) if m else None
    m = _EXIT_TEXT.search(output, 0, 500)
    return int(m[1]) if m else None


def _failed(activity: Activity) -> Activity:
    """``activity`` made an error: "failed: <description>"."""
    return msgspec.structs.replace(
        activity, activity_type="error", description=clip(f"failed: {activity.description}")
    )


def _tokens(usage: object) -> tuple[int, int]:
    """``(input, output)`` tokens of a Codex usage object (input includes cached input)."""
    if not isinstance(usage, dict):
        return 0, 0
    return as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens"))


def _increment(
    total: tuple[int, int], previous: tuple[int, int] | None, fresh: tuple[int, int]
) -> tuple[int, int]:
    """The increment of a cumulative count; ``fresh`` when the count started again."""
    if previous is None:
        return total
    if total[0] < previous[0] or total[1] < previous[1]:
        return fresh
    return total[0] - previous[0], total[1] - previous[1]
