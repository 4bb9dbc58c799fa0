"""The ANALYTIC phase: what a repository holds at one commit, and what a request asks of it.

:func:`analyse` reads the tracked files of one commit (one ``git ls-tree`` and one
``git cat-file --batch``), never the working tree, so its result depends only on the
commit and the request. It lists the modules, entry points, test folders and config
files, builds the internal import graph, finds the files the request names, the
coordination points (files that several parts of the work depend on) and the hotspots
among them (shared files that only one objective, the last, may change), and states the
scope strategy that the heuristic planner (:mod:`ap_actors.planning`) then carries out.
:func:`work_set` is that strategy as data; both phases use it.

Source: seed 001, "PHASE 1: ANALYTIC" (structure, task type, coordination points, scope
strategy); DESIGN.md, "Events" (``analysis_completed``).
"""

from __future__ import annotations

import ast
import configparser
import itertools
import json
import os
import posixpath
import re
import subprocess
import tomllib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from ap_actors.errors import ConfigError
from ap_actors.events import AnalysisCompleted, TaskType

MAX_PARSE_BYTES = 1_000_000  # Larger files are listed but not read (no imports, no entry points).

# File extension -> language; what counts as a source file ("module").
LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".swift": "swift",
}
_JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
# Third-party code checked into a repository is not the project's to change.
_VENDORED_DIRS = {"node_modules", "bower_components", "vendor", ".venv", "venv", "site-packages"}
_TEST_DIR_NAMES = {"tests", "test", "__tests__", "spec", "specs"}
_TEST_FILE = re.compile(
    r"^(test_.+\.py|.+_test\.py|conftest\.py|.+_test\.go|.+\.(test|spec)\.[cm]?[jt]sx?)$"
)
_LOCK_FILES = {
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "Pipfile.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "go.sum",
    "Cargo.lock",
    "Gemfile.lock",
    "composer.lock",
}
# Dependency manifest -> why it is a coordination point.
_MANIFESTS = {
    "pyproject.toml": "build and dependency metadata",
    "setup.cfg": "build and dependency metadata",
    "Pipfile": "dependency list",
    "package.json": "package metadata, scripts and dependencies",
    "go.mod": "module path and dependency versions",
    "Cargo.toml": "crate metadata and dependencies",
    "Gemfile": "dependency list",
    "composer.json": "dependency list",
}
_CONFIG_NAMES = {
    *_LOCK_FILES,
    *_MANIFESTS,
    "setup.py",
    "tox.ini",
    "noxfile.py",
    "pytest.ini",
    "mypy.ini",
    ".flake8",
    "ruff.toml",
    ".ruff.toml",
    ".pre-commit-config.yaml",
    "MANIFEST.in",
    "environment.yml",
    "jsconfig.json",
    ".babelrc",
    ".npmrc",
    ".nvmrc",
    "Makefile",
    "GNUmakefile",
    "justfile",
    "Procfile",
    ".gitlab-ci.yml",
    ".editorconfig",
}
_CONFIG_NAME = re.compile(
    r"^(requirements[\w.-]*\.txt|tsconfig[\w.-]*\.json|\.eslintrc.*|eslint\.config\.\w+"
    r"|\.prettierrc.*|prettier\.config\.\w+|Dockerfile.*|docker-compose[\w.-]*\.ya?ml"
    r"|compose\.ya?ml|(vite|webpack|rollup|jest|vitest|babel|next|svelte|tailwind|postcss)"
    r"\.config\.\w+)$"
)
_REGISTRY_STEMS = {"routes", "urls", "registry", "registries", "plugins", "router", "routers"}
_REGISTRATION = re.compile(
    r"@\w+(?:\.\w+)*\.(?:route|get|post|put|patch|delete|register|command|hookimpl)\b"
    r"|\bregister\w*\(|\badd_url_rule\(|(?<![\w.])(?:re_)?path\(|\brouter\.\w+\("
)
_REGISTRATION_MARKERS = ("route", "regist", "path(", "add_url_rule", "command", "hookimpl", "@app.")
_REGISTRY_MIN = 5  # Registrations that make any file a registry.
_FAN_IN_MIN = 5  # Importers that make a module a coordination point ...
_FAN_IN_TOP = 10  # ... for at most this many modules, the most imported first.
_SOURCE_ROOTS = ("", "src", "lib", "python")  # Folders that are on sys.path by convention.

# --- task type ------------------------------------------------------------------------

