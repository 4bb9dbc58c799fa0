"""A scripted model server that the real agent CLIs (Codex, Claude Code, Gemini CLI) talk to.

One aiohttp server on ``127.0.0.1`` speaks the three vendors' streaming model APIs the
way the CLIs call them (``/work/shared/AGENTS-OFFLINE.md``, checked against Codex
0.171, Claude Code 2.1.332 and Gemini CLI 0.61):

- OpenAI Responses (Codex): ``POST /v1/responses``, Server-Sent Events
  ``response.created``, ``response.output_item.added`` / ``.done``,
  ``response.completed`` with ``usage``.
- Anthropic Messages (Claude Code): ``POST /v1/messages?beta=true``, SSE
  ``message_start``, ``content_block_*``, ``message_delta`` with usage, ``message_stop``
  (one JSON message when ``stream`` is false); ``POST /v1/messages/count_tokens``.
- Gemini (Gemini CLI): ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``,
  ``:generateContent`` and ``:countTokens``.

Only the model is scripted: a test gives each conversation the turns the model plays,
in vendor-neutral terms, and the CLI runs the tools for real::

    async with serve() as server:
        server.script("o1", Shell("cat app.py"), Patch("app.py", "print(1)", "print(2)"),
                      Reply("done"), cwd=repo)
        env = cli_setup("codex", server.url, tmp_path / "home").env
        ...  # run `codex exec --json ... "Objective o1: ..."` in repo with env
        assert "print(1)" in server.exchanges("o1")[1].tool_results[0]

A request belongs to the conversation whose key is a whole word of the first user
message naming any key, so several CLIs can share one server. Every *main* request (one
offering tools) plays the conversation's next turn: the first request plays turn 0 and
each return with tool results the next. A CLI that retries a failed request therefore
plays the following turn; script one :class:`HttpError` per attempt it makes. *Side*
requests (no tools offered: titles, quota probes, Gemini's next-speaker check) get a
short answer and play no turn. A main request past the end of its script, or naming
no conversation, gets HTTP 400 with a message saying so. Every request is recorded as
an :class:`Exchange`, with the token :class:`Usage` reported to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shlex
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

Vendor = Literal["openai", "anthropic", "gemini"]
Cli = Literal["codex", "claude", "gemini"]
Json = dict[str, Any]
Kind = Literal["main", "side", "other"]


# --- the script ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shell:
    """Run a command: Codex ``exec_command``, Claude ``Bash``, Gemini ``run_shell_command``."""

    command: str


@dataclass(frozen=True)
class ReadFile:
    """Read a file: Codex ``exec_command`` ``cat``, Claude ``Read``, Gemini ``read_file``."""

    path: str


@dataclass(frozen=True)
class WriteFile:
    """Create or overwrite a file: Codex ``apply_patch`` ``Add File`` (which overwrites),
    Claude ``Write``, Gemini ``write_file``. Claude refuses to overwrite a file it has not
    read in the conversation (a ``cat`` through its shell counts)."""

    path: str
    content: str


@dataclass(frozen=True)
class Patch:
    """Replace the one occurrence of ``old`` with ``new`` in a file: Codex ``apply_patch``
    ``Update File``, Claude ``Edit``, Gemini ``replace``. ``old`` and ``new`` are whole
    lines (Codex patches are line-based), with or without the last newline."""

    path: str
    old: str
    new: str


Call = Shell | ReadFile | WriteFile | Patch


@dataclass(frozen=True)
class Reply:
    """The model's final message: text and no tool call, which ends the CLI's turn."""

    text: str


@dataclass(frozen=True)
class HttpError:
    """An HTTP error with the vendor's error body carrying ``message``."""

    status: int = 500
    message: str = "scripted server error"


Turn = tuple[Call, ...] | Reply | HttpError


