"""The redactor: which variables are secret, and what becomes of their values in text
and in events."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ap_actors import reports
from ap_actors.agents.base import MAX_DESCRIPTION, clip
from ap_actors.events import (
    Objective,
    ObjectiveFailed,
    PlanProposed,
    WorkerActivity,
    WorkerMetrics,
    WorkerStarted,
)
from ap_actors.projections import SessionView
from ap_actors.redaction import KNOWN_SECRETS, MIN_LENGTH, Redactor, is_secret_name

OPENAI = "sk-test-0123456789abcdefABCDEF"
ANTHROPIC = "sk-ant-api03-ZYXWVUTSRQ987654"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor({"OPENAI_API_KEY": OPENAI, "ANTHROPIC_API_KEY": ANTHROPIC})


@pytest.mark.parametrize(
    "name",
    [
        *sorted(KNOWN_SECRETS),
        "MY_SERVICE_API_KEY",
        "SERVICE_APIKEY",
        "CI_JOB_TOKEN",
        "TOKEN",
        "CLIENT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "DJANGO_SECRET_KEY",
        "SIGNING_PRIVATE_KEY",
        "PGPASSWORD",
        "DB_PASSWORD_FILE",
        "SMTP_PASSWD",
        "my_api_key",
    ],
)
def test_known_and_secret_looking_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
        "TOKENIZERS_PARALLELISM",
        "KEYBOARD_LAYOUT",
        "AWS_ACCESS_KEY_ID",
        "GIT_ASKPASS",
        "MONKEY",
    ],
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_from_env_takes_the_secret_variables_and_a_later_mapping_wins() -> None:
    r = Redactor.from_env(
        {"OPENAI_API_KEY": "old-value-12345", "HOME": "/home/someone-long", "X_TOKEN": "t" * 9},
        {"OPENAI_API_KEY": OPENAI},
    )
    assert r.names == {OPENAI: "OPENAI_API_KEY", "t" * 9: "X_TOKEN"}


def test_an_exact_occurrence_becomes_the_name(redactor: Redactor) -> None:
    assert redactor.text(OPENAI) == "[redacted:OPENAI_API_KEY]"
    assert (
        redactor.text(f"OPENAI_API_KEY={OPENAI}\ncurl -H 'x-api-key: {ANTHROPIC}'")
        == "OPENAI_API_KEY=[redacted:OPENAI_API_KEY]\n"
        "curl -H 'x-api-key: [redacted:ANTHROPIC_API_KEY]'"
    )


def test_every_occurrence_of_several_secrets_is_replaced(redactor: Redactor) -> None:
    text = f"{OPENAI}{OPENAI} and {ANTHROPIC}, again {OPENAI}."
    assert redactor.text(text) == (
        "[redacted:OPENAI_API_KEY][redacted:OPENAI_API_KEY] and [redacted:ANTHROPIC_API_KEY],"
        " again [redacted:OPENAI_API_KEY]."
    )


def test_overlapping_secrets_are_replaced_as_one_span_naming_both() -> None:
    r = Redactor({"A_TOKEN": "abcdefgh1234", "B_TOKEN": "1234wxyz9876"})
    assert r.text("<abcdefgh1234wxyz9876>") == "<[redacted:A_TOKEN,B_TOKEN]>"
    assert r.text("abcdefgh1234 1234wxyz9876") == "[redacted:A_TOKEN] [redacted:B_TOKEN]"


def test_a_secret_inside_a_longer_one_is_covered_by_the_longer_one() -> None:
    r = Redactor({"SHORT_TOKEN": "inner-secret", "LONG_TOKEN": "xx-inner-secret-yy"})
    assert r.text("a xx-inner-secret-yy b") == "a [redacted:LONG_TOKEN] b"
    assert r.text("a inner-secret b") == "a [redacted:SHORT_TOKEN] b"


def test_a_self_overlapping_repetition_leaves_nothing_of_the_secret() -> None:
    r = Redactor({"A_TOKEN": "abababab"})
    assert r.text("xabababababy") == "x[redacted:A_TOKEN]y"


def test_short_values_are_not_redacted() -> None:
    r = Redactor({"A_TOKEN": "1", "B_TOKEN": "true", "C_TOKEN": "x" * (MIN_LENGTH - 1)})
    assert not r
    text = "1 true " + "x" * (MIN_LENGTH - 1)
    assert r.text(text) is text


def test_values_of_non_secret_names_are_untouched() -> None:
    r = Redactor.from_env({"HOME": "/home/someone", "OPENAI_BASE_URL": "http://127.0.0.1:9999"})
    assert not r
    assert r.text("cd /home/someone; curl http://127.0.0.1:9999") == (
        "cd /home/someone; curl http://127.0.0.1:9999"
    )


def test_text_without_a_secret_is_returned_as_is(redactor: Redactor) -> None:
    text = "nothing to see " * 10
    assert redactor.text(text) is text


def test_a_description_cut_in_the_middle_of_a_secret_loses_its_beginning(
    redactor: Redactor,
) -> None:
    text = clip("x" * (MAX_DESCRIPTION - 11) + OPENAI)
    assert text.endswith(OPENAI[:10] + "…")
    assert redactor.text(text) == "x" * (MAX_DESCRIPTION - 11) + "[redacted:OPENAI_API_KEY]…"
    streamed = "x" * 20 + OPENAI[:12] + " …"
    assert redactor.text(streamed) == "x" * 20 + "[redacted:OPENAI_API_KEY] …"
    plain = "ends with sk …"  # too little of a secret to mean anything
    assert redactor.text(plain) is plain


def test_an_event_has_every_text_field_redacted_and_keeps_its_ids(redactor: Redactor) -> None:
    activity = WorkerActivity(
        id=f"id-{OPENAI}",
        session_id=f"s-{OPENAI}",
        worker_id="w1",
        objective_id=f"o-{OPENAI}",
        activity_type="tool_use",
        tool_name="shell",
        description=f"echo {OPENAI}",
        file_path=f"keys/{ANTHROPIC}.txt",
        exit_code=0,
    )
    got = redactor.event(activity)
    assert got.description == "echo [redacted:OPENAI_API_KEY]"
    assert got.file_path == "keys/[redacted:ANTHROPIC_API_KEY].txt"
    assert (got.id, got.session_id, got.objective_id) == (
        activity.id,
        activity.session_id,
        activity.objective_id,
    )

    failed = ObjectiveFailed(
        objective_id="a", worker_id="w1", files_modified=[OPENAI], reason=f"exit 1: {OPENAI}"
    )
    got_failed = redactor.event(failed)
    assert got_failed.files_modified == ["[redacted:OPENAI_API_KEY]"]
    assert got_failed.reason == "exit 1: [redacted:OPENAI_API_KEY]"

    started = WorkerStarted(worker_id="w1", pid=1, argv=["agent", f"--key={ANTHROPIC}"])
    assert redactor.event(started).argv == ["agent", "--key=[redacted:ANTHROPIC_API_KEY]"]
    metrics = WorkerMetrics(worker_id="w1", tools_used={OPENAI: 1})
    assert redactor.event(metrics).tools_used == {"[redacted:OPENAI_API_KEY]": 1}
    plan = PlanProposed(
        plan_id="p", objectives=[Objective(id="a", title="t", description=f"use {OPENAI}")]
    )
    assert redactor.event(plan).objectives[0].description == "use [redacted:OPENAI_API_KEY]"


def test_an_event_without_a_secret_is_returned_as_is(redactor: Redactor) -> None:
    event = ObjectiveFailed(objective_id="a", worker_id="w1", files_modified=["x"], reason="r")
    assert redactor.event(event) is event
    assert Redactor({}).event(event) is event


@given(
    st.lists(st.sampled_from(["a", "b", " ", "=", OPENAI, ANTHROPIC, OPENAI[:9]]), max_size=12),
)
def test_no_secret_survives_any_text(parts: list[str]) -> None:
    r = Redactor({"OPENAI_API_KEY": OPENAI, "ANTHROPIC_API_KEY": ANTHROPIC})
    out = r.text("".join(parts))
    assert OPENAI not in out and ANTHROPIC not in out
    assert out.count("[redacted:") == sum(p in (OPENAI, ANTHROPIC) for p in parts)


def test_a_report_is_written_without_the_secrets_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What another actor than the workers could have let into the log (a planner
    # agent's error output), or a log written before redaction existed.
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    reports._environment_redactor.cache_clear()
    try:
        view = SessionView(
            session_id="s1",
            request="Fix it",
            status="failed",
            reason=f"planning failed: 401 for key {OPENAI}_x",
        )
        text = reports.write_report(tmp_path, view, "accomplishment").read_text()
    finally:
        reports._environment_redactor.cache_clear()
    assert OPENAI not in text
    assert "redacted:OPENAI_API_KEY" in text
