"""The mesh commands of ``ap``: ``up``, ``down``, ``status``, ``tail``, ``emit``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from ap_actors.bus import Emitter, Subscriber
from ap_actors.config import Config, eventlog_dir, load_config, resolve_state_dir
from ap_actors.errors import EXIT_OK, ApError, ConfigError, StartupError
from ap_actors.eventlog import EventLog
from ap_actors.events import EventType, Record, record_to_json_dict, topic_of
from ap_actors.logs import setup_logging
from ap_actors.mesh import MeshInfo, pid_alive, read_mesh, remove_mesh
from ap_actors.process import signal_ready, spawn_with_ready
from ap_actors.supervisor import Supervisor, ensure_no_mesh, read_status
from ap_actors.team import Team, resolve_team

_DETACH_TIMEOUT_S = 120.0
_JSON = msgspec.json.Encoder()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- up / down ----------------------------------------------------------------------


def _describe(mesh: MeshInfo, state_dir: Path) -> str:
    dashboard = mesh.dashboard or "not served (no broadcaster actor in this mesh yet)"
    return "\n".join(
        [
            f"mesh up in {state_dir} (supervisor pid {mesh.pid})",
            f"  ingest     {mesh.ingest}",
            f"  bus        {mesh.bus}",
            f"  replay     {mesh.replay}",
            f"  dashboard  {dashboard}",
            f"  log        {mesh.log}",
            f"  logs       {state_dir / 'logs'}",
            "stop it with `ap down`; watch it with `ap tail`",
        ]
    )


async def _run_supervisor(
    config: Config, state_dir: Path, config_path: str | None, ready_fd: int | None, team: Team
) -> int:
    # Detached, stderr already is logs/supervisor.log; in a terminal, keep it readable.
    setup_logging(
        "supervisor", path=None if ready_fd is not None else state_dir / "logs" / "supervisor.log"
    )
    supervisor = Supervisor(config, state_dir, config_path, team)
    try:
        mesh = await supervisor.start()
    except ApError as e:
        signal_ready(ready_fd, {"ok": False, "error": str(e), "exit_code": e.exit_code})
        raise
    # Before anyone is told the mesh is up: a Ctrl-C right after must stop it cleanly.
    supervisor.handle_signals()
    signal_ready(ready_fd, {"ok": True, "mesh": msgspec.to_builtins(mesh)})
    if ready_fd is None:
        _out(_describe(mesh, state_dir))
    return await supervisor.wait()


def cmd_up(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    team_path = str(Path(args.team).absolute()) if args.team else config.pipeline.team
    team = resolve_team(team_path)
    state_dir = resolve_state_dir(args.state_dir)
    config_path = str(Path(args.config).absolute()) if args.config else None
    if not args.detach:
        return uvloop.run(_run_supervisor(config, state_dir, config_path, args.ready_fd, team))
    # Detached: run the supervisor in a new session, wait for its ready line.
    ensure_no_mesh(state_dir)
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ap_actors.cli", "up", "--state-dir", str(state_dir)]
    if config_path:
        argv += ["--config", config_path]
    if team_path:
        argv += ["--team", team_path]
    proc, line = spawn_with_ready(
        argv, log_path=state_dir / "logs" / "supervisor.log", new_session=True
    )
    if not line:
        code = proc.wait(timeout=_DETACH_TIMEOUT_S)
        raise StartupError(
            f"the supervisor exited with code {code} before the mesh was up;"
            f" see {state_dir / 'logs' / 'supervisor.log'}"
        )
    answer = msgspec.json.decode(line)
    if not answer.get("ok"):
        proc.wait(timeout=_DETACH_TIMEOUT_S)
        err = StartupError(answer.get("error", "the mesh failed to start"))
        err.exit_code = int(answer.get("exit_code", err.exit_code))
        raise err
    mesh = msgspec.convert(answer["mesh"], MeshInfo)
    _out(_describe(mesh, state_dir))
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    import psutil

    state_dir = resolve_state_dir(args.state_dir)
    mesh = read_mesh(state_dir, require_alive=False)
    if not pid_alive(mesh.pid):
        remove_mesh(state_dir)
        _out(f"no mesh was running in {state_dir}; removed its stale mesh.json")
        return EXIT_OK
    supervisor = psutil.Process(mesh.pid)
    procs = [supervisor, *supervisor.children(recursive=True)]
    supervisor.terminate()
    _, alive = psutil.wait_procs(procs, timeout=args.timeout)
    for p in alive:  # whatever ignored SIGTERM: no orphans
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    remove_mesh(state_dir)
    killed = f" ({len(alive)} killed after {args.timeout:.0f}s)" if alive else ""
    _out(f"mesh in {state_dir} stopped{killed}")
    return EXIT_OK


# --- status -------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    mesh = read_mesh(state_dir)
    status = read_status(state_dir)
    now = time.time()
    actors: list[dict[str, Any]] = [
        {
            "name": a.name,
            "pid": a.pid,
            "restarts": a.restarts,
            "uptime_s": round(now - a.started_at, 3) if a.started_at and a.pid else 0.0,
            "state": a.state,
        }
        for a in (status.actors if status else [])
    ]
    with EventLog(mesh.log, readonly=True) as elog:
        last_seq, log_bytes = elog.last_seq(), elog.size_bytes()
    if args.json:
        _out(
            msgspec.json.encode(
                {"actors": actors, "last_seq": last_seq, "log_bytes": log_bytes}
            ).decode()
        )
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mesh in {state_dir} (supervisor pid {mesh.pid})")
    for col in ("actor", "state", "pid", "restarts", "uptime"):
        table.add_column(col)
    for row in actors:
        table.add_row(
            row["name"],
            row["state"],
            str(row["pid"] or "-"),
            str(row["restarts"]),
            f"{row['uptime_s']:.0f}s",
        )
    console = Console()
    console.print(table)
    console.print(f"last seq {last_seq}, log {log_bytes / 1e6:.1f} MB at {mesh.log}")
    return EXIT_OK


# --- tail / emit --------------------------------------------------------------------


def _summary(record: Record) -> str:
    skip = {"type", "id", "session_id", "ts", "source"}
    fields = msgspec.to_builtins(record.event)
    parts = [f"{k}={v}" for k, v in fields.items() if k not in skip and v not in (None, "", [], {})]
    text = " ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


async def _tail(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    sub = Subscriber.connect(
        state_dir, topics=args.topic or None, session_id=args.session, since=args.since
    )
    printed = 0
    async for record in sub:
        _print_record(record, args.json)
        printed += 1
        if args.count and printed >= args.count:
            break
    return EXIT_OK


def _print_record(record: Record, as_json: bool) -> None:
    if as_json:
        _out(_JSON.encode(record_to_json_dict(record)).decode())
        return
    stamp = time.strftime("%H:%M:%S", time.localtime(record.event.ts))
    _out(
        f"{record.seq:>8} {stamp} {topic_of(record.event):<22}"
        f" {record.event.session_id or '-':<12} {record.event.source:<12} {_summary(record)}"
    )


def cmd_tail(args: argparse.Namespace) -> int:
    if args.no_follow:
        # The history needs no running mesh: read the log files directly.
        with EventLog(eventlog_dir(resolve_state_dir(args.state_dir)), readonly=True) as elog:
            for n, record in enumerate(
                elog.read(args.since, topics=args.topic, session_id=args.session), 1
            ):
                _print_record(record, args.json)
                if args.count and n >= args.count:
                    break
        return EXIT_OK
    try:
        return uvloop.run(_tail(args))
    except KeyboardInterrupt:
        return EXIT_OK


_EVENT_JSON = msgspec.json.Decoder(EventType | list[EventType])


async def _emit(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.event == "-" else args.event
    events: list[Any] = []
    for n, line in enumerate(text.splitlines() if args.event == "-" else [text], 1):
        if not line.strip():
            continue
        try:
            decoded = _EVENT_JSON.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ConfigError(f"event on line {n} is invalid: {e}") from e
        events.extend(decoded if isinstance(decoded, list) else [decoded])
    async with Emitter.connect(args.state_dir, source=args.source, max_attempts=3) as emitter:
        seqs = await emitter.emit_many(events)
    for seq in seqs:
        _out(str(seq))
    return EXIT_OK


def cmd_emit(args: argparse.Namespace) -> int:
    return uvloop.run(_emit(args))


# --- parser -------------------------------------------------------------------------


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``up``, ``down``, ``status``, ``tail`` and ``emit`` to the ``ap`` parser."""
    p = sub.add_parser("up", parents=[common], help="start the mesh (journal and actors)")
    p.add_argument("--config", default=None, help="ap.toml (default: embedded defaults)")
    p.add_argument("--team", default=None, help="team file (team.toml or team.json)")
    p.add_argument("--detach", action="store_true", help="run in the background and return")
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", parents=[common], help="stop the mesh, leaving no process")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", parents=[common], help="actors, pids, restarts, last seq")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("tail", parents=[common], help="print events as they are appended")
    p.add_argument("--topic", action="append", help="event type prefix (repeatable)")
    p.add_argument("--session", default=None, help="only this session's events")
    p.add_argument("--since", type=int, default=0, help="start after this seq (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, default=0, help="exit after this many events")
    p.add_argument("--no-follow", action="store_true", help="print the history and exit")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("emit", parents=[common], help="append events given as JSON")
    p.add_argument(
        "event",
        help='a JSON event or list, e.g. \'{"type": "worker_error", ...}\','
        " or - for one JSON event per line on stdin",
    )
    p.add_argument("--source", default="cli", help="source stamped on the events")
    p.set_defaults(func=cmd_emit)
