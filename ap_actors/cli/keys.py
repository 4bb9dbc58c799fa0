"""``ap keys generate``: the CurveZMQ key files of a mesh and of its clients.

What the files are and how the journal uses them: :mod:`ap_actors.security`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ap_actors.config import resolve_state_dir
from ap_actors.errors import EXIT_OK
from ap_actors.security import LOCAL_CLIENT, generate


def keys_dir(args: argparse.Namespace) -> Path:
    """``--dir``, else ``<state dir>/keys``."""
    if args.dir:
        return Path(args.dir).expanduser().absolute()
    return resolve_state_dir(args.state_dir) / "keys"


def cmd_keys_generate(args: argparse.Namespace) -> int:
    root = keys_dir(args)
    written = generate(root, args.client or [LOCAL_CLIENT])
    for path in written:
        print(path)
    if not written:
        print(f"every key asked for exists already in {root}; nothing was replaced")
    print(
        f"next: set [security] keys = {str(root)!r} in ap.toml; a remote worker needs"
        f" {root / 'server.key'} and its own <name>.key and <name>.key_secret"
    )
    return EXIT_OK


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``keys generate`` to the ``ap`` parser."""
    p = sub.add_parser("keys", help="CurveZMQ keys for binding beyond loopback")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    g = ksub.add_parser(
        "generate",
        parents=[common],
        help="make the mesh's key pair and client key pairs (existing ones are kept)",
    )
    g.add_argument("--dir", default=None, help="keys directory (default <state dir>/keys)")
    g.add_argument(
        "--client",
        action="append",
        metavar="NAME",
        help=f"a client key pair to make and allow (repeatable; default {LOCAL_CLIENT!r},"
        " the local actors)",
    )
    g.set_defaults(func=cmd_keys_generate)
