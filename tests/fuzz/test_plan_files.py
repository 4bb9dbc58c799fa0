"""Plan files fuzzed through :func:`~ap_actors.planning.load_plan_file` (see `config_files`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given

from ap_actors.errors import ConfigError
from ap_actors.planning import load_plan_file
from ap_actors.team import Team, WorkerSpec
from tests.fuzz.config_files import OBJECTIVE_KEYS, check_loader, documents, files
from tests.fuzz.conftest import FUZZ, run_cases, tried

TEAM = Team(workers=[WorkerSpec(id="w1", command="true {scope}")])
CONTRACT_KEYS = ["name", "provider", "consumers", "description"]
plans = files(
    documents([], OBJECTIVE_KEYS, "objectives")
    | documents(["contracts"], CONTRACT_KEYS, "contracts")
)


def test_a_bad_plan_file_raises_a_one_line_config_error() -> None:
    @FUZZ
    @given(plans)
    def property(case: tuple[str, bytes]) -> None:
        tried("plan_files")
        check_loader(lambda p: load_plan_file(p, TEAM), *case)

    run_cases(property)


def test_a_missing_or_unreadable_plan_file_raises_a_config_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.toml", tmp_path, tmp_path / "../../etc/passwd.json"):
        with pytest.raises(ConfigError):
            load_plan_file(path, TEAM)
