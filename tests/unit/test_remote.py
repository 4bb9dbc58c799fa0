"""What `ap worker` derives before it starts anything: endpoints, mesh.json, config."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq.auth

from ap_actors.actors.journal import Endpoints
from ap_actors.errors import ConfigError
from ap_actors.remote import REMOTE_LOG, reachable, remote_config, remote_mesh, remote_spec
from ap_actors.security import generate, mesh_keys
from ap_actors.team import Team, WorkerSpec

HERE = WorkerSpec(id="here", command="x")
THERE = WorkerSpec(id="there", command="x", remote=True)
TEAM = Team(workers=[HERE, THERE])


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "*", "[::]"])
def test_a_wildcard_host_becomes_the_host_the_worker_connected_to(wildcard: str) -> None:
    bound = Endpoints(f"tcp://{wildcard}:5555", f"tcp://{wildcard}:5556", "tcp://10.0.0.7:5557")
    assert reachable(bound, "tcp://mesh.example:5555") == Endpoints(
        "tcp://mesh.example:5555", "tcp://mesh.example:5556", "tcp://10.0.0.7:5557"
    )


@pytest.mark.parametrize(
    ("bound", "connect", "needle"),
    [
        (Endpoints("tcp://a:1", "ipc:///tmp/bus", "tcp://a:3"), "tcp://a:1", "bus endpoint"),
        (Endpoints("tcp://a:1", "tcp://a:2", "tcp://a:3"), "a:1", "--connect"),
        (Endpoints("tcp://a:1", "tcp://a:2", "tcp://a:3"), "tcp://a:port", "--connect"),
    ],
)
def test_an_endpoint_another_machine_cannot_reach_is_a_config_error(
    bound: Endpoints, connect: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle) as caught:
        reachable(bound, connect)
    assert "tcp://HOST:PORT" in str(caught.value)


def test_only_a_worker_declared_remote_can_run_with_ap_worker() -> None:
    assert remote_spec(TEAM, "there", "team.toml") is THERE
    with pytest.raises(ConfigError, match="is not remote"):
        remote_spec(TEAM, "here", "team.toml")
    with pytest.raises(ConfigError, match=r"no worker 'ghost' \(workers: here, there\)"):
        remote_spec(TEAM, "ghost", "team.toml")


def test_the_remote_mesh_json_names_the_workers_own_keys_and_no_readable_log(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    generate(keys, ["mesh", "there"])
    ends = Endpoints("tcp://m:1", "tcp://m:2", "tcp://m:3")

    mesh = remote_mesh(ends, tmp_path / "state", keys, "there")

    assert (mesh.ingest, mesh.bus, mesh.replay) == ("tcp://m:1", "tcp://m:2", "tcp://m:3")
    assert mesh.log == str(tmp_path / "state" / REMOTE_LOG) and not Path(mesh.log).exists()
    assert mesh.client == "there"
    curve = mesh_keys(mesh)
    assert curve is not None
    assert curve.client_public == zmq.auth.load_certificate(keys / "there.key")[0]
    config = remote_config(TEAM, THERE)
    assert not config.pipeline.enabled
    assert list(config.enabled_actors()) == ["worker.there", "log_monitor.there"]
