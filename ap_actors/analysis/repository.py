"""Reading a repository at one commit, and telling what its paths are.

The tracked files of a commit come from one ``git ls-tree -r`` (paths, blob ids, sizes)
and the text of those to parse from one ``git cat-file --batch`` (at most
:data:`MAX_PARSE_BYTES` each, binary files left out); the working tree is never read.

A path is a source file ("module") by its extension (:data:`LANGUAGES`) unless it is
minified or under a vendored folder (node_modules, bower_components, vendor, .venv,
venv, site-packages); a test when it is in a tests/test/__tests__/spec(s) folder or
named so (``test_*.py``, ``*_test.py``, ``conftest.py``, ``*_test.go``,
``*.test.js``/``*.spec.ts`` ...); a config file by its name (build, tool, CI and lock
files, ``.github/workflows/``).
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ap_actors.errors import ConfigError
from ap_actors.git import GitError, run_git

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
# Third-party code checked into a repository is not the project's to change.
_VENDORED_DIRS = {"node_modules", "bower_components", "vendor", ".venv", "venv", "site-packages"}
_TEST_DIR_NAMES = {"tests", "test", "__tests__", "spec", "specs"}
_TEST_FILE = re.compile(
    r"^(test_.+\.py|.+_test\.py|conftest\.py|.+_test\.go|.+\.(test|spec)\.[cm]?[jt]sx?)$"
)
LOCK_FILES = {
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
MANIFESTS = {
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
    *LOCK_FILES,
    *MANIFESTS,
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


# --- reading the commit ---------------------------------------------------------------


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git *args`` in ``repo`` (:func:`ap_actors.git.run_git`), whatever its status."""
    try:
        return run_git(repo, args, input=stdin)
    except GitError as e:  # analyse() raises ConfigError; the repository is checked first.
        fix = "install git" if repo.is_dir() else "pass the path of a git repository"
        raise ConfigError(f"{e}; {fix}") from e


def resolve_ref(repo: Path, ref: str) -> str:
    """Return the full sha of the commit ``ref`` names in ``repo``.

    Raises:
        ConfigError: ``repo`` does not exist or is not a git repository, it has no
            commits, ``ref`` names no commit, or git is missing; one line with the fix.
    """
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


def list_tree(repo: Path, commit: str) -> tuple[list[str], dict[str, tuple[str, int]]]:
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


def read_texts(
    repo: Path, blobs: dict[str, tuple[str, int]], paths: Iterable[str]
) -> dict[str, str]:
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


def dir_of(path: str) -> str:
    """The folder of a repository path ("" at the top)."""
    return posixpath.dirname(path)


def name_of(path: str) -> str:
    """The file name of a repository path."""
    return posixpath.basename(path)


def stem_of(path: str) -> str:
    """The file name without its extension (``x.d.ts`` -> ``x``)."""
    name = name_of(path)
    return name[: -len(".d.ts")] if name.endswith(".d.ts") else posixpath.splitext(name)[0]


def language_of(path: str) -> str | None:
    """Return the language of a source file by its extension ("python" ...), else None."""
    return LANGUAGES.get(posixpath.splitext(path)[1])


def is_test_file(path: str) -> bool:
    """Whether a path is a test: in a tests/test/__tests__/spec(s) folder, or named so."""
    return bool(_TEST_FILE.match(name_of(path))) or any(
        part in _TEST_DIR_NAMES for part in path.split("/")[:-1]
    )


def is_module(path: str) -> bool:
    """Whether a path is a source file: by language, not minified, not vendored."""
    if language_of(path) is None or path.endswith((".min.js", ".min.mjs")):
        return False
    return not any(part in _VENDORED_DIRS for part in path.split("/")[:-1])


def is_config(path: str) -> bool:
    """Whether a path is a build, tool, CI or lock file."""
    name = name_of(path)
    if name in _CONFIG_NAMES or _CONFIG_NAME.match(name):
        return True
    return path.startswith(".github/workflows/") or path == ".circleci/config.yml"


def find_test_dirs(modules: list[str]) -> list[str]:
    """The outermost test folders (``"tests/"``) of the test files; a top-level test file
    stands for itself."""
    found: set[str] = set()
    for path in modules:
        parts = path.split("/")
        named = [i for i, part in enumerate(parts[:-1]) if part in _TEST_DIR_NAMES]
        if named:
            found.add("/".join(parts[: named[0] + 1]) + "/")
        elif _TEST_FILE.match(parts[-1]):
            found.add(dir_of(path) + "/" if len(parts) > 1 else path)
    # An outer test folder holds the inner ones.
    return sorted(d for d in found if not any(o != d and d.startswith(o) for o in found))
