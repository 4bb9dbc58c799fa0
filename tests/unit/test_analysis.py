"""The ANALYTIC phase on real git repositories built in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest

from ap_actors.analysis import (
    MAX_PARSE_BYTES,
    RepoAnalysis,
    analyse,
    effective_imports,
    task_type_of,
    work_set,
)
from ap_actors.errors import EXIT_CONFIG, ConfigError
from ap_actors.events import AnalysisCompleted


def commit_repo(root: Path, files: dict[str, str | bytes], message: str = "c") -> Path:
    """Write ``files`` under ``root`` (a git repository, created if needed) and commit."""
    if not (root / ".git").exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message],
        cwd=root,
        check=True,
    )
    return root


# A small Python project: a package with subpackages, relative and absolute imports.
PYTHON_PROJECT: dict[str, str | bytes] = {
    "pyproject.toml": (
        '[project]\nname = "shop"\n[project.scripts]\nshop = "shop.cli:main"\n'
        'missing = "nowhere.mod:run"\n'
    ),
    "setup.cfg": "[options.entry_points]\nconsole_scripts =\n    shop-admin = shop.admin:main\n",
    "poetry.lock": "# lock\n",
    "Makefile": "test:\n\tpytest\n",
    ".github/workflows/ci.yml": "on: push\n",
    "shop/__init__.py": "from .cart import Cart\nfrom .auth import login\n",
    "shop/__main__.py": "from shop.cli import main\nmain()\n",
    "shop/cli.py": "import argparse\nfrom shop import cart\n\ndef main():\n    pass\n",
    "shop/auth.py": "import hashlib\nfrom .db import connect\n\ndef login(user):\n    pass\n",
    "shop/cart.py": "from shop.db import connect\nfrom . import pricing\n",
    "shop/pricing.py": "import shop.db.models\n",
    "shop/db/__init__.py": "",
    "shop/db/models.py": "from ..auth import login\nfrom ...outside import nothing\n",
    "shop/web/urls.py": (
        "from shop.web import views\n" + "".join(f"path('p{i}', views.v{i})\n" for i in range(3))
    ),
    "shop/web/__init__.py": "",
    "shop/web/views.py": "from shop.auth import login\nfrom shop.cart import Cart\n",
    "shop/broken.py": "def oops(:\n    pass\n",
    "tests/conftest.py": "import pytest\n",
    "tests/test_auth.py": "from shop.auth import login\n",
    "tests/test_cart.py": "from shop import cart\n",
    "scripts/seed.py": "import helpers\n\nif __name__ == '__main__':\n    helpers.run()\n",
    "scripts/helpers.py": "def run():\n    pass\n",
    "docs/index.md": "# Shop\n",
    "README.md": "shop\n",
}


@pytest.fixture
def python_repo(tmp_path: Path) -> Path:
    return commit_repo(tmp_path / "shop", PYTHON_PROJECT)


# --- task type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Add JWT authentication with secure token handling", "feature"),
        ("Modernize syntax and sort imports across the codebase", "refactor"),
        ("Fix the SQL injection in the login form", "security"),
        ("Patch CVE-2024-3094 in the upload handler", "security"),
        ("Sanitize user input in the templates", "security"),
        ("Secure the admin endpoints", "security"),
        ("Fix the crash when parsing an empty date", "bug"),
        ("Error when uploading files larger than 2 GB", "bug"),
        ("Fix failing tests in the parser", "bug"),
        ("Add error handling to the upload endpoint", "feature"),
        ("Speed up the date parser", "perf"),
        ("Reduce memory usage of the cache", "perf"),
        ("Add a memory-backed session store", "feature"),
        ("Optimise the slow regex in the tokenizer", "perf"),
        ("Increase test coverage of the parser", "test"),
        ("Add tests for the auth module", "test"),
        ("Write docstrings for all public functions", "docs"),
        ("Update the README with install instructions", "docs"),
        ("Document the public API", "docs"),
        ("Rewrite the app from scratch", "reset"),
        ("Reset the project to a clean slate", "reset"),
        ("Add password reset via email", "feature"),
        ("Rename utils to helpers", "refactor"),
        ("Add type hints to the utils package", "refactor"),
        ("Clean-up the logging module", "refactor"),
        ("Migrate from setup.py to pyproject.toml", "refactor"),
        ("Implement OAuth login support", "feature"),
        ("Add fixtures for the payment gateway", "feature"),
        ("", "feature"),
    ],
)
def test_the_task_type_follows_the_documented_ordered_rules(
    request_text: str, expected: str
) -> None:
    assert task_type_of(request_text) == expected


# --- structure ------------------------------------------------------------------------


def test_a_python_project_lists_modules_tests_configs_and_entry_points(python_repo: Path) -> None:
    a = analyse(python_repo, "Add coupons to the cart")

    assert a.files == sorted(PYTHON_PROJECT)
    assert "shop/db/models.py" in a.modules and "README.md" not in a.modules
    assert a.test_dirs == ["tests/"]
    assert a.config_files == [
        ".github/workflows/ci.yml",
        "Makefile",
        "poetry.lock",
        "pyproject.toml",
        "setup.cfg",
    ]
    assert a.entry_points == [
        "missing = nowhere.mod:run",  # a script target that is not in the repository
        "scripts/seed.py",  # a script outside any package, with a __main__ guard
        "shop-admin = shop.admin:main",  # setup.cfg console_scripts, not in the repository
        "shop/__main__.py",
        "shop/cli.py",  # [project.scripts] shop = "shop.cli:main", resolved to its file
    ]
    assert a.sizes["shop/cli.py"] == len(PYTHON_PROJECT["shop/cli.py"])
    assert len(a.commit) == 40


def test_python_imports_resolve_absolute_relative_and_dotted_forms(python_repo: Path) -> None:
    imports = analyse(python_repo, "x").imports

    assert imports["shop/__init__.py"] == ["shop/auth.py", "shop/cart.py"]
    assert imports["shop/cart.py"] == ["shop/db/__init__.py", "shop/pricing.py"]
    assert imports["shop/pricing.py"] == ["shop/db/models.py"]  # import a.b.c -> deepest
    assert imports["shop/db/models.py"] == ["shop/auth.py"]  # from ..auth; ... leaves the repo
    assert imports["shop/cli.py"] == ["shop/cart.py"]  # from shop import cart: a submodule
    assert imports["scripts/seed.py"] == ["scripts/helpers.py"]  # a script's neighbour
    assert imports["tests/test_auth.py"] == ["shop/auth.py"]
    assert "shop/broken.py" not in imports  # a syntax error is skipped, not fatal
    assert "tests/conftest.py" not in imports  # pytest is not ours


def test_coordination_points_say_why_and_hotspots_are_the_shared_files(python_repo: Path) -> None:
    a = analyse(python_repo, "Add two-factor login to auth")

    assert a.named == ["shop/auth.py"]
    assert a.coordination_points[:1] == [
        "shop/auth.py: named by the request, imported by 4 modules"
    ]
    assert "shop/__init__.py: package re-exports from 2 modules" in a.coordination_points
    assert "shop/web/urls.py: registry (3 registrations)" in a.coordination_points
    assert "tests/conftest.py: shared pytest fixtures for tests/" in a.coordination_points
    assert "pyproject.toml: build and dependency metadata" in a.coordination_points
    assert "poetry.lock: locked dependency versions" in a.coordination_points
    assert a.hotspots == [
        "poetry.lock",
        "pyproject.toml",
        "setup.cfg",
        "shop/__init__.py",
        "shop/web/urls.py",
        "tests/conftest.py",
    ]
    assert "shop/__init__.py" in a.scope_strategy and "integration" in a.scope_strategy


def test_a_src_layout_resolves_imports_and_names_by_the_package_name(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "r",
        {
            "src/app/__init__.py": "",
            "src/app/auth.py": "from app.tokens import sign\n",
            "src/app/tokens.py": "",
            "tests/test_auth.py": "from app.auth import login\nimport app.tokens\n",
        },
    )
    a = analyse(repo, "Add JWT support to auth")

    assert a.imports["src/app/auth.py"] == ["src/app/tokens.py"]
    assert a.imports["tests/test_auth.py"] == ["src/app/auth.py", "src/app/tokens.py"]
    assert a.named == ["src/app/auth.py"]
    assert a.task_type == "feature"


def test_the_request_names_directories_paths_and_dotted_modules(python_repo: Path) -> None:
    assert analyse(python_repo, "Speed up the db layer").named == ["shop/db/"]
    assert analyse(python_repo, "Fix shop/web/views.py").named == ["shop/web/views.py"]
    assert analyse(python_repo, "Fix a bug in shop.pricing").named == ["shop/pricing.py"]
    # Words of the task rules and common words are never names: no "test", "fix", "add".
    assert analyse(python_repo, "Add tests and fix the code").named == []


def test_a_javascript_project_resolves_relative_imports_like_a_bundler(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "web",
        {
            "package.json": (
                '{"name": "web", "main": "src/index.js", '
                '"bin": {"web-cli": "./bin/cli.js", "ghost": "./bin/ghost.js"}}'
            ),
            "package-lock.json": "{}",
            "tsconfig.json": "{}",
            "bin/cli.js": "const app = require('../src/app');\n",
            "src/index.js": "export { App } from './app';\nexport * from './util/index.js';\n",
            "src/app.ts": "import { h } from './util';\nimport React from 'react';\n",
            "src/util/index.ts": "import './side-effect';\nconst x = import('./lazy');\n",
            "src/util/side-effect.mjs": "",
            "src/util/lazy.tsx": "",
            "src/__tests__/app.test.ts": "import { App } from '../app';\n",
            "node_modules/react/index.js": "module.exports = {}\n",
            "dist/bundle.min.js": "!function(){}()\n",
        },
    )
    a = analyse(repo, "Add dark mode")

    assert a.imports == {
        "bin/cli.js": ["src/app.ts"],
        "src/__tests__/app.test.ts": ["src/app.ts"],
        "src/app.ts": ["src/util/index.ts"],
        "src/index.js": ["src/app.ts", "src/util/index.ts"],
        "src/util/index.ts": ["src/util/lazy.tsx", "src/util/side-effect.mjs"],
    }
    assert "node_modules/react/index.js" not in a.modules  # vendored
    assert "dist/bundle.min.js" not in a.modules  # minified
    assert a.entry_points == ["bin/cli.js", "ghost = ./bin/ghost.js", "src/index.js"]
    assert a.test_dirs == ["src/__tests__/"]
    assert a.config_files == ["package-lock.json", "package.json", "tsconfig.json"]
    assert "src/util/index.ts: package re-exports (barrel) from 2 modules" in (
        a.coordination_points
    )
    assert "package-lock.json" in a.hotspots and "package.json" in a.hotspots


def test_a_go_project_finds_its_commands_and_tests(tmp_path: Path) -> None:
    repo = commit_repo(
        tmp_path / "go",
        {
            "go.mod": "module example.com/tool\n",
            "go.sum": "",
            "main.go": "package main\n\nfunc main() {}\n",
            "cmd/server/main.go": "package main\n",
            "cmd/worker/run.go": "package worker\n",
            "internal/store/store.go": "package store\n",
            "internal/store/store_test.go": "package store\n",
        },
    )
    a = analyse(repo, "Add metrics")

    assert a.entry_points == ["cmd/server/", "cmd/worker/", "main.go"]
    assert a.test_dirs == ["internal/store/"]
    assert a.config_files == ["go.mod", "go.sum"]
    assert a.hotspots == ["go.mod", "go.sum"]


def test_binary_and_huge_files_are_listed_but_not_parsed(tmp_path: Path) -> None:
    huge = "import pkg.small\n" + "x = 1\n" * (MAX_PARSE_BYTES // 6 + 1)
    repo = commit_repo(
        tmp_path / "r",
        {
            "pkg/__init__.py": "",
            "pkg/small.py": "",
            "pkg/huge.py": huge,
            "pkg/blob.py": b"import pkg.small\n\x00\x01\x02",
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        },
    )
    a = analyse(repo, "Add a thing")

    assert {"pkg/huge.py", "pkg/blob.py", "logo.png"} <= set(a.files)
    assert a.imports == {}
    assert a.sizes["pkg/huge.py"] == len(huge)


# --- determinism and the commit -------------------------------------------------------


def test_the_analysis_reads_the_commit_not_the_working_tree(python_repo: Path) -> None:
    first = analyse(python_repo, "Add coupons to the cart")
    (python_repo / "shop" / "cart.py").write_text("import shop.auth\n")
    (python_repo / "shop" / "new.py").write_text("")

    again = analyse(python_repo, "Add coupons to the cart")

    assert msgspec.json.encode(again) == msgspec.json.encode(first)


def test_an_older_ref_gives_the_analysis_of_that_commit(python_repo: Path) -> None:
    commit_repo(python_repo, {"shop/coupons.py": "from shop.cart import Cart\n"})

    now = analyse(python_repo, "x")
    before = analyse(python_repo, "x", ref="HEAD~1")

    assert "shop/coupons.py" in now.modules and "shop/coupons.py" not in before.modules
    assert before.commit != now.commit


def test_the_same_commit_and_request_give_byte_identical_results(tmp_path: Path) -> None:
    one = commit_repo(tmp_path / "one", PYTHON_PROJECT)
    two = commit_repo(tmp_path / "two", dict(reversed(PYTHON_PROJECT.items())), "other")
    a = analyse(one, "Fix the crash in auth")
    b = analyse(two, "Fix the crash in auth")

    assert a.commit != b.commit  # other commits of the same tree
    same_commit = msgspec.structs.replace(b, commit=a.commit)
    assert msgspec.json.encode(a) == msgspec.json.encode(same_commit)


def test_the_analysis_becomes_an_analysis_completed_event(python_repo: Path) -> None:
    a = analyse(python_repo, "Add coupons to the cart")
    event = a.as_event(session_id="s1", id="e1")

    assert isinstance(event, AnalysisCompleted)
    assert event.session_id == "s1" and event.task_type == "feature"
    assert event.coordination_points == a.coordination_points
    assert msgspec.convert(msgspec.to_builtins(a), RepoAnalysis) == a


# --- the work set ---------------------------------------------------------------------


def test_a_focused_feature_takes_the_named_module_its_users_and_tests(python_repo: Path) -> None:
    request = "Add two-factor login to auth"
    work = work_set(analyse(python_repo, request), request)

    assert not work.wide and work.layered and not work.one_objective
    assert work.core == ["shop/auth.py"]
    assert work.files == [
        "shop/auth.py",
        "shop/db/models.py",
        "shop/web/views.py",
        "tests/test_auth.py",
    ]
    # The package exports it, the registry imports a user of it; no manifests.
    assert work.hotspots == ["shop/__init__.py", "shop/web/urls.py"]


def test_an_import_through_a_package_init_counts_as_importing_what_it_re_exports(
    tmp_path: Path,
) -> None:
    repo = commit_repo(
        tmp_path / "r",
        {
            "app/__init__.py": "from .auth import login\n",
            "app/auth.py": "def login(): ...\n",
            "app/views.py": "from app import login\n",
            "app/other.py": "",
        },
    )
    request = "Fix the crash in auth"
    a = analyse(repo, request)

    assert a.imports["app/views.py"] == ["app/__init__.py"]
    assert effective_imports(a.imports)["app/views.py"] == ["app/__init__.py", "app/auth.py"]
    assert work_set(a, request).files == ["app/auth.py", "app/views.py"]


def test_focused_docs_take_only_the_named_module_and_its_tests(python_repo: Path) -> None:
    request = "Document the auth module"
    work = work_set(analyse(python_repo, request), request)

    assert work.files == ["shop/auth.py", "tests/test_auth.py"] and not work.layered


def test_codebase_wide_work_takes_every_module_and_the_non_manifest_hotspots(
    python_repo: Path,
) -> None:
    request = "Modernize syntax and sort imports across the codebase"
    a = analyse(python_repo, request)
    work = work_set(a, request)

    assert work.wide and not work.layered
    assert set(work.files) == set(a.modules) - set(a.hotspots)
    assert work.hotspots == ["shop/__init__.py", "shop/web/urls.py", "tests/conftest.py"]


def test_dependency_words_bring_the_manifests_into_the_work(python_repo: Path) -> None:
    request = "Upgrade the auth module to bcrypt and pin its version"
    work = work_set(analyse(python_repo, request), request)

    assert {"pyproject.toml", "setup.cfg", "poetry.lock"} <= set(work.hotspots)


def test_a_feature_that_names_nothing_is_one_objective_over_everything(python_repo: Path) -> None:
    request = "Add JWT authentication with secure token handling"
    a = analyse(python_repo, request)
    work = work_set(a, request)

    assert a.task_type == "feature" and a.named == []
    assert work.one_objective and not work.wide
    assert "names no module" in a.scope_strategy


def test_documentation_work_also_covers_the_markdown_files(python_repo: Path) -> None:
    request = "Write docstrings everywhere"
    work = work_set(analyse(python_repo, request), request)

    assert {"README.md", "docs/index.md"} <= set(work.files)


# --- errors ---------------------------------------------------------------------------


def test_a_missing_repository_is_a_config_error_that_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass the path") as caught:
        analyse(tmp_path / "nope", "x")
    assert caught.value.exit_code == EXIT_CONFIG


def test_a_folder_that_is_not_a_repository_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a git repository; run `git init`"):
        analyse(tmp_path, "x")


def test_a_repository_without_commits_is_a_config_error(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with pytest.raises(ConfigError, match="has no commits yet; commit"):
        analyse(tmp_path, "x")


def test_an_unknown_ref_is_a_config_error(python_repo: Path) -> None:
    with pytest.raises(ConfigError, match=r"ref 'nope' is not a commit .*; pass an existing"):
        analyse(python_repo, "x", ref="nope")
