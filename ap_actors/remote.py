"""A worker on another machine: ``ap worker --connect tcp://HOST:PORT --id NAME``.

Source: ``DESIGN.md``, "Growing past one machine". The mesh's team declares the worker
with ``remote = true``, so the mesh does not start its actors (the scheduler still
assigns it objectives). On the other machine ``ap worker``:

1. asks the journal at ``--connect`` (its ingest endpoint) for its three endpoints
   (:func:`ask_endpoints`, the ``endpoints`` request of :mod:`ap_actors.protocol`) and
   puts the host it reached for a wildcard bind (``tcp://0.0.0.0:5556``);
2. writes its own state directory (default ``.ap-worker/<id>``): a ``mesh.json`` with
   those endpoints, its keys directory and its own client key pair (``<id>.key_secret``)
   and a ``log`` path that does not exist there, so that its actors rebuild their state
   through the journal's replay endpoint (:func:`remote_mesh`); the effective config
   holding just the worker's two actors (:func:`remote_config`);
3. runs ``worker.<id>`` and ``log_monitor.<id>`` under a :class:`RemoteSupervisor`, the
   mesh's supervisor without the journal: same restarts and back-off, lifecycle events
   appended to the mesh's log, until SIGTERM/SIGINT.

The worker creates its worktrees under its own state directory but in the session's
repository, at the path the session names: that path must hold the same repository on
both machines (a shared filesystem), since the mesh's scheduler merges the objective
branches there. Transcripts stay on the worker's machine; their lines reach the mesh as
``worker_activity`` events.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq
from zmq.utils.monitor import recv_monitor_message

from ap_actors import protocol as P
from ap_actors.actors.journal import Endpoints
from ap_actors.config import Config, PipelineConfig
from ap_actors.errors import ConfigError, MeshNotRunningError
from ap_actors.mesh import MeshInfo
from ap_actors.security import CurveKeys, mesh_keys
from ap_actors.supervisor import Priorities, Supervisor
from ap_actors.team import Team, WorkerSpec, worker_actors

log = logging.getLogger("ap_actors.remote")

CONNECT_TIMEOUT_S = 10.0  # default wait for the journal's answer to `endpoints`
REMOTE_LOG = "eventlog.remote"  # mesh.json's log path on a worker's machine: never created
_WILDCARD_HOSTS = frozenset({"*", "0.0.0.0", "::", "[::]", ""})
_HANDSHAKE_FAILED = frozenset(
    {
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    }
)
_MONITORS = itertools.count(1)


def split_tcp(url: str, what: str) -> tuple[str, str]:
    """Return (host, port) of ``tcp://HOST:PORT`` (an IPv6 host keeps its brackets).

    Raises:
        ConfigError: ``url`` is not of that form; ``what`` names it in the message.
    """
    host, sep, port = url.removeprefix("tcp://").rpartition(":")
    if not url.startswith("tcp://") or not sep or not port.isdigit():
        raise ConfigError(
            f"{what} {url!r} is not tcp://HOST:PORT; another machine reaches the mesh only"
            " over tcp:// (bind tcp:// endpoints in the mesh's ap.toml [mesh])"
        )
    return host, port


def reachable(endpoints: Endpoints, connect: str) -> Endpoints:
    """The journal's endpoints as this machine reaches them: a wildcard host (the
    journal bound every interface) becomes the host of ``connect``.

    Raises:
        ConfigError: an endpoint is not tcp:// (ipc:// cannot be reached from here).
    """
    connect_host, _ = split_tcp(connect, "--connect")

    def one(url: str, name: str) -> str:
        host, port = split_tcp(url, f"the journal's {name} endpoint")
        return f"tcp://{connect_host if host in _WILDCARD_HOSTS else host}:{port}"

    return Endpoints(
        one(endpoints.ingest, "ingest"), one(endpoints.bus, "bus"), one(endpoints.replay, "replay")
    )


def ask_endpoints(
    connect: str, curve: CurveKeys | None, timeout_s: float = CONNECT_TIMEOUT_S
) -> Endpoints:
    """Ask the journal whose ingest endpoint is ``connect`` for its three endpoints.

    One ``[b"endpoints"]`` request on a DEALER socket; a socket monitor tells a refused
    CurveZMQ handshake (the journal answers nothing then) from no answer at all.

    Returns:
        The endpoints as reachable from here (:func:`reachable`).

    Raises:
        ConfigError: ``connect`` is not tcp://HOST:PORT, or the handshake failed (wrong
            keys, a client key not allowed, a mesh without keys, or not a journal).
        MeshNotRunningError: no answer within ``timeout_s`` seconds (nothing listens,
            the network drops the packets), or a journal that does not know the request.
    """
    split_tcp(connect, "--connect")
    # A context of its own, ended here: the process's shared one is asyncio's.
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if curve is not None:
        curve.connect(sock)
    monitor = sock.get_monitor_socket(addr=f"inproc://ap-remote-monitor-{next(_MONITORS)}")
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    connected = shaken = False
    try:
        sock.connect(connect)
        sock.send_multipart([P.ENDPOINTS])  # queued until the connection is up
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(max(int(left * 1000), 1)))
            if sock in ready:
                return reachable(_endpoints_of(sock.recv_multipart(), connect), connect)
            if monitor not in ready:
                continue
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_CONNECTED:
                connected = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                shaken = True
            elif event in _HANDSHAKE_FAILED or (event == zmq.EVENT_DISCONNECTED and not shaken):
                keys = "no --keys" if curve is None else "the keys given with --keys"
                raise ConfigError(
                    f"the CurveZMQ handshake with {connect} failed with {keys}: check that"
                    " --keys holds the mesh's server.key and this worker's <id>.key_secret"
                    " (`ap keys generate --client <id>` on the mesh's machine, whose"
                    " clients/ must still hold <id>.key) and that --connect is the mesh's"
                    " ingest endpoint"
                )
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
    if shaken:
        why = "the connection is up but the journal did not answer"
    elif connected:
        why = "the connection opened but the handshake did not finish"
    else:
        why = "nothing answered (is the mesh up, the address and port right, the port open?)"
    raise MeshNotRunningError(
        f"no mesh answered at {connect} within {timeout_s:g}s: {why}; check --connect"
        " against the ingest endpoint in the mesh's mesh.json"
    )


def _endpoints_of(frames: list[bytes], connect: str) -> Endpoints:
    if len(frames) == 2 and frames[0] == P.ENDPOINTS:
        try:
            return msgspec.msgpack.decode(frames[1], type=Endpoints)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise MeshNotRunningError(f"{connect} sent a malformed endpoints reply: {e}") from e
    raise MeshNotRunningError(
        f"{connect} does not answer the endpoints request (an ap-actors mesh older than"
        " `ap worker`?): upgrade the mesh"
    )


def remote_spec(team: Team, worker_id: str, where: str) -> WorkerSpec:
    """Return the worker ``worker_id`` of ``team``, which must be declared remote.

    Raises:
        ConfigError: no such worker, or it is not ``remote = true`` (the mesh would run
            it too, and both would take its objectives).
    """
    spec = team.worker(worker_id)
    if spec is None:
        known = ", ".join(team.ids()) or "none"
        raise ConfigError(
            f"{where}: no worker {worker_id!r} (workers: {known}); declare it with"
            " remote = true in the mesh's team file and pass that file with --team"
        )
    if not spec.remote:
        raise ConfigError(
            f"{where}: worker {worker_id!r} is not remote, so the mesh runs it itself; set"
            " remote = true for it in the mesh's team file and restart the mesh"
        )
    return spec


def remote_mesh(
    endpoints: Endpoints, state_dir: Path, keys: Path | None, worker_id: str
) -> MeshInfo:
    """The mesh.json of a worker's machine (module docstring, step 2)."""
    return MeshInfo(
        ingest=endpoints.ingest,
        bus=endpoints.bus,
        replay=endpoints.replay,
        dashboard=None,
        pid=os.getpid(),
        log=str(state_dir / REMOTE_LOG),
        keys=str(keys) if keys is not None else None,
        client=worker_id,
    )


