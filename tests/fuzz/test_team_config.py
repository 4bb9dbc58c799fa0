"""Team files fuzzed through :func:`~ap_actors.team.load_team` (see `config_files`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given

from ap_actors.errors import ConfigError
from ap_actors.team import load_team
from tests.fuzz.config_files import WORKER_KEYS, check_loader, documents, files
from tests.fuzz.conftest import FUZZ, run_cases, tried

TOP_KEYS = ["auto_approve", "max_attempts", "objective_timeout_s"]
teams = files(documents(TOP_KEYS, WORKER_KEYS, "workers"))


def test_a_bad_team_file_raises_a_one_line_config_error() -> None:
    @FUZZ
    @given(teams)
    @example((".json", b'{"workers": [{"id": "w", "log_path": "a.log", "log_paths": null}]}'))
    def property(case: tuple[str, bytes]) -> None:
        tried("team_config")
        check_loader(load_team, *case)

    run_cases(property)


def test_a_missing_or_unreadable_team_file_raises_a_config_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.toml", tmp_path, tmp_path / "../../etc/passwd.json"):
        with pytest.raises(ConfigError):
            load_team(path)