@dataclass(frozen=True)
class Usage:
    """Token counts the server reported in one answer, in neutral terms.

    ``input_tokens`` includes ``cached_tokens``, as OpenAI's ``input_tokens`` /
    ``input_tokens_details.cached_tokens`` and Gemini's ``promptTokenCount`` /
    ``cachedContentTokenCount`` do; Anthropic is sent ``input_tokens - cached_tokens`` as
    ``input_tokens`` and ``cached_tokens`` as ``cache_read_input_tokens``.
    """

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class Exchange:
    """One request the server answered."""

    vendor: Vendor
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    raw: str  # the request body as received
    body: Any  # ``raw`` parsed as JSON; None when empty or not JSON
    received_at: float  # time.monotonic() when the request arrived, seconds
    kind: Kind  # main: offers tools; side: offers none; other: token counts, model lists
    key: str | None = None  # the conversation it belongs to; None when no key matched
    turn: int | None = None  # index of the scripted turn played (main requests)
    status: int = 200  # the HTTP status answered
    usage: Usage | None = None  # the token counts reported in the answer
    tool_results: list[str] = field(default_factory=list)  # what the tools gave, in order


@dataclass
class _Conversation:
    key: str
    turns: list[Turn]
    cwd: Path | None
    played: int = 0

    def names(self, text: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(self.key)}(?![\w-])", text) is not None


# --- the server ---------------------------------------------------------------------------