def remote_config(team: Team, spec: WorkerSpec) -> Config:
    """The effective config of a worker's machine: the worker's two actors only."""
    return Config(pipeline=PipelineConfig(enabled=False), actors=worker_actors(team, spec))


class RemoteSupervisor(Supervisor):
    """The supervisor of a worker's machine: the mesh's, without the journal.

    It runs the actors of ``config`` (:func:`remote_config`) against the remote ``mesh``
    (:func:`remote_mesh`) with the restart policy of :class:`Supervisor`, and records
    their starts and exits in the mesh's log.
    """

    def __init__(self, config: Config, state_dir: Path, mesh: MeshInfo, team: Team) -> None:
        super().__init__(config, state_dir, None, team)
        self.joined = mesh

    async def start(self) -> MeshInfo:
        """Start the actors; return the mesh they joined.

        Raises:
            MeshRunningError: another ``ap worker`` or a mesh uses ``state_dir``.
            ConfigError: the keys cannot be read.
            StartupError: an actor failed to start (the others are stopped again).
        """
        self._claim_state_dir()
        # No serial actor runs here: nothing to put above the worker and its agents.
        self.priorities = Priorities(serial=None, per_agent=None)
        curve = mesh_keys(self.joined)
        try:
            self._publish(self.joined, curve)
            await self._start_actors()
        except BaseException:
            await self.shutdown()
            raise
        self._watch_all()
        log.info(
            "joined the mesh",
            extra={"mesh": msgspec.to_builtins(self.joined), "actors": self._names()},
        )
        return self.joined
