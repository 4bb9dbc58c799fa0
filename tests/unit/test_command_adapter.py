"""The adapter interface and the ``command`` agent: command templates, scope paths, the
prompt, and the plain-text line parser (fed real pytest, ruff and Python output)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ap_actors.agents import (
    Activity,
    AgentTask,
    CommandAdapter,
    CommandSpec,
    get_adapter,
    render_prompt,
    scope_paths,
)
from ap_actors.agents.base import MAX_DESCRIPTION
from ap_actors.agents.command import CommandLineParser, command_line, exit_line, path_in
from ap_actors.errors import AgentError, ScopeError
from ap_actors.events import Contract, Objective


def _task(workdir: Path | str = "/repo", **objective: object) -> AgentTask:
    fields: dict[str, object] = {"id": "obj-1", "title": "Add token auth"}
    fields.update(objective)
    return AgentTask(
        session_id="s-42",
        objective=Objective(**fields),  # type: ignore[arg-type]
        workdir=str(workdir),
        request="Add JWT auth to the API",
    )


def _parse(*lines: str) -> list[Activity]:
    parser = CommandLineParser()
    out = [a for line in lines for a in parser.feed(line)]
    return out + parser.finish()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with tracked, untracked and ignored files."""
    root = tmp_path / "repo"
    for name in [
        "src/auth/__init__.py",
        "src/auth/tokens.py",
        "src/auth/secrets.py",
        "src/api.py",
        "tests/test_auth.py",
        "tests/test_auth_tokens.py",
        "tests/test_api.py",
        "README.md",
        "docs/guide.md",
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    (root / "tests" / "test_auth_new.py").write_text("untracked\n")
    (root / "tests" / "test_auth.log").write_text("ignored\n")
    (root / "build").mkdir()
    (root / "build" / "test_auth_built.py").write_text("ignored\n")
    return root


# --- adapters -----------------------------------------------------------------------


def test_get_adapter_returns_the_command_adapter_by_name() -> None:
    adapter = get_adapter("command")
    assert isinstance(adapter, CommandAdapter)
    assert isinstance(adapter.parser(), CommandLineParser)


def test_an_unknown_agent_name_is_an_agent_error_listing_the_known_ones() -> None:
    with pytest.raises(AgentError) as e:
        get_adapter("x")
    assert (
        str(e.value)
        == "unknown agent 'x'; known: aider, claude, codex, command, cursor, droid, gemini"
    )


def test_the_objective_command_replaces_the_worker_command() -> None:
    spec = CommandSpec.from_config(command="ruff check {scope}")
    task = _task(command="make fix OBJ={objective}")
    assert CommandAdapter().commands(task, spec) == [["make", "fix", "OBJ=obj-1"]]


def test_the_command_adapter_without_any_command_is_an_agent_error() -> None:
    with pytest.raises(AgentError, match="no command to run"):
        CommandAdapter().commands(_task(), None)


# --- command specs ------------------------------------------------------------------


def test_a_string_command_is_split_with_shell_quoting() -> None:
    spec = CommandSpec.from_config(command="tool --msg 'two words' \"{title}\"")
    assert spec.commands == [["tool", "--msg", "two words", "{title}"]]
    assert spec.argvs(_task()) == [["tool", "--msg", "two words", "Add token auth"]]


def test_a_list_command_is_taken_token_by_token() -> None:
    spec = CommandSpec.from_config(command=["tool", "a b", "--session={session}"])
    assert spec.argvs(_task()) == [["tool", "a b", "--session=s-42"]]


def test_command_then_commands_run_in_order() -> None:
    spec = CommandSpec.from_config(
        command="first {objective}", commands=["second", ["third", "{workdir}"]]
    )
    assert spec.argvs(_task()) == [["first", "obj-1"], ["second"], ["third", "/repo"]]


@pytest.mark.parametrize(
    ("command", "commands", "message"),
    [
        (None, (), "no command configured"),
        ("", (), "a command is empty"),
        ("   ", (), "a command is empty"),
        ([], (), "a command is empty"),
        ("ok", ["tool 'unclosed"], "cannot be split: No closing quotation"),
        ("tool {scpoe}", (), r"unknown placeholder \{scpoe\}; known: \{prompt\}, \{objective\}"),
        ("tool {}", (), r"unknown placeholder \{\}"),
        ("awk '{print $1}'", (), r"unknown placeholder \{print \$1\}"),
        ("tool {scope", (), "unmatched '{'; write {{ for a literal brace"),
        ("tool scope}", (), "unmatched '}'; write }} for a literal brace"),
        (["tool", 3], (), "must be a string or a list of strings"),
    ],
)
def test_a_bad_command_is_a_one_line_agent_error(
    command: object, commands: list[object], message: str
) -> None:
    with pytest.raises(AgentError, match=message) as e:
        CommandSpec.from_config(command=command, commands=commands)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


def test_doubled_braces_are_literal_braces() -> None:
    spec = CommandSpec.from_config(command="awk '{{print $1}}' {{scope}}")
    assert spec.argvs(_task()) == [["awk", "{print $1}", "{scope}"]]


def test_substituted_values_are_not_expanded_again() -> None:
    spec = CommandSpec.from_config(command="tool {title}")
    task = _task(title="uses {scope} and {0} and {{ literally")
    assert spec.argvs(task) == [["tool", "uses {scope} and {0} and {{ literally"]]


def test_the_prompt_placeholder_is_one_argument_holding_the_rendered_prompt() -> None:
    spec = CommandSpec.from_config(command="agent exec {prompt}")
    task = _task()
    assert spec.argvs(task) == [["agent", "exec", render_prompt(task)]]


def test_a_scope_token_expands_to_one_argument_per_path(repo: Path) -> None:
    spec = CommandSpec.from_config(command="ruff check {scope} --fix")
    task = _task(repo, scope_touch=["src/auth/", "/src/api.py"])
    assert spec.argvs(task) == [["ruff", "check", "src/auth", "src/api.py", "--fix"]]


def test_a_scope_inside_a_longer_token_joins_the_paths_with_spaces(repo: Path) -> None:
    spec = CommandSpec.from_config(command="tool --files={scope}")
    task = _task(repo, scope_touch=["src/auth/", "src/api.py"])
    assert spec.argvs(task) == [["tool", "--files=src/auth src/api.py"]]


def test_an_empty_scope_expands_to_nothing(repo: Path) -> None:
    spec = CommandSpec.from_config(command="ruff check {scope}", commands=["echo [{scope}]"])
    task = _task(repo, scope_touch=["does/not/exist.py"])
    assert spec.argvs(task) == [["ruff", "check"], ["echo", "[]"]]


@given(st.text())
def test_any_text_with_doubled_braces_comes_back_unchanged(text: str) -> None:
    token = text.replace("{", "{{").replace("}", "}}")
    assert CommandSpec([["tool", token]]).argvs(_task()) == [["tool", text]]


@given(st.lists(st.text(alphabet="{}ab ce'\"\\$", max_size=12), min_size=1, max_size=3))
def test_any_template_text_is_accepted_or_refused_with_an_agent_error(
    templates: list[str],
) -> None:
    try:
        spec = CommandSpec.from_config(commands=templates)
    except AgentError:
        return
    assert len(spec.argvs(_task())) == len(templates)


# --- scope paths --------------------------------------------------------------------


def test_glob_patterns_expand_to_tracked_and_untracked_files_but_not_ignored_ones(
    repo: Path,
) -> None:
    assert scope_paths(repo, ["tests/test_auth*.py"]) == [
        "tests/test_auth.py",
        "tests/test_auth_new.py",
        "tests/test_auth_tokens.py",
    ]
    assert scope_paths(repo, ["**/*.md"]) == ["README.md", "docs/guide.md"]
    assert scope_paths(repo, ["src/auth/*"]) == [
        "src/auth/__init__.py",
        "src/auth/secrets.py",
        "src/auth/tokens.py",
    ]


def test_forbidden_files_are_subtracted_from_globs_and_literals(repo: Path) -> None:
    forbid = ["src/auth/secrets.py", "README.md"]
    assert scope_paths(repo, ["src/auth/*.py", "README.md", "src/api.py"], forbid) == [
        "src/auth/__init__.py",
        "src/auth/tokens.py",
        "src/api.py",
    ]
    assert scope_paths(repo, ["src/auth/"], ["src/auth/"]) == []


def test_literal_paths_are_kept_in_pattern_order_once_and_only_if_they_exist(
    repo: Path,
) -> None:
    touch = ["/src/api.py", "src/auth/", "missing.py", "src/api.py"]
    assert scope_paths(repo, touch) == ["src/api.py", "src/auth"]


@pytest.mark.parametrize(
    ("touch", "forbid"), [(["../outside"], []), (["!src/api.py"], []), (["src/"], ["#x"])]
)
def test_an_invalid_scope_pattern_is_a_scope_error_as_in_the_scope_validator(
    repo: Path, touch: list[str], forbid: list[str]
) -> None:
    with pytest.raises(ScopeError, match=r"^scope pattern '(\.\./outside|!src/api\.py|#x)' "):
        scope_paths(repo, touch, forbid)


def test_a_glob_is_anchored_at_the_root_unless_it_starts_with_a_globstar(repo: Path) -> None:
    (repo / "setup.py").write_text("untracked\n")
    spec = CommandSpec.from_config(command="ruff check {scope}")
    assert spec.argvs(_task(repo, scope_touch=["*.py"])) == [["ruff", "check", "setup.py"]]
    assert spec.argvs(_task(repo, scope_touch=["**/*.py"])) == [
        [
            "ruff",
            "check",
            "setup.py",
            "src/api.py",
            "src/auth/__init__.py",
            "src/auth/secrets.py",
            "src/auth/tokens.py",
            "tests/test_api.py",
            "tests/test_auth.py",
            "tests/test_auth_new.py",
            "tests/test_auth_tokens.py",
        ]
    ]


def test_an_escaped_name_names_the_file_it_matches(repo: Path) -> None:
    (repo / "#notes.md").write_text("untracked\n")
    assert scope_paths(repo, ["\\#notes.md"]) == ["#notes.md"]


def test_globs_also_expand_in_a_directory_that_is_not_a_git_worktree(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "b.py").write_text("")
    (tmp_path / ".git").mkdir()  # not a repository: git fails; its files are skipped
    (tmp_path / ".git" / "c.py").write_text("")
    assert scope_paths(tmp_path, ["**/*.py"]) == ["a.py", "pkg/b.py"]


# --- the prompt ---------------------------------------------------------------------


def test_the_prompt_names_the_request_objective_scopes_contracts_and_rules() -> None:
    task = AgentTask(
        session_id="s-42",
        objective=Objective(
            id="obj-2",
            title="Token verification",
            description="Implement verify_token.",
            scope_touch=["src/auth/", "tests/test_auth*.py"],
            scope_forbid=["src/auth/secrets.py"],
        ),
        workdir="/repo",
        request="Add JWT auth to the API",
        contracts=[
            Contract(name="verify_token(str) -> Claims", provider="obj-2", consumers=["obj-3"]),
            Contract(name="Settings.jwt_key", provider="obj-1", consumers=["obj-2"]),
            Contract(name="unrelated()", provider="obj-5", consumers=["obj-6"]),
        ],
        coordination_points=["src/config.py"],
        attempt=2,
    )
    prompt = render_prompt(task)
    assert prompt == render_prompt(task)
    lines = prompt.splitlines()
    for expected in [
        "Add JWT auth to the API",
        "Objective obj-2: Token verification",
        "Implement verify_token.",
        "src/auth/",
        "tests/test_auth*.py",
        "src/auth/secrets.py",
        "- verify_token(str) -> Claims (used by obj-3)",
        "- Settings.jwt_key (provided by obj-1)",
        "- src/config.py",
        "- Touch nothing outside SCOPE_TOUCH.",
        "- Never touch SCOPE_FORBID.",
        "- Do not commit; the orchestrator commits.",
    ]:
        assert expected in lines
    assert "attempt 2" in prompt
    assert "unrelated" not in prompt
    touch = lines.index(next(line for line in lines if line.startswith("SCOPE_TOUCH")))
    forbid = lines.index(next(line for line in lines if line.startswith("SCOPE_FORBID")))
    assert lines[touch + 1 : touch + 3] == ["src/auth/", "tests/test_auth*.py"]
    assert lines[forbid + 1] == "src/auth/secrets.py"


def test_an_empty_forbid_scope_is_written_as_none() -> None:
    lines = render_prompt(_task(scope_touch=["src/"])).splitlines()
    forbid = lines.index(next(line for line in lines if line.startswith("SCOPE_FORBID")))
    assert lines[forbid + 1] == "(none)"


# --- the line parser: bracketed lines -----------------------------------------------


def test_the_seed_tool_line_is_a_tool_use_with_its_file() -> None:
    assert _parse("[2025-10-08T10:36:45] TOOL: search_replace - Editing src/auth.py") == [
        Activity(
            activity_type="tool_use",
            tool_name="search_replace",
            description="Editing src/auth.py",
            file_path="src/auth.py",
        )
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[2025-10-08T10:36:46] ERROR: cannot write src/db.py: read-only",
            Activity(
                activity_type="error",
                description="cannot write src/db.py: read-only",
                file_path="src/db.py",
            ),
        ),
        (
            "[2025-10-08T10:36:47] THINKING: the token must expire",
            Activity(activity_type="reasoning", description="the token must expire"),
        ),
        (
            "[2025-10-08 10:36:47] reasoning: lower-case kinds are read too",
            Activity(activity_type="reasoning", description="lower-case kinds are read too"),
        ),
        (
            "[2025-10-08T10:36:48] MESSAGE: done with auth.py",
            Activity(activity_type="message", description="done with auth.py"),
        ),
        (
            "[2025-10-08T10:36:49] EDIT: src/auth/tokens.py",
            Activity(
                activity_type="file_change",
                description="src/auth/tokens.py",
                file_path="src/auth/tokens.py",
            ),
        ),
        (
            "[1728383809] FILE: created `docs/auth.md`",
            Activity(
                activity_type="file_change",
                description="created `docs/auth.md`",
                file_path="docs/auth.md",
            ),
        ),
        (
            "[2025-10-08T10:36:50] TEST: running tests/test_auth.py",
            Activity(
                activity_type="testing",
                description="running tests/test_auth.py",
                file_path="tests/test_auth.py",
            ),
        ),
        (
            "[2025-10-08T10:36:51Z] COMMAND: ruff check src/auth",
            Activity(activity_type="command", description="ruff check src/auth"),
        ),
        (
            "[2025-10-08T10:36:52Z] EXIT: 1",
            Activity(activity_type="command", description="exit code 1", exit_code=1),
        ),
        (
            "[2025-10-08T10:36:52Z] EXIT: -15",
            Activity(activity_type="command", description="exit code -15", exit_code=-15),
        ),
        (
            "[2025-10-08T10:36:53Z] USAGE: input_tokens=1200 output_tokens=340 cost_usd=0.0123",
            Activity(
                activity_type="usage",
                description="input_tokens=1200 output_tokens=340 cost_usd=0.0123",
                input_tokens=1200,
                output_tokens=340,
                cost_usd=0.0123,
            ),
        ),
        (
            "[2025-10-08T10:36:54] STATUS: waiting for review",
            Activity(activity_type="message", description="STATUS: waiting for review"),
        ),
        (
            "[2025-10-08T10:36:55] TOOL: read_file",
            Activity(activity_type="tool_use", tool_name="read_file", description="read_file"),
        ),
    ],
)
def test_each_bracketed_kind_becomes_its_activity(line: str, expected: Activity) -> None:
    assert _parse(line) == [expected]


