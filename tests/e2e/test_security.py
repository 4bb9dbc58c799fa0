"""A mesh beyond loopback: refused without keys; with keys, the whole pipeline speaks
CURVE and a client without the right keys gets nothing and changes nothing.

Real ``ap up`` processes, real key files (``ap keys generate``), real sockets. A refused
client is recognised by its socket monitor's handshake-failure event, so no test waits
for an absence.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from ap_actors.events import SessionCompleted
from ap_actors.security import CurveKeys, generate
from tests.e2e.conftest import PipelineMesh, ended, session_of

TIMEOUT_MS = 20_000  # a bound on a hung test, not a figure
_MONITORS = itertools.count()

EVERYWHERE = """
[mesh]
ingest = "tcp://0.0.0.0:*"
bus = "tcp://0.0.0.0:*"
replay = "tcp://0.0.0.0:*"
dashboard = "http://127.0.0.1:*/"

[supervisor]
backoff_initial_s = 0.05
"""

TEAM = '[[workers]]\nid = "w1"\nagent = "command"\ncommand = "true"\n'


def _mesh(root: Path, config: str) -> PipelineMesh:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ap.toml").write_text(config)
    (root / "team.toml").write_text(TEAM)
    return PipelineMesh(root / "state", root / "ap.toml", root / "team.toml")


def test_ap_up_beyond_loopback_without_keys_refuses_in_one_line(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path, EVERYWHERE)

    result = mesh.ap("up", "--detach", "--config", str(mesh.config), check=False)

    assert result.returncode == 7, result  # EXIT_STARTUP
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ap keys generate" in lines[0] and "0.0.0.0" in lines[0], lines[0]
    assert not (mesh.state_dir / "mesh.json").exists()


def _refusal(url: str, kind: int, keys: CurveKeys | None) -> str:
    """Connect a socket of ``kind`` (sending a request if it can); return the handshake
    failure its monitor reports, or "answered" if anything came back."""
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.linger = 0
    if keys is not None:
        keys.connect(sock)
    monitor = sock.get_monitor_socket(addr=f"inproc://e2e-monitor-{next(_MONITORS)}")
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(url)
    if kind == zmq.DEALER:
        sock.send_multipart([b"replay", b"\x80"])  # a replay request: {} (since 0)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    try:
        while True:
            ready = dict(poller.poll(TIMEOUT_MS))
            assert ready, "no answer and no refusal"
            if sock in ready:
                return "answered"
            event = recv_monitor_message(monitor)["event"]
            if event in (
                zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                zmq.EVENT_DISCONNECTED,
            ):
                return "refused"
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def test_with_keys_a_session_completes_and_clients_without_them_get_nothing(
    tmp_path: Path, small_repo: Path
) -> None:
    keys = tmp_path / "keys"
    generate(keys, ["mesh", "revoked"])
    (keys / "clients" / "revoked.key").unlink()
    generate(tmp_path / "other", ["mesh"])
    mesh = _mesh(tmp_path / "m", EVERYWHERE + f'\n[security]\nkeys = "{keys}"\n').up()
    try:
        info = json.loads((mesh.state_dir / "mesh.json").read_text())
        assert info["keys"] == str(keys)
        plan = tmp_path / "plan.toml"
        plan.write_text(
            '[[objectives]]\nid = "o1"\ntitle = "Touch core"\nworker = "w1"\n'
            'scope_touch = ["pkg/"]\ncommand = "sh -c \'echo x >> pkg/core.py\'"\n'
        )
        # `ap submit`, every actor and the subscriber below use the keys in mesh.json.
        sid = session_of(
            mesh.submit(
                "Touch core", "--repo", str(small_repo), "--plan", str(plan), "--approve", "--json"
            )
        )
        end = mesh.wait_for(ended, session_id=sid)
        assert isinstance(end.event, SessionCompleted), end.event
        before = mesh.records()

        for url, kind in (
            (info["ingest"], zmq.DEALER),
            (info["replay"], zmq.DEALER),
            (info["bus"], zmq.SUB),
        ):
            assert _refusal(url, kind, None) == "refused", url
            assert _refusal(url, kind, CurveKeys.for_client(keys, "revoked")) == "refused", url
            assert _refusal(url, kind, CurveKeys.for_client(tmp_path / "other")) == "refused"
        assert _refusal(info["replay"], zmq.DEALER, CurveKeys.for_client(keys)) == "answered"

        assert mesh.records()[: len(before)] == before  # the refused clients changed nothing
    finally:
        mesh.down()