# (task type, strong word patterns, weak word patterns); each pattern is a regular
# expression that must match whole words, several words for a phrase.
_TASK_RULES: list[tuple[TaskType, list[str], list[str]]] = [
    (
        "security",
        [r"vulnerab\w*", r"cves?", "xss", "csrf", "ssrf", r"injections?", r"saniti[sz]\w*",
         r"exploit\w*", r"insecure\w*", r"harden\w*"],
        [r"secur\w*"],
    ),
    (
        "bug",
        [r"fix(es|ed|ing)?", r"bugs?", r"buggy", r"crash\w*", "broken", r"regressions?",
         "traceback", r"hotfix\w*"],
        [r"errors?", r"fail\w*", r"exceptions?", "wrong"],
    ),
    (
        "perf",
        ["perf", "performance", "faster", r"slow\w*", r"optimi[sz]\w*", "latency",
         "speed up", "speedup", "throughput", r"bottlenecks?"],
        ["speed", "memory"],
    ),
    (
        "test",
        [r"tests?", "testing", r"unittests?", "pytest", "coverage"],
        [],
    ),
    (
        "docs",
        ["docs", "documentation", r"docstrings?", r"readmes?", "changelog"],
        ["doc", r"document\w*", r"comments?"],
    ),
    ("reset", [r"rewrit\w*", "from scratch", "start over", "start afresh"], [r"reset\w*"]),
    (
        "refactor",
        [r"refactor\w*", r"moderni[sz]\w*", "clean up", "cleanup", r"reorgani[sz]\w*",
         r"restructur\w*", "sort imports", "type hints", "type annotations", "upgrade syntax",
         r"lint\w*", r"dedup\w*", r"simplif\w*"],
        [r"renam\w*", r"format\w*", r"migrat\w*", "typing", "tidy"],
    ),
]  # fmt: skip
_FEATURE_VERBS = {
    "add", "implement", "create", "build", "introduce", "support", "enable", "allow",
    "provide", "integrate", "expose", "extend", "new",
}  # fmt: skip
_MECHANICAL: set[TaskType] = {"refactor", "docs", "perf", "test"}
_LAYERED: set[TaskType] = {"feature", "bug", "security", "reset"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _compile(pattern: str) -> list[re.Pattern[str]]:
    return [re.compile(part) for part in pattern.split(" ")]


def _has(words: list[str], phrase: list[re.Pattern[str]]) -> bool:
    n = len(phrase)
    return any(
        all(p.fullmatch(words[i + k]) for k, p in enumerate(phrase))
        for i in range(len(words) - n + 1)
    )


_COMPILED_RULES = [
    (kind, [_compile(p) for p in strong], [_compile(p) for p in weak])
    for kind, strong, weak in _TASK_RULES
]


def task_type_of(request: str) -> TaskType:
    """Return the kind of work a request asks for, by ordered keyword rules.

    The request is lower-cased and split into words (runs of ``[a-z0-9]``, so
    ``CVE-2024-1`` gives ``cve 2024 1`` and ``clean-up`` gives ``clean up``). The rules
    are tried in this order and the first that matches decides. A *strong* word matches
    anywhere; a *weak* word matches only when the request does not open with a feature
    verb (add, implement, create, build, introduce, support, enable, allow, provide,
    integrate, expose, extend, new), because a request that mainly adds something is a
    feature even if it mentions, say, secure token handling or error handling.

    ========  ==========================================================  =================
    type      strong words (regular expressions over whole words)         weak words
    ========  ==========================================================  =================
    security  vulnerab*, cve(s), xss, csrf, ssrf, injection(s),           secur*
              saniti[sz]*, exploit*, insecure*, harden*
    bug       fix/fixes/fixed/fixing, bug(s), buggy, crash*, broken,      error(s), fail*,
              regression(s), traceback, hotfix*                           exception(s),
                                                                          wrong
    perf      perf, performance, faster, slow*, optimi[sz]*, latency,     speed, memory
              "speed up", speedup, throughput, bottleneck(s)
    test      test(s), testing, unittest(s), pytest, coverage             --
    docs      docs, documentation, docstring(s), readme(s), changelog     doc, document*,
                                                                          comment(s)
    reset     rewrit*, "from scratch", "start over", "start afresh"       reset*
    refactor  refactor*, moderni[sz]*, "clean up", cleanup,               renam*, format*,
              reorgani[sz]*, restructur*, "sort imports", "type hints",   migrat*, typing,
              "type annotations", "upgrade syntax", lint*, dedup*,        tidy
              simplif*
    feature   everything else (add, implement, support, create ...)       --
    ========  ==========================================================  =================

    Examples: "Add JWT authentication with secure token handling" is a feature (weak
    ``secure`` after the feature verb ``add``); "Fix the SQL injection in login" is
    security (security is tried before bug); "Modernize syntax and sort imports across
    the codebase" is a refactor.
    """
    words = _words(request)
    feature_led = bool(words) and words[0] in _FEATURE_VERBS
    for kind, strong, weak in _COMPILED_RULES:
        if any(_has(words, p) for p in strong):
            return kind
        if not feature_led and any(_has(words, p) for p in weak):
            return kind
    return "feature"


def _is_task_word(word: str) -> bool:
    return any(
        len(p) == 1 and p[0].fullmatch(word)
        for _, strong, weak in _COMPILED_RULES
        for p in (*strong, *weak)
    )


# A request that says one of these means the whole codebase even when it names a module.
_WIDE = re.compile(
    r"\b(across|throughout)( the| this| our| whole| entire)* (code ?base|project|repo"
    r"(sitory)?|package|code|tree)\b|\beverywhere\b|\b(whole|entire) (code ?base|project|"
    r"repo(sitory)?|tree)\b|\b(code ?base|project|repo)[- ]wide\b|\ball (the )?(files|"
    r"modules|packages|source|sources|code)\b|\bevery (file|module|package|source file)\b"
)
# ... and these only when it names nothing.
_WIDE_WEAK = re.compile(r"\b(all|every|each)\b")
# A request with one of these changes the dependency manifests (pyproject.toml ...).
_DEPENDENCY_WORDS = re.compile(
    r"\b(depend\w*|requirements?|packaging|pyproject|setup\.cfg|package\.json|go\.mod"
    r"|lock ?files?|lockfile|pin(s|ned|ning)?|install\w*|bump\w*|versions?|extras?"
    r"|entry[ -]?points?|console[ -]scripts?|build (system|backend))\b"
)
# ... and for a feature also these (it probably brings a new library).
_NEW_LIBRARY_WORDS = re.compile(r"\b(using|integrat\w*|librar\w*|sdk|third[- ]party)\b")

# Words never taken as module or directory names (besides the task keywords above).
_STOPWORDS = frozenset(
    """a an and are as at be by do for from go if in into is it its of on or our so than
    that the their then there these this to up use used using was we when where which
    while who why will with without you your all any each every some new old more less
    add make change update improve handle remove delete move create implement support
    code codebase file files module modules package packages project repo repository
    source sources src lib function functions class classes method methods public
    private api across everywhere whole entire""".split()  # noqa: SIM905
)


# --- the analysis ---------------------------------------------------------------------


class RepoAnalysis(msgspec.Struct, kw_only=True):
    """What the ANALYTIC phase found (paths are repository-relative, POSIX, sorted).

    Directories end in ``/``. A value not found is an empty list, never missing.
    """

    files: list[str]  # Every tracked path at the ref (``git ls-tree -r``), sorted.
    modules: list[str]  # Source files (Python, JS/TS, Go, ... by extension), vendored dirs out.
    entry_points: list[str]  # __main__.py, scripts targets, package.json bin/main, cmd/x/ ...
    test_dirs: list[str]  # Folders holding tests ("tests/", "pkg/tests/"); top-level test files.
    config_files: list[str]  # Build, tool, CI and lock files.
    imports: dict[str, list[str]]  # File -> repo files it imports (files with none left out).
    task_type: TaskType  # By the rules of task_type_of.
    named: list[str]  # Modules and directories the request names.
    coordination_points: list[str]  # "path: why", one per line.
    hotspots: list[str]  # Paths of the coordination points that are shared files.
    scope_strategy: str  # How the work is split, one paragraph.
    sizes: dict[str, int] = {}  # File -> size in bytes at the ref (regular files only).
    commit: str = ""  # The commit the ref resolved to (40 hex).

    def as_event(self, **fields: Any) -> AnalysisCompleted:
        """Return the ``analysis_completed`` event of this analysis.

        Args:
            fields: the event's envelope (``session_id``, ``id``, ``source`` ...).
        """
        return AnalysisCompleted(
            task_type=self.task_type,
            modules=list(self.modules),
            entry_points=list(self.entry_points),
            test_dirs=list(self.test_dirs),
            config_files=list(self.config_files),
            coordination_points=list(self.coordination_points),
            scope_strategy=self.scope_strategy,
            **fields,
        )


class WorkSet(msgspec.Struct, frozen=True, kw_only=True):
    """Which files a request's objectives change: the scope strategy as data."""

    files: list[str]  # Files the unit objectives change (no hotspot among them), sorted.
    core: list[str]  # Those whose change the others adapt to: the named ones, or all.
    universe: list[str]  # Files of the kind considered (a directory scope may take all of
    # a directory only if every such file under it is in ``files`` or a hotspot).
    hotspots: list[str]  # Shared files the one integration objective changes, last.
    wide: bool  # The whole codebase (else the named modules and their neighbours).
    layered: bool  # Providers before consumers (else every unit objective in wave 1).
    one_objective: bool  # All of ``files`` in one objective (nothing says where to split).
    summary: str  # One sentence on what was chosen and why.


# --- reading the commit ---------------------------------------------------------------


# Set by a calling git hook, they would point every command at the hook's repository.
_REPO_LOCATING_ENV = {
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
}


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATING_ENV}
    env["LC_ALL"] = "C"
    try:
        if stdin is None:
            return subprocess.run(
                ["git", *args], cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True
            )
        return subprocess.run(["git", *args], cwd=repo, env=env, input=stdin, capture_output=True)
    except FileNotFoundError as e:
        raise ConfigError("git is not installed (not found on PATH); install git") from e


