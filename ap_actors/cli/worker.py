"""``ap worker``: run one worker of the team on another machine (:mod:`ap_actors.remote`).

``ap worker --connect tcp://HOST:PORT --id NAME [--keys DIR] [--team FILE]
[--state-dir DIR] [--timeout S]`` checks the team file and the keys, asks the journal
for its endpoints, then runs the worker's two actors in the foreground until SIGTERM or
SIGINT (exit 0). Failures before that print one line: a bad argument, team file or key
file (exit 3), a refused handshake (exit 3: check the keys), no answer from the mesh
within ``--timeout`` (exit 4), another ``ap worker`` in the state directory (exit 5), an
actor that does not start (exit 7).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvloop

from ap_actors.config import Config
from ap_actors.errors import ConfigError
from ap_actors.logs import setup_logging
from ap_actors.mesh import MeshInfo
from ap_actors.remote import (
    CONNECT_TIMEOUT_S,
    RemoteSupervisor,
    ask_endpoints,
    remote_config,
    remote_mesh,
    remote_spec,
)
from ap_actors.security import CurveKeys
from ap_actors.team import Team, load_team


def cmd_worker(args: argparse.Namespace) -> int:
    team_path = Path(args.team).expanduser().absolute()
    team = load_team(team_path)
    spec = remote_spec(team, args.id, str(team_path))
    keys = Path(args.keys).expanduser().absolute() if args.keys else None
    curve = CurveKeys.for_client(keys, args.id) if keys is not None else None
    if not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout:g}: give a number of seconds above 0")
    endpoints = ask_endpoints(args.connect, curve, args.timeout)
    state_dir = Path(args.state_dir or Path(".ap-worker") / args.id).expanduser().absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    mesh = remote_mesh(endpoints, state_dir, keys, args.id)
    return uvloop.run(_run(remote_config(team, spec), state_dir, mesh, team, args.id))


async def _run(config: Config, state_dir: Path, mesh: MeshInfo, team: Team, worker_id: str) -> int:
    setup_logging("supervisor", path=state_dir / "logs" / "supervisor.log")
    supervisor = RemoteSupervisor(config, state_dir, mesh, team)
    await supervisor.start()
    supervisor.handle_signals()  # before the line that tells the user how to stop it
    print(
        f"worker {worker_id} joined the mesh at {mesh.ingest} (bus {mesh.bus}, replay"
        f" {mesh.replay}); state and logs in {state_dir}; stop it with Ctrl-C or SIGTERM",
        flush=True,
    )
    return await supervisor.wait()


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``worker`` to the ``ap`` parser (it takes its own ``--state-dir``)."""
    p = sub.add_parser(
        "worker",
        help="run a worker of the team (remote = true) on this machine, joining a mesh",
        description="Run a worker declared remote = true in the mesh's team file, and its"
        " log monitor, against the mesh whose ingest endpoint is --connect.",
    )
    p.add_argument(
        "--connect",
        required=True,
        metavar="tcp://HOST:PORT",
        help="the mesh's ingest endpoint (its mesh.json), as reachable from here",
    )
    p.add_argument("--id", required=True, help="the worker's id in the team file")
    p.add_argument(
        "--keys",
        default=None,
        metavar="DIR",
        help="holds the mesh's server.key and this worker's <id>.key_secret (`ap keys"
        " generate --client <id>` on the mesh's machine, then copied); none = plain ZeroMQ",
    )
    p.add_argument("--team", default="team.toml", help="the mesh's team file (default ./team.toml)")
    p.add_argument("--state-dir", default=None, help="state directory (default .ap-worker/<id>)")
    p.add_argument(
        "--timeout",
        type=float,
        default=CONNECT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for the mesh's answer (default {CONNECT_TIMEOUT_S:g})",
    )
    p.set_defaults(func=cmd_worker)