def test_the_workers_command_and_exit_lines_parse_back_and_stay_valid_bash() -> None:
    argv = ["agent", "--prompt", "line one\nit's line two\ttabbed", "{scope}", "a b"]
    line = command_line(argv, ts=1_759_919_805.0)
    assert line.startswith("[2025-10-08T10:36:45Z] COMMAND: agent --prompt $'line one\\n")
    assert "\n" not in line
    [activity] = _parse(line)
    assert activity.activity_type == "command"
    shell = line.split("COMMAND: ", 1)[1]
    done = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {shell}"], capture_output=True, check=True
    )
    assert done.stdout.decode().split("\0")[:-1] == argv
    assert _parse(exit_line(3, ts=0)) == [
        Activity(activity_type="command", description="exit code 3", exit_code=3)
    ]


# --- the line parser: tool output ---------------------------------------------------


def test_a_python_traceback_is_one_error_with_the_last_file_of_the_stack(
    tmp_path: Path,
) -> None:
    script = tmp_path / "boom.py"
    script.write_text("def f():\n    g()\n\ndef g():\n    return 1 / 0\n\nf()\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    lines = run.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and len(lines) > 4
    assert _parse("before", *lines, "after") == [
        Activity(activity_type="message", description="before"),
        Activity(
            activity_type="error",
            description="ZeroDivisionError: division by zero",
            file_path=str(script),
        ),
        Activity(activity_type="message", description="after"),
    ]


def test_chained_and_unterminated_tracebacks_each_give_one_error() -> None:
    chained = [
        "Traceback (most recent call last):",
        '  File "app/main.py", line 3, in <module>',
        "    load()",
        "KeyError: 'x'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "app/main.py", line 5, in <module>',
        '  File "<frozen runpy>", line 88, in _run_code',
        "ValueError: bad",
        "Traceback (most recent call last):",
        '  File "app/cut.py", line 9, in run',
    ]
    assert _parse(*chained) == [
        Activity(activity_type="error", description="KeyError: 'x'", file_path="app/main.py"),
        Activity(
            activity_type="message",
            description="During handling of the above exception, another exception occurred:",
        ),
        Activity(activity_type="error", description="ValueError: bad", file_path="app/main.py"),
        Activity(
            activity_type="error",
            description='File "app/cut.py", line 9, in run',
            file_path="app/cut.py",
        ),
    ]


def test_real_pytest_output_gives_testing_activities_with_their_files(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_demo.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "def test_err(missing_fixture): pass\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTEST_ADDOPTS": "", "PYTHONWARNINGS": "ignore"},
    )
    testing = {
        (a.description.split("  ")[0], a.file_path)
        for a in _parse(*run.stdout.splitlines())
        if a.activity_type == "testing"
    }
    for expected in [
        ("tests/test_demo.py::test_ok PASSED", "tests/test_demo.py"),
        ("tests/test_demo.py::test_bad FAILED", "tests/test_demo.py"),
        ("FAILED tests/test_demo.py::test_bad - assert 1 == 2", "tests/test_demo.py"),
        ("ERROR tests/test_demo.py::test_err", "tests/test_demo.py"),
    ]:
        assert expected in testing
    summary = [d for d, _ in testing if d.startswith("=") and "1 failed, 1 passed, 1 error" in d]
    assert len(summary) == 1
    assert any("test session starts" in d for d, _ in testing)


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("===== 3 passed, 1 failed in 0.12s =====", None),
        ("3 passed, 1 failed in 0.12s", None),
        ("no tests ran in 0.01s", None),
        ("============================ no tests ran in 0.01s =============================", None),
        ("FAILED tests/x.py::test_y[a-b] - AssertionError: boom", "tests/x.py"),
        ("ERROR tests/x.py - ImportError: no module named y", "tests/x.py"),
        ("tests/a.py::test_b PASSED                                  [ 50%]", "tests/a.py"),
        ("tests/a.py ..F.s                                           [ 80%]", "tests/a.py"),
        ("======================== test session starts =========================", None),
        ("collected 4 items", None),
    ],
)
def test_pytest_lines_are_testing_activities(line: str, path: str | None) -> None:
    assert _parse(line) == [Activity(activity_type="testing", description=line, file_path=path)]