def _resolve(repo: Path, ref: str) -> str:
    if not repo.is_dir():
        raise ConfigError(f"repository {repo} does not exist; pass the path of a git repository")
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise ConfigError(
            f"{repo} is not a git repository; run `git init` and commit there, or pass another"
        )
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if found.returncode == 0:
        return found.stdout.decode().strip()
    if not _git(repo, "rev-list", "-n", "1", "--all").stdout.strip():
        raise ConfigError(f"{repo} has no commits yet; commit the files to analyse first")
    raise ConfigError(
        f"ref {ref!r} is not a commit in {repo}; pass an existing branch, tag or commit id"
    )


def _tree(repo: Path, commit: str) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """Return every tracked path, and path -> (blob id, size) of the regular files."""
    out = _git(repo, "ls-tree", "-r", "-z", "--long", "--full-tree", commit)
    if out.returncode != 0:
        raise ConfigError(f"cannot list the files of {commit} in {repo}: {out.stderr.decode()}")
    paths: list[str] = []
    blobs: dict[str, tuple[str, int]] = {}
    for entry in out.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, obj, size = meta.split()
        path = raw_path.decode("utf-8", "replace")
        paths.append(path)
        if kind == b"blob" and mode in (b"100644", b"100755"):
            blobs[path] = (obj.decode(), int(size))
    return sorted(paths), blobs


