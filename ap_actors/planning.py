"""The PLANNING phase: objectives with exclusive scopes, grouped into waves, and contracts.

A plan comes from one of three places and is checked the same way (:func:`check_plan`):

- :func:`heuristic_plan`, the default: offline and deterministic, it carries out the
  scope strategy of the analysis (:func:`ap_actors.analysis.work_set`);
- :func:`load_plan_file`, the owner's ``--plan plan.toml`` or ``plan.json``;
- :func:`agent_plan`, a coding-agent CLI asked with :func:`plan_prompt`, whose answer
  :func:`parse_agent_plan` reads.

Whether two objectives of one wave can touch a common file is not checked here: that is
the scope validator's job (:func:`ap_actors.scope.find_conflicts`).

Source: seed 001, "PHASE 2: PLANNING" (objectives, waves, SCOPE_TOUCH / SCOPE_FORBID,
integration contracts); DESIGN.md, "Events" (``plan_proposed``) and "Scopes".
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import posixpath
import re
import signal
import subprocess
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from ap_actors.analysis import (
    RepoAnalysis,
    WorkSet,
    effective_imports,
    language_of,
    work_set,
)
from ap_actors.errors import ConfigError, ScopeError
from ap_actors.events import Contract, Objective
from ap_actors.scope import check_pattern
from ap_actors.team import Team


class Plan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A plan: objectives (each with its wave and scopes) and integration contracts."""

    objectives: list[Objective]  # In plan order (ids obj-1, obj-2 ... for generated plans).
    contracts: list[Contract] = []  # Interfaces one objective provides to others.


class PlanError(ConfigError):
    """A plan is invalid, or no plan could be made.

    The message is one line, ``FILE:LINE:COL: what is wrong; how to fix`` when the plan
    comes from a file, else ``what is wrong; how to fix``.

    Attributes:
        file: the plan file, or None.
        line: 1-based line of the offending key or table, or None.
        column: 1-based column, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.file, self.line, self.column = file, line, column


KeyPath: TypeAlias = tuple[str | int, ...]
"""A place in a plan: ``("objectives", 1, "wave")`` is msgspec's ``$.objectives[1].wave``."""

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FIELDS = {
    "objectives": [f.name for f in msgspec.structs.fields(Objective)],
    "contracts": [f.name for f in msgspec.structs.fields(Contract)],
}

# --- the heuristic planner ------------------------------------------------------------

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


class _Unit(msgspec.Struct, frozen=True):
    """Files that stay together: one folder (``dir/``) or one file, or a merged cycle."""

    patterns: tuple[str, ...]  # Its scope_touch patterns.
    files: tuple[str, ...]  # The work files it covers, sorted.
    size: int  # Bytes of those files.

    @property
    def key(self) -> str:
        return self.patterns[0]


def _pattern(path: str, is_dir: bool) -> str:
    # Without a slash before the end a gitignore pattern matches at any depth, so a
    # top-level name is anchored ("/setup.py", "/tests/"); "a/b.py" already is.
    text = path + "/" if is_dir else path
    return text if "/" in path else "/" + text