def test_real_ruff_output_gives_one_message_per_finding_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os\nimport sys\n")
    ruff = [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F401"]
    full = subprocess.run([*ruff, "bad.py"], cwd=tmp_path, capture_output=True, text=True)
    concise = subprocess.run(
        [*ruff, "--output-format", "concise", "bad.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    for run in (full, concise):
        activities = _parse(*run.stdout.splitlines())
        findings = [a for a in activities if a.file_path == "bad.py"]
        assert [a.activity_type for a in findings] == ["message", "message"]
        assert "`os` imported but unused" in findings[0].description
        assert "`sys` imported but unused" in findings[1].description
        assert next(a.description for a in activities if not a.file_path) == "Found 2 errors."
        assert {a.activity_type for a in activities} == {"message"}


@pytest.mark.parametrize(
    "line",
    [
        "Found 3 errors (3 fixed, 0 remaining).",
        "2 files reformatted, 5 files left unchanged",
        "All checks passed!",
    ],
)
def test_ruff_summaries_are_messages(line: str) -> None:
    assert _parse(line) == [Activity(activity_type="message", description=line)]


def test_a_location_prefixed_line_is_a_message_with_its_file() -> None:
    assert _parse("src/a.py:12:5: E501 Line too long (120 > 100)") == [
        Activity(
            activity_type="message",
            description="src/a.py:12:5: E501 Line too long (120 > 100)",
            file_path="src/a.py",
        )
    ]


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("error: pathspec 'nope' did not match any file(s) known to git", None),
        ("ERROR: file or directory not found: tests/nope.py", "tests/nope.py"),
        ("error[E0308]: mismatched types", None),
        ("fatal: not a git repository (or any of the parent directories): .git", None),
    ],
)
def test_a_bare_error_line_is_an_error(line: str, path: str | None) -> None:
    assert _parse(line) == [Activity(activity_type="error", description=line, file_path=path)]


def test_blank_lines_give_nothing_and_other_lines_are_trimmed_messages() -> None:
    long = "x" * (MAX_DESCRIPTION + 500)
    activities = _parse("", "   ", "\t", "  plain words  ", long)
    assert activities[0] == Activity(activity_type="message", description="plain words")
    assert len(activities) == 2
    assert len(activities[1].description) == MAX_DESCRIPTION


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("Editing src/auth.py", "src/auth.py"),
        ("see `src/auth.py:12:3`, then", "src/auth.py"),
        ("Reading README.md and docs/", "README.md"),
        ("listing src/auth/ now", "src/auth/"),
        ("fetch https://example.com/a.py", None),
        ("python 3.11 and v1.2.3 only", None),
        ("nothing here", None),
        ("tests/x.py::test_y failed", "tests/x.py"),
    ],
)
def test_path_in_finds_the_first_path_looking_word(text: str, path: str | None) -> None:
    assert path_in(text) == path