def _read(repo: Path, blobs: dict[str, tuple[str, int]], paths: Iterable[str]) -> dict[str, str]:
    """Return the text of ``paths`` (one ``git cat-file --batch``); binary files left out."""
    wanted = [p for p in paths if p in blobs and blobs[p][1] <= MAX_PARSE_BYTES]
    if not wanted:
        return {}
    ids = sorted({blobs[p][0] for p in wanted})
    out = _git(repo, "cat-file", "--batch", stdin="".join(f"{i}\n" for i in ids).encode())
    data, pos, by_id = out.stdout, 0, {}
    while pos < len(data):
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3:  # "<id> missing"
            continue
        size = int(header[2])
        body = data[pos : pos + size]
        pos += size + 1
        if b"\0" not in body[:8192]:
            by_id[header[0].decode()] = body.decode("utf-8", "replace")
    return {p: by_id[blobs[p][0]] for p in wanted if blobs[p][0] in by_id}


# --- classifying paths ----------------------------------------------------------------


def _dir(path: str) -> str:
    return posixpath.dirname(path)


def _name(path: str) -> str:
    return posixpath.basename(path)


def _stem(path: str) -> str:
    name = _name(path)
    return name[: -len(".d.ts")] if name.endswith(".d.ts") else posixpath.splitext(name)[0]


def language_of(path: str) -> str | None:
    """Return the language of a source file by its extension ("python" ...), else None."""
    return LANGUAGES.get(posixpath.splitext(path)[1])


def is_test_file(path: str) -> bool:
    """Whether a path is a test: in a tests/test/__tests__/spec(s) folder, or named so."""
    return bool(_TEST_FILE.match(_name(path))) or any(
        part in _TEST_DIR_NAMES for part in path.split("/")[:-1]
    )


def _is_module(path: str) -> bool:
    if language_of(path) is None or path.endswith((".min.js", ".min.mjs")):
        return False
    return not any(part in _VENDORED_DIRS for part in path.split("/")[:-1])


def _is_config(path: str) -> bool:
    name = _name(path)
    if name in _CONFIG_NAMES or _CONFIG_NAME.match(name):
        return True
    return path.startswith(".github/workflows/") or path == ".circleci/config.yml"


def _test_dirs(modules: list[str]) -> list[str]:
    found: set[str] = set()
    for path in modules:
        parts = path.split("/")
        named = [i for i, part in enumerate(parts[:-1]) if part in _TEST_DIR_NAMES]
        if named:
            found.add("/".join(parts[: named[0] + 1]) + "/")
        elif _TEST_FILE.match(parts[-1]):
            found.add(_dir(path) + "/" if len(parts) > 1 else path)
    # An outer test folder holds the inner ones.
    return sorted(d for d in found if not any(o != d and d.startswith(o) for o in found))


# --- Python ---------------------------------------------------------------------------


class _PyFacts(msgspec.Struct):
    imports: list[tuple[int, str, list[str]]]  # (level, module, imported names)
    main_guard: bool  # Has a top-level `if __name__ == "__main__":`.


def _py_facts(text: str, path: str) -> _PyFacts | None:
    """Parse one Python file; None when it does not parse (skipped, not fatal)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours to fix
            tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    imports: list[tuple[int, str, list[str]]] = []
    # Imports are statements: walk the statement blocks only (also inside functions,
    # classes, `if TYPE_CHECKING:` and `try:`), never the expressions (10x faster).
    blocks: list[list[ast.stmt]] = [tree.body]
    while blocks:
        for node in blocks.pop():
            if isinstance(node, ast.Import):
                imports.extend((0, alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imports.append((node.level, node.module or "", [a.name for a in node.names]))
            else:
                for field in ("body", "orelse", "finalbody"):
                    block = getattr(node, field, None)
                    if isinstance(block, list):
                        blocks.append(block)
                for part in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
                    blocks.append(part.body)
    guard = any(
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and {"__name__", "__main__"}
        <= {
            getattr(n, "id", None) or getattr(n, "value", None)
            for n in [node.test.left, *node.test.comparators]
        }
        for node in tree.body
    )
    return _PyFacts(imports=imports, main_guard=guard)


class _PyIndex:
    """Dotted module names of the repository's Python files, incl. the src/ layout."""

    def __init__(self, files: list[str]) -> None:
        self.files = set(files)
        self.packages = {_dir(f) for f in files if _name(f) in ("__init__.py", "__init__.pyi")}
        self.by_name: dict[str, str] = {}
        ordered = sorted(files, key=lambda f: (f.endswith(".pyi"), f))  # .py wins over .pyi
        for f in ordered:  # The name Python imports it by: from its top package ...
            if _dir(f) in self.packages or _dir(f) in _SOURCE_ROOTS:
                self.by_name.setdefault(self._package_name(f), f)
        for f in ordered:  # ... or by its path from the root, or from src/.
            parts = self._parts(f)
            self.by_name.setdefault(".".join(parts), f)
            if parts[0] in _SOURCE_ROOTS and len(parts) > 1:
                self.by_name.setdefault(".".join(parts[1:]), f)

    @staticmethod
    def _parts(f: str) -> list[str]:
        parts = posixpath.splitext(f)[0].split("/")
        return parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts

    def _package_name(self, f: str) -> str:
        dirs = f.split("/")[:-1]
        top = len(dirs)
        while top > 0 and "/".join(dirs[:top]) in self.packages:
            top -= 1
        return ".".join(self._parts(f)[top:])

    def at(self, base: str) -> str | None:
        """The module file at a path without extension (``a/b`` -> a/b.py, a/b/__init__.py)."""
        for suffix in (".py", "/__init__.py", ".pyi", "/__init__.pyi"):
            candidate = (base + suffix).lstrip("/")
            if candidate in self.files:
                return candidate
        return None

    def _lookup(self, importer: str, dotted: str) -> str | None:
        # A script outside any package imports its neighbours by their bare names
        # (``tests/helpers.py`` from ``tests/test_x.py``); a bare name is not registered
        # globally, or every ``import json`` would find some ``scripts/json.py``.
        here = _dir(importer)
        if here not in self.packages:
            local = self.at(posixpath.join(here, *dotted.split(".")))
            if local:
                return local
        return self.by_name.get(dotted)

    def module(self, importer: str, dotted: str) -> str | None:
        """The file of a dotted module name, or of its longest importable prefix."""
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):
            found = self._lookup(importer, ".".join(parts[:n]))
            if found:
                return found
        return None

    def resolve(self, path: str, level: int, module: str, names: list[str]) -> list[str]:
        """The repo files an import statement in ``path`` imports.

        ``from m import n`` imports the submodule ``m.n`` when there is one, else (also)
        ``m`` itself; ``import a.b.c`` imports the deepest of a.b.c, a.b, a that exists.
        """
        if level == 0:
            found = [f for f in (self._lookup(path, f"{module}.{n}") for n in names) if f]
            target = self.module(path, module) if len(found) < len(names) or not names else None
        else:
            base = _dir(path)
            for _ in range(level - 1):
                base = _dir(base)
            if module:
                base = posixpath.join(base, *module.split("."))
            found = [f for f in (self.at(posixpath.join(base, n)) for n in names) if f]
            target = self.at(base) if len(found) < len(names) else None
        return found + ([target] if target else [])


