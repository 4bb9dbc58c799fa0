"""The PLANNING phase: the heuristic planner on real code, plan files, the agent planner."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import sys
import time
from pathlib import Path

import hypothesis.strategies as st
import msgspec
import psutil
import pytest
from hypothesis import given, settings

from ap_actors.analysis import RepoAnalysis, analyse, work_set
from ap_actors.errors import EXIT_CONFIG
from ap_actors.events import Contract, Objective
from ap_actors.planning import (
    Plan,
    PlanError,
    PlanSource,
    agent_plan,
    check_plan,
    heuristic_plan,
    load_plan_file,
    parse_agent_plan,
    plan_prompt,
)
from ap_actors.scope import check_pattern, find_conflicts, in_scope, matches
from ap_actors.team import Team, WorkerSpec
from tests.unit.test_analysis import PYTHON_PROJECT, commit_repo

SITE_PACKAGES = Path(msgspec.__file__).resolve().parents[1]


def team_of(n: int, capabilities: tuple[str, ...] = ("python",)) -> Team:
    return Team(
        workers=[
            WorkerSpec(id=f"w{i}", agent="claude", capabilities=list(capabilities))
            for i in range(1, n + 1)
        ]
    )


def vendored(tmp_path: Path, package: str) -> Path:
    """A git repository holding a copy of a real installed package (and a pyproject)."""
    root = tmp_path / package
    shutil.copytree(
        SITE_PACKAGES / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
    )
    return commit_repo(root, {"pyproject.toml": f'[project]\nname = "{package}"\n'})


def assert_sound(plan: Plan, analysis: RepoAnalysis, request: str, team: Team) -> None:
    """The plan checks, no wave overlaps, and every work file has exactly one owner."""
    check_plan(plan, team)
    assert find_conflicts(plan.objectives) == []
    work = work_set(analysis, request)
    for path in work.files:
        owners = [o.id for o in plan.objectives if in_scope(path, o.scope_touch, o.scope_forbid)]
        assert len(owners) == 1, (path, owners)
    last = max(o.wave for o in plan.objectives)
    for path in analysis.hotspots:
        owners = [o for o in plan.objectives if in_scope(path, o.scope_touch, o.scope_forbid)]
        assert all(o.wave == last and o.title.startswith("Integration") for o in owners)
        assert (path in work.hotspots) == bool(owners), path


def sound_plan(repo: Path, request: str, team: Team) -> tuple[RepoAnalysis, Plan]:
    """Analyse ``repo``, make the heuristic plan and assert that it is sound."""
    analysis = analyse(repo, request)
    plan = heuristic_plan(analysis, request, team)
    assert_sound(plan, analysis, request, team)
    return analysis, plan


# --- the heuristic planner ------------------------------------------------------------


def test_a_codebase_wide_refactor_of_real_code_runs_in_parallel_then_integrates(
    tmp_path: Path,
) -> None:
    repo = vendored(tmp_path, "pathspec")
    request = "Modernize syntax and sort imports across the codebase"
    team = team_of(3)
    analysis, plan = sound_plan(repo, request, team)
    wave1 = [o for o in plan.objectives if o.wave == 1]
    assert [o.id for o in wave1] == ["obj-1", "obj-2", "obj-3"]
    assert all(o.depends_on == [] and o.capabilities == ["python"] for o in wave1)
    assert all(o.title.startswith("Refactor: pathspec/") for o in wave1)
    integration = plan.objectives[-1]
    assert integration.id == "obj-4" and integration.wave == 2
    assert integration.title == "Integration: package exports"
    assert integration.scope_touch == [
        "pathspec/__init__.py",
        "pathspec/patterns/__init__.py",
        "pathspec/patterns/gitignore/__init__.py",
    ]
    assert integration.depends_on == ["obj-1", "obj-2", "obj-3"]
    assert "/pyproject.toml" not in integration.scope_touch  # no dependency work asked
    assert plan.contracts == []  # independent work has no interfaces to agree on
    sizes = [sum(analysis.sizes[f] for f in analysis.modules if matches(f, o.scope_touch))
             for o in wave1]  # fmt: skip
    assert max(sizes) < 2 * min(sizes)  # balanced by bytes


def test_the_heuristic_plan_is_byte_identical_for_the_same_input(tmp_path: Path) -> None:
    request = "Add a retry policy to the console"
    plans = []
    for copy in ("a", "b"):
        repo = vendored(tmp_path / copy, "rich")
        analysis = analyse(repo, request)
        plans.append(msgspec.msgpack.encode(heuristic_plan(analysis, request, team_of(4))))
        plans.append(msgspec.msgpack.encode(heuristic_plan(analysis, request, team_of(4))))
    assert len(set(plans)) == 1


def test_a_feature_on_a_real_module_changes_the_provider_before_its_consumers(
    tmp_path: Path,
) -> None:
    repo = vendored(tmp_path, "rich")
    request = "Add hyperlink support to the console"
    team = team_of(4)
    _, plan = sound_plan(repo, request, team)
    first, *consumers, integration = plan.objectives
    assert (first.id, first.wave, first.scope_touch) == ("obj-1", 1, ["rich/console.py"])
    assert len(consumers) == 4 and {o.wave for o in consumers} == {2}
    assert all(o.depends_on == ["obj-1"] for o in consumers)
    assert integration.scope_touch == ["rich/__init__.py"] and integration.wave == 3
    assert [c.provider for c in plan.contracts] == ["obj-1"] * 4
    assert plan.contracts[0].name == f"rich/console.py API used by {consumers[0].title[9:]}"
    assert plan.contracts[0].description.startswith("obj-2 imports from obj-1: rich/")


def test_a_focused_feature_plan_has_exact_scopes_waves_and_contracts(tmp_path: Path) -> None:
    repo = commit_repo(tmp_path / "shop", PYTHON_PROJECT)
    request = "Add two-factor login to auth"
    team = team_of(2)
    _, plan = sound_plan(repo, request, team)
    assert [(o.id, o.wave, o.scope_touch, o.depends_on) for o in plan.objectives] == [
        ("obj-1", 1, ["shop/auth.py"], []),
        ("obj-2", 2, ["shop/db/models.py"], ["obj-1"]),  # 56 bytes
        ("obj-3", 2, ["shop/web/views.py", "tests/test_auth.py"], ["obj-1"]),  # 55 + 28
        ("obj-4", 3, ["shop/__init__.py", "shop/web/urls.py"], ["obj-1", "obj-2", "obj-3"]),
    ]
    assert plan.objectives[0].title == "Feature: shop/auth.py"
    assert plan.objectives[2].title == "Feature: shop/web/views.py (+1 more)"
    assert plan.objectives[3].title == "Integration: package exports, registries"
    assert all(o.worker == "" for o in plan.objectives)
    assert all(o.scope_forbid == [".git/"] for o in plan.objectives)
    described = plan.objectives[0].description
    assert described.startswith(request + "\n\nDo this for shop/auth.py (1 files)")
    assert "obj-2, obj-3 import from these files" in described
    assert plan.contracts == [
        Contract(
            name="shop/auth.py API used by shop/db/models.py",
            provider="obj-1",
            consumers=["obj-2"],
            description=(
                "obj-2 imports from obj-1: shop/db/models.py -> shop/auth.py. obj-1 keeps"
                " these importable (or reports what changed); obj-2 adapts to it."
            ),
        ),
        Contract(
            name="shop/auth.py API used by shop/web/views.py (+1 more)",
            provider="obj-1",
            consumers=["obj-3"],
            description=(
                "obj-3 imports from obj-1: shop/web/views.py -> shop/auth.py; "
                "tests/test_auth.py -> shop/auth.py. obj-1 keeps these importable (or "
                "reports what changed); obj-3 adapts to it."
            ),
        ),
    ]


def test_top_level_names_are_anchored_and_folders_forbid_their_hotspots(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "r",
        {
            "setup.py": "from setuptools import setup\nsetup()\n",
            "tool/__init__.py": "from tool.core import run\n",
            "tool/core.py": "x = 1\n" * 400,
            "tool/tests/test_core.py": "from tool.core import run\n",
            "tests/test_tool.py": "import tool\n",
            "tests/conftest.py": "",
        },
    )
    request = "Reformat the code everywhere"
    team = team_of(3)
    _, plan = sound_plan(repo, request, team)
    touched = sorted(p for o in plan.objectives[:-1] for p in o.scope_touch)
    assert touched == ["/setup.py", "/tests/", "tool/core.py", "tool/tests/"]
    for pattern in touched:
        check_pattern(pattern)
    assert not matches("tool/tests/test_core.py", ["/tests/"])  # anchored, not any depth
    integration = plan.objectives[-1]
    assert integration.scope_touch == ["tests/conftest.py", "tool/__init__.py"]
    owner = next(o for o in plan.objectives if "/tests/" in o.scope_touch)
    assert owner.scope_forbid == [".git/", "tests/conftest.py"]


def test_a_one_worker_team_gets_every_objective_and_capabilities_match_the_team(
    tmp_path: Path,
) -> None:
    repo = commit_repo(tmp_path / "shop", PYTHON_PROJECT)
    request = "Add two-factor login to auth"
    analysis = analyse(repo, request)

    solo = heuristic_plan(analysis, request, team_of(1, ("python", "fast")))
    assert {o.worker for o in solo.objectives} == {"w1"}
    assert {tuple(o.capabilities) for o in solo.objectives} == {("python",)}
    assert max(len([o for o in solo.objectives if o.wave == w]) for w in (1, 2, 3)) == 1

    no_languages = heuristic_plan(analysis, request, team_of(2, ("fast",)))
    assert {tuple(o.capabilities) for o in no_languages.objectives} == {()}

    nobody = heuristic_plan(analysis, request, Team())
    check_plan(nobody, Team())
    assert [o.wave for o in nobody.objectives] == [1, 2, 3]


def test_an_import_cycle_between_units_becomes_one_objective(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "r",
        {
            "a/x.py": "from b import y\n",
            "b/y.py": "from a import x\n",
            "a/__init__.py": "",
            "b/__init__.py": "",
            "c/z.py": "from a import x\n",
            "c/__init__.py": "",
        },
    )
    request = "Fix the bug in x and y"
    team = team_of(3)
    _, plan = sound_plan(repo, request, team)
    assert [(o.wave, o.scope_touch, o.depends_on) for o in plan.objectives] == [
        (1, ["a/x.py", "b/y.py"], []),
        (2, ["c/z.py"], ["obj-1"]),
    ]


def test_a_feature_that_names_nothing_is_one_objective_then_integration(tmp_path: Path) -> None:
    repo = commit_repo(tmp_path / "shop", PYTHON_PROJECT)
    request = "Add JWT authentication with secure token handling"
    team = team_of(3)
    _, plan = sound_plan(repo, request, team)
    assert [o.wave for o in plan.objectives] == [1, 2]
    assert plan.objectives[0].scope_touch == ["/scripts/", "/shop/", "/tests/"]
    assert "names no module" in plan.objectives[0].description


def test_a_repository_without_source_files_gets_one_objective_over_everything(
    tmp_path: Path,
) -> None:
    repo = commit_repo(tmp_path / "r", {"README.md": "# Notes\n", "pyproject.toml": ""})
    request = "Add a command line interface"
    analysis = analyse(repo, request)
    plan = heuristic_plan(analysis, request, team_of(2))

    check_plan(plan, team_of(2))
    [only] = plan.objectives
    assert (only.scope_touch, only.scope_forbid) == (["*"], [".git/", "/pyproject.toml"])
    assert "no source file" in only.description


def test_javascript_and_typescript_units_ask_for_those_capabilities(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "web",
        {
            "src/app.ts": "import { a } from './lib/a';\n",
            "src/lib/a.js": "export const a = 1;\n",
            "test/app.test.ts": "import '../src/app';\n",
        },
    )
    request = "Refactor everything to use const"
    team = team_of(2, ("javascript", "typescript"))
    _, plan = sound_plan(repo, request, team)
    assert sorted(c for o in plan.objectives for c in o.capabilities) == [
        "javascript",
        "typescript",
        "typescript",
    ]


@st.composite
def analyses(draw: st.DrawFn) -> tuple[RepoAnalysis, str]:
    """A random repository shape (no git needed: the planner only reads the analysis)."""
    folders = ["", "a", "a/b", "a/b/c", "d", "d/tests", "tests", "e/f"]
    names = ["x.py", "y.py", "__init__.py", "test_x.py", "conftest.py", "z.ts", "w.go"]
    paths = draw(
        st.lists(
            st.tuples(st.sampled_from(folders), st.sampled_from(names)).map(
                lambda fn: f"{fn[0]}/{fn[1]}".lstrip("/")
            ),
            min_size=1,
            max_size=25,
            unique=True,
        )
    )
    modules = sorted(paths)
    shared = [
        m for m in modules if m.endswith(("__init__.py", "conftest.py")) and draw(st.booleans())
    ]
    others = [m for m in modules if m not in shared]
    named = draw(st.lists(st.sampled_from(others), unique=True, max_size=3)) if others else []
    imports = {
        m: sorted(t)
        for m in modules
        if (t := draw(st.sets(st.sampled_from(modules), max_size=4)) - {m})
    }
    request = draw(st.sampled_from(["Fix it", "Add a thing", "Tidy up everywhere", "Do it"]))
    analysis = RepoAnalysis(
        files=modules,
        modules=modules,
        entry_points=[],
        test_dirs=[],
        config_files=[],
        imports=imports,
        task_type=draw(st.sampled_from(["feature", "bug", "refactor", "docs", "test", "perf"])),
        named=sorted(named),
        coordination_points=[],
        hotspots=shared,
        scope_strategy="",
        sizes={m: draw(st.integers(0, 5000)) for m in modules},
    )
    return analysis, request


@given(case=analyses(), workers=st.integers(0, 5))
@settings(max_examples=150, deadline=None)
def test_every_heuristic_plan_is_valid_exclusive_and_covers_the_work_once(
    case: tuple[RepoAnalysis, str], workers: int
) -> None:
    analysis, request = case
    team = team_of(workers)
    plan = heuristic_plan(analysis, request, team)
    assert_sound(plan, analysis, request, team)
    assert max(len([o for o in plan.objectives if o.wave == w]) for w in range(1, 99)) <= max(
        1, workers
    )
    assert plan == heuristic_plan(analysis, request, team)


# --- check_plan -----------------------------------------------------------------------


def objective(oid: str, **fields: object) -> Objective:
    fields.setdefault("title", oid.upper())
    fields.setdefault("scope_touch", [f"src/{oid}/"])
    return msgspec.convert({"id": oid, **fields}, Objective)


@pytest.mark.parametrize(
    ("objectives", "contracts", "says"),
    [
        ([], [], "the plan has no objectives; add at least one"),
        ([objective("Core")], [], "objectives[0] has the id 'Core'; use 1-64 lowercase"),
        ([objective("a"), objective("a", wave=2)], [], "the id 'a' is used by two objectives"),
        ([objective("a", title=" ")], [], "objective 'a' has no title"),
        ([objective("a", wave=0)], [], "objective 'a' has wave = 0; waves are numbered from 1"),
        ([objective("a", scope_touch=[])], [], "objective 'a' has no scope_touch pattern"),
        ([objective("a", scope_touch=["!src/"])], [], "objective 'a': scope_touch: "),
        ([objective("a", scope_forbid=["~/x"])], [], "objective 'a': scope_forbid: "),
        ([objective("a", worker="w9")], [], "worker 'w9', which is not in the team; use one of w1"),
        ([objective("a", depends_on=["b"])], [], "depends on 'b', which is not an objective"),
        (
            [objective("a", depends_on=["b"], wave=2), objective("b", depends_on=["a"], wave=3)],
            [],
            "dependency cycle: a -> b -> a; remove one",
        ),
        ([objective("a", depends_on=["a"])], [], "dependency cycle: a -> a"),
        (
            [objective("a"), objective("b", depends_on=["a"])],
            [],
            "objective 'b' (wave 1) depends on 'a' (wave 1); a dependency runs in an earlier"
            " wave: move 'b' to wave 2 or later",
        ),
        ([objective("a")], [Contract(name="", provider="a")], "contracts[0] has no name"),
        ([objective("a")], [Contract(name="api", provider="z")], "provider 'z' is not an"),
        (
            [objective("a")],
            [Contract(name="api", provider="a", consumers=["q"])],
            "contract 'api': consumers 'q' is not an objective of this plan; use one of a",
        ),
    ],
)  # fmt: skip
def test_check_plan_rejects_each_broken_rule_with_the_fix(
    objectives: list[Objective], contracts: list[Contract], says: str
) -> None:
    with pytest.raises(PlanError) as caught:
        check_plan(Plan(objectives=objectives, contracts=contracts), team_of(2))
    assert says in str(caught.value)
    assert caught.value.exit_code == EXIT_CONFIG


def test_without_a_team_any_worker_name_passes() -> None:
    check_plan(Plan(objectives=[objective("a", worker="anyone")]), None)


# --- plan files -----------------------------------------------------------------------

TOML_PLAN = """\
# The owner's plan.
[[objectives]]
id = "core"
title = "Core API"
scope_touch = ["src/core/"]