# --- the line parser: properties ----------------------------------------------------

_REAL_LINES = st.sampled_from(
    [
        "Traceback (most recent call last):",
        '  File "src/a.py", line 3, in f',
        "    return 1 / 0",
        "ZeroDivisionError: division by zero",
        "F401 [*] `os` imported but unused",
        " --> src/a.py:1:8",
        "  |",
        "1 | import os",
        "help: Remove unused import: `os`",
        "E501 Line too long",
        "[2025-10-08T10:36:45] TOOL: search_replace - Editing src/auth.py",
        "[2025-10-08T10:36:45] EXIT: x",
        "[2025-10-08T10:36:45] USAGE: input_tokens=nan cost_usd=inf output_tokens=-3",
        "===== 3 passed in 0.12s =====",
        "FAILED tests/x.py::test_y - boom",
        "error: boom",
        "",
        "   ",
    ]
)
_LINES = st.lists(
    st.one_of(
        _REAL_LINES,
        st.text(st.characters(exclude_characters="\n")),
        _REAL_LINES.map(lambda line: line + " tail"),
    ),
    max_size=40,
)


def _held(parser: CommandLineParser) -> int:
    """How many activities the parser holds back in open blocks (what finish would give)."""
    return len(copy.deepcopy(parser).finish())


@settings(max_examples=400)
@given(_LINES)
def test_every_non_blank_line_is_accounted_for_and_no_activity_comes_from_nowhere(
    lines: list[str],
) -> None:
    # ``made`` is how many activities a line added, counting those held back in open
    # blocks: 1 when it starts its own activity, 0 when it joins an open block (or is
    # blank). An activity lost or invented would make it negative or above 1.
    parser = CommandLineParser()
    total = 0
    for line in lines:
        before = _held(parser)
        got = parser.feed(line)
        made = len(got) + _held(parser) - before
        if not line.strip():
            assert made == 0
        else:
            assert made == 1 or (made == 0 and before >= 1)
        assert all(0 < len(a.description) <= MAX_DESCRIPTION for a in got)
        total += len(got)
    total += len(parser.finish())
    assert parser.finish() == []
    assert total <= sum(1 for line in lines if line.strip())


@given(st.lists(st.text(st.characters(exclude_characters="\n")), max_size=30))
def test_arbitrary_text_never_raises_and_gives_one_activity_per_plain_line(
    lines: list[str],
) -> None:
    plain = [
        line
        for line in lines
        if line.strip()
        and not line.startswith(("Traceback", "unformatted"))
        and not line[:1].isupper()
        and "-->" not in line
    ]
    assert len(_parse(*plain)) == len(plain)