# --- JavaScript / TypeScript -----------------------------------------------------------

_JS_IMPORT = re.compile(
    r"""\bfrom\s*['"]([^'"\n]+)['"]|\bimport\s*['"]([^'"\n]+)['"]"""
    r"""|\b(?:require|import)\s*\(\s*['"]([^'"\n]+)['"]\s*\)"""
)


def _js_resolve(spec: str, base_dir: str, files: set[str]) -> str | None:
    """Resolve a relative specifier the way bundlers do: exact, + extension, /index."""
    target = posixpath.normpath(posixpath.join(base_dir, spec))
    if target.startswith("../") or target == "..":
        return None
    stem = re.sub(r"\.[cm]?jsx?$", "", target)  # TS's "./x.js" means ./x.ts
    candidates = [target] + [b + e for b in (target, stem) for e in _JS_EXTS]
    candidates += [f"{target}/index{e}" for e in _JS_EXTS]
    return next((c for c in candidates if c in files), None)


def _js_imports(path: str, text: str, files: set[str]) -> list[str]:
    found = []
    for match in _JS_IMPORT.finditer(text):
        spec = next(g for g in match.groups() if g)
        if spec.startswith("."):
            target = _js_resolve(spec, _dir(path), files)
            if target:
                found.append(target)
    return found


# --- entry points ---------------------------------------------------------------------


def _script_target(name: str, target: str, index: _PyIndex) -> str:
    module = target.split(":")[0].strip()
    found = index.by_name.get(module) if module else None
    return found or f"{name} = {target.strip()}"


def _entry_points(
    modules: list[str],
    texts: dict[str, str],
    facts: dict[str, _PyFacts],
    index: _PyIndex,
    files: set[str],
) -> list[str]:
    found: set[str] = set()
    for path in modules:
        name = _name(path)
        if name in ("__main__.py", "manage.py", "wsgi.py", "asgi.py"):
            found.add(path)
        py = facts.get(path)
        if py and py.main_guard and _dir(path) not in index.packages and not is_test_file(path):
            found.add(path)  # a script outside any package
        if path.endswith(".go") and (
            re.search(r"(^|/)cmd/[^/]+$", _dir(path))
            or re.search(r"^package main\b", texts.get(path, ""), re.M)
        ):
            found.add(_dir(path) + "/" if "/" in path else path)
        if path.endswith(".rs") and re.search(r"(^|/)src/(main\.rs|bin/[^/]+\.rs)$", path):
            found.add(path)
    for path, text in texts.items():
        name = _name(path)
        if name == "pyproject.toml":
            found.update(_pyproject_scripts(text, index))
        elif name == "setup.cfg":
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read_string(text)
                section = parser["options.entry_points"]
            except (configparser.Error, KeyError):
                continue
            for key in ("console_scripts", "gui_scripts"):
                for line in section.get(key, "").splitlines():
                    if "=" in line:
                        script, target = line.split("=", 1)
                        found.add(_script_target(script.strip(), target, index))
        elif name == "setup.py" and "_scripts" in text:
            for script, target in re.findall(
                r"""['"]\s*([\w.-]+)\s*=\s*([\w.]+:[\w.]+)\s*['"]""", text
            ):
                found.add(_script_target(script, target, index))
        elif name == "package.json":
            found.update(_package_json_entries(path, text, files))
    return sorted(found)


def _pyproject_scripts(text: str, index: _PyIndex) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    project = data.get("project", {})
    tables = [project.get("scripts"), project.get("gui-scripts")]
    tables.append(data.get("tool", {}).get("poetry", {}).get("scripts"))
    out = []
    for table in tables:
        for script, target in (table or {}).items() if isinstance(table, dict) else ():
            if isinstance(target, dict):  # poetry's {reference = "...", type = "console"}
                target = target.get("reference", "")
            if isinstance(target, str):
                out.append(_script_target(script, target, index))
    return out


