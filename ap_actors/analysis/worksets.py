"""The scope strategy as data: which files a request's objectives change, in which order.

:func:`work_set` (its docstring has the rules) serves both phases: the analysis states
it in prose (:func:`describe_strategy`), the heuristic planner
(:mod:`ap_actors.planning`) carries it out.
"""

from __future__ import annotations

import re

import msgspec

from ap_actors.analysis.coordination import is_under
from ap_actors.analysis.imports import effective_imports
from ap_actors.analysis.model import RepoAnalysis
from ap_actors.analysis.repository import (
    dir_of,
    is_config,
    is_test_file,
    language_of,
    name_of,
    stem_of,
)
from ap_actors.events import TaskType

_MECHANICAL: set[TaskType] = {"refactor", "docs", "perf", "test"}
_LAYERED: set[TaskType] = {"feature", "bug", "security", "reset"}

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


def _documentation(files: list[str]) -> list[str]:
    return [
        f
        for f in files
        if f.lower().endswith((".md", ".rst", ".adoc", ".txt"))
        and (f.split("/")[0] in ("docs", "doc") or "/" not in f)
        and not is_config(f)
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
        core = sorted(m for m in universe if is_under(m, named))
        stems = {stem_of(n.rstrip("/")) for n in named}
        tests = {
            m
            for m in analysis.modules
            if is_test_file(m)
            and (
                set(core).intersection(imports.get(m, ()))
                or re.sub(r"^test_|_test$|\.(test|spec)$", "", stem_of(m)) in stems - {stem_of(m)}
            )
        }
        users: set[str] = set()
        if task not in ("docs", "perf", "test"):
            users = {s for s, targets in imports.items() if set(core) & set(targets)}
        files = sorted({*core, *tests, *users})
        taken = {h for h in hot if is_under(h, named)}
        work_dirs = {dir_of(f) for f in files}
        for h in sorted(hot - manifests):
            above = any(_contains(dir_of(h), d) for d in work_dirs)
            if task == "feature" and stem_of(h) in ("__init__", "index") and above:
                taken.add(h)  # the package exports the new API
            elif (
                task == "feature"
                and name_of(h) != "conftest.py"
                and set(analysis.imports.get(h, ())) & set(files)
            ):
                taken.add(h)  # a registry (or package) that imports the work
            elif task == "test" and name_of(h) == "conftest.py" and above:
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


def _contains(outer: str, inner: str) -> bool:
    """Whether directory ``inner`` is ``outer`` or below it ("" is the root)."""
    return not outer or inner == outer or inner.startswith(outer + "/")


def describe_strategy(work: WorkSet) -> str:
    """The scope strategy in prose, one paragraph (``RepoAnalysis.scope_strategy``)."""
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