[[objectives]]
id = "ui"
title = "UI"
wave = 2
scope_touch = ["src/ui/", "/setup.py"]
depends_on = ["core"]

[[contracts]]
name = "core.api"
provider = "core"
consumers = ["ui"]
"""


def test_a_valid_toml_plan_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(TOML_PLAN)
    plan = load_plan_file(path, team_of(2))
    assert [o.id for o in plan.objectives] == ["core", "ui"]
    assert plan.objectives[1].scope_touch == ["src/ui/", "/setup.py"]
    assert plan.contracts == [Contract(name="core.api", provider="core", consumers=["ui"])]


def edit(text: str, line: int, new: str | None) -> str:
    """Replace 1-based ``line`` (or delete it when ``new`` is None)."""
    lines = text.splitlines()
    lines[line - 1 : line] = [] if new is None else [new]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "new", "where", "says"),
    [
        (10, 'wave = "2"', "10:1", "objectives[1].wave: expected `int`, got `str`; write a value"),
        (10, "wavee = 2", "10:1", "objectives[1] has an unknown key 'wavee'; the keys are id,"),
        (1, "version = 1", "1:1", "unknown key 'version'; a plan has only objectives and"),
        (9, None, "7:1", "objectives[1]: object missing required field `title`; add it"),
        (8, 'id = "UI"', "8:1", "objectives[1] has the id 'UI'"),
        (9, 'title = ""', "9:1", "objective 'ui' has no title"),
        (10, "wave = 0", "10:1", "objective 'ui' has wave = 0"),
        (11, "scope_touch = []", "11:1", "objective 'ui' has no scope_touch pattern"),
        (11, 'scope_touch = ["src/ui/", "/home/alice/x"]', "11:1", "scope_touch: "),
        (10, 'worker = "nobody"', "10:1", "worker 'nobody', which is not in the team"),
        (12, 'depends_on = ["nope"]', "12:1", "depends on 'nope', which is not an objective"),
        (10, "wave = 1", "12:1", "objective 'ui' (wave 1) depends on 'core' (wave 1)"),
        (5, 'scope_touch = ["a/"]\ndepends_on = ["ui"]', "6:1", "cycle: core -> ui -> core"),
        (16, 'provider = "ghost"', "16:1", "contract 'core.api': provider 'ghost' is not an"),
        (17, 'consumers = ["ui", "x"]', "17:1", "consumers 'x' is not an objective"),
        (9, 'title = "UI', "9:12", "not valid TOML: "),
        (3, '   id = "c o r e"', "3:4", "objectives[0] has the id 'c o r e'"),
    ],
)  # fmt: skip
def test_a_toml_plan_error_names_the_exact_line(
    tmp_path: Path, line: int, new: str | None, where: str, says: str
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(edit(TOML_PLAN, line, new))
    with pytest.raises(PlanError) as caught:
        load_plan_file(path, team_of(2))
    message = str(caught.value)
    assert message.startswith(f"{path}:{where}: "), message
    assert says in message
    assert "\n" not in message
    assert (caught.value.line, caught.value.column) == tuple(map(int, where.split(":")))


JSON_PLAN = """\
{
  "objectives": [
    {"id": "core", "title": "Core API", "scope_touch": ["src/core/"]},
    {
      "id": "ui",
      "title": "UI",
      "wave": 2,
      "scope_touch": ["src/ui/"],
      "depends_on": ["core"]
    }
  ],
  "contracts": [{"name": "core.api", "provider": "core", "consumers": ["ui"]}]
}
"""


@pytest.mark.parametrize(
    ("line", "new", "where", "says"),
    [
        (7, '      "wave": "2",', "7:7", "objectives[1].wave: expected `int`"),
        (7, '      "waev": 2,', "7:7", "objectives[1] has an unknown key 'waev'"),
        (3, '    {"id": "core", "title": "", "scope_touch": ["src/core/"]},', "3:20", "no title"),
        (9, '      "depends_on": ["gone"]', "9:7", "depends on 'gone'"),
        (12, '  "contracts": [{"name": "a", "provider": "x"}]', "12:31", "provider 'x'"),
        (9, '      "depends_on": ["core"],', "10:5", "not valid JSON: "),
        (3, '    {"title": "Core", "scope_touch": ["a/"]},', "3:5", "missing required field `id`"),
    ],
)  # fmt: skip
def test_a_json_plan_error_names_the_exact_line_and_column(
    tmp_path: Path, line: int, new: str, where: str, says: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(edit(JSON_PLAN, line, new))
    with pytest.raises(PlanError) as caught:
        load_plan_file(path, team_of(2))
    message = str(caught.value)
    assert message.startswith(f"{path}:{where}: "), message
    assert says in message


def test_a_valid_json_plan_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(JSON_PLAN)
    assert [o.wave for o in load_plan_file(path).objectives] == [1, 2]


@pytest.mark.parametrize(
    ("name", "says"),
    [("plan.yaml", "use a .toml or .json file"), ("missing.toml", "does not exist")],
)
def test_a_plan_file_of_another_kind_or_missing_says_so(
    tmp_path: Path, name: str, says: str
) -> None:
    if name.endswith(".yaml"):
        (tmp_path / name).write_text("objectives: []\n")
    with pytest.raises(PlanError, match=says):
        load_plan_file(tmp_path / name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=json_values, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_json_locator_points_at_every_key_and_element(
    value: object, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps({"root": value}, indent=indent, ensure_ascii=ascii_only)
    source = PlanSource("p.json", text, "json")
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    decoder = json.JSONDecoder()

    def check(node: object, path: tuple[str | int, ...]) -> None:
        line, col = source.locate(path)
        offset = starts[line - 1] + col - 1
        if path and isinstance(path[-1], str):
            key, _ = decoder.raw_decode(text, offset)
            assert key == path[-1]
        else:
            assert decoder.raw_decode(text, offset)[0] == node
        if isinstance(node, dict):
            for k, child in node.items():
                check(child, (*path, k))
        elif isinstance(node, list):
            for n, child in enumerate(node):
                check(child, (*path, n))

    check(value, ("root",))


# --- agent plans ----------------------------------------------------------------------

AGENT_PLAN = {
    "objectives": [
        {"id": "auth", "title": "JWT", "scope_touch": ["shop/auth.py"]},
        {"id": "views", "title": "Use JWT", "wave": 2, "scope_touch": ["shop/web/"],
         "depends_on": ["auth"]},
    ],
    "contracts": [{"name": "auth.sign", "provider": "auth", "consumers": ["views"]}],
}  # fmt: skip


def test_the_agent_plan_is_the_last_plan_object_in_its_output() -> None:
    draft = {"objectives": [{"id": "draft", "title": "D", "scope_touch": ["x/"]}]}
    text = (
        f"Thinking... first draft {json.dumps(draft)} but then {{not json}}.\n"
        f"Final plan:\n```json\n{json.dumps(AGENT_PLAN, indent=2)}\n```\nDone."
    )
    plan = parse_agent_plan(text, team_of(2))
    assert [o.id for o in plan.objectives] == ["auth", "views"]


def test_a_plan_inside_a_stream_json_event_is_found() -> None:
    answer = "Here it is:\n```json\n" + json.dumps(AGENT_PLAN) + "\n```"
    events = [
        {"type": "system", "subtype": "init"},
        {"type": "result", "result": answer, "usage": {"input_tokens": 3}},
    ]
    text = "\n".join(json.dumps(e) for e in events)
    assert parse_agent_plan(text, None).contracts[0].name == "auth.sign"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("I cannot plan this, sorry.", 'no JSON object with an "objectives" key'),
        ('{"objectives": [{"id": "a", "title": "A", "scope": ["x/"]}]}', "unknown key 'scope'"),
        ('{"objectives": [{"id": "a", "title": "A"}]}', "has no scope_touch pattern"),
    ],
)
def test_an_agent_answer_without_a_valid_plan_is_a_plan_error(text: str, says: str) -> None:
    with pytest.raises(PlanError, match=says) as caught:
        parse_agent_plan(text, None)
    assert str(caught.value).startswith("agent plan: ")


@pytest.fixture
def shop(tmp_path: Path) -> tuple[RepoAnalysis, Path]:
    repo = commit_repo(tmp_path / "shop", PYTHON_PROJECT)
    return analyse(repo, "Add JWT to auth"), repo


def test_the_prompt_has_the_schema_the_analysis_the_team_and_the_rules(
    shop: tuple[RepoAnalysis, Path],
) -> None:
    analysis, _ = shop
    prompt = plan_prompt(analysis, "Add JWT to auth", team_of(2))
    for part in (
        "# Owner request\n\nAdd JWT to auth",
        "Task type: feature",
        "- shop/auth.py: named by the request, imported by 4 modules",
        "- shop/__init__.py",  # a hotspot
        "- shop/auth.py (4)",  # the most imported files
        "- w1 (agent claude; capabilities: python)",
        "at most 2 objectives per wave",
        '("tests/" also matches',
        '"scope_touch": ["src/auth/", "/setup.py"]',
        "in a ```json fence",
    ):
        assert part in prompt, part


def write_agent(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "agent.py"
    script.write_text("import json, os, subprocess, sys, time\n" + body)
    return [sys.executable, str(script)]


def test_an_agent_that_prints_a_plan_after_prose_is_read_from_stdin(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    argv = write_agent(
        tmp_path,
        "prompt = sys.stdin.read()\n"
        "assert '# Owner request' in prompt and os.getcwd() == sys.argv[1]\n"
        "print('I looked at the repository. Plan:')\n"
        f"print('```json\\n' + json.dumps({AGENT_PLAN!r}) + '\\n```')\n",
    )
    plan = agent_plan(analysis, "Add JWT to auth", team_of(2), [*argv, str(repo)], repo, 30)
    assert [o.id for o in plan.objectives] == ["auth", "views"]


def test_the_prompt_token_puts_the_prompt_in_the_argv_and_closes_stdin(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    argv = write_agent(
        tmp_path,
        "assert sys.argv[1].startswith('--prompt=You are the planner')\n"
        "assert sys.stdin.read() == ''\n"
        f"print(json.dumps({AGENT_PLAN!r}))\n",
    )
    plan = agent_plan(analysis, "Add JWT", team_of(2), [*argv, "--prompt={prompt}"], repo, 30)
    assert plan.objectives[0].id == "auth"


def test_an_agent_that_prints_garbage_is_a_plan_error_with_its_stderr(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    argv = write_agent(
        tmp_path,
        'print(\'{"not": "a plan"} and some { braces\')\n'
        "print('warning: model is tired', file=sys.stderr)\n",
    )
    with pytest.raises(PlanError) as caught:
        agent_plan(analysis, "x", team_of(2), argv, repo, 30)
    assert 'no JSON object with an "objectives" key' in str(caught.value)
    assert str(caught.value).endswith("(agent stderr: warning: model is tired)")


def test_an_agent_that_exits_non_zero_reports_its_last_stderr_line(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    argv = write_agent(
        tmp_path,
        "print('starting', file=sys.stderr)\n"
        "print('Error: not logged in', file=sys.stderr)\nsys.exit(1)\n",
    )
    with pytest.raises(PlanError, match="exited with status 1: Error: not logged in; check"):
        agent_plan(analysis, "x", team_of(2), argv, repo, 30)


def test_a_hanging_agent_is_killed_with_its_process_group_at_the_timeout(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    pid_file = tmp_path / "child.pid"
    argv = write_agent(
        tmp_path,
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('thinking', file=sys.stderr, flush=True)\ntime.sleep(60)\n",
    )
    started = time.monotonic()
    with pytest.raises(PlanError, match=r"did not finish within 0.5 s and was killed"):
        agent_plan(analysis, "x", team_of(2), argv, repo, 0.5)
    assert time.monotonic() - started < 10
    child = psutil.Process(int(pid_file.read_text()))
    # A signal is delivered asynchronously: wait for the exit itself (a pidfd becomes
    # readable when its process has exited, also for a process that is not our child).
    with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
        pidfd = os.pidfd_open(child.pid)
        try:
            assert select.select([pidfd], [], [], 5)[0], "the agent's child is still running"
        finally:
            os.close(pidfd)
        assert child.status() == psutil.STATUS_ZOMBIE  # dead; its new parent may not reap


def test_an_agent_that_does_not_exist_says_so(
    shop: tuple[RepoAnalysis, Path], tmp_path: Path
) -> None:
    analysis, repo = shop
    with pytest.raises(PlanError, match="cannot run the agent planner 'no-such-agent-cli'"):
        agent_plan(analysis, "x", team_of(2), ["no-such-agent-cli", "{prompt}"], repo, 5)
    with pytest.raises(PlanError, match="has no command"):
        agent_plan(analysis, "x", team_of(2), [], repo, 5)
