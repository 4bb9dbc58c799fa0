"""What a request names, and the coordination points and hotspots of a repository.

A request names a module or directory by its path (``src/app/auth.py``,
``dateutil/parser/``), its dotted name (``app.auth``), or a word (also two adjacent
words joined by ``_``, and a plural as its singular) equal to a module's stem or a
directory's name; stopwords, numbers and task-type keywords name nothing, and a word
never names a test file or an ``__init__``.

Coordination points (files that several parts of the work depend on) are listed one
``"path: why"`` line each; those that are shared files are the hotspots. The rules are
in the docstring of :func:`ap_actors.analysis.analyse`.
"""

from __future__ import annotations

import itertools
import re

from ap_actors.analysis.imports import PyIndex
from ap_actors.analysis.repository import (
    LOCK_FILES,
    MANIFESTS,
    dir_of,
    is_test_file,
    name_of,
    stem_of,
)
from ap_actors.analysis.tasktype import is_task_word

_REGISTRY_STEMS = {"routes", "urls", "registry", "registries", "plugins", "router", "routers"}
_REGISTRATION = re.compile(
    r"@\w+(?:\.\w+)*\.(?:route|get|post|put|patch|delete|register|command|hookimpl)\b"
    r"|\bregister\w*\(|\badd_url_rule\(|(?<![\w.])(?:re_)?path\(|\brouter\.\w+\("
)
_REGISTRATION_MARKERS = ("route", "regist", "path(", "add_url_rule", "command", "hookimpl", "@app.")
_REGISTRY_MIN = 5  # Registrations that make any file a registry.
_FAN_IN_MIN = 5  # Importers that make a module a coordination point ...
_FAN_IN_TOP = 10  # ... for at most this many modules, the most imported first.


# --- named modules --------------------------------------------------------------------

# Words never taken as module or directory names (nor are task-type keywords).
_STOPWORDS = frozenset(
    """a an and are as at be by do for from go if in into is it its of on or our so than
    that the their then there these this to up use used using was we when where which
    while who why will with without you your all any each every some new old more less
    add make change update improve handle remove delete move create implement support
    code codebase file files module modules package packages project repo repository
    source sources src lib function functions class classes method methods public
    private api across everywhere whole entire""".split()  # noqa: SIM905
)


def named_paths(request: str, modules: list[str], index: PyIndex) -> list[str]:
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
    keys = {k for k in keys if k not in _STOPWORDS and not is_task_word(k) and not k.isdigit()}
    found |= {d + "/" for d in dirs if name_of(d).lower() in keys}
    found |= {
        m
        for m in modules
        if stem_of(m).lower() in keys and stem_of(m) != "__init__" and not is_test_file(m)
    }
    named_dirs = [d for d in found if d.endswith("/")]
    return sorted(p for p in found if not any(p != d and p.startswith(d) for d in named_dirs))


def is_under(path: str, named: list[str]) -> bool:
    """Whether ``path`` is one of ``named`` or below a named directory (``"dir/"``)."""
    return any(path == n or (n.endswith("/") and path.startswith(n)) for n in named)


# --- coordination points --------------------------------------------------------------


def find_coordination_points(
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
        users = {u for m in inside for u in importers.get(m, ()) if not is_under(u, [n])}
        what = f"{len(inside)} modules inside, " if n.endswith("/") else ""
        lines.append(f"{n}: named by the request, {what}imported by {len(users)} modules")
    for m in modules:
        name, stem = name_of(m), stem_of(m)
        text = texts.get(m, "")
        # A substring test first: the regular expression is slow on large files.
        marked = any(marker in text for marker in _REGISTRATION_MARKERS)
        registrations = len(_REGISTRATION.findall(text)) if marked else 0
        if stem in ("__init__", "index") and imports.get(m):
            how = "re-exports from" if stem == "__init__" else "re-exports (barrel) from"
            lines.append(f"{m}: package {how} {len(imports[m])} modules")
        elif name == "conftest.py":
            lines.append(f"{m}: shared pytest fixtures for {dir_of(m) or 'the repository'}/")
        elif stem in _REGISTRY_STEMS or registrations >= _REGISTRY_MIN:
            lines.append(f"{m}: registry ({registrations} registrations)")
        else:
            continue
        hotspots.append(m)
    for c in config_files:
        name = name_of(c)
        why = MANIFESTS.get(name) or ("locked dependency versions" if name in LOCK_FILES else "")
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