class _Tree:
    """The work files as a folder tree, split into units for ``n`` objectives."""

    def __init__(self, work: WorkSet, shared: set[str], sizes: dict[str, int]) -> None:
        self.files = sorted(work.files)
        self.sizes = sizes
        work_files = set(work.files)
        # A folder may be taken whole only if nothing under it belongs to no one.
        self.foreign = sorted(f for f in work.universe if f not in work_files and f not in shared)

    @staticmethod
    def _under(folder: str, paths: list[str]) -> list[str]:
        """The paths (sorted) below ``folder`` ("" is the root), by bisection."""
        if not folder:
            return paths
        # Every path below "a/b" sorts between "a/b/" and "a/b0" ("0" follows "/").
        low = bisect.bisect_left(paths, folder + "/")
        return paths[low : bisect.bisect_left(paths, folder + "0", low)]

    def _node(self, path: str, is_dir: bool) -> _Unit:
        files = tuple(self._under(path, self.files)) if is_dir else (path,)
        size = sum(self.sizes.get(f, 0) for f in files)
        return _Unit(patterns=(_pattern(path, is_dir),), files=files, size=size)

    def _children(self, folder: str) -> list[_Unit]:
        prefix = folder + "/" if folder else ""
        subdirs: set[str] = set()
        nodes = []
        for f in self._under(folder, self.files):
            rest = f[len(prefix) :]
            if "/" in rest:
                subdirs.add(prefix + rest.split("/")[0])
            else:
                nodes.append(self._node(f, False))
        for d in sorted(subdirs):
            # A folder holding files of no objective cannot be a pattern: go deeper.
            owned = not self._under(d, self.foreign)
            nodes += [self._node(d, True)] if owned else self._children(d)
        return nodes

    def _split(self, unit: _Unit) -> list[_Unit] | None:
        """A folder unit's children (through single-folder chains), or None if it is one."""
        kids = [unit]
        while len(kids) == 1 and kids[0].key.endswith("/"):
            kids = self._children(kids[0].key.strip("/"))
        return kids if len(kids) > 1 else None

    def units(self, n: int) -> list[_Unit]:
        """Top folders and files first; then the largest folder is split into its
        children while there are fewer units than ``n`` or it is larger than a fair
        share (total / n); a folder that cannot split is left whole."""
        units = self._children("")
        total = sum(u.size for u in units)
        whole: set[str] = set()  # folders found unsplittable
        while True:
            folders = [u for u in units if u.key.endswith("/") and u.key not in whole]
            if not folders:
                return units
            largest = min(folders, key=lambda u: (-u.size, u.key))
            if len(units) >= n and largest.size * n <= total:
                return units
            parts = self._split(largest)
            if parts is None:
                whole.add(largest.key)
                continue
            units = sorted([u for u in units if u is not largest] + parts, key=lambda u: u.key)


def _merge(units: list[_Unit]) -> _Unit:
    return _Unit(
        patterns=tuple(sorted(p for u in units for p in u.patterns)),
        files=tuple(sorted(f for u in units for f in u.files)),
        size=sum(u.size for u in units),
    )


def _edges(units: list[_Unit], imports: dict[str, list[str]], core: set[str]) -> list[set[int]]:
    """``edges[i]``: the units whose ``core`` files unit i imports (its providers)."""
    owner = {f: i for i, u in enumerate(units) for f in u.files if f in core}
    return [
        {owner[t] for f in u.files for t in imports.get(f, ()) if t in owner} - {i}
        for i, u in enumerate(units)
    ]


