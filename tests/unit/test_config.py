"""ap.toml loading and state directory resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from ap_actors.config import Config, load_config, resolve_state_dir
from ap_actors.errors import EXIT_CONFIG, ConfigError


def test_no_config_file_gives_the_embedded_defaults() -> None:
    config = load_config(None)
    assert config.mesh == Config().mesh
    assert config.mesh.ingest == "tcp://127.0.0.1:5555"
    assert config.eventlog.durability == "fsync"
    assert list(config.enabled_actors()) == [
        "planner",
        "scope_validator",
        "scheduler",
        "reporter",
        "broadcaster",
    ]


def test_a_config_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "ap.toml"
    path.write_text(
        '[mesh]\nbus = "ipc:///tmp/bus"\n'
        "[supervisor]\nmax_restarts = 2\n"
        '[actors.a]\nclass = "pkg.mod:A"\noptions = { x = 1 }\n'
        '[actors.b]\nclass = "pkg.mod:B"\nenabled = false\n'
        "[actors.reporter]\nenabled = false\n"
    )
    config = load_config(path)
    assert config.mesh.bus == "ipc:///tmp/bus" and config.mesh.ingest == "tcp://127.0.0.1:5555"
    assert config.supervisor.max_restarts == 2
    assert list(config.enabled_actors()) == [
        "planner",
        "scope_validator",
        "scheduler",
        "broadcaster",
        "a",
    ]
    assert config.actors["a"].options == {"x": 1}
    assert config.actors["reporter"].cls == "ap_actors.actors.reporter:Reporter"


def test_the_pipeline_can_be_turned_off_to_run_the_runtime_only(tmp_path: Path) -> None:
    path = tmp_path / "ap.toml"
    path.write_text('[pipeline]\nenabled = false\n[actors.a]\nclass = "pkg.mod:A"\n')
    assert list(load_config(path).enabled_actors()) == ["a"]


def test_a_relative_team_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "ap.toml"
    path.parent.mkdir()
    path.write_text('[pipeline]\nteam = "team.toml"\n')
    assert load_config(path).pipeline.team == str(tmp_path / "conf" / "team.toml")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[mesh\n", "not valid TOML"),
        ("[mesh]\nportz = 1\n", "portz"),
        ("[supervisor]\nmax_restarts = 'many'\n", "max_restarts"),
        ("[eventlog]\ndurability = 'sometimes'\n", "durability"),
        ('[actors.x]\nclass = "no_colon"\n', "package.module:Class"),
        ('[actors.journal]\nclass = "a:B"\n', "built in"),
        ("[supervisor]\nrestart_window_s = 0\n", "positive"),
        ("x = 1" + "1" * 5000 + "\n", "number in it is too long"),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        ("[eventlog]\nmap_size_mb = 99999999999999999999999\n", "at most"),
        ("[eventlog]\nmax_batch_bytes = 0\n", "at least 1"),
    ],
)
def test_an_invalid_config_names_the_problem(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "ap.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says) as caught:
        load_config(path)
    assert caught.value.exit_code == EXIT_CONFIG
    assert str(path) in str(caught.value)


def test_a_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_the_state_dir_is_the_argument_else_the_environment_else_dot_ap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AP_STATE_DIR", raising=False)
    assert resolve_state_dir(None) == tmp_path / ".ap"
    monkeypatch.setenv("AP_STATE_DIR", "from-env")
    assert resolve_state_dir(None) == tmp_path / "from-env"
    assert resolve_state_dir("given") == tmp_path / "given"
