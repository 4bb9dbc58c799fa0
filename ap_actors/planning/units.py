"""Units of work for the heuristic planner: files that stay together, and their order.

The work files form a folder tree (:class:`UnitTree`) cut into units of one folder or
file, split until there are enough for the workers; import cycles between units merge
them (:func:`merge_cycles`); each unit gets a wave after its providers
(:func:`waves_of`); the units of a wave are packed into objectives (:func:`pack_units`).
The rules are steps 2 to 4 of :func:`ap_actors.planning.heuristic_plan`.
"""

from __future__ import annotations

import bisect

import msgspec

from ap_actors.analysis import WorkSet


class Unit(msgspec.Struct, frozen=True):
    """Files that stay together: one folder (``dir/``) or one file, or a merged cycle."""

    patterns: tuple[str, ...]  # Its scope_touch patterns.
    files: tuple[str, ...]  # The work files it covers, sorted.
    size: int  # Bytes of those files.

    @property
    def key(self) -> str:
        return self.patterns[0]


def scope_pattern(path: str, is_dir: bool) -> str:
    """The gitignore pattern of one file or folder: ``a/b.py``, ``a/b/``, ``/setup.py``."""
    # Without a slash before the end a gitignore pattern matches at any depth, so a
    # top-level name is anchored ("/setup.py", "/tests/"); "a/b.py" already is.
    text = path + "/" if is_dir else path
    return text if "/" in path else "/" + text


class UnitTree:
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

    def _node(self, path: str, is_dir: bool) -> Unit:
        files = tuple(self._under(path, self.files)) if is_dir else (path,)
        size = sum(self.sizes.get(f, 0) for f in files)
        return Unit(patterns=(scope_pattern(path, is_dir),), files=files, size=size)

    def _children(self, folder: str) -> list[Unit]:
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

    def _split(self, unit: Unit) -> list[Unit] | None:
        """A folder unit's children (through single-folder chains), or None if it is one."""
        kids = [unit]
        while len(kids) == 1 and kids[0].key.endswith("/"):
            kids = self._children(kids[0].key.strip("/"))
        return kids if len(kids) > 1 else None

    def units(self, n: int) -> list[Unit]:
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


def merge_units(units: list[Unit]) -> Unit:
    """One unit of all of ``units``: their patterns, files and sizes together."""
    return Unit(
        patterns=tuple(sorted(p for u in units for p in u.patterns)),
        files=tuple(sorted(f for u in units for f in u.files)),
        size=sum(u.size for u in units),
    )


def import_edges(
    units: list[Unit], imports: dict[str, list[str]], core: set[str]
) -> list[set[int]]:
    """``edges[i]``: the units whose ``core`` files unit i imports (its providers)."""
    owner = {f: i for i, u in enumerate(units) for f in u.files if f in core}
    return [
        {owner[t] for f in u.files for t in imports.get(f, ()) if t in owner} - {i}
        for i, u in enumerate(units)
    ]


def merge_cycles(units: list[Unit], edges: list[set[int]]) -> list[Unit]:
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
    return sorted((merge_units([units[i] for i in g]) for g in groups), key=lambda u: u.key)


def waves_of(edges: list[set[int]]) -> list[int]:
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


def pack_units(units: list[Unit], bins: int) -> list[list[Unit]]:
    """Longest first into the lightest bin (then the one with fewest units, then the
    first): balanced by bytes, and no bin stays empty."""
    packed: list[list[Unit]] = [[] for _ in range(min(bins, len(units)))]
    loads = [0] * len(packed)
    for unit in sorted(units, key=lambda u: (-u.size, u.key)):
        i = min(range(len(packed)), key=lambda b: (loads[b], len(packed[b]), b))
        packed[i].append(unit)
        loads[i] += unit.size
    return [sorted(b, key=lambda u: u.key) for b in packed]