def _package_json_entries(path: str, text: str, files: set[str]) -> list[str]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    entries: list[tuple[str, Any]] = []
    bin_ = data.get("bin")
    if isinstance(bin_, str):
        entries.append((str(data.get("name", "bin")), bin_))
    elif isinstance(bin_, dict):
        entries.extend(sorted(bin_.items()))
    if isinstance(data.get("main"), str):
        entries.append(("main", data["main"]))
    out = []
    for name, target in entries:
        if isinstance(target, str):
            resolved = _js_resolve("./" + target.removeprefix("./"), _dir(path), files)
            out.append(resolved or f"{name} = {target}")
    return out


# --- named modules --------------------------------------------------------------------


def _named(request: str, modules: list[str], index: _PyIndex) -> list[str]:
    """Modules and directories whose name or path the request mentions."""
    dirs = sorted({"/".join(m.split("/")[:i]) for m in modules for i in range(1, m.count("/") + 1)})
    found: set[str] = set()
    # Explicit paths ("src/app/auth.py", "dateutil/parser/") and dotted names ("app.auth")
    # name exactly one thing; their parts are not also taken as words.
    words_text = request
    for token in re.findall(r"[\w.-]*\w(?:/[\w.-]+)*/?", request):
        bare = token.rstrip("/")
        if "/" not in bare and "." not in bare:
            continue
        hits = {m for m in modules if m == bare or m.endswith("/" + bare)}
        hits |= {d + "/" for d in dirs if d == bare or d.endswith("/" + bare)}
        if not hits and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", bare):
            hits |= {f for f in [index.by_name.get(bare)] if f}
        if hits:
            found |= hits
            words_text = words_text.replace(token, " ")
    words = re.findall(r"[a-z0-9_]+", words_text.lower())
    keys = set(words) | {f"{a}_{b}" for a, b in itertools.pairwise(words)}
    keys |= {w[:-1] for w in keys if w.endswith("s") and len(w) > 3}
    keys = {k for k in keys if k not in _STOPWORDS and not _is_task_word(k) and not k.isdigit()}
    found |= {d + "/" for d in dirs if _name(d).lower() in keys}
    found |= {
        m
        for m in modules
        if _stem(m).lower() in keys and _stem(m) != "__init__" and not is_test_file(m)
    }
    named_dirs = [d for d in found if d.endswith("/")]
    return sorted(p for p in found if not any(p != d and p.startswith(d) for d in named_dirs))


def _under(path: str, named: list[str]) -> bool:
    return any(path == n or (n.endswith("/") and path.startswith(n)) for n in named)


# --- coordination points --------------------------------------------------------------


def _coordination(
    modules: list[str],
    config_files: list[str],
    imports: dict[str, list[str]],
    texts: dict[str, str],
    named: list[str],
) -> tuple[list[str], list[str]]:
    """Return (coordination point lines, hotspot paths)."""
    importers: dict[str, set[str]] = {}
    for src, targets in imports.items():
        for t in targets:
            importers.setdefault(t, set()).add(src)
    lines: list[str] = []
    hotspots: list[str] = []

    for n in named:
        inside = [m for m in modules if m.startswith(n)] if n.endswith("/") else [n]
        users = {u for m in inside for u in importers.get(m, ()) if not _under(u, [n])}
        what = f"{len(inside)} modules inside, " if n.endswith("/") else ""
        lines.append(f"{n}: named by the request, {what}imported by {len(users)} modules")
    for m in modules:
        name, stem = _name(m), _stem(m)
        text = texts.get(m, "")
        # A substring test first: the regular expression is slow on large files.
        marked = any(marker in text for marker in _REGISTRATION_MARKERS)
        registrations = len(_REGISTRATION.findall(text)) if marked else 0
        if stem in ("__init__", "index") and imports.get(m):
            how = "re-exports from" if stem == "__init__" else "re-exports (barrel) from"
            lines.append(f"{m}: package {how} {len(imports[m])} modules")
        elif name == "conftest.py":
            lines.append(f"{m}: shared pytest fixtures for {_dir(m) or 'the repository'}/")
        elif stem in _REGISTRY_STEMS or registrations >= _REGISTRY_MIN:
            lines.append(f"{m}: registry ({registrations} registrations)")
        else:
            continue
        hotspots.append(m)
    for c in config_files:
        name = _name(c)
        why = _MANIFESTS.get(name) or ("locked dependency versions" if name in _LOCK_FILES else "")
        if not why and re.fullmatch(r"requirements[\w.-]*\.txt", name):
            why = "dependency list"
        if why:
            lines.append(f"{c}: {why}")
            hotspots.append(c)
    listed = set(hotspots) | set(named)
    busiest = sorted(
        ((len(users), m) for m, users in importers.items() if m not in listed),
        key=lambda item: (-item[0], item[1]),
    )
    lines += [f"{m}: imported by {n} modules" for n, m in busiest[:_FAN_IN_TOP] if n >= _FAN_IN_MIN]
    return lines, sorted(hotspots)


# --- the work -------------------------------------------------------------------------


def _documentation(files: list[str]) -> list[str]:
    return [
        f
        for f in files
        if f.lower().endswith((".md", ".rst", ".adoc", ".txt"))
        and (f.split("/")[0] in ("docs", "doc") or "/" not in f)
        and not _is_config(f)
    ]


