"""The ANALYTIC phase: what a repository holds at one commit, and what a request asks of it.

:func:`analyse` reads the tracked files of one commit (one ``git ls-tree`` and one
``git cat-file --batch``), never the working tree, so its result depends only on the
commit and the request. It lists the modules, entry points, test folders and config
files, builds the internal import graph, finds the files the request names, the
coordination points (files that several parts of the work depend on) and the hotspots
among them (shared files that only one objective, the last, may change), and states the
scope strategy that the heuristic planner (:mod:`ap_actors.planning`) then carries out.
:func:`work_set` is that strategy as data; both phases use it.

One module per concept: :mod:`~ap_actors.analysis.repository` (reading the commit,
classifying paths), :mod:`~ap_actors.analysis.tasktype` (the task-type rules),
:mod:`~ap_actors.analysis.imports` (the import graph),
:mod:`~ap_actors.analysis.entrypoints`, :mod:`~ap_actors.analysis.coordination` (named
modules, coordination points, hotspots), :mod:`~ap_actors.analysis.worksets` (the scope
strategy) and :mod:`~ap_actors.analysis.model` (:class:`RepoAnalysis`). The public API
is what this package exports.

Source: seed 001, "PHASE 1: ANALYTIC" (structure, task type, coordination points, scope
strategy); DESIGN.md, "Events" (``analysis_completed``).
"""

from __future__ import annotations

from pathlib import Path

from ap_actors.analysis.coordination import find_coordination_points, named_paths
from ap_actors.analysis.entrypoints import find_entry_points
from ap_actors.analysis.imports import (
    JS_EXTS,
    PyFacts,
    PyIndex,
    effective_imports,
    js_imports,
    py_facts,
)
from ap_actors.analysis.model import RepoAnalysis
from ap_actors.analysis.repository import (
    LANGUAGES,
    MAX_PARSE_BYTES,
    find_test_dirs,
    is_config,
    is_module,
    is_test_file,
    language_of,
    list_tree,
    name_of,
    read_texts,
    resolve_ref,
)
from ap_actors.analysis.tasktype import task_type_of
from ap_actors.analysis.worksets import WorkSet, describe_strategy, work_set

__all__ = [
    "LANGUAGES",
    "MAX_PARSE_BYTES",
    "RepoAnalysis",
    "WorkSet",
    "analyse",
    "effective_imports",
    "is_test_file",
    "language_of",
    "task_type_of",
    "work_set",
]


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
    commit = resolve_ref(repo, ref)
    files, blobs = list_tree(repo, commit)
    modules = [f for f in files if is_module(f)]
    wanted = [
        f
        for f in files
        if (f in modules and language_of(f) in ("python", "javascript", "typescript", "go"))
        or name_of(f) in ("pyproject.toml", "setup.cfg", "package.json")
    ]
    texts = read_texts(repo, blobs, wanted)
    py_files = [m for m in modules if language_of(m) == "python"]
    index = PyIndex(py_files)
    module_set = set(modules)
    facts: dict[str, PyFacts] = {}
    imports: dict[str, list[str]] = {}
    for path in modules:
        text = texts.get(path)
        if text is None:
            continue
        targets: list[str] = []
        if path in index.files:
            py = py_facts(text, path)
            if py is None:
                continue
            facts[path] = py
            for level, module, names in py.imports:
                targets += index.resolve(path, level, module, names)
        elif path.endswith(JS_EXTS):
            targets = js_imports(path, text, module_set)
        targets = sorted(set(targets) - {path})
        if targets:
            imports[path] = targets
    config_files = [f for f in files if is_config(f)]
    named = named_paths(request, modules, index)
    coordination, hotspots = find_coordination_points(modules, config_files, imports, texts, named)
    analysis = RepoAnalysis(
        files=files,
        modules=modules,
        entry_points=find_entry_points(modules, texts, facts, index, set(files)),
        test_dirs=find_test_dirs([m for m in modules if is_test_file(m)]),
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
    analysis.scope_strategy = describe_strategy(work_set(analysis, request))
    return analysis
