"""The agent commands of ``ap``: ``parse`` (what a transcript yields) and ``agents``.

``ap parse --agent NAME FILE`` reads an agent's output (a transcript, a recorded stream,
``-`` for stdin) through the agent's parser and prints the activities it yields: one per
line, ``--json`` one JSON object per line (the fields of
:class:`~ap_actors.agents.base.Activity`). A summary goes to stderr: lines read, what
became of them (activities, folded into a later activity, quiet, unknown kinds shown as
``other``, plain text, unaccounted), activities by kind, tokens and cost. ``ap agents``
lists the agent CLIs and whether ``$PATH`` has them, with their versions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from ap_actors.agents import get_adapter, installed_agents
from ap_actors.agents.base import Activity, read_transcript
from ap_actors.errors import EXIT_OK, ConfigError

_JSON = msgspec.json.Encoder()


def cmd_parse(args: argparse.Namespace) -> int:
    adapter = get_adapter(args.agent)
    parser = adapter.parser(str(Path(args.workdir).resolve()) if args.workdir else None)
    lines = _lines(args.file)
    n = 0
    kinds: dict[str, int] = {}
    tokens_in = tokens_out = 0
    cost = 0.0
    write = sys.stdout.write

    def show(activities: list[Activity]) -> None:
        nonlocal tokens_in, tokens_out, cost
        for a in activities:
            kinds[a.activity_type] = kinds.get(a.activity_type, 0) + 1
            tokens_in += a.input_tokens
            tokens_out += a.output_tokens
            cost += a.cost_usd
            if args.json:
                write(_JSON.encode(_fields(a)).decode() + "\n")
            else:
                write(_human(a) + "\n")

    for line in lines:
        n += 1
        show(parser.feed(line))
    show(parser.finish())
    accounting = dict(getattr(parser, "accounting", {}) or {})
    summary = [f"{n:,} lines"]
    if accounting:
        summary.append(", ".join(f"{k} {v:,}" for k, v in sorted(accounting.items())))
    summary.append(
        f"{sum(kinds.values()):,} activities"
        + (f" ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})" if kinds else "")
    )
    if tokens_in or tokens_out:
        summary.append(f"tokens {tokens_in:,} in / {tokens_out:,} out")
    if cost:
        summary.append(f"cost ${cost:.4f}")
    print("ap parse: " + "; ".join(summary), file=sys.stderr)
    return EXIT_OK


def _lines(file: str) -> Iterator[str]:
    if file == "-":
        for raw in sys.stdin.buffer:
            yield raw.rstrip(b"\r\n").decode("utf-8", "replace")
        return
    path = Path(file)
    if path.is_dir():
        raise ConfigError(f"{file} is a directory; give one transcript file (or - for stdin)")
    try:
        yield from read_transcript(path)
    except OSError as e:
        raise ConfigError(f"cannot read {file}: {e.strerror or e}; give a readable file") from e


def _fields(a: Activity) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(a)
    return {
        k: v for k, v in out.items() if v not in (None, 0, 0.0) or (k == "exit_code" and v == 0)
    }


def _human(a: Activity) -> str:
    parts = [f"{a.activity_type:<11}"]
    if a.tool_name:
        parts.append(f"[{a.tool_name}]")
    if a.file_path:
        parts.append(a.file_path)
    if a.exit_code is not None:
        parts.append(f"(exit {a.exit_code})")
    parts.append(a.description)
    return " ".join(parts)


def cmd_agents(args: argparse.Namespace) -> int:
    agents = installed_agents(versions=True)
    if args.json:
        for a in agents:
            print(_JSON.encode(a).decode())
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title="agent CLIs on PATH")
    for col in ("agent", "program", "installed", "version", "from"):
        table.add_column(col)
    for a in agents:
        table.add_row(
            a.agent,
            a.program,
            a.path or "no",
            a.version or (f"error: {a.error}" if a.error else "-"),
            a.package,
        )
    Console().print(table)
    return EXIT_OK


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``parse`` and ``agents`` to the ``ap`` parser."""
    p = sub.add_parser("parse", help="print the activities an agent's transcript yields")
    p.add_argument("file", help="a transcript or recorded stream (- for stdin)")
    p.add_argument("--agent", required=True, help="the agent's adapter: codex, claude, ...")
    p.add_argument("--workdir", default=None, help="make paths under this folder relative")
    p.add_argument("--json", action="store_true", help="one JSON object per activity")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("agents", help="list the agent CLIs installed on PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per agent")
    p.set_defaults(func=cmd_agents)
