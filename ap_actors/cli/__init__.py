"""The ``ap`` command.

Mesh commands (:mod:`ap_actors.cli.mesh`): ``up``, ``down``, ``status``, ``tail``,
``emit``. Session commands (:mod:`ap_actors.cli.sessions`): ``submit``, ``approve``,
``reject``, ``cancel``, ``sessions``, ``show``, ``replay``, ``report``. Agent commands
(:mod:`ap_actors.cli.agents`): ``parse``, ``agents``. ``keys generate``
(:mod:`ap_actors.cli.keys`). ``worker`` (:mod:`ap_actors.cli.worker`): a worker of the
team on another machine, with its own state directory. Every command takes
``--state-dir`` (default ``$AP_STATE_DIR`` or ``.ap/``) and finds the mesh through
``<state dir>/mesh.json``. A user's mistake prints one line ``ap: <what is wrong and how
to fix it>`` on stderr and exits with the code of `errors.py` (README, "Exit codes").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ap_actors import __version__
from ap_actors.cli import agents, keys, mesh, sessions, worker
from ap_actors.errors import EXIT_INTERNAL, EXIT_OK, ApError


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``ap`` (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="ap", description="ap-actors: an event-sourced orchestrator for coding agents."
    )
    parser.add_argument("--version", action="version", version=f"ap-actors {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir", default=None, help="state directory (default $AP_STATE_DIR or .ap/)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mesh.add_commands(sub, common)
    sessions.add_commands(sub, common)
    agents.add_commands(sub, common)
    keys.add_commands(sub, common)
    worker.add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ap``; return its exit code (README, "Exit codes")."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApError as e:
        print(f"ap: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug: show it, with the documented code
        import traceback

        traceback.print_exc()
        return EXIT_INTERNAL