class ModelServer:
    """The scripted server; run it with :func:`serve` or :func:`serve_in_thread`.

    Scripting and reading records are thread-safe: a sync test may use the server that
    :func:`serve_in_thread` runs in another thread.
    """

    def __init__(self) -> None:
        self.url = ""  # http://127.0.0.1:PORT once listening
        self._lock = threading.Lock()
        self._conversations: dict[str, _Conversation] = {}
        self._exchanges: list[Exchange] = []
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_post("/v1/responses", self._handler("openai"))
        self.app.router.add_post("/v1/messages", self._handler("anthropic"))
        self.app.router.add_post("/v1beta/models/{model}:generateContent", self._handler("gemini"))
        self.app.router.add_post(
            "/v1beta/models/{model}:streamGenerateContent", self._handler("gemini", stream=True)
        )
        self.app.router.add_route("*", "/{tail:.*}", self._other)

    def script(
        self, key: str, *turns: Call | list[Call] | Reply | HttpError, cwd: Path | None = None
    ) -> None:
        """Give the conversation named ``key`` these turns, one per main request.

        Args:
            key: a word of the prompt naming the conversation, e.g. the objective id.
            turns: each a tool call, a list of tool calls made at once, a :class:`Reply`
                or an :class:`HttpError`.
            cwd: the CLI's working directory; relative paths are made absolute against
                it for the CLIs whose file tools want absolute paths (Claude, Gemini).

        Raises:
            ValueError: ``key`` is already scripted.
        """
        script = [
            t if isinstance(t, Reply | HttpError) else tuple(t if isinstance(t, list) else [t])
            for t in turns
        ]
        with self._lock:
            if key in self._conversations:
                raise ValueError(f"conversation {key!r} is already scripted")
            self._conversations[key] = _Conversation(key, script, cwd)

    def exchanges(self, key: str | None = None, kind: str | None = "main") -> list[Exchange]:
        """The requests of conversation ``key`` (any when None) of ``kind`` (any when
        None), oldest first."""
        with self._lock:
            return [e for e in self._exchanges if key in (None, e.key) and kind in (None, e.kind)]

    def usage(self, key: str, kind: str | None = "main") -> Usage:
        """The sum of the token counts reported to conversation ``key``."""
        usages = [e.usage for e in self.exchanges(key, kind) if e.usage]
        return sum(usages, Usage(0, 0, 0))

    def remaining(self, key: str) -> int:
        """How many of the conversation's turns have not been played."""
        with self._lock:
            conversation = self._conversations[key]
            return max(0, len(conversation.turns) - conversation.played)

    # -- answering

    def _handler(self, vendor: Vendor, stream: bool | None = None) -> Any:
        api = _APIS[vendor]

        async def handle(request: web.Request) -> web.Response:
            return await self._answer(request, api, stream)

        return handle

    def _find(self, user_texts: list[str]) -> _Conversation | None:
        with self._lock:
            conversations = list(self._conversations.values())
        for text in user_texts:
            named = [c for c in conversations if c.names(text)]
            if named:
                return max(named, key=lambda c: len(c.key))  # "o1-fix" over "o1"
        return None

    def _play(self, conversation: _Conversation) -> tuple[int, Turn]:
        with self._lock:
            index = conversation.played
            conversation.played += 1
        if index < len(conversation.turns):
            return index, conversation.turns[index]
        return index, HttpError(400, f"the script of {conversation.key!r} has no turn {index}")

    async def _answer(self, request: web.Request, api: _Api, stream: bool | None) -> web.Response:
        exchange = await _receive(request, api.vendor, "main")
        body = exchange.body
        if not isinstance(body, dict):
            error = api.error(400, "the request body is not a JSON object")
            return self._keep(replace(exchange, kind="other"), error)
        stream = bool(body.get("stream")) if stream is None else stream
        conversation = self._find(api.user_texts(body))
        results = api.results(body)
        exchange = replace(
            exchange, key=conversation.key if conversation else None, tool_results=results
        )
        tokens = _tokens(exchange.raw)
        usage = Usage(tokens, 1, tokens // 2 if results else 0)  # a resent prefix: cached
        n = next(self._ids)
        if not api.offers_tools(body):
            side = api.answer(body, stream, [], api.side_text(body), usage, n)
            return self._keep(replace(exchange, kind="side", usage=usage), side)
        if conversation is None:
            message = "no scripted conversation is named in the user messages"
            return self._keep(exchange, api.error(400, message))
        index, turn = self._play(conversation)
        exchange = replace(exchange, turn=index)
        if isinstance(turn, HttpError):
            return self._keep(exchange, api.error(turn.status, turn.message))
        text = turn.text if isinstance(turn, Reply) else ""
        calls = (
            [] if isinstance(turn, Reply) else [api.call(c, body, conversation.cwd) for c in turn]
        )
        usage = replace(usage, output_tokens=_tokens(json.dumps(calls) + text))
        return self._keep(
            replace(exchange, usage=usage), api.answer(body, stream, calls, text, usage, n)
        )

    def _keep(self, exchange: Exchange, response: web.Response) -> web.Response:
        with self._lock:
            self._exchanges.append(replace(exchange, status=response.status))
        return response

    async def _other(self, request: web.Request) -> web.Response:
        path = request.path
        vendor: Vendor = "gemini" if path.startswith("/v1beta") else "openai"
        if path.startswith("/v1/messages"):
            vendor = "anthropic"
        exchange = await _receive(request, vendor, "other")
        if path == "/v1/models":
            answer: Json = {"object": "list", "data": [], "models": []}
        elif path == "/v1/messages/count_tokens":
            answer = {"input_tokens": _tokens(exchange.raw)}
        elif path.endswith(":countTokens"):
            answer = {"totalTokens": _tokens(exchange.raw)}
        else:
            error = {"error": {"message": f"the scripted model server has no {path}"}}
            return self._keep(exchange, web.json_response(error, status=404))
        return self._keep(exchange, web.json_response(answer))


async def _receive(request: web.Request, vendor: Vendor, kind: Kind) -> Exchange:
    raw = await request.text()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    headers = dict(request.headers)
    return Exchange(
        vendor, request.method, request.path_qs, headers, raw, body, time.monotonic(), kind
    )


def _tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return 1 + len(text) // 4


def _sse(events: list[Json], named: bool = True) -> web.Response:
    """Server-Sent Events, each named after its ``type`` when ``named``."""
    text = "".join(
        (f"event: {e['type']}\n" if named else "") + f"data: {json.dumps(e)}\n\n" for e in events
    )
    return web.Response(text=text, content_type="text/event-stream")


def _absolute(path: str, cwd: Path | None) -> str:
    return str(cwd / path) if cwd is not None and not os.path.isabs(path) else path


def _lines(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.removesuffix("\n").split("\n")]


def _example(schema: Json) -> Any:
    """A small value fitting a JSON schema, the first of each ``enum``."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {name: _example(sub) for name, sub in schema.get("properties", {}).items()}
    return {"array": [], "string": "scripted", "boolean": False}.get(kind, 0)


# --- the three vendors ------------------------------------------------------------------


class _Api:
    """One vendor's request shapes and answers. A tool call is ``{"name", "input"}``:
    the arguments object, or the text of a freeform (custom) tool."""

    vendor: Vendor

    def user_texts(self, body: Json) -> list[str]:
        """The text of each user message in order, tool results left out."""
        raise NotImplementedError

    def results(self, body: Json) -> list[str]:
        """The tool results the request carries, in order."""
        raise NotImplementedError

    def offers_tools(self, body: Json) -> bool:
        return bool(body.get("tools"))

    def call(self, call: Call, body: Json, cwd: Path | None) -> Json:
        raise NotImplementedError

    def answer(
        self, body: Json, stream: bool, calls: list[Json], text: str, usage: Usage, n: int
    ) -> web.Response:
        """``text`` (when not empty or there are no calls) then ``calls``, as Server-Sent
        Events when ``stream``, else as one JSON document; ``n`` makes ids unique."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> web.Response:
        raise NotImplementedError

    def side_text(self, body: Json) -> str:
        return "OK"


class _OpenAi(_Api):
    """OpenAI Responses API as Codex calls it."""

    vendor = "openai"

    def user_texts(self, body: Json) -> list[str]:
        return [
            " ".join(str(part.get("text", "")) for part in item.get("content") or [])
            for item in body.get("input") or []
            if item.get("type") == "message" and item.get("role") == "user"
        ]

    def results(self, body: Json) -> list[str]:
        return [
            str(item.get("output"))
            for item in body.get("input") or []
            if str(item.get("type")).endswith("call_output")
        ]

    def call(self, call: Call, body: Json, cwd: Path | None) -> Json:
        tools = {t.get("name"): t.get("type") for t in body.get("tools", [])}
        match call:
            case Shell(command):
                if "exec_command" in tools:
                    return {"name": "exec_command", "input": {"cmd": command}}
                return {"name": "shell", "input": {"command": ["bash", "-lc", command]}}
            case ReadFile(path):
                return self.call(Shell(f"cat {shlex.quote(path)}"), body, cwd)
            case WriteFile(path, content):
                hunk = [f"*** Add File: {path}", *_lines(content, "+")]
            case Patch(path, old, new):
                hunk = [f"*** Update File: {path}", "@@", *_lines(old, "-"), *_lines(new, "+")]
        patch = "\n".join(["*** Begin Patch", *hunk, "*** End Patch"])
        if tools.get("apply_patch") == "custom":
            return {"name": "apply_patch", "input": patch}
        return {"name": "apply_patch", "input": {"input": patch}}

    def answer(
        self, body: Json, stream: bool, calls: list[Json], text: str, usage: Usage, n: int
    ) -> web.Response:
        items: list[Json] = []
        if text or not calls:
            content = [{"type": "output_text", "text": text, "annotations": []}]
            items.append(
                {
                    "type": "message",
                    "id": f"msg_{n}",
                    "role": "assistant",
                    "status": "completed",
                    "content": content,
                }
            )
        for i, c in enumerate(calls):
            ids = {"id": f"fc_{n}_{i}", "call_id": f"call_{n}_{i}", "name": c["name"]}
            if isinstance(c["input"], str):
                items.append({"type": "custom_tool_call", **ids, "input": c["input"]})
            else:
                items.append({"type": "function_call", **ids, "arguments": json.dumps(c["input"])})
        response: Json = {
            "id": f"resp_{n}",
            "object": "response",
            "model": body.get("model"),
            "status": "in_progress",
            "output": [],
        }
        events: list[Json] = [{"type": "response.created", "response": response}]
        for i, item in enumerate(items):
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": i,
                    "item": item | {"status": "in_progress"},
                },
                {
                    "type": "response.output_item.done",
                    "output_index": i,
                    "item": item | {"status": "completed"},
                },
            ]
        response |= {
            "status": "completed",
            "output": [item | {"status": "completed"} for item in items],
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
        events.append({"type": "response.completed", "response": response})
        return _sse(events) if stream else web.json_response(response)

    def error(self, status: int, message: str) -> web.Response:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        error = {"message": message, "type": kind, "param": None, "code": None}
        return web.json_response({"error": error}, status=status)


class _Anthropic(_Api):
    """Anthropic Messages API as Claude Code calls it."""

    vendor = "anthropic"

    def _blocks(self, body: Json, role: str) -> Iterator[Json]:
        for message in body.get("messages") or []:
            content = message.get("content") or []
            if message.get("role") == role:
                yield from (
                    [{"type": "text", "text": content}] if isinstance(content, str) else content
                )

    def user_texts(self, body: Json) -> list[str]:
        return [b.get("text", "") for b in self._blocks(body, "user") if b.get("type") == "text"]

    def results(self, body: Json) -> list[str]:
        results = [
            b.get("content") or ""
            for b in self._blocks(body, "user")
            if b.get("type") == "tool_result"
        ]
        return [r if isinstance(r, str) else "".join(x.get("text", "") for x in r) for r in results]

    def call(self, call: Call, body: Json, cwd: Path | None) -> Json:
        match call:
            case Shell(command):
                return {"name": "Bash", "input": {"command": command, "description": command}}
            case ReadFile(path):
                return {"name": "Read", "input": {"file_path": _absolute(path, cwd)}}
            case WriteFile(path, content):
                args = {"file_path": _absolute(path, cwd), "content": content}
                return {"name": "Write", "input": args}
            case Patch(path, old, new):
                args = {"file_path": _absolute(path, cwd), "old_string": old, "new_string": new}
                return {"name": "Edit", "input": args}

    def answer(
        self, body: Json, stream: bool, calls: list[Json], text: str, usage: Usage, n: int
    ) -> web.Response:
        blocks: list[Json] = [{"type": "text", "text": text}] if text or not calls else []
        blocks += [{"type": "tool_use", "id": f"toolu_{n}_{i}", **c} for i, c in enumerate(calls)]
        stop = "tool_use" if calls else "end_turn"
        counts = {
            "input_tokens": usage.input_tokens - usage.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.output_tokens,
        }
        message = {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": counts,
        }
        if not stream:
            return web.json_response(message)
        start = message | {
            "content": [],
            "stop_reason": None,
            "usage": counts | {"output_tokens": 1},
        }
        events: list[Json] = [{"type": "message_start", "message": start}]
        for i, block in enumerate(blocks):
            delta: Json = {"type": "text_delta", "text": text}
            empty = block | {"text": ""}
            if block["type"] == "tool_use":
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                empty = block | {"input": {}}
            events += [
                {"type": "content_block_start", "index": i, "content_block": empty},
                {"type": "content_block_delta", "index": i, "delta": delta},
                {"type": "content_block_stop", "index": i},
            ]
        end = {"stop_reason": stop, "stop_sequence": None}
        events += [
            {"type": "message_delta", "delta": end, "usage": counts},
            {"type": "message_stop"},
        ]
        return _sse(events)

    def error(self, status: int, message: str) -> web.Response:
        kinds = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}
        error = {"type": kinds.get(status, "api_error"), "message": message}
        return web.json_response({"type": "error", "error": error}, status=status)


