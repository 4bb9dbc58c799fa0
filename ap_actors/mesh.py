"""``mesh.json``: how clients find a running mesh in a state directory.

Source: ``DESIGN.md``, "Wire protocol". Shape::

    {"ingest": URL, "bus": URL, "replay": URL, "dashboard": URL or null,
     "pid": supervisor pid, "log": path of the LMDB environment,
     "keys": CurveZMQ keys directory or null, "client": the client key pair's name}

Written atomically by the supervisor once the journal has bound its endpoints (the
concrete ports, also when ``*`` was asked for), removed by a clean shutdown. ``ap
worker`` writes one too, in its own state directory on another machine: the mesh's
endpoints as reachable from there, a ``log`` path that does not exist there (so its
actors replay through the journal) and its own ``client`` key pair
(:mod:`ap_actors.remote`).
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import zmq.asyncio

from ap_actors.config import resolve_state_dir
from ap_actors.errors import MeshNotRunningError

MESH_FILE = "mesh.json"


class MeshInfo(msgspec.Struct, frozen=True):
    ingest: str  # ZeroMQ endpoint of the journal's ingest ROUTER.
    bus: str  # ZeroMQ endpoint of the journal's bus PUB.
    replay: str  # ZeroMQ endpoint of the journal's replay ROUTER.
    dashboard: str | None  # URL of the dashboard, None while no broadcaster runs.
    pid: int  # Supervisor process id.
    log: str  # Absolute path of the LMDB environment directory.
    keys: str | None = None  # CurveZMQ keys directory (ap_actors/security.py); None = none.
    client: str = "mesh"  # Name of the client key pair in `keys` (<client>.key_secret).


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (no torn reads)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_mesh(state_dir: Path, info: MeshInfo) -> Path:
    """Write ``<state_dir>/mesh.json`` atomically and return its path."""
    path = state_dir / MESH_FILE
    write_atomic(path, msgspec.json.format(msgspec.json.encode(info)) + b"\n")
    return path


def read_mesh(state_dir: Path, *, require_alive: bool = True) -> MeshInfo:
    """Read ``<state_dir>/mesh.json``.

    Args:
        require_alive: also check that the supervisor process it names still runs.

    Raises:
        MeshNotRunningError: no mesh.json, an unreadable one, or (with ``require_alive``)
            its supervisor is gone. The message says how to start one.
    """
    path = state_dir / MESH_FILE
    try:
        info = msgspec.json.decode(path.read_bytes(), type=MeshInfo)
    except FileNotFoundError:
        raise MeshNotRunningError(
            f"no mesh is running in {state_dir} (no {MESH_FILE}); start one with `ap up`"
            " or pass the right --state-dir"
        ) from None
    except (OSError, msgspec.DecodeError) as e:
        raise MeshNotRunningError(f"{path} is unreadable ({e}); run `ap down` then `ap up`") from e
    if require_alive and not pid_alive(info.pid):
        raise MeshNotRunningError(
            f"the mesh in {state_dir} is not running (supervisor pid {info.pid} is gone);"
            " start it with `ap up`"
        )
    return info


def remove_mesh(state_dir: Path) -> None:
    """Remove mesh.json if present."""
    (state_dir / MESH_FILE).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Return True when ``pid`` is a running (not zombie) process."""
    import psutil  # here, not at the top: actor processes need not load it (~1 MB)

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_mesh(state_dir: str | os.PathLike[str] | None, mesh: MeshInfo | None) -> MeshInfo:
    """Return ``mesh`` if given, else the live mesh of ``state_dir`` (see :func:`read_mesh`).

    Raises:
        MeshNotRunningError: no mesh runs there.
    """
    return mesh if mesh is not None else read_mesh(resolve_state_dir(state_dir))


def zmq_context() -> zmq.asyncio.Context:
    """Return the process's shared asyncio ZeroMQ context."""
    return zmq.asyncio.Context.instance()
