"""CurveZMQ keys: files with safe modes, and a CURVE server that lets in only its clients.

Real key files in ``tmp_path`` and real ZeroMQ sockets on loopback. A refused client is
recognised by its socket monitor's handshake-failure event (what ZeroMQ reports), so no
test waits for an absence.
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from ap_actors.cli import main as ap_main
from ap_actors.errors import ConfigError, StartupError
from ap_actors.security import (
    CurveKeys,
    generate,
    is_loopback,
    require_keys,
    start_authenticator,
)

TIMEOUT_MS = 10_000  # a bound on a hung test, not a figure


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_secret_files_readable_by_the_owner_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    written = generate(keys, ["mesh", "remote-1"])

    names = sorted(p.relative_to(keys).as_posix() for p in written)
    assert names == sorted(
        [
            "server.key",
            "server.key_secret",
            "mesh.key",
            "mesh.key_secret",
            "clients/mesh.key",
            "remote-1.key",
            "remote-1.key_secret",
            "clients/remote-1.key",
        ]
    )
    assert _mode(keys) == 0o700 and _mode(keys / "clients") == 0o700
    for path in written:
        assert _mode(path) == (0o600 if path.suffix == ".key_secret" else 0o644), path


def test_generate_never_replaces_a_key(tmp_path: Path) -> None:
    generate(tmp_path, ["mesh"])
    before = (tmp_path / "server.key_secret").read_bytes()

    assert generate(tmp_path, ["mesh"]) == []
    assert (tmp_path / "server.key_secret").read_bytes() == before


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "server"])
def test_a_client_name_that_is_not_a_plain_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        generate(tmp_path, [name])


def test_a_secret_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    generate(tmp_path, ["mesh"])
    os.chmod(tmp_path / "mesh.key_secret", 0o644)

    with pytest.raises(ConfigError, match="chmod 600"):
        CurveKeys.for_client(tmp_path)


def test_missing_keys_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ap keys generate"):
        CurveKeys.for_server(tmp_path)
    with pytest.raises(ConfigError, match="ap keys generate"):
        CurveKeys.for_client(tmp_path)


def test_ap_keys_generate_makes_the_files_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ap_main(["keys", "generate", "--dir", str(tmp_path / "k"), "--client", "w1"]) == 0
    assert (tmp_path / "k" / "clients" / "w1.key").exists()
    assert "[security] keys" in capsys.readouterr().out
    assert ap_main(["keys", "generate", "--dir", str(tmp_path / "k"), "--client", "../w"]) == 3


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/ap.sock", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://10.0.0.2:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://mesh.example.org:5555", False),
    ],
)
def test_only_loopback_endpoints_are_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_a_non_loopback_bind_without_keys_is_refused_with_the_fix() -> None:
    endpoints = {"ingest": "tcp://0.0.0.0:5555", "bus": "tcp://127.0.0.1:5556"}
    with pytest.raises(StartupError, match=r"ingest tcp://0\.0\.0\.0:5555.*ap keys generate"):
        require_keys(endpoints, None)
    require_keys(endpoints, "/some/keys")  # keys configured: allowed
    require_keys({"bus": "tcp://127.0.0.1:5556"}, None)  # loopback only: allowed


# --- the handshake ------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[zmq.Context[Any], zmq.Socket[Any], str, Path]]:
    """A CURVE ROUTER on loopback; its keys allow "mesh" only ("revoked" was removed)."""
    keys = tmp_path / "keys"
    generate(keys, ["mesh", "revoked"])
    (keys / "clients" / "revoked.key").unlink()  # a key taken off the allow list
    generate(tmp_path / "elsewhere", ["mesh"])  # another mesh's keys
    ctx: zmq.Context[Any] = zmq.Context()
    auth = start_authenticator(ctx, CurveKeys.for_server(keys))
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    CurveKeys.for_server(keys).serve(sock)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield ctx, sock, f"tcp://127.0.0.1:{port}", tmp_path
    sock.close()
    auth.stop()
    ctx.term()


_MONITORS = itertools.count()
_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
}


def _ask(
    ctx: zmq.Context[Any], router: zmq.Socket[Any], url: str, keys: CurveKeys | None
) -> tuple[str, list[bytes]]:
    """Send ``ping``; return ("pong" or the handshake failure, what the server received)."""
    client = ctx.socket(zmq.DEALER)
    client.linger = 0
    if keys is not None:
        keys.connect(client)
    monitor = client.get_monitor_socket(addr=f"inproc://test-monitor-{next(_MONITORS)}")
    client.connect(url)
    client.send(b"ping")
    poller = zmq.Poller()
    for sock in (monitor, client, router):
        poller.register(sock, zmq.POLLIN)
    received: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    try:
        while True:
            ready = dict(poller.poll(TIMEOUT_MS))
            assert ready and time.monotonic() < deadline, "no reply and no refusal"
            if router in ready:
                identity, body = router.recv_multipart()
                received.append(body)
                router.send_multipart([identity, b"pong"])
            if client in ready:
                return client.recv().decode(), received
            if monitor in ready:
                event = recv_monitor_message(monitor)["event"]
                # A server that cannot read the HELLO (another server key) may close
                # the connection without saying why: DISCONNECTED before any answer.
                if event in _FAILED or event == zmq.EVENT_DISCONNECTED:
                    return zmq.Event(event).name, received
    finally:
        client.disable_monitor()
        monitor.close(linger=0)
        client.close(linger=0)


def test_only_a_client_on_the_allow_list_gets_through(
    server: tuple[zmq.Context[Any], zmq.Socket[Any], str, Path],
) -> None:
    ctx, router, url, root = server
    answers = {
        name: _ask(ctx, router, url, keys)
        for name, keys in (
            ("allowed", CurveKeys.for_client(root / "keys")),
            ("revoked", CurveKeys.for_client(root / "keys", "revoked")),
            ("no keys", None),
            ("another mesh's keys", CurveKeys.for_client(root / "elsewhere")),
        )
    }

    # Refused clients get no answer and the server receives nothing of theirs.
    assert answers == {
        "allowed": ("pong", [b"ping"]),
        "revoked": ("HANDSHAKE_FAILED_AUTH", []),
        "no keys": ("HANDSHAKE_FAILED_PROTOCOL", []),
        "another mesh's keys": answers["another mesh's keys"],
    }
    assert answers["another mesh's keys"] in (
        ("HANDSHAKE_FAILED_NO_DETAIL", []),
        ("DISCONNECTED", []),
    )