def work_set(analysis: RepoAnalysis, request: str) -> WorkSet:
    """Decide which files the request's objectives change, and in which order.

    Rules (the heuristic planner splits ``files`` into objectives and gives ``hotspots``
    to one integration objective in the last wave):

    - **Codebase-wide** when the request says so ("across the codebase", "everywhere",
      "whole/entire codebase", "project-wide", "all files/modules", "every file"), or it
      names nothing and says "all"/"every"/"each" or the task is mechanical (refactor,
      docs, perf, test). Then ``files`` is every module (for docs also the documentation:
      ``*.md``/``*.rst``/``*.adoc``/``*.txt`` at the top or under ``docs/``), and the
      hotspots taken are all of them except the dependency manifests and lock files.
    - **Focused** when the request names modules: the named modules (every module under a
      named directory), plus, for feature, bug, security, reset and refactor, the modules
      that import them (also through a package ``__init__``) and their tests (test files
      that import them or are named ``test_<stem>``/``<stem>_test``); for docs, perf and
      test only the named modules and their tests. Hotspots taken: the named ones; for a
      feature also the package ``__init__``/``index`` re-export files above the work and
      the registries that import it; for a test task the ``conftest.py`` files above the
      work's tests.
    - **Unplaced** when a feature, bug, security or reset request names nothing: every
      module, as one objective, since nothing says where the change goes.
    - The dependency manifests and lock files (pyproject.toml, setup.cfg, package.json,
      go.mod, requirements*.txt, lock files ...) are taken only when the request speaks of
      dependencies or packaging (depend*, requirement(s), packaging, pyproject, lock
      file, pin, install, bump, version(s), extras, entry points, console scripts, build
      system), or the task is a feature that brings a library (using, integrat*,
      librar*, sdk, third-party).
    - **Layered** (providers in earlier waves than their consumers) for feature, bug,
      security and reset, and for a focused refactor (a rename ripples to importers);
      codebase-wide mechanical work and focused docs/perf/test work is independent: every
      unit objective in wave 1. Only imports of ``core`` files order the work (through
      package ``__init__`` re-exports, see :func:`effective_imports`): the named
      modules (every file when codebase-wide or unplaced) change what they provide, and
      the modules that use them adapt, in parallel with each other.
    """
    lowered = request.lower()
    task = analysis.task_type
    hot = set(analysis.hotspots)
    manifests = {h for h in hot if language_of(h) is None}  # manifests and lock files
    wants_manifests = bool(_DEPENDENCY_WORDS.search(lowered)) or (
        task == "feature" and bool(_NEW_LIBRARY_WORDS.search(lowered))
    )
    named = analysis.named
    imports = effective_imports(analysis.imports)
    universe = list(analysis.modules)
    if task == "docs":
        universe = sorted({*universe, *_documentation(analysis.files)})
    wide = bool(_WIDE.search(lowered)) or (
        not named and (bool(_WIDE_WEAK.search(lowered)) or task in _MECHANICAL)
    )
    if wide or not named:
        files = core = universe
        taken = hot - manifests
        if wide:
            summary = f"codebase-wide {task}: every one of the {len(files)} source files"
        else:
            summary = (
                f"the request names no module, so one objective takes all {len(files)}"
                " source files (a finer split needs a plan file or the agent planner)"
            )
    else:
        core = sorted(m for m in universe if _under(m, named))
        stems = {_stem(n.rstrip("/")) for n in named}
        tests = {
            m
            for m in analysis.modules
            if is_test_file(m)
            and (
                set(core).intersection(imports.get(m, ()))
                or re.sub(r"^test_|_test$|\.(test|spec)$", "", _stem(m)) in stems - {_stem(m)}
            )
        }
        users: set[str] = set()
        if task not in ("docs", "perf", "test"):
            users = {s for s, targets in imports.items() if set(core) & set(targets)}
        files = sorted({*core, *tests, *users})
        taken = {h for h in hot if _under(h, named)}
        work_dirs = {_dir(f) for f in files}
        for h in sorted(hot - manifests):
            above = any(_contains(_dir(h), d) for d in work_dirs)
            if task == "feature" and _stem(h) in ("__init__", "index") and above:
                taken.add(h)  # the package exports the new API
            elif (
                task == "feature"
                and _name(h) != "conftest.py"
                and set(analysis.imports.get(h, ())) & set(files)
            ):
                taken.add(h)  # a registry (or package) that imports the work
            elif task == "test" and _name(h) == "conftest.py" and above:
                taken.add(h)
        summary = (
            f"focused {task} on {', '.join(named)}: {len(core)} named source file(s)"
            f" and {len(files) - len(core)} that import or test them"
        )
    if wants_manifests:
        taken |= manifests
    return WorkSet(
        files=sorted(set(files) - hot),
        core=sorted(set(core) - hot),
        universe=universe,
        hotspots=sorted(taken),
        wide=wide,
        layered=task in _LAYERED or (task == "refactor" and not wide),
        one_objective=not wide and not named,
        summary=summary,
    )


def effective_imports(imports: dict[str, list[str]]) -> dict[str, list[str]]:
    """Return the import graph where importing a package ``__init__`` (or a JS ``index``
    barrel) also counts as importing what it imports, transitively.

    ``from shop import login`` resolves to ``shop/__init__.py``, but the code it uses is
    in ``shop/auth.py``, which that ``__init__`` re-exports; whoever changes auth.py
    changes what the importer gets.
    """
    out: dict[str, list[str]] = {}
    for src, targets in imports.items():
        found: set[str] = set()
        todo = list(targets)
        while todo:
            target = todo.pop()
            if target in found or target == src:
                continue
            found.add(target)
            if _stem(target) in ("__init__", "index"):
                todo += imports.get(target, ())
        out[src] = sorted(found)
    return out


