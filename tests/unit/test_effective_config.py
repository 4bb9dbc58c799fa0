"""``load_config`` of the effective config a supervisor writes to ``<state>/mesh-config.json``."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from ap_actors.config import Config, load_config
from ap_actors.errors import EXIT_CONFIG, ConfigError
from ap_actors.mesh import write_atomic
from ap_actors.supervisor import EFFECTIVE_CONFIG
from ap_actors.team import effective_config, load_team, team_option

AP_TOML = """\
[mesh]
ingest = "ipc:///tmp/ap-test/ingest"
bus_hwm = 500

[eventlog]
durability = "none"
map_size_mb = 8

[supervisor]
max_restarts = 1
backoff_max_s = 0.5

[pipeline]
team = "team.toml"

[actors.scheduler]
options = { tick_s = 0.25 }

[actors.counter]
class = "tests.support.actors:Counter"
enabled = false
options = { nested = { list = [1, 2.5, "x"], flag = true } }
"""

TEAM_TOML = """\
auto_approve = true
max_attempts = 3

[[workers]]
id = "ruff-1"
command = ["ruff", "check", "{scope}"]
env = { NO_COLOR = "1" }
timeout_s = 30
"""


def write_effective(state_dir: Path, config: Config) -> Path:
    """Write the config as the supervisor does when the mesh comes up."""
    path = state_dir / EFFECTIVE_CONFIG
    write_atomic(path, msgspec.json.format(msgspec.json.encode(config)) + b"\n")
    return path


@pytest.fixture
def effective(tmp_path: Path) -> Config:
    """The effective config of an ap.toml with a team file next to it."""
    (tmp_path / "team.toml").write_text(TEAM_TOML)
    (tmp_path / "ap.toml").write_text(AP_TOML)
    config = load_config(tmp_path / "ap.toml")
    assert config.pipeline.team is not None
    return effective_config(config, load_team(config.pipeline.team))


def test_the_effective_config_written_as_json_loads_back_equal(
    tmp_path: Path, effective: Config
) -> None:
    path = write_effective(tmp_path, effective)
    assert load_config(path) == effective


def test_the_loaded_effective_config_keeps_the_actors_their_order_and_options(
    tmp_path: Path, effective: Config
) -> None:
    loaded = load_config(write_effective(tmp_path, effective))

    assert list(loaded.actors) == [
        "planner",
        "scope_validator",
        "scheduler",
        "reporter",
        "broadcaster",
        "counter",
        "worker.ruff-1",
        "log_monitor.ruff-1",
    ]
    assert loaded.actors["counter"].cls == "tests.support.actors:Counter"
    assert not loaded.actors["counter"].enabled
    assert loaded.actors["counter"].options == {"nested": {"list": [1, 2.5, "x"], "flag": True}}
    assert loaded.actors["scheduler"].options["tick_s"] == 0.25
    assert team_option(loaded.actors["scheduler"].options).max_attempts == 3
    worker = loaded.actors["worker.ruff-1"]
    assert worker.cls == "ap_actors.actors.worker:Worker"
    assert worker.options["worker"]["command"] == ["ruff", "check", "{scope}"]
    assert (loaded.mesh.ingest, loaded.mesh.bus_hwm) == ("ipc:///tmp/ap-test/ingest", 500)
    assert (loaded.eventlog.durability, loaded.supervisor.max_restarts) == ("none", 1)
    assert loaded.pipeline.team == str(tmp_path / "team.toml")


def test_the_json_names_an_actors_class_class_as_the_toml_does(
    tmp_path: Path, effective: Config
) -> None:
    data = json.loads(write_effective(tmp_path, effective).read_text())
    assert data["actors"]["counter"]["class"] == "tests.support.actors:Counter"
    assert "cls" not in data["actors"]["counter"]


def test_a_json_config_is_taken_as_written_without_adding_pipeline_actors(
    tmp_path: Path,
) -> None:
    path = tmp_path / EFFECTIVE_CONFIG
    path.write_text('{"actors": {"a": {"class": "pkg.mod:A"}}}')
    config = load_config(path)
    assert list(config.actors) == ["a"]
    assert config.pipeline.enabled


def test_a_json_config_is_not_read_as_toml(tmp_path: Path) -> None:
    path = tmp_path / "mesh-config.json"
    path.write_text('[mesh]\ningest = "tcp://127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="Expected `object`, got `array`"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"mesh": {"ingest": ', "truncated"),
        ("", "truncated"),
        ('{"mesh": {}} x', "JSON is malformed: trailing characters"),
        ('{"mesh": {"portz": 1}}', "portz"),
        ('{"supervisor": {"max_restarts": "many"}}', "$.supervisor.max_restarts"),
        ('{"actors": {"a": {"cls": "pkg.mod:A"}}}', "cls"),
    ],
)
def test_a_broken_effective_config_names_the_file_and_the_problem(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / EFFECTIVE_CONFIG
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert says in str(caught.value)
    assert caught.value.exit_code == EXIT_CONFIG


def test_a_missing_effective_config_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / EFFECTIVE_CONFIG)


def test_effective_config_of_a_loaded_effective_config_changes_nothing(
    tmp_path: Path, effective: Config
) -> None:
    loaded = load_config(write_effective(tmp_path, effective))
    assert loaded.pipeline.team is not None
    assert effective_config(loaded, load_team(loaded.pipeline.team)) == loaded
