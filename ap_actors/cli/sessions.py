"""The session commands of ``ap``: submit, approve, reject, cancel, sessions, show,
replay, report.

``ap submit`` checks what it can before anything is appended (the request is not empty,
the repository exists and is a git repository with a commit, the plan file parses and
its scopes do not conflict, the mesh has workers) and fails with one line and exit code
3 otherwise, so a mistake never becomes a session. The read-only commands (``sessions``,
``show``, ``replay``, ``report``) read the log files and need no running mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from ap_actors.bus import Emitter, Subscriber
from ap_actors.cli.progress import Progress
from ap_actors.config import eventlog_dir, resolve_state_dir
from ap_actors.errors import EXIT_OK, EXIT_SESSION_ENDED, ConfigError, EventLogError
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    Record,
    RequestSubmitted,
    record_to_json_dict,
    topic_of,
)
from ap_actors.mesh import read_mesh
from ap_actors.projections import (
    Sessions,
    SessionView,
    fold_session,
    session_row,
    view_to_json,
)
from ap_actors.reports import write_report
from ap_actors.submission import OwnerAction, owner_action, prepare_submission
from ap_actors.team import read_team

_JSON = msgspec.json.Encoder()
READ_GRACE_S = 10.0  # --wait: how long to wait for transcripts after the session ended


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- reading sessions from the log --------------------------------------------------


def _open_log(state_dir: Path) -> EventLog:
    path = eventlog_dir(state_dir)
    if not (path / "data.mdb").exists():
        raise ConfigError(f"no event log in {state_dir}; start a mesh there with `ap up`")
    return EventLog(path, readonly=True)


def load_session(state_dir: Path, key: str) -> tuple[SessionView, list[Record]]:
    """Return the session whose id is ``key`` (or starts with it) and its records.

    Raises:
        ConfigError: no such session, or the prefix matches several.
    """
    with _open_log(state_dir) as elog:
        ids = elog.session_ids()
        found = [key] if key in ids else [i for i in ids if i.startswith(key)] if key else []
        if not found:
            raise ConfigError(f"no session {key!r} in {state_dir}; list them with `ap sessions`")
        if len(found) > 1:
            raise ConfigError(
                f"session prefix {key!r} matches {len(found)} sessions; give more characters"
            )
        records = list(elog.read(0, session_id=found[0]))
    return fold_session(records, found[0]), records


def load_sessions(state_dir: Path) -> Sessions:
    """Fold every session of the log in ``state_dir``."""
    sessions = Sessions()
    with _open_log(state_dir) as elog:
        for sid in elog.session_ids():
            view = fold_session(elog.read(0, session_id=sid), sid)
            sessions.views[sid] = view
    return sessions


# --- submit -------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    read_mesh(state_dir)  # a running mesh, or exit 4 with how to start one
    event = prepare_submission(
        read_team(state_dir),
        args.request,
        args.repo,
        base=args.base,
        plan=args.plan,
        approve=args.approve,
        workers=args.workers or (),
        resolve_conflicts=args.resolve_conflicts,
    )
    return uvloop.run(_submit(args, state_dir, event))


async def _submit(args: argparse.Namespace, state_dir: Path, event: RequestSubmitted) -> int:
    async with Emitter.connect(state_dir, source="cli", max_attempts=3) as emitter:
        seq = await emitter.emit(event)
    if not args.wait:
        if args.json:
            _out(_JSON.encode({"session_id": event.session_id, "seq": seq}).decode())
        else:
            _out(f"session {event.session_id} submitted (seq {seq})")
            _out(f"  follow it: ap show {event.session_id}   (or ap tail --session ...)")
            if not args.approve:
                _out(f"  approve its plan when proposed: ap approve {event.session_id}")
        return EXIT_OK
    live = not args.json and sys.stdout.isatty()
    view = await follow(state_dir, event.session_id, live=live, quiet=args.json)
    return _finish(view, args.json)


async def follow(state_dir: Path, session_id: str, *, live: bool, quiet: bool) -> SessionView:
    """Follow a session's events until it ended and its accomplishment report exists.

    Shows a live rich view on a terminal (``live``), else one line per milestone on
    stdout, or nothing (``quiet``). Returns the final view.
    """
    progress = Progress(session_id, live=live, quiet=quiet)
    sub = Subscriber.connect(state_dir, session_id=session_id)
    loop = asyncio.get_running_loop()
    try:
        with progress, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None) as deadline:
                async for record in sub:
                    progress.update(record)
                    view = progress.view
                    if view.ended and "accomplishment" in view.reports:
                        # Done once the log monitors have read every transcript to its
                        # end; a monitor that is down gets READ_GRACE_S, not forever.
                        if not view.transcripts_unread():
                            break
                        if deadline.when() is None:
                            deadline.reschedule(loop.time() + READ_GRACE_S)
    finally:
        await sub.close()
    return progress.view


def _finish(view: SessionView, as_json: bool) -> int:
    if as_json:
        _out(_JSON.encode(view_to_json(view)).decode())
    else:
        _out(f"session {view.session_id} {view.status}: {view.summary or view.reason}")
        if view.branch:
            _out(f"  branch     {view.branch}  (in {view.repo})")
        for kind in ("analysis", "plan", "accomplishment"):
            if kind in view.reports:
                _out(f"  {kind:<14} {view.reports[kind]}")
        if view.commit_message:
            _out("  commit message:")
            for line in view.commit_message.splitlines():
                _out(f"    {line}")
    return EXIT_OK if view.status == "completed" else EXIT_SESSION_ENDED


# --- approve / reject / cancel ------------------------------------------------------


def _owner_action(args: argparse.Namespace, action: OwnerAction) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    read_mesh(state_dir)
    view, _ = load_session(state_dir, args.session)
    event = owner_action(view, action, by=_who(), reason=getattr(args, "reason", None) or "")

    async def send() -> int:
        async with Emitter.connect(state_dir, source="cli", max_attempts=3) as emitter:
            return await emitter.emit(event)

    seq = uvloop.run(send())
    _out(f"{topic_of(event)} for session {view.session_id} (seq {seq})")
    return EXIT_OK


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "owner"


def cmd_approve(args: argparse.Namespace) -> int:
    return _owner_action(args, "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _owner_action(args, "reject")


def cmd_cancel(args: argparse.Namespace) -> int:
    return _owner_action(args, "cancel")


# --- sessions / show / replay / report ----------------------------------------------


def cmd_sessions(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    views = sorted(load_sessions(state_dir).views.values(), key=lambda v: v.submitted_at)
    if args.json:
        for v in views:
            _out(_JSON.encode(session_row(v)).decode())
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sessions in {state_dir}")
    for col in ("session", "status", "submitted", "duration", "objectives", "request"):
        table.add_column(col)
    for v in views:
        row = session_row(v)
        table.add_row(
            v.session_id,
            v.status,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(v.submitted_at)),
            f"{row['duration_s']:.0f}s",
            f"{row['objectives_completed']}/{row['objectives']}",
            v.request if len(v.request) <= 60 else v.request[:57] + "...",
        )
    Console().print(table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    view, _ = load_session(state_dir, args.session)
    if args.json:
        _out(_JSON.encode(view_to_json(view)).decode())
        return EXIT_OK
    Progress(view.session_id, live=False).print_view(view)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    if args.speed < 0:
        raise ConfigError("--speed must be 0 (no delay) or positive, e.g. --speed 10")
    state_dir = resolve_state_dir(args.state_dir)
    _, records = load_session(state_dir, args.session)

    async def play() -> None:
        previous: float | None = None
        for record in records:
            if previous is not None and args.speed > 0:
                delay = (record.event.ts - previous) / args.speed
                if delay > 0:
                    await asyncio.sleep(min(delay, args.max_gap))
            previous = record.event.ts
            if args.json:
                _out(_JSON.encode(record_to_json_dict(record)).decode())
            else:
                from ap_actors.cli.mesh import _print_record

                _print_record(record, False)

    uvloop.run(play())
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    state_dir = resolve_state_dir(args.state_dir)
    view, _ = load_session(state_dir, args.session)
    out_dir = Path(args.out).expanduser().absolute() if args.out else state_dir
    kinds = ["analysis", "plan", "accomplishment"]
    for kind in kinds:
        if kind == "analysis" and view.analysis is None:
            continue
        if kind == "plan" and not view.plan_id:
            continue
        try:
            path = write_report(out_dir, view, kind)  # type: ignore[arg-type]
        except OSError as e:
            raise EventLogError(f"cannot write the {kind} report under {out_dir}: {e}") from e
        _out(f"{kind:<14} {path}")
    return EXIT_OK


# --- parser -------------------------------------------------------------------------


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the session commands to the ``ap`` parser."""
    p = sub.add_parser("submit", parents=[common], help="submit an owner request")
    p.add_argument("request", help='what to do, e.g. "Add JWT authentication"')
    p.add_argument("--repo", default=".", help="the git repository to work on (default .)")
    p.add_argument("--base", default="HEAD", help="git ref to start from (default HEAD)")
    p.add_argument("--plan", default=None, help="your own plan (plan.toml or plan.json)")
    p.add_argument("--approve", action="store_true", help="approve the plan without asking")
    p.add_argument("--wait", action="store_true", help="follow the session until it ends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--workers",
        type=lambda s: [w for w in s.split(",") if w],
        default=None,
        help="comma-separated worker ids to use (default: the whole team)",
    )
    p.add_argument(
        "--resolve-conflicts",
        action="store_true",
        help="let the scope validator move conflicting objectives to later waves",
    )
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("approve", parents=[common], help="approve a session's plan")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("reject", parents=[common], help="reject a session's plan")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.add_argument("--reason", default=None, help="why, shown in the reports")
    p.set_defaults(func=cmd_reject)

    p = sub.add_parser("cancel", parents=[common], help="cancel a session")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.add_argument("--reason", default=None, help="why, shown in the reports")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("sessions", parents=[common], help="list the sessions of the log")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("show", parents=[common], help="show one session")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.add_argument("--json", action="store_true", help="the session view as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("replay", parents=[common], help="print a session's events in time")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.add_argument("--speed", type=float, default=1.0, help="time factor; 0 = no delay")
    p.add_argument("--max-gap", type=float, default=5.0, help="longest pause, seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("report", parents=[common], help="rebuild a session's reports")
    p.add_argument("session", help="session id (or a unique prefix)")
    p.add_argument("--out", default=None, help="write under this dir (default: the state dir)")
    p.set_defaults(func=cmd_report)
