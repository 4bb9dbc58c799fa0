"""CurveZMQ keys for the mesh's ZeroMQ endpoints, and the rule that needs them.

Source: ZeroMQ RFC 26 (CurveZMQ) and RFC 27 (ZAP); pyzmq's ``zmq.auth`` writes and reads
the key files (ZeroMQ's certificate format, as ``curve_keygen`` and CZMQ's ``zcert``).

A keys directory (``ap keys generate``, default ``<state dir>/keys``)::

    server.key          the journal's public key (give it to every client)
    server.key_secret   the journal's key pair (stays on the mesh's machine, mode 0600)
    <client>.key        a client's public key ...
    <client>.key_secret ... and its key pair (mode 0600); "mesh" is the local actors'
    clients/<client>.key  the public keys the journal lets in (a ZAP allow list)

The journal's three endpoints are CURVE servers: a client must know ``server.key`` to
connect at all (and cannot be impersonated by a man in the middle), and the journal's
ZAP handler lets in only clients whose public key is in ``clients/``. Everything on the
wire is encrypted. A client without keys or with keys not in ``clients/`` gets nothing:
the handshake fails and ZeroMQ reconnects silently, so the client sees no reply at all.

Binds: a mesh whose endpoints are all loopback (``tcp://127.x.y.z``, ``tcp://[::1]``,
``tcp://localhost``, ``ipc://``, ``inproc://``) may run without keys; any other address
needs them (:func:`require_keys`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq
import zmq.auth

from ap_actors.errors import ConfigError, StartupError

log = logging.getLogger(__name__)

SERVER = "server"  # the journal's key pair: server.key, server.key_secret
LOCAL_CLIENT = "mesh"  # the key pair of the actors on the mesh's machine
ALLOWED_DIR = "clients"  # public keys the journal lets in


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(
            f"key name {name!r} must be letters, digits, '-', '_' or '.', not starting with '.'"
        )
    if name == SERVER:
        raise ConfigError(f"{SERVER!r} is the journal's key; give the client another name")
    return name


def generate(keys_dir: str | os.PathLike[str], clients: list[str]) -> list[Path]:
    """Create the key files that are missing; return the paths written.

    The server pair is made once; each client of ``clients`` (default ``["mesh"]``, the
    local actors) gets a pair and its public key is copied into ``clients/``. The
    directory is mode 0700 and secret files 0600 from the moment they exist (umask), so
    no other user can ever read them. Existing keys are never replaced.

    Raises:
        ConfigError: a client name is not a plain file name.
        OSError: the directory cannot be written.
    """
    names = [_check_name(c) for c in (clients or [LOCAL_CLIENT])]
    root = Path(keys_dir)
    written: list[Path] = []
    old = os.umask(0o077)
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / ALLOWED_DIR).mkdir(exist_ok=True, mode=0o700)
        for name in [SERVER, *names]:
            public = root / f"{name}.key"
            if public.exists() and (root / f"{name}.key_secret").exists():
                continue
            pub, secret = zmq.auth.create_certificates(root, name)
            os.chmod(pub, 0o644)  # a public key may be read by anyone
            written += [Path(pub), Path(secret)]
            if name != SERVER:
                allowed = root / ALLOWED_DIR / f"{name}.key"
                allowed.write_bytes(Path(pub).read_bytes())
                os.chmod(allowed, 0o644)
                written.append(allowed)
    finally:
        os.umask(old)
    return written


def _read_pair(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        raise ConfigError(
            f"no key file {path}; make the keys with `ap keys generate --dir {path.parent}`"
        )
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} can be read by other users (mode {stat.S_IMODE(mode):o});"
            f" run `chmod 600 {path}`"
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a ZeroMQ key pair: {e}") from e
    if secret is None:
        raise ConfigError(f"{path} holds no secret key; it must be a .key_secret file")
    return public, secret


def _read_public(path: Path) -> bytes:
    if not path.exists():
        raise ConfigError(f"no public key {path}; copy it from the mesh's keys directory")
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a ZeroMQ public key: {e}") from e
    return public


@dataclass(frozen=True)
class CurveKeys:
    """What one process needs to speak CURVE to the journal (or to be it).

    ``server_secret`` and ``allowed_dir`` are set only for the journal.
    """

    server_public: bytes
    client_public: bytes
    client_secret: bytes
    server_secret: bytes | None = None
    allowed_dir: Path | None = None

    @classmethod
    def for_client(cls, keys_dir: str | os.PathLike[str], name: str = LOCAL_CLIENT) -> CurveKeys:
        """Load ``server.key`` and the client pair ``name`` from ``keys_dir``.

        Raises:
            ConfigError: a file is missing, not a key, or a secret readable by others.
        """
        root = Path(keys_dir)
        public, secret = _read_pair(root / f"{_check_name(name)}.key_secret")
        return cls(_read_public(root / f"{SERVER}.key"), public, secret)

    @classmethod
    def for_server(cls, keys_dir: str | os.PathLike[str]) -> CurveKeys:
        """Load the journal's pair and the allow list from ``keys_dir``.

        Raises:
            ConfigError: as :meth:`for_client`, or no ``clients/`` directory.
        """
        root = Path(keys_dir)
        public, secret = _read_pair(root / f"{SERVER}.key_secret")
        allowed = root / ALLOWED_DIR
        if not allowed.is_dir():
            raise ConfigError(f"no {allowed}; make it with `ap keys generate --dir {root}`")
        return cls(public, public, secret, server_secret=secret, allowed_dir=allowed)

    def serve(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        if self.server_secret is None:
            raise ConfigError("these keys hold no server secret: load them with for_server")
        sock.curve_secretkey = self.server_secret
        sock.curve_publickey = self.server_public
        sock.curve_server = True

    def connect(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the journal (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret


def mesh_keys(mesh: Any) -> CurveKeys | None:
    """The client keys of a mesh (its :class:`~ap_actors.mesh.MeshInfo`), if any: the
    pair named by its ``client`` (``mesh`` on the mesh's machine, the worker's own on a
    remote worker's).

    Raises:
        ConfigError: the mesh has keys and they cannot be read here.
    """
    keys = getattr(mesh, "keys", None)
    return CurveKeys.for_client(keys, getattr(mesh, "client", LOCAL_CLIENT)) if keys else None


def start_authenticator(context: zmq.Context[Any], keys: CurveKeys) -> Any:
    """Start the ZAP handler of ``context``: only clients in ``keys.allowed_dir`` get in.

    Returns the authenticator (a thread; ``.stop()`` it before the context ends). It
    must run before the CURVE server sockets bind. The allow list is read once, at start.
    """
    from zmq.auth.thread import ThreadAuthenticator

    assert keys.allowed_dir is not None
    auth = ThreadAuthenticator(context, log=logging.getLogger("ap_actors.zap"))
    auth.start()
    auth.configure_curve(domain="*", location=str(keys.allowed_dir))
    return auth


def is_loopback(endpoint: str) -> bool:
    """True for an endpoint only this machine can reach (see the module docstring)."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: reachable from outside


def require_keys(endpoints: dict[str, str], keys_dir: str | None) -> None:
    """Refuse a non-loopback ZeroMQ bind without keys.

    Args:
        endpoints: name -> endpoint of what the journal binds (ingest, bus, replay).
        keys_dir: the configured ``[security] keys``, None when not set.

    Raises:
        StartupError: an endpoint is not loopback and no keys are configured.
    """
    exposed = [f"{name} {url}" for name, url in endpoints.items() if not is_loopback(url)]
    if exposed and keys_dir is None:
        raise StartupError(
            f"{', '.join(exposed)} can be reached from other machines, so the mesh needs"
            " CurveZMQ keys: run `ap keys generate` and set [security] keys in ap.toml"
            " (README, Security), or bind 127.0.0.1"
        )