class _Gemini(_Api):
    """Gemini API (generativelanguage ``v1beta``) as Gemini CLI calls it."""

    vendor = "gemini"

    def _parts(self, body: Json, role: str) -> list[list[Json]]:
        return [c.get("parts") or [] for c in body.get("contents") or [] if c.get("role") == role]

    def user_texts(self, body: Json) -> list[str]:
        return [
            " ".join(p["text"] for p in parts if "text" in p) for parts in self._parts(body, "user")
        ]

    def results(self, body: Json) -> list[str]:
        return [
            json.dumps(p["functionResponse"].get("response"))
            for parts in self._parts(body, "user")
            for p in parts
            if "functionResponse" in p
        ]

    def offers_tools(self, body: Json) -> bool:
        return any(t.get("functionDeclarations") for t in body.get("tools") or [])

    def _parameters(self, body: Json, tool: str) -> Json:
        for t in body.get("tools") or []:
            for d in t.get("functionDeclarations") or []:
                if d.get("name") == tool:
                    schema = d.get("parametersJsonSchema") or d.get("parameters") or {}
                    return dict(schema.get("properties") or {})
        return {}

    def call(self, call: Call, body: Json, cwd: Path | None) -> Json:
        match call:
            case Shell(command):
                args = {"command": command, "description": command}
                return {"name": "run_shell_command", "input": args}
            case ReadFile(path):
                name = (
                    "absolute_path"
                    if "absolute_path" in self._parameters(body, "read_file")
                    else "file_path"
                )
                return {"name": "read_file", "input": {name: _absolute(path, cwd)}}
            case WriteFile(path, content):
                args = {"file_path": _absolute(path, cwd), "content": content}
                return {"name": "write_file", "input": args}
            case Patch(path, old, new):
                args = {"file_path": _absolute(path, cwd), "old_string": old, "new_string": new}
                if "instruction" in self._parameters(body, "replace"):
                    args["instruction"] = f"Replace {old!r} with {new!r}."
                return {"name": "replace", "input": args}

    def answer(
        self, body: Json, stream: bool, calls: list[Json], text: str, usage: Usage, n: int
    ) -> web.Response:
        parts: list[Json] = [{"text": text}] if text or not calls else []
        parts += [{"functionCall": {"name": c["name"], "args": c["input"]}} for c in calls]
        candidate = {
            "content": {"role": "model", "parts": parts},
            "finishReason": "STOP",
            "index": 0,
        }
        counts = {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": usage.output_tokens,
            "cachedContentTokenCount": usage.cached_tokens,
            "totalTokenCount": usage.input_tokens + usage.output_tokens,
        }
        chunk = {
            "candidates": [candidate],
            "usageMetadata": counts,
            "modelVersion": "gemini-2.5-flash",
            "responseId": f"resp_{n}",
        }
        return _sse([chunk], named=False) if stream else web.json_response(chunk)

    def error(self, status: int, message: str) -> web.Response:
        names = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        error = {"code": status, "message": message, "status": names.get(status, "INTERNAL")}
        return web.json_response({"error": error}, status=status)

    def side_text(self, body: Json) -> str:
        # A structured side request (the next-speaker check) wants JSON fitting its schema.
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        return json.dumps(_example(schema)) if schema else "OK"


