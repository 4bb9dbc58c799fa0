"""Secret redaction: the values of an agent's key variables never reach an event.

An agent runs with the mesh's environment plus its worker's ``env`` (team file), which
holds model API keys and tokens. Agents print them (``env``, a failing ``curl`` with the
key in the URL, a debug log), and that text becomes events: activities, errors, the
reason of a failed objective. A :class:`Redactor` built from that environment replaces
every occurrence of a secret value with ``[redacted:NAME]`` (``NAME`` the variable) in
the string fields of an event, before it is emitted. The worker and the log monitor
redact everything they emit; the reports are redacted again when written.

A variable is secret when its name is in :data:`KNOWN_SECRETS` (what the supported agent
CLIs read) or looks secret (:func:`is_secret_name`: ``*_API_KEY``, ``*_TOKEN``,
``*SECRET*``, ``*PASSWORD*``, ...), and its value is at least :data:`MIN_LENGTH`
characters (shorter values, ``1`` or ``true``, would redact ordinary text).

Only exact occurrences are found, and the beginning of one at the end of a text cut to
a length: a secret printed encoded (base64, URL- or JSON-escaped), split across lines or
otherwise transformed is not. The transcripts in the state directory keep the raw output.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

__all__ = ["KNOWN_SECRETS", "MIN_LENGTH", "Redactor", "is_secret_name"]

KNOWN_SECRETS = frozenset(
    {
        # Codex CLI, aider, Cursor, Factory Droid, Gemini CLI, Claude Code.
        "OPENAI_API_KEY",
        "CODEX_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "CURSOR_API_KEY",
        "FACTORY_API_KEY",
        "OPENROUTER_API_KEY",
        "DEEPSEEK_API_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
        "XAI_API_KEY",
        # What agents use for git hosts, package registries and clouds.
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "NPM_TOKEN",
        "HF_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        # The dashboard's own token (ap_actors.dashboard.auth).
        "AP_TOKEN",
    }
)
"""Variables that are secret whatever :func:`is_secret_name` says of their names."""

MIN_LENGTH = 8
"""Shortest value redacted, characters."""

_CUT = "…"  # what ends a text cut to a length (agents.base.clip, agents.streams)

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|TOKEN|SECRET(?:_KEY)?|ACCESS_KEY|PRIVATE_KEY)$|SECRET|PASSWORD|PASSWD",
    re.IGNORECASE,
)

S = TypeVar("S", bound=msgspec.Struct)

_ENVELOPE = frozenset({"id", "ts", "source"})  # the ids are in :func:`_fields`


def is_secret_name(name: str) -> bool:
    """True when the variable ``name`` holds a secret (known, or a secret-looking name).

    Secret-looking: ending in ``API_KEY``/``APIKEY``, ``TOKEN``, ``SECRET``,
    ``SECRET_KEY``, ``ACCESS_KEY`` or ``PRIVATE_KEY`` (after ``_`` or as the whole name),
    or containing ``SECRET``, ``PASSWORD`` or ``PASSWD``; case-insensitive.
    """
    return name in KNOWN_SECRETS or _SECRET_NAME.search(name) is not None


class Redactor:
    """Replaces secret values in text and in events with ``[redacted:NAME]``.

    Build one per process (:meth:`from_env`). Text without a secret costs one substring
    search per secret and is returned as is (the same object); a redactor without
    secrets returns everything as is without a search.

    Args:
        secrets: variable name -> value; values shorter than :data:`MIN_LENGTH` are
            ignored. A value under several names is labelled with the first name in
            sorted order.
    """

    def __init__(self, secrets: Mapping[str, str]) -> None:
        names: dict[str, str] = {}  # value -> its variable's name
        for name in sorted(secrets):
            value = secrets[name]
            if len(value) >= MIN_LENGTH:
                names.setdefault(value, name)
        self.names = names
        # One substring search per secret (CPython's fastsearch): for 1 to 24 secrets it
        # measured faster than one compiled regex alternation of them all, which the
        # regex engine tries at every position of the text.
        self._values = tuple(names)

    @classmethod
    def from_env(cls, *envs: Mapping[str, str]) -> Redactor:
        """A redactor of the secret variables (:func:`is_secret_name`) of ``envs``;
        a later mapping wins for a name present in several (as in ``{**a, **b}``)."""
        merged: dict[str, str] = {}
        for env in envs:
            merged.update((k, v) for k, v in env.items() if is_secret_name(k))
        return cls(merged)

    def __bool__(self) -> bool:
        """True when there is something to redact."""
        return bool(self._values)

    def text(self, text: str) -> str:
        """Return ``text`` with every occurrence of a secret replaced.

        Occurrences that overlap (two secrets sharing characters, or one inside a
        repetition of another) are replaced as one span labelled with each secret that
        extends it: ``[redacted:A,B]``. Text cut to a length (ending with ``…``, as
        :func:`ap_actors.agents.base.clip` leaves it) that ends with the first
        :data:`MIN_LENGTH` // 2 or more characters of a secret has them replaced too.
        Returns ``text`` itself when it holds none.
        """
        for value in self._values:
            if value in text:
                return self._replace(text)
        return self._cut_tail(text) if text.endswith(_CUT) else text

    def event(self, event: S) -> S:
        """Return ``event`` (any msgspec Struct) with its free text redacted.

        Every field that can hold text is looked at: strings, and strings inside lists,
        dicts (keys and values) and nested Structs; not ids (``id``, ``session_id``,
        ``*_id``: the mesh chooses them, and a changed one would make the event about
        another objective), ``source``, numbers or Literals. Returns ``event`` itself
        when nothing changed.
        """
        values = self._values
        if not values:
            return event
        changes: dict[str, Any] = {}
        for name in _fields(type(event)):
            value = getattr(event, name)
            if value is None:
                continue
            if type(value) is str:  # self.text(value), inline: this is the hot path
                for secret in values:
                    if secret in value:
                        new = self._replace(value)
                        break
                else:
                    if not value.endswith(_CUT):
                        continue
                    new = self._cut_tail(value)
            else:
                new = self._value(value)
            if new is not value:
                changes[name] = new
        return msgspec.structs.replace(event, **changes) if changes else event

    def events(self, events: Iterable[S]) -> list[S]:
        """:meth:`event` of each of ``events``, in order."""
        return [self.event(e) for e in events]

    def _value(self, value: Any) -> Any:
        if type(value) is str:
            return self.text(value)
        if isinstance(value, list):
            new = [self._value(v) for v in value]
            return value if all(a is b for a, b in zip(new, value, strict=True)) else new
        if isinstance(value, dict):
            pairs = [(self._value(k), self._value(v)) for k, v in value.items()]
            same = all(
                k is a and v is b for (k, v), (a, b) in zip(pairs, value.items(), strict=True)
            )
            return value if same else dict(pairs)
        if isinstance(value, msgspec.Struct):
            return self.event(value)
        return value

    def _replace(self, text: str) -> str:
        """The slow path, for text that holds at least one secret: every occurrence of
        every secret, overlapping ones too (a single left-to-right pass would skip them)."""
        spans: list[tuple[int, int, str]] = []
        for value, name in self.names.items():
            start = text.find(value)
            while start >= 0:
                spans.append((start, start + len(value), name))
                start = text.find(value, start + 1)
        spans.sort(key=lambda s: (s[0], -s[1]))
        merged: list[tuple[int, int, list[str]]] = []
        for start, end, name in spans:
            if merged and start < merged[-1][1]:
                last_start, last_end, labels = merged[-1]
                if end > last_end:
                    if name not in labels:
                        labels.append(name)
                    merged[-1] = (last_start, end, labels)
                continue
            merged.append((start, end, [name]))
        out: list[str] = []
        pos = 0
        for start, end, labels in merged:
            out += [text[pos:start], f"[redacted:{','.join(labels)}]"]
            pos = end
        out.append(text[pos:])
        text = "".join(out)
        return self._cut_tail(text) if text.endswith(_CUT) else text

    def _cut_tail(self, text: str) -> str:
        """``text`` (ending with ``…``) with a secret's beginning before the mark replaced."""
        mark = " …" if text.endswith(" …") else "…"
        body = text[: -len(mark)]
        cut, label = len(body), ""
        for value, name in self.names.items():
            # Where the body's end is the beginning of ``value``: among the few places
            # its first characters occur near the end, the earliest (the longest part).
            head = value[: MIN_LENGTH // 2]
            i = body.find(head, max(0, len(body) - len(value) + 1))
            while 0 <= i < cut:
                if value.startswith(body[i:]):
                    cut, label = i, name
                    break
                i = body.find(head, i + 1)
        return f"{body[:cut]}[redacted:{label}]{mark}" if label else text


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a Struct type :meth:`Redactor.event` looks at: those that can hold
    free text. Not ids (``id``, ``*_id``, ``*_ids``): the mesh chooses them, and an event
    whose id changed would be about another objective or session. Not the envelope
    (``source``, ``ts``), numbers or Literals."""
    return tuple(
        f.name
        for f in msgspec.inspect.type_info(cls).fields  # type: ignore[attr-defined]
        if f.name not in _ENVELOPE and not f.name.endswith(("_id", "_ids")) and _holds_text(f.type)
    )


def _holds_text(t: msgspec.inspect.Type) -> bool:
    """True when a value of type ``t`` can hold a free-text string."""
    mi = msgspec.inspect
    if isinstance(t, mi.StrType | mi.AnyType | mi.StructType):
        return True
    if isinstance(t, mi.UnionType):
        return any(_holds_text(u) for u in t.types)
    if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _holds_text(t.item_type)
    if isinstance(t, mi.TupleType):
        return any(_holds_text(u) for u in t.item_types)
    if isinstance(t, mi.DictType):
        return _holds_text(t.key_type) or _holds_text(t.value_type)
    return False