def _cycles_merged(units: list[_Unit], edges: list[set[int]]) -> list[_Unit]:
    """Merge every strongly connected set of units (an import cycle) into one unit."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    groups: list[list[int]] = []
    for root in range(len(units)):  # Tarjan's algorithm, iterative.
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return sorted((_merge([units[i] for i in g]) for g in groups), key=lambda u: u.key)


def _waves(edges: list[set[int]]) -> list[int]:
    """Wave of each unit of an acyclic unit graph: 1 + the latest wave it imports from."""
    wave: dict[int, int] = {}

    def of(i: int) -> int:
        todo = [i]
        while todo:
            j = todo[-1]
            missing = [k for k in edges[j] if k not in wave]
            if missing:
                todo += missing
                continue
            wave[j] = 1 + max((wave[k] for k in edges[j]), default=0)
            todo.pop()
        return wave[i]

    return [of(i) for i in range(len(edges))]


def _pack(units: list[_Unit], bins: int) -> list[list[_Unit]]:
    """Longest first into the lightest bin (then the one with fewest units, then the
    first): balanced by bytes, and no bin stays empty."""
    packed: list[list[_Unit]] = [[] for _ in range(min(bins, len(units)))]
    loads = [0] * len(packed)
    for unit in sorted(units, key=lambda u: (-u.size, u.key)):
        i = min(range(len(packed)), key=lambda b: (loads[b], len(packed[b]), b))
        packed[i].append(unit)
        loads[i] += unit.size
    return [sorted(b, key=lambda u: u.key) for b in packed]


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
        return [".git/", *(_pattern(h, False) for h in shared)]
    folders = [p.strip("/") + "/" for p in patterns if p.endswith("/")]
    return [".git/", *(_pattern(h, False) for h in shared if h.startswith(tuple(folders)))]


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
    units = _Tree(work, set(analysis.hotspots), analysis.sizes).units(workers)
    core = set(work.core)
    if not units and not work.hotspots:
        # No source file at all (say a repository of documents): one objective may
        # change anything but the shared files, and says so.
        units = [_Unit(patterns=("*",), files=(), size=0)]
    if work.one_objective and units:
        units, waves = [_merge(units)], [1]
    elif work.layered:
        units = _cycles_merged(units, _edges(units, imports, core))
        waves = _waves(_edges(units, imports, core))
    else:
        waves = [1] * len(units)
    groups: list[tuple[int, _Unit]] = []
    for wave in sorted(set(waves)):
        members = [u for u, w in zip(units, waves, strict=True) if w == wave]
        groups += [(wave, _merge(b)) for b in _pack(members, workers)]
    groups.sort(key=lambda g: (g[0], g[1].key))
    ids = [f"obj-{i}" for i in range(1, len(groups) + 1)]
    # Independent work has no order; layered work's edges all point to earlier waves.
    edges = _edges([u for _, u in groups], imports, core) if work.layered else []
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
                scope_touch=[_pattern(h, False) for h in work.hotspots],
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
    unit: _Unit,
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
    groups: list[tuple[int, _Unit]],
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


# --- checking a plan ------------------------------------------------------------------


class PlanSource:
    """The text a plan was read from, to point an error at the line of its key.

    Args:
        path: the file name shown in messages.
        text: the file's text.
        kind: ``"toml"`` (``[[objectives]]`` tables) or ``"json"``.
    """

    def __init__(self, path: str, text: str, kind: Literal["toml", "json"]) -> None:
        self.path, self.text, self.kind = path, text, kind
        self._json: dict[KeyPath, int] | None = None

    def locate(self, path: KeyPath) -> tuple[int, int]:
        """Return the 1-based (line, column) of ``path``, or of its nearest ancestor found.

        TOML: the key's line inside the n-th ``[[objectives]]``/``[[contracts]]`` table
        (an array element: its key's line), else the table's header, else line 1. JSON:
        the member's key, or the element's first character.
        """
        if self.kind == "json":
            if self._json is None:
                self._json = _json_positions(self.text)
            for n in range(len(path), -1, -1):
                if path[:n] in self._json:
                    return _line_col(self.text, self._json[path[:n]])
            return (1, 1)
        return _toml_locate(self.text.splitlines(), path)

    def error(self, path: KeyPath, message: str) -> PlanError:
        """Return a :class:`PlanError` ``FILE:LINE:COL: message`` for ``path``."""
        line, col = self.locate(path)
        return PlanError(
            f"{self.path}:{line}:{col}: {message}", file=self.path, line=line, column=col
        )


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_SCALAR = re.compile(r"[^,\]}\s]+")


def _json_positions(text: str) -> dict[KeyPath, int]:
    """Offsets of every member key and array element of valid JSON ``text``."""
    found: dict[KeyPath, int] = {}

    def skip(i: int) -> int:
        return _JSON_WS.match(text, i).end()  # type: ignore[union-attr]  # always matches

    def value(i: int, path: KeyPath) -> int:
        i = skip(i)
        found.setdefault(path, i)
        opening = text[i]
        if opening not in "{[":
            pattern = _JSON_STRING if opening == '"' else _JSON_SCALAR
            return pattern.match(text, i).end()  # type: ignore[union-attr]
        closing, i, n = ("}" if opening == "{" else "]"), skip(i + 1), 0
        while text[i] != closing:
            if opening == "{":
                key = _JSON_STRING.match(text, i)
                assert key is not None
                name = json.loads(key.group())
                found[(*path, name)] = i
                i = value(skip(key.end()) + 1, (*path, name))  # + 1: the ':'
            else:
                i = value(i, (*path, n))
                n += 1
            i = skip(i)
            i = skip(i + 1) if text[i] == "," else i
        return i + 1

    value(0, ())
    return found


_TOML_HEADER = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def _toml_locate(lines: list[str], path: KeyPath) -> tuple[int, int]:
    def key_at(start: int, end: int, key: str) -> tuple[int, int] | None:
        for i in range(start, end):
            m = re.match(rf"\s*(['\"]?){re.escape(key)}\1\s*=", lines[i])
            if m:
                return i + 1, len(lines[i]) - len(lines[i].lstrip()) + 1
        return None

    headers = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOML_HEADER.match(line))]
    first_header = headers[0][0] if headers else len(lines)
    if not path:
        return (1, 1)
    table = str(path[0])
    tables = [i for i, name in headers if name == table and lines[i].lstrip().startswith("[[")]
    if len(path) > 1 and isinstance(path[1], int) and path[1] < len(tables):
        start = tables[path[1]]
        end = next((i for i, _ in headers if i > start), len(lines))
        if len(path) > 2:
            found = key_at(start + 1, end, str(path[2]))
            if found:
                return found
        return start + 1, lines[start].index("[") + 1
    top = key_at(0, first_header, table)
    if top:
        return top
    return (tables[0] + 1, 1) if tables else (1, 1)


def _name_of(plan: Plan, i: int) -> str:
    oid = plan.objectives[i].id
    return f"objective {oid!r}" if oid else f"objectives[{i}]"


def check_plan(plan: Plan, team: Team | None, *, source: PlanSource | None = None) -> None:
    """Check a plan's objectives, dependencies and contracts; raise on the first problem.

    Rules: at least one objective; ids unique and matching ``[a-z0-9][a-z0-9_-]*`` (at
    most 64 characters: an id names a git branch and a worktree folder, which must not
    differ only in case on a case-insensitive disk); titles not blank; waves from 1;
    every objective has a ``scope_touch`` pattern and every touch and forbid pattern
    passes :func:`ap_actors.scope.check_pattern`; a ``worker``, when set, is in the
    team (when a team is given); every ``depends_on`` id exists, there is no dependency
    cycle, and a dependency is in an earlier wave; a contract has a name, and its
    provider and consumers exist. Overlapping scopes are not checked here
    (:func:`ap_actors.scope.find_conflicts` does that).

    Args:
        plan: the plan.
        team: the team its workers must belong to, or None to skip that rule.
        source: the file text, to prefix the message with ``FILE:LINE:COL``.

    Raises:
        PlanError: one line, ``[FILE:LINE:COL: ]what is wrong; how to fix``.
    """

    def fail(path: KeyPath, message: str) -> PlanError:
        return source.error(path, message) if source else PlanError(message)

    if not plan.objectives:
        raise fail(("objectives",), "the plan has no objectives; add at least one")
    ids = [o.id for o in plan.objectives]
    known = ", ".join(ids)
    for i, o in enumerate(plan.objectives):
        name = _name_of(plan, i)
        if not _ID.fullmatch(o.id):
            raise fail(
                ("objectives", i, "id"),
                f"objectives[{i}] has the id {o.id!r}; use 1-64 lowercase letters, digits,"
                " '-' and '_', starting with a letter or digit (ids name git branches)",
            )
        if o.id in ids[:i]:
            raise fail(
                ("objectives", i, "id"),
                f"the id {o.id!r} is used by two objectives; give each its own id",
            )
        if not o.title.strip():
            raise fail(("objectives", i, "title"), f"{name} has no title; add a one-line title")
        if o.wave < 1:
            raise fail(
                ("objectives", i, "wave"),
                f"{name} has wave = {o.wave}; waves are numbered from 1",
            )
        if not o.scope_touch:
            raise fail(
                ("objectives", i, "scope_touch"),
                f"{name} has no scope_touch pattern; list the files or folders it may"
                ' change, e.g. scope_touch = ["src/auth/"]',
            )
        for key in ("scope_touch", "scope_forbid"):
            for k, pattern in enumerate(getattr(o, key)):
                try:
                    check_pattern(pattern)
                except ScopeError as e:
                    raise fail(("objectives", i, key, k), f"{name}: {key}: {e}") from e
        if o.worker and team is not None and team.worker(o.worker) is None:
            raise fail(
                ("objectives", i, "worker"),
                f"{name} names the worker {o.worker!r}, which is not in the team; use one"
                f" of {', '.join(team.ids()) or '(none: the team is empty)'}, or leave"
                " worker empty",
            )
    wave_of = {o.id: o.wave for o in plan.objectives}
    for i, o in enumerate(plan.objectives):
        for dep in o.depends_on:
            if dep not in wave_of:
                raise fail(
                    ("objectives", i, "depends_on"),
                    f"{_name_of(plan, i)} depends on {dep!r}, which is not an objective of"
                    f" this plan; use one of {known}",
                )
    cycle = _cycle(plan.objectives)
    if cycle:
        i = ids.index(cycle[0])
        raise fail(
            ("objectives", i, "depends_on"),
            f"dependency cycle: {' -> '.join(cycle)}; remove one of these depends_on entries",
        )
    for i, o in enumerate(plan.objectives):
        for dep in o.depends_on:
            if wave_of[dep] >= o.wave:
                raise fail(
                    ("objectives", i, "depends_on"),
                    f"{_name_of(plan, i)} (wave {o.wave}) depends on {dep!r} (wave"
                    f" {wave_of[dep]}); a dependency runs in an earlier wave: move"
                    f" {o.id!r} to wave {wave_of[dep] + 1} or later",
                )
    for j, c in enumerate(plan.contracts):
        label = f"contract {c.name!r}" if c.name.strip() else f"contracts[{j}]"
        if not c.name.strip():
            raise fail(("contracts", j, "name"), f"{label} has no name; name the interface")
        for key, value in [("provider", c.provider), *(("consumers", x) for x in c.consumers)]:
            if value not in wave_of:
                raise fail(
                    ("contracts", j, key),
                    f"{label}: {key} {value!r} is not an objective of this plan; use one of"
                    f" {known}",
                )


def _cycle(objectives: list[Objective]) -> list[str]:
    """A dependency cycle as ``[a, b, a]``, or [] (depth-first, in plan order)."""
    deps = {o.id: o.depends_on for o in objectives}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in deps.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for o in objectives:
        if o.id not in state:
            found = visit(o.id)
            if found:
                return found
    return []


# --- plan files and agent answers -----------------------------------------------------


def _plan_from_data(data: Any, fail: Callable[[KeyPath, str], PlanError]) -> Plan:
    """Convert parsed TOML/JSON to a :class:`Plan`; ``fail(path, message)`` makes errors."""
    if not isinstance(data, dict):
        raise fail((), 'a plan is an object with an "objectives" list; write one')
    for key in data:
        if key not in _FIELDS:
            raise fail((key,), f"unknown key {key!r}; a plan has only objectives and contracts")
    for table, allowed in _FIELDS.items():
        items = data.get(table)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            for key in item if isinstance(item, dict) else ():
                if key not in allowed:
                    raise fail(
                        (table, i, key),
                        f"{table}[{i}] has an unknown key {key!r}; the keys are"
                        f" {', '.join(allowed)}",
                    )
    try:
        return msgspec.convert(data, Plan)
    except msgspec.ValidationError as e:
        text, _, where = str(e).partition(" - at `$")
        path: KeyPath = tuple(
            int(index) if index else key
            for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", where.rstrip("`"))
        )
        dotted = where.rstrip("`").lstrip(".") or "the plan"
        expected = re.match(r"Expected `(.+?)`", text)
        if text.startswith("Object missing required field"):
            fix = "add it"
        elif expected:
            fix = f"write a value of type {expected.group(1)}"
        else:
            fix = "fix the value"
        raise fail(path, f"{dotted}: {text[0].lower()}{text[1:]}; {fix}") from e


def load_plan_file(path: Path, team: Team | None = None) -> Plan:
    """Read, validate and check the owner's plan file (``--plan plan.toml|plan.json``).

    Shape: ``[[objectives]]`` tables (TOML) or ``{"objectives": [...], "contracts":
    [...]}`` (JSON), with the keys of :class:`~ap_actors.events.Objective` (id, title,
    description, wave, scope_touch, scope_forbid, worker, depends_on, command,
    capabilities) and :class:`~ap_actors.events.Contract` (name, provider, consumers,
    description); any other key is an error.

    Raises:
        PlanError: missing or unreadable file, an extension other than .toml/.json, a
            syntax error, an unknown key, a wrong type or missing field, or a rule of
            :func:`check_plan`; one line, ``FILE:LINE:COL: what; how to fix``.
    """
    where = str(path)
    suffix = Path(path).suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(f"plan file {where}: use a .toml or .json file", file=where)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"plan file {where} does not exist; pass an existing --plan") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read plan file {where}: {e}; pass a readable UTF-8 file") from e
    kind: Literal["toml", "json"] = "json" if suffix == ".json" else "toml"
    source = PlanSource(where, text, kind)
    try:
        data = json.loads(text) if kind == "json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError(
            f"{where}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}; fix the syntax",
            file=where,
            line=e.lineno,
            column=e.colno,
        ) from e
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"(.*?) \(at line (\d+), column (\d+)\)$", str(e))
        if not m:
            raise PlanError(f"{where}: not valid TOML: {e}; fix the syntax", file=where) from e
        line, col = int(m.group(2)), int(m.group(3))
        raise PlanError(
            f"{where}:{line}:{col}: not valid TOML: {m.group(1)}; fix the syntax",
            file=where,
            line=line,
            column=col,
        ) from e
    plan = _plan_from_data(data, source.error)
    check_plan(plan, team, source=source)
    return plan


def _find_plan(text: str) -> dict[str, Any] | None:
    """The last JSON object with an "objectives" key in ``text``, also inside a JSON
    string (an agent's stream-json event that carries the answer as text)."""
    decoder = json.JSONDecoder()
    for m in reversed(list(re.finditer(r"\{", text))):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found = _plan_in(value)
        if found is not None:
            return found
    return None


def _plan_in(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and "objectives" in value:
        return value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, str):
        return _find_plan(value) if '"objectives"' in value else None
    if isinstance(value, dict | list):
        for child in reversed(list(children)):
            found = _plan_in(child)
            if found is not None:
                return found
    return None


def parse_agent_plan(text: str, team: Team | None) -> Plan:
    """Read the plan from an agent's output and check it.

    The plan is the last JSON object with an ``"objectives"`` key: bare, in a
    ```` ```json ```` fence, or inside a string of a JSON event line (Claude Code
    ``--output-format stream-json``, Codex ``exec --json``). Prose around it is ignored.

    Raises:
        PlanError: no such object, or it is not a valid plan (unknown key, wrong type,
            a rule of :func:`check_plan`); the message starts with ``agent plan:``.
    """
    data = _find_plan(text)
    if data is None:
        raise PlanError(
            'agent plan: the agent printed no JSON object with an "objectives" key; ask it'
            " to end its answer with the plan in the schema of the prompt"
        )

    def fail(path: KeyPath, message: str) -> PlanError:
        return PlanError(f"agent plan: {message}")

    plan = _plan_from_data(data, fail)
    try:
        check_plan(plan, team)
    except PlanError as e:
        raise PlanError(f"agent plan: {e}") from e
    return plan


# --- the agent planner ----------------------------------------------------------------

_PROMPT_LIST_MAX = 300  # Lines per list in the prompt; the agent can read the rest itself.

_SCHEMA = """\
{
  "objectives": [            // at least one
    {
      "id": "obj-1",         // unique; [a-z0-9][a-z0-9_-]*, at most 64 characters
      "title": "...",        // one line
      "description": "...",  // what to do, for the agent that carries it out
      "wave": 1,             // integer >= 1; objectives of one wave run in parallel
      "scope_touch": ["src/auth/", "/setup.py"],  // gitignore patterns it may change
      "scope_forbid": [".git/"],                  // patterns it must not change
      "worker": "",          // "" (any free worker) or a team worker id
      "depends_on": [],      // ids of objectives in earlier waves it needs
      "capabilities": []     // what the worker must offer, from the team's capabilities
    }
  ],
  "contracts": [             // interfaces one objective provides to others
    {"name": "auth.verify(token) -> Claims", "provider": "obj-1",
     "consumers": ["obj-2"], "description": "..."}
  ]
}"""


def _listing(items: list[str], empty: str = "(none)") -> str:
    if not items:
        return empty
    shown = items[:_PROMPT_LIST_MAX]
    more = [f"... and {len(items) - len(shown)} more"] if len(items) > len(shown) else []
    return "\n".join(f"- {item}" for item in [*shown, *more])


def plan_prompt(analysis: RepoAnalysis, request: str, team: Team) -> str:
    """Return the prompt that asks an agent for a plan in the plan file's JSON schema.

    It holds the request, the analysis (task type, suggested strategy, modules, entry
    points, test folders, config files, coordination points, hotspots, a summary of the
    import graph), the team (ids, agents, capabilities), the rules (exclusive scopes per
    wave, gitignore patterns, dependencies first, integration last) and the schema.
    Lists longer than 300 lines are cut; the agent runs in the repository and can look.
    """
    importers: dict[str, int] = {}
    for targets in analysis.imports.values():
        for t in targets:
            importers[t] = importers.get(t, 0) + 1
    busiest = sorted(importers.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
    edges = sum(len(t) for t in analysis.imports.values())
    folders: dict[tuple[str, str], int] = {}
    for src, targets in analysis.imports.items():
        for t in targets:
            a, b = posixpath.dirname(src) or ".", posixpath.dirname(t) or "."
            if a != b:
                folders[(a, b)] = folders.get((a, b), 0) + 1
    folder_lines = [f"{a} -> {b} ({n})" for (a, b), n in sorted(folders.items())]
    workers = [
        f"{w.id} (agent {w.agent}; capabilities: {', '.join(w.capabilities) or 'none'})"
        for w in team.workers
    ]
    per_wave = max(1, len(team.workers))
    return f"""\
You are the planner of an orchestrator that runs coding agents in parallel, each in its
own git worktree of this repository (the current directory). Split the owner's request
into objectives with exclusive file scopes, grouped into waves, and answer with the plan
as one JSON object. Do not change any file yourself.

# Owner request

{request.strip()}

# Analysis of the repository (commit {analysis.commit[:12] or "?"})

Task type: {analysis.task_type}
Suggested scope strategy: {analysis.scope_strategy}

Modules ({len(analysis.modules)}):
{_listing(analysis.modules)}

Entry points:
{_listing(analysis.entry_points)}

Test folders:
{_listing(analysis.test_dirs)}

Config files:
{_listing(analysis.config_files)}

Named by the request:
{_listing(analysis.named)}

Coordination points:
{_listing(analysis.coordination_points)}

Hotspots (shared files; only the last, integration objective may change them):
{_listing(analysis.hotspots)}

Import graph: {edges} internal imports among {len(analysis.imports)} importing files.
Most imported files (importers):
{_listing([f"{f} ({n})" for f, n in busiest])}
Imports between folders (count):
{_listing(folder_lines)}

# Team

{_listing(workers, "(no workers configured: plan for one)")}

# Rules

1. scope_touch and scope_forbid are gitignore patterns relative to the repository root:
   "src/auth/" is a folder and everything below it, "src/app.py" one file. A pattern
   with no slash before its end matches at any depth ("tests/" also matches
   "pkg/tests/", "*.py" every Python file), so anchor top-level names: "/setup.py",
   "/tests/". An objective may only change files its touch patterns match and no
   forbid pattern matches.
2. Two objectives of the same wave must not have touch patterns that can match a common
   path, existing or not yet created. Use at most {per_wave} objectives per wave (one
   per worker).
3. An objective that needs what another creates or changes lists it in depends_on and
   is in a later wave; providers come before their consumers. Keep independent work in
   the same wave so that it runs in parallel.
4. Shared files (the hotspots above, when they need changing) go into one integration
   objective in the last wave that depends on all others; every other objective lists
   them, and ".git/", in scope_forbid.
5. Ids are lowercase: [a-z0-9][a-z0-9_-]*. Waves are numbered from 1. worker is "" or
   one of the team's ids. Add a contract for each interface one objective provides to
   another.

# Answer

End your answer with the plan: exactly one JSON object in this schema (comments here
only explain; do not write them), in a ```json fence, with nothing after it.

{_SCHEMA}
"""


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, wait up to 2 s for its leader, then SIGKILL the group
    (what ignored SIGTERM, or a helper the agent started, must not outlive it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def agent_plan(
    analysis: RepoAnalysis,
    request: str,
    team: Team,
    argv: list[str],
    cwd: Path,
    timeout_s: float,
) -> Plan:
    """Ask an agent CLI for a plan, non-interactively, and check its answer.

    Every ``{prompt}`` in the argv template is replaced by :func:`plan_prompt`; when no
    token has one, the prompt goes to the agent's stdin. The agent runs in ``cwd`` in a
    new process group; on timeout the whole group gets SIGTERM, then SIGKILL once its
    leader is gone or after 2 s.

    Args:
        argv: the command template, e.g. ``["claude", "-p", "{prompt}"]``.
        cwd: where it runs (the repository).
        timeout_s: seconds it may take.

    Raises:
        PlanError: the command is empty or cannot start, it timed out, it exited
            non-zero, or its output holds no valid plan (see :func:`parse_agent_plan`);
            the message ends with the agent's last stderr line when it wrote one.
    """
    if not argv:
        raise PlanError("the agent planner has no command; configure its argv template")
    prompt = plan_prompt(analysis, request, team)
    in_argv = any("{prompt}" in token for token in argv)
    command = [token.replace("{prompt}", prompt) for token in argv]
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL if in_argv else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise PlanError(
            f"cannot run the agent planner {argv[0]!r}: {e.strerror or e};"
            " install it or fix its command"
        ) from e
    with proc:
        try:
            out, err = proc.communicate(None if in_argv else prompt.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=5.0)
            except subprocess.TimeoutExpired:  # a process that left the group holds a pipe
                err = b""
            last = _last_line(err)
            raise PlanError(
                f"the agent planner {argv[0]!r} did not finish within {timeout_s:g} s and was"
                f" killed; raise its timeout or check the agent"
                + (f" (its last error line: {last})" if last else "")
            ) from None
    last = _last_line(err)
    if proc.returncode != 0:
        raise PlanError(
            f"the agent planner {argv[0]!r} exited with status {proc.returncode}:"
            f" {last or 'no error output'}; check its command and credentials"
        )
    try:
        return parse_agent_plan(out.decode("utf-8", "replace"), team)
    except PlanError as e:
        raise PlanError(f"{e} (agent stderr: {last})" if last else str(e)) from e