def _contains(outer: str, inner: str) -> bool:
    """Whether directory ``inner`` is ``outer`` or below it ("" is the root)."""
    return not outer or inner == outer or inner.startswith(outer + "/")


def _strategy(work: WorkSet) -> str:
    parts = [work.summary[0].upper() + work.summary[1:] + "."]
    if work.one_objective:
        parts.append("Nothing of it runs in parallel.")
    elif work.layered:
        parts.append(
            "They are grouped by package directory into units; a unit runs one wave after"
            " the units whose changed modules it imports (a provider before its consumers,"
            " with a contract for each such edge; consumers adapt in parallel), an import"
            " cycle between units makes them one unit, and the units of a wave run in"
            " parallel, one objective per worker, balanced by size."
        )
    else:
        parts.append(
            "The work is independent per file, so they are grouped by package directory"
            " into units that all run in parallel in wave 1, one objective per worker,"
            " balanced by size."
        )
    if work.hotspots:
        shown = ", ".join(work.hotspots[:6]) + (" ..." if len(work.hotspots) > 6 else "")
        parts.append(
            f"The {len(work.hotspots)} shared file(s) ({shown}) are changed last, by one"
            " integration objective that depends on all the others; no other objective"
            " may change them."
        )
    else:
        parts.append("No shared file needs changing, so there is no integration objective.")
    return " ".join(parts)


# --- analyse --------------------------------------------------------------------------


def analyse(repo: Path, request: str, *, ref: str = "HEAD") -> RepoAnalysis:
    """Analyse the repository at ``ref`` for ``request`` (the ANALYTIC phase).

    Reads the files of the commit, not the working tree: one ``git ls-tree`` and one
    ``git cat-file --batch`` for the sources and manifests of at most
    :data:`MAX_PARSE_BYTES` bytes. A file that is binary, larger than that, or does not
    parse is listed but contributes no imports (never an error). The same commit and
    request always give the same result.

    Imports: Python by :mod:`ast` (``import a.b``, ``from a import b``, relative
    imports), resolved to this repository's modules by their package names (the top
    package found by walking up ``__init__.py`` files), by their path from the root and
    from ``src/``/``lib/``; JS/TS by ``import ... from``, ``import "x"``, ``export ... from``,
    ``require("x")`` and ``import("x")`` with a relative specifier, resolved like a
    bundler (exact, + extension, ``/index`` + extension, ``./x.js`` -> ``x.ts``). Package
    names (``react``) and tsconfig path aliases are not followed.

    Coordination points, one ``"path: why"`` line each: the named modules (with how many
    modules import them), package ``__init__.py``/``index.js`` files that re-export
    internal modules, ``conftest.py`` files, registries (stem routes, urls, registry,
    registries, plugins, router(s), or at least 5 registrations such as ``@app.route``,
    ``register(``, ``path(``), dependency manifests and lock files, and the modules
    imported by at least 5 others (the 10 most imported). All but the named and the
    most imported are shared files: the ``hotspots``.

    Args:
        repo: the repository (any directory inside it; paths are from its top).
        request: the owner's request, free text.
        ref: branch, tag or commit to analyse.

    Returns:
        the analysis, every list sorted.

    Raises:
        ConfigError: ``repo`` does not exist or is not a git repository, it has no
            commits, ``ref`` names no commit, or git is missing; one line with the fix.
    """
    repo = Path(repo)
    commit = _resolve(repo, ref)
    files, blobs = _tree(repo, commit)
    modules = [f for f in files if _is_module(f)]
    wanted = [
        f
        for f in files
        if (f in modules and language_of(f) in ("python", "javascript", "typescript", "go"))
        or _name(f) in ("pyproject.toml", "setup.cfg", "package.json")
    ]
    texts = _read(repo, blobs, wanted)
    py_files = [m for m in modules if language_of(m) == "python"]
    index = _PyIndex(py_files)
    module_set = set(modules)
    facts: dict[str, _PyFacts] = {}
    imports: dict[str, list[str]] = {}
    for path in modules:
        text = texts.get(path)
        if text is None:
            continue
        targets: list[str] = []
        if path in index.files:
            py = _py_facts(text, path)
            if py is None:
                continue
            facts[path] = py
            for level, module, names in py.imports:
                targets += index.resolve(path, level, module, names)
        elif path.endswith(_JS_EXTS):
            targets = _js_imports(path, text, module_set)
        targets = sorted(set(targets) - {path})
        if targets:
            imports[path] = targets
    config_files = [f for f in files if _is_config(f)]
    named = _named(request, modules, index)
    coordination, hotspots = _coordination(modules, config_files, imports, texts, named)
    analysis = RepoAnalysis(
        files=files,
        modules=modules,
        entry_points=_entry_points(modules, texts, facts, index, set(files)),
        test_dirs=_test_dirs([m for m in modules if is_test_file(m)]),
        config_files=config_files,
        imports=imports,
        task_type=task_type_of(request),
        named=named,
        coordination_points=coordination,
        hotspots=hotspots,
        scope_strategy="",
        sizes={f: size for f, (_, size) in sorted(blobs.items())},
        commit=commit,
    )
    analysis.scope_strategy = _strategy(work_set(analysis, request))
    return analysis