_APIS: dict[Vendor, _Api] = {"openai": _OpenAi(), "anthropic": _Anthropic(), "gemini": _Gemini()}


# --- running it ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[ModelServer]:
    """Run a :class:`ModelServer` on a free loopback port in this event loop."""
    server = ModelServer()
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve_in_thread() -> Iterator[ModelServer]:
    """Run a :class:`ModelServer` in an event loop of its own thread, for sync tests.

    Raises:
        what starting the server raised (e.g. ``OSError``).
    """
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started: asyncio.Future[ModelServer] = loop.create_future()

    async def run() -> None:
        try:
            async with serve() as server:
                started.set_result(server)
                await stop.wait()
        except Exception as e:
            if started.done():
                raise
            started.set_exception(e)

    async def wait() -> ModelServer:
        return await started

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(wait(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


# --- pointing the CLIs at it --------------------------------------------------------------


@dataclass(frozen=True)
class CliSetup:
    """What a CLI needs to talk to the server instead of its vendor."""

    env: dict[str, str]  # the whole environment of the CLI process
    argv: list[str] = field(default_factory=list)  # extra arguments: none needed today


# Variables that could point a CLI at a real provider or account, or make Claude Code
# think it runs inside another Claude Code session: never inherited.
_VENDOR_ENV = re.compile(r"^(OPENAI|CODEX|ANTHROPIC|CLAUDE|GEMINI|GOOGLE)_|^CLAUDECODE$")

_CODEX_CONFIG = """\
model_provider = "scripted"
check_for_update_on_startup = false

[model_providers.scripted]
name = "scripted"
base_url = "{url}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
"""

_GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "general": {"maxAttempts": 1, "enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}


FAKE_KEY = "sk-scripted-0123456789abcdef"
"""The API key the CLIs are given: key-shaped, so that secret redaction (which hides the
values of key variables wherever they appear) touches nothing but itself."""


def cli_setup(
    cli: Cli, url: str, home: Path, *, base_env: Mapping[str, str] | None = None
) -> CliSetup:
    """Make ``home`` the CLI's private HOME and return its environment for the server at ``url``.

    The environment is ``base_env`` (default ``os.environ``) without the vendors'
    variables (``OPENAI_*``, ``CODEX_*``, ``ANTHROPIC_*``, ``CLAUDE_*``, ``CLAUDECODE``,
    ``GEMINI_*``, ``GOOGLE_*``), with HOME and the XDG folders under ``home``, and retries off so a
    scripted error ends the run at once:

    - codex: ``CODEX_HOME=home/.codex`` with a ``config.toml`` whose default
      ``model_provider`` is the server (``request_max_retries = 0``,
      ``stream_max_retries = 0``), so the plain ``codex exec --json ... -m M PROMPT`` works;
    - claude: ``ANTHROPIC_BASE_URL``, ``CLAUDE_CODE_MAX_RETRIES=0``, no nonessential
      traffic, and ``IS_SANDBOX=1`` when root (bypassPermissions refuses root otherwise);
    - gemini: ``GOOGLE_GEMINI_BASE_URL``, ``home/.gemini/settings.json`` selecting API-key
      auth with ``general.maxAttempts = 1`` and no usage statistics, and ``TMPDIR`` under
      ``home`` (it writes an error report file there on every API error).
    """
    base = os.environ if base_env is None else base_env
    env = {k: v for k, v in base.items() if not _VENDOR_ENV.match(k)}
    env["HOME"] = str(home)
    for name, sub in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
    ]:
        env[name] = str(home / sub)
    if cli == "codex":
        (home / ".codex").mkdir(parents=True, exist_ok=True)
        (home / ".codex" / "config.toml").write_text(_CODEX_CONFIG.format(url=url))
        env |= {"CODEX_HOME": str(home / ".codex"), "OPENAI_API_KEY": FAKE_KEY}
    elif cli == "claude":
        home.mkdir(parents=True, exist_ok=True)
        env |= {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        if os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"
    else:
        (home / ".gemini").mkdir(parents=True, exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(json.dumps(_GEMINI_SETTINGS, indent=2))
        (home / "tmp").mkdir(exist_ok=True)
        env |= {
            "GOOGLE_GEMINI_BASE_URL": url,
            "GEMINI_API_KEY": FAKE_KEY,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "TMPDIR": str(home / "tmp"),
        }
    return CliSetup(env)
