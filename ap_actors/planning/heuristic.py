"""The heuristic planner: a plan without any agent, from the analysis's scope strategy.

:func:`heuristic_plan` documents the rules; :mod:`ap_actors.planning.units` makes the
units of work and their waves.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from ap_actors.analysis import RepoAnalysis, WorkSet, effective_imports, language_of, work_set
from ap_actors.events import Contract, Objective
from ap_actors.planning.model import Plan
from ap_actors.planning.units import (
    Unit,
    UnitTree,
    import_edges,
    merge_cycles,
    merge_units,
    pack_units,
    scope_pattern,
    waves_of,
)
from ap_actors.team import Team

_TITLES = {
    "feature": "Feature",
    "bug": "Fix",
    "security": "Security",
    "perf": "Performance",
    "test": "Tests",
    "docs": "Docs",
    "reset": "Rewrite",
    "refactor": "Refactor",
}


def _label(patterns: Iterable[str]) -> str:
    shown = sorted(patterns)
    more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
    return shown[0].lstrip("/") + more


def _capabilities(files: Iterable[str], team: Team) -> list[str]:
    # Only what some worker offers: a plan must never ask for what no one has.
    offered = {c for w in team.workers for c in w.capabilities}
    return sorted({lang for f in files if (lang := language_of(f))} & offered)


def _forbid(patterns: Iterable[str], shared: list[str]) -> list[str]:
    patterns = list(patterns)
    if patterns == ["*"]:
        return [".git/", *(scope_pattern(h, False) for h in shared)]
    folders = [p.strip("/") + "/" for p in patterns if p.endswith("/")]
    return [".git/", *(scope_pattern(h, False) for h in shared if h.startswith(tuple(folders)))]


def _integration_title(hotspots: list[str]) -> str:
    def kind(path: str) -> str:
        name = posixpath.basename(path)
        if name.startswith(("__init__.", "index.")):
            return "package exports"
        if name == "conftest.py":
            return "test fixtures"
        return "registries" if language_of(path) else "dependency metadata"

    order = ["package exports", "registries", "test fixtures", "dependency metadata"]
    found = {kind(h) for h in hotspots}
    return "Integration: " + ", ".join(k for k in order if k in found)


def heuristic_plan(analysis: RepoAnalysis, request: str, team: Team) -> Plan:
    """Make a plan without any agent: deterministic for the same analysis, request, team.

    1. **What**: :func:`ap_actors.analysis.work_set` (its docstring has the rules): the
       work files, the hotspots to change, codebase-wide or focused, layered or not.
    2. **Units**: the work files as a folder tree. A folder is a unit (pattern ``dir/``)
       only if every file of its kind under it is work or a hotspot, else its files and
       subfolders are; top-level names are anchored (``/setup.py``, ``/tests/``). The
       largest folder unit is split into its children while there are fewer units than
       workers or it is larger than total / workers (bytes).
    3. **Waves**: layered work merges import cycles between units into one unit and puts
       each unit one wave after the latest unit whose core files it imports (providers
       first; see ``WorkSet.core``); independent work puts every unit in wave 1.
    4. **Objectives**: the units of each wave are packed into at most ``len(team.workers)``
       (at least 1; exactly 1 when the request names nothing to place the work) objectives,
       longest first into the lightest, ids ``obj-1``, ``obj-2`` ... in wave order, then
       by first pattern. ``depends_on``: the objectives it imports from; ``worker``: the
       only worker of a one-worker team, else "" (the scheduler picks);
       ``capabilities``: the languages of its files that some worker offers;
       ``scope_forbid``: ``.git/`` and the hotspots inside its folders.
    5. **Integration**: when hotspots are to change, one last objective touches exactly
       them, one wave after all others, depending on all of them. A repository without
       any source file gets one objective touching ``*`` (everything but ``.git/`` and
       the hotspots).
    6. **Contracts**: one per import edge between objectives,
       ``"<provider file> API used by <consumer>"``.

    Returns:
        the plan; :func:`check_plan` passes on it and no two objectives of a wave overlap.
    """
    work = work_set(analysis, request)
    imports = effective_imports(analysis.imports)
    workers = 1 if work.one_objective else max(1, len(team.workers))
    units = UnitTree(work, set(analysis.hotspots), analysis.sizes).units(workers)
    core = set(work.core)
    if not units and not work.hotspots:
        # No source file at all (say a repository of documents): one objective may
        # change anything but the shared files, and says so.
        units = [Unit(patterns=("*",), files=(), size=0)]
    if work.one_objective and units:
        units, waves = [merge_units(units)], [1]
    elif work.layered:
        units = merge_cycles(units, import_edges(units, imports, core))
        waves = waves_of(import_edges(units, imports, core))
    else:
        waves = [1] * len(units)
    groups: list[tuple[int, Unit]] = []
    for wave in sorted(set(waves)):
        members = [u for u, w in zip(units, waves, strict=True) if w == wave]
        groups += [(wave, merge_units(b)) for b in pack_units(members, workers)]
    groups.sort(key=lambda g: (g[0], g[1].key))
    ids = [f"obj-{i}" for i in range(1, len(groups) + 1)]
    # Independent work has no order; layered work's edges all point to earlier waves.
    edges = import_edges([u for _, u in groups], imports, core) if work.layered else []
    edges = edges or [set() for _ in groups]
    users = [[j for j, e in enumerate(edges) if i in e] for i in range(len(groups))]
    only = team.workers[0].id if len(team.workers) == 1 else ""
    verb = _TITLES[analysis.task_type]
    integration = f"obj-{len(groups) + 1}" if work.hotspots else ""
    objectives = []
    for i, (wave, unit) in enumerate(groups):
        forbid = _forbid(unit.patterns, analysis.hotspots)
        objectives.append(
            Objective(
                id=ids[i],
                title=f"{verb}: {_label(unit.patterns)}",
                description=_description(
                    request,
                    work,
                    unit,
                    [ids[j] for j in sorted(edges[i])],
                    [ids[j] for j in users[i]],
                    forbid[1:],
                    integration,
                ),
                wave=wave,
                scope_touch=list(unit.patterns),
                scope_forbid=forbid,
                worker=only,
                depends_on=[ids[j] for j in sorted(edges[i])],
                capabilities=_capabilities(unit.files, team),
            )
        )
    if work.hotspots:
        objectives.append(
            Objective(
                id=integration,
                title=_integration_title(work.hotspots),
                description=_integration_description(request, work.hotspots, ids),
                wave=max(waves, default=0) + 1,
                scope_touch=[scope_pattern(h, False) for h in work.hotspots],
                scope_forbid=[".git/"],
                worker=only,
                depends_on=list(ids),
                capabilities=_capabilities(work.hotspots, team),
            )
        )
    contracts = [
        _contract(groups, ids, imports, core, provider=j, consumer=i)
        for i in range(len(groups))
        for j in sorted(edges[i])
    ]
    return Plan(objectives=objectives, contracts=contracts)


def _description(
    request: str,
    work: WorkSet,
    unit: Unit,
    providers: list[str],
    consumers: list[str],
    forbidden: list[str],
    integration: str,
) -> str:
    lines = [request.strip(), ""]
    where = ", ".join(p.lstrip("/") for p in unit.patterns[:12])
    where += f" and {len(unit.patterns) - 12} more" if len(unit.patterns) > 12 else ""
    if unit.patterns == ("*",):
        lines.append(
            "The repository has no source file this planner recognises, so this objective"
            " may change any file except the shared ones."
        )
    elif work.one_objective:
        lines.append(
            "The request names no module of the repository, so this objective owns every"
            f" source file ({len(unit.files)} files: {where}); find where the change goes."
        )
    else:
        lines.append(
            f"Do this for {where} ({len(unit.files)} files); other objectives do the same"
            " for the rest of the repository, so change nothing outside this scope."
        )
    if providers:
        lines.append(
            f"These files import from {', '.join(providers)}, which finish before this"
            " objective starts: use what they provide now."
        )
    if consumers:
        lines.append(
            f"{', '.join(consumers)} import from these files and run after this objective:"
            " keep the names they use working, or say in your summary what changed."
        )
    if forbidden:
        shared = ", ".join(f.lstrip("/") for f in forbidden)
        after = f"; {integration} changes them last" if integration else ""
        lines.append(f"Do not change the shared files {shared}{after}.")
    return "\n".join(lines)


def _integration_description(request: str, hotspots: list[str], ids: list[str]) -> str:
    after = f"after {', '.join(ids)} are merged, " if ids else ""
    return (
        f"{request.strip()}\n\nIntegration: {after}change the shared files"
        f" {', '.join(hotspots)} to match the rest of the work: package exports for new or"
        " renamed names, registrations of new routes or plugins, shared test fixtures,"
        " and dependencies that the new code needs."
    )


def _contract(
    groups: list[tuple[int, Unit]],
    ids: list[str],
    imports: dict[str, list[str]],
    core: set[str],
    *,
    provider: int,
    consumer: int,
) -> Contract:
    provided = set(groups[provider][1].files) & core
    pairs = sorted(
        (f, t) for f in groups[consumer][1].files for t in imports.get(f, ()) if t in provided
    )
    counts: dict[str, int] = {}
    for _, t in pairs:
        counts[t] = counts.get(t, 0) + 1
    main = min(counts, key=lambda t: (-counts[t], t))
    more = f" (+{len(counts) - 1} more)" if len(counts) > 1 else ""
    shown = "; ".join(f"{f} -> {t}" for f, t in pairs[:10])
    shown += f"; ... {len(pairs) - 10} more" if len(pairs) > 10 else ""
    return Contract(
        name=f"{main}{more} API used by {_label(groups[consumer][1].patterns)}",
        provider=ids[provider],
        consumers=[ids[consumer]],
        description=(
            f"{ids[consumer]} imports from {ids[provider]}: {shown}. {ids[provider]} keeps"
            f" these importable (or reports what changed); {ids[consumer]} adapts to it."
        ),
    )
