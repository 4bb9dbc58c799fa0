"""The team file (team.toml, the seeds' team.json), its errors, and the team in a mesh."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from ap_actors.config import PIPELINE_ACTORS, ActorConfig, PipelineConfig, load_config
from ap_actors.errors import EXIT_CONFIG, ConfigError
from ap_actors.team import (
    TEAM_FILE,
    Team,
    WorkerSpec,
    effective_config,
    load_team,
    read_team,
    resolve_team,
    team_actors,
    team_option,
    worker_actors,
    write_team,
)

FULL_TEAM_TOML = """\
auto_approve = true
max_attempts = 3
objective_timeout_s = 900.5

[[workers]]
id = "ruff-1"
agent = "command"
capabilities = ["python", "lint"]
command = "ruff check --fix {scope}"
commands = ["ruff format {scope}", ["ruff", "check", "{scope}"]]
log_paths = ["~/.ruff/log.txt", "/var/log/ruff.log"]
env = { RUFF_CACHE_DIR = "/tmp/ruff", NO_COLOR = "1" }
timeout_s = 600

[[workers]]
id = "codex_2"
agent = "codex"
command = ["codex", "exec", "--json", "{prompt}"]
"""

# The shape of the seeds' team.json: a display name, ``type`` for the agent, one log_path.
SEED_TEAM_JSON = {
    "workers": [
        {
            "id": "codex-1",
            "name": "Codex Worker 1",
            "type": "codex",
            "capabilities": ["python", "refactor"],
            "log_path": "~/.codex/log/codex-tui.log",
        },
        {
            "id": "shell-1",
            "name": "Shell",
            "type": "command",
            "command": "make test",
            "log_paths": ["/tmp/a.log"],
            "log_path": "/tmp/b.log",
        },
    ],
    "max_attempts": 4,
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def a_team(*workers: WorkerSpec, **fields: object) -> Team:
    return Team(workers=list(workers), **fields)  # type: ignore[arg-type]


RUFF = WorkerSpec(id="ruff-1", command="ruff check {scope}", capabilities=["python"])
CODEX = WorkerSpec(id="codex-1", agent="codex", timeout_s=60.0, env={"A": "1"})


# --- loading ------------------------------------------------------------------------


def test_a_team_toml_sets_every_key_of_the_team_and_of_each_worker(tmp_path: Path) -> None:
    team = load_team(write(tmp_path / "team.toml", FULL_TEAM_TOML))

    assert team.auto_approve is True
    assert team.max_attempts == 3
    assert team.objective_timeout_s == 900.5
    assert team.ids() == ["ruff-1", "codex_2"]
    ruff, codex = team.workers
    assert ruff == WorkerSpec(
        id="ruff-1",
        agent="command",
        capabilities=["python", "lint"],
        command="ruff check --fix {scope}",
        commands=["ruff format {scope}", ["ruff", "check", "{scope}"]],
        log_paths=["~/.ruff/log.txt", "/var/log/ruff.log"],
        env={"RUFF_CACHE_DIR": "/tmp/ruff", "NO_COLOR": "1"},
        timeout_s=600.0,
    )
    assert codex.agent == "codex"
    assert codex.command == ["codex", "exec", "--json", "{prompt}"]
    assert codex.capabilities == [] and codex.log_paths == [] and codex.env == {}
    assert codex.timeout_s is None


def test_an_empty_team_toml_is_a_team_without_workers_and_with_the_defaults(
    tmp_path: Path,
) -> None:
    team = load_team(write(tmp_path / "team.toml", ""))
    assert team == Team()
    assert (team.workers, team.auto_approve, team.max_attempts, team.objective_timeout_s) == (
        [],
        False,
        2,
        1800.0,
    )


def test_the_seeds_team_json_maps_type_to_agent_and_log_path_to_log_paths(
    tmp_path: Path,
) -> None:
    team = load_team(write(tmp_path / "team.json", json.dumps(SEED_TEAM_JSON, indent=2)))

    codex, shell = team.workers
    assert codex == WorkerSpec(
        id="codex-1",
        agent="codex",
        capabilities=["python", "refactor"],
        log_paths=["~/.codex/log/codex-tui.log"],
    )
    # The seed's one log_path is added after the log_paths the worker already names.
    assert shell.agent == "command" and shell.command == "make test"
    assert shell.log_paths == ["/tmp/a.log", "/tmp/b.log"]
    assert team.max_attempts == 4


def test_the_seeds_display_name_is_dropped_rather_than_rejected(tmp_path: Path) -> None:
    data = {"workers": [{"id": "w", "name": "A worker", "command": "true"}]}
    team = load_team(write(tmp_path / "team.json", json.dumps(data)))
    assert msgspec.to_builtins(team.workers[0]) == {
        "id": "w",
        "agent": "command",
        "model": "",
        "capabilities": [],
        "command": "true",
        "commands": [],
        "log_paths": [],
        "env": {},
        "timeout_s": None,
        "remote": False,
    }


def test_a_team_json_in_our_own_shape_loads_like_the_toml(tmp_path: Path) -> None:
    toml_team = load_team(write(tmp_path / "team.toml", FULL_TEAM_TOML))
    json_text = msgspec.json.encode(toml_team).decode()
    assert load_team(write(tmp_path / "team.json", json_text)) == toml_team


def test_resolve_team_gives_an_empty_team_without_a_path_and_loads_a_given_one(
    tmp_path: Path,
) -> None:
    assert resolve_team(None) == Team()
    assert resolve_team("") == Team()
    path = write(tmp_path / "team.toml", FULL_TEAM_TOML)
    assert resolve_team(path) == load_team(path)


# --- loading errors -----------------------------------------------------------------


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_team(path)
    error = caught.value
    assert error.exit_code == EXIT_CONFIG == 3
    assert str(path) in str(error)
    assert "\n" not in str(error)
    return error


def test_a_missing_team_file_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.toml")
    assert "does not exist" in str(error) and "--team" in str(error)


def test_a_team_path_that_is_a_directory_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "team.toml").mkdir()
    assert "cannot read team file" in str(load_error(tmp_path / "team.toml"))


def test_a_team_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_bytes(b'[[workers]]\nid = "caf\xe9"\n')
    assert "cannot read team file" in str(load_error(path))


def test_a_toml_syntax_error_gives_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "team.toml", 'auto_approve = false\n[[workers]\nid = "a"\n')
    message = str(load_error(path))
    assert "not valid TOML" in message
    assert "line 2, column 10" in message


def test_a_json_syntax_error_gives_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "team.json", '{"workers": [\n  {"id": "a",}\n]}')
    message = str(load_error(path))
    assert message.startswith(f"{path}:2:14: not valid JSON")


def test_a_toml_file_is_not_parsed_as_json_nor_a_json_file_as_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in str(load_error(write(tmp_path / "team.toml", '{"workers": []}')))
    assert "not valid JSON" in str(load_error(write(tmp_path / "team.json", "max_attempts = 2")))


def test_an_unknown_worker_key_names_the_key_and_the_worker_it_is_in(tmp_path: Path) -> None:
    path = write(
        tmp_path / "team.toml",
        '[[workers]]\nid = "a"\ncommand = "x"\n[[workers]]\nid = "b"\ncommand = "x"\ncolour = 1\n',
    )
    message = str(load_error(path))
    assert "unknown field `colour`" in message
    assert "$.workers[1]" in message


def test_an_unknown_worker_key_in_a_seed_json_names_the_worker_it_is_in(tmp_path: Path) -> None:
    data = {"workers": [{"id": "a", "type": "codex", "log_file": "x.log"}]}
    message = str(load_error(write(tmp_path / "team.json", json.dumps(data))))
    assert "unknown field `log_file`" in message and "$.workers[0]" in message


def test_an_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    message = str(load_error(write(tmp_path / "team.toml", "retries = 3\n")))
    assert "unknown field `retries`" in message


def test_a_wrong_type_names_the_full_path_of_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "team.toml",
        '[[workers]]\nid = "a"\ncommand = "x"\n[[workers]]\nid = "b"\ncommand = "x"\n'
        'timeout_s = "slow"\n',
    )
    assert "$.workers[1].timeout_s" in str(load_error(path))


def test_remote_must_be_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path / "team.toml", '[[workers]]\nid = "a"\ncommand = "x"\nremote = "yes"\n')
    assert "$.workers[0].remote" in str(load_error(path))


@pytest.mark.parametrize(
    "worker_id",
    ["has space", "-leading-dash", "_leading_underscore", "a/b", "dot.ted", "", "x" * 65, "é"],
)
def test_a_bad_worker_id_is_rejected_with_the_allowed_characters(
    tmp_path: Path, worker_id: str
) -> None:
    path = write(
        tmp_path / "team.toml",
        f'[[workers]]\nid = "ok"\ncommand = "x"\n[[workers]]\nid = "{worker_id}"\ncommand = "x"\n',
    )
    message = str(load_error(path))
    assert f"workers[1].id = {worker_id!r}" in message
    assert "letters, digits, '-' and '_'" in message


def test_the_longest_allowed_worker_id_has_64_characters(tmp_path: Path) -> None:
    worker_id = "w" + "-_9" * 21
    assert len(worker_id) == 64
    path = write(tmp_path / "team.toml", f'[[workers]]\nid = "{worker_id}"\ncommand = "x"\n')
    assert load_team(path).ids() == [worker_id]


def test_a_worker_id_with_a_trailing_newline_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "team.toml", '[[workers]]\nid = "w1\\n"\ncommand = "x"\n')
    assert "letters, digits" in str(load_error(path))


def test_a_repeated_worker_id_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "team.toml",
        '[[workers]]\nid = "w"\ncommand = "x"\n[[workers]]\nid = "w"\nagent = "codex"\n',
    )
    assert "worker id 'w' appears twice; ids must be unique" in str(load_error(path))


def test_a_command_worker_without_a_command_is_told_to_add_one(tmp_path: Path) -> None:
    path = write(tmp_path / "team.toml", '[[workers]]\nid = "w"\ncapabilities = ["python"]\n')
    message = str(load_error(path))
    assert "worker 'w' runs the command agent but has no command" in message
    assert 'add command = "your-tool {scope}"' in message


def test_a_command_worker_may_give_only_commands_and_another_agent_needs_none(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "team.toml",
        '[[workers]]\nid = "a"\ncommands = ["make lint"]\n'
        '[[workers]]\nid = "b"\nagent = "claude"\n',
    )
    assert load_team(path).ids() == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[workers]]\nid = "w"\ncommand = "x"\ntimeout_s = 0\n', "worker 'w': timeout_s"),
        ('[[workers]]\nid = "w"\ncommand = "x"\ntimeout_s = -5.0\n', "worker 'w': timeout_s"),
        ("max_attempts = 0\n", "max_attempts must be at least 1"),
        ("max_attempts = -1\n", "max_attempts must be at least 1"),
        ("objective_timeout_s = 0\n", "objective_timeout_s must be positive"),
        ("objective_timeout_s = -1.5\n", "objective_timeout_s must be positive"),
    ],
)
def test_a_non_positive_timeout_or_attempt_count_is_rejected(
    tmp_path: Path, text: str, says: str
) -> None:
    assert says in str(load_error(write(tmp_path / "team.toml", text)))


@pytest.mark.parametrize(
    "text",
    [
        '[[workers]]\nid = "w"\ncommand = "x"\ntimeout_s = nan\n',
        "objective_timeout_s = nan\n",
    ],
)
def test_a_nan_timeout_is_rejected(tmp_path: Path, text: str) -> None:
    assert "must be positive" in str(load_error(write(tmp_path / "team.toml", text)))


def test_the_ap_command_prints_one_line_and_exits_3_for_a_bad_team(tmp_path: Path) -> None:
    path = write(tmp_path / "team.toml", '[[workers]]\nid = "w"\ncommand = "x"\ntimeout_s = 0\n')
    state_dir = tmp_path / "state"
    argv = [sys.executable, "-m", "ap_actors.cli", "up", "--team", str(path)]
    proc = subprocess.run(
        [*argv, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr == f"ap: {path}: worker 'w': timeout_s must be positive\n"
    assert not state_dir.exists()


# --- the team's methods -------------------------------------------------------------


def test_templates_run_the_command_first_then_the_commands_in_order() -> None:
    worker = WorkerSpec(id="w", command="first {scope}", commands=["second", ["third", "x"]])
    assert worker.templates() == ["first {scope}", "second", ["third", "x"]]
    assert WorkerSpec(id="w", commands=["only"]).templates() == ["only"]
    assert WorkerSpec(id="w", command=["a", "b"]).templates() == [["a", "b"]]
    assert WorkerSpec(id="w", agent="codex").templates() == []


def test_templates_does_not_hand_out_the_workers_own_list() -> None:
    worker = WorkerSpec(id="w", commands=["a"])
    worker.templates().append("b")
    assert worker.commands == ["a"]


def test_timeout_of_is_the_workers_own_timeout_else_the_team_default() -> None:
    team = a_team(RUFF, CODEX, objective_timeout_s=120.0)
    assert team.timeout_of("codex-1") == 60.0
    assert team.timeout_of("ruff-1") == 120.0
    assert team.timeout_of("not-in-the-team") == 120.0


def test_worker_finds_a_worker_by_id() -> None:
    team = a_team(RUFF, CODEX)
    assert team.worker("codex-1") is CODEX
    assert team.worker("codex") is None


# --- the team in a mesh -------------------------------------------------------------


def test_team_actors_are_a_worker_and_a_log_monitor_per_worker_with_spec_and_team() -> None:
    team = a_team(RUFF, CODEX, max_attempts=5)
    actors = team_actors(team)

    assert list(actors) == [
        "worker.ruff-1",
        "log_monitor.ruff-1",
        "worker.codex-1",
        "log_monitor.codex-1",
    ]
    team_dict = msgspec.to_builtins(team)
    for spec in (RUFF, CODEX):
        worker, monitor = actors[f"worker.{spec.id}"], actors[f"log_monitor.{spec.id}"]
        assert worker.cls == "ap_actors.actors.worker:Worker"
        assert monitor.cls == "ap_actors.actors.log_monitor:LogMonitor"
        for actor in (worker, monitor):
            assert actor.enabled
            assert actor.options == {"worker": msgspec.to_builtins(spec), "team": team_dict}
            # What an actor reads back from its options is the spec and the team.
            assert msgspec.convert(actor.options["worker"], WorkerSpec) == spec
            assert team_option(actor.options) == team


def test_a_team_without_workers_adds_no_actors() -> None:
    assert team_actors(Team()) == {}


def test_a_remote_worker_adds_no_actors_to_the_mesh_but_stays_in_the_team(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "team.toml",
        '[[workers]]\nid = "here"\ncommand = "x"\n'
        '[[workers]]\nid = "there"\ncommand = "x"\nremote = true\n',
    )
    team = load_team(path)
    here, there = team.workers
    assert (here.remote, there.remote) == (False, True)
    assert team.ids() == ["here", "there"]  # the scheduler still assigns it objectives
    assert list(team_actors(team)) == ["worker.here", "log_monitor.here"]
    # `ap worker` on the other machine runs the same two actors, with the same options.
    remote = worker_actors(team, there)
    assert list(remote) == ["worker.there", "log_monitor.there"]
    assert remote["worker.there"].options == {
        "worker": msgspec.to_builtins(there),
        "team": msgspec.to_builtins(team),
    }
    effective = effective_config(load_config(None), team)
    assert "worker.here" in effective.actors and "worker.there" not in effective.actors


def test_effective_config_gives_the_pipeline_actors_the_team_and_adds_the_workers() -> None:
    team = a_team(RUFF, auto_approve=True)
    config = load_config(None)
    config = msgspec.structs.replace(
        config,
        actors={
            **config.actors,
            "scheduler": msgspec.structs.replace(config.actors["scheduler"], options={"x": 1}),
        },
    )

    effective = effective_config(config, team)

    assert list(effective.actors) == [*PIPELINE_ACTORS, "worker.ruff-1", "log_monitor.ruff-1"]
    team_dict = msgspec.to_builtins(team)
    for name in PIPELINE_ACTORS:
        assert effective.actors[name].cls == PIPELINE_ACTORS[name].cls
        assert team_option(effective.actors[name].options) == team
        assert effective.actors[name].options["team"] == team_dict
    # Options the file gave a pipeline actor are kept next to the team.
    assert effective.actors["scheduler"].options == {"x": 1, "team": team_dict}
    assert effective.actors["worker.ruff-1"] == team_actors(team)["worker.ruff-1"]
    # The rest of the config is untouched, and so is the config given.
    assert (effective.mesh, effective.eventlog, effective.supervisor) == (
        config.mesh,
        config.eventlog,
        config.supervisor,
    )
    assert "worker.ruff-1" not in config.actors
    assert "team" not in config.actors["planner"].options


def test_effective_config_leaves_actors_outside_the_pipeline_without_the_team() -> None:
    config = load_config(None)
    config = msgspec.structs.replace(
        config, actors={**config.actors, "mine": ActorConfig(cls="pkg.mod:Mine")}
    )
    effective = effective_config(config, a_team(RUFF))
    assert effective.actors["mine"] == ActorConfig(cls="pkg.mod:Mine")


def test_effective_config_adds_nothing_when_the_pipeline_is_disabled(tmp_path: Path) -> None:
    path = write(tmp_path / "ap.toml", '[pipeline]\nenabled = false\n[actors.a]\nclass = "p.m:A"\n')
    config = load_config(path)
    effective = effective_config(config, a_team(RUFF, CODEX))
    assert effective == config
    assert list(effective.actors) == ["a"]
    assert effective.actors["a"].options == {}


def test_effective_config_does_not_overwrite_a_users_own_worker_actor(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ap.toml",
        '[actors."worker.ruff-1"]\nclass = "mine.worker:Custom"\noptions = { level = 2 }\n',
    )
    effective = effective_config(load_config(path), a_team(RUFF))

    assert effective.actors["worker.ruff-1"].cls == "mine.worker:Custom"
    assert effective.actors["worker.ruff-1"].options == {"level": 2}
    # Only the actor the user wrote is kept; the worker's log monitor is still added.
    assert effective.actors["log_monitor.ruff-1"] == team_actors(a_team(RUFF))["log_monitor.ruff-1"]


def test_effective_config_with_an_empty_team_still_gives_the_pipeline_the_team() -> None:
    effective = effective_config(load_config(None), Team())
    assert list(effective.actors) == list(PIPELINE_ACTORS)
    assert all(team_option(a.options) == Team() for a in effective.actors.values())


def test_team_option_is_an_empty_team_when_an_actor_got_none() -> None:
    assert team_option({}) == Team()
    assert team_option({"team": None}) == Team()
    assert team_option({"team": {"max_attempts": 7}}) == Team(max_attempts=7)


def test_team_option_rejects_a_malformed_team() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_attempts"):
        team_option({"team": {"max_attempts": "many"}})


# --- the team of a running mesh -----------------------------------------------------


def test_write_team_then_read_team_gives_the_same_team(tmp_path: Path) -> None:
    team = load_team(write(tmp_path / "team.toml", FULL_TEAM_TOML))
    write_team(tmp_path, team)

    assert read_team(tmp_path) == team
    assert (tmp_path / TEAM_FILE).read_bytes().endswith(b"}\n")
    # Atomic write: no temporary file is left next to it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team.json", "team.toml"]


def test_write_team_replaces_the_previous_team(tmp_path: Path) -> None:
    write_team(tmp_path, a_team(RUFF, CODEX))
    write_team(tmp_path, a_team(CODEX))
    assert read_team(tmp_path) == a_team(CODEX)


def test_the_written_team_json_is_itself_a_loadable_team_file(tmp_path: Path) -> None:
    team = a_team(RUFF, CODEX, max_attempts=3)
    write_team(tmp_path, team)
    assert load_team(tmp_path / TEAM_FILE) == team


def test_read_team_of_a_state_dir_without_a_team_is_an_empty_team(tmp_path: Path) -> None:
    assert read_team(tmp_path) == Team()


@pytest.mark.parametrize(
    "content", [b'{"workers": [', b"\xff\xfe", b'{"workers": 3}', b'{"surprise": 1}']
)
def test_a_corrupt_team_json_in_the_state_dir_says_to_restart_the_mesh(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / TEAM_FILE).write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        read_team(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / TEAM_FILE} is unreadable (")
    assert str(caught.value).endswith("; restart the mesh")
    assert caught.value.exit_code == EXIT_CONFIG


def test_the_pipeline_team_path_of_a_config_loads_with_load_team(tmp_path: Path) -> None:
    write(tmp_path / "team.toml", FULL_TEAM_TOML)
    config = load_config(write(tmp_path / "ap.toml", '[pipeline]\nteam = "team.toml"\n'))
    assert config.pipeline == PipelineConfig(team=str(tmp_path / "team.toml"))
    assert resolve_team(config.pipeline.team).ids() == ["ruff-1", "codex_2"]
