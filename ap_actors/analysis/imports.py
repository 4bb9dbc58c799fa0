"""The internal import graph: which files of the repository each source file imports.

Python files are parsed with :mod:`ast`, JS/TS files searched for relative specifiers;
how each is resolved to a file is in the docstring of :func:`ap_actors.analysis.analyse`.
:func:`effective_imports` sees through package ``__init__``/``index`` re-exports.
"""

from __future__ import annotations

import ast
import posixpath
import re
import warnings

import msgspec

from ap_actors.analysis.repository import dir_of, name_of, stem_of

# Extensions of the JS/TS files whose imports are followed, in resolution order.
JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_SOURCE_ROOTS = ("", "src", "lib", "python")  # Folders that are on sys.path by convention.


# --- Python ---------------------------------------------------------------------------


class PyFacts(msgspec.Struct):
    """What one Python file imports, and whether it runs as a script."""

    imports: list[tuple[int, str, list[str]]]  # (level, module, imported names)
    main_guard: bool  # Has a top-level `if __name__ == "__main__":`.


def py_facts(text: str, path: str) -> PyFacts | None:
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
    return PyFacts(imports=imports, main_guard=guard)


class PyIndex:
    """Dotted module names of the repository's Python files, incl. the src/ layout."""

    def __init__(self, files: list[str]) -> None:
        self.files = set(files)
        self.packages = {dir_of(f) for f in files if name_of(f) in ("__init__.py", "__init__.pyi")}
        self.by_name: dict[str, str] = {}
        ordered = sorted(files, key=lambda f: (f.endswith(".pyi"), f))  # .py wins over .pyi
        for f in ordered:  # The name Python imports it by: from its top package ...
            if dir_of(f) in self.packages or dir_of(f) in _SOURCE_ROOTS:
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
        here = dir_of(importer)
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
            base = dir_of(path)
            for _ in range(level - 1):
                base = dir_of(base)
            if module:
                base = posixpath.join(base, *module.split("."))
            found = [f for f in (self.at(posixpath.join(base, n)) for n in names) if f]
            target = self.at(base) if len(found) < len(names) else None
        return found + ([target] if target else [])


# --- JavaScript / TypeScript ----------------------------------------------------------


_JS_IMPORT = re.compile(
    r"""\bfrom\s*['"]([^'"\n]+)['"]|\bimport\s*['"]([^'"\n]+)['"]"""
    r"""|\b(?:require|import)\s*\(\s*['"]([^'"\n]+)['"]\s*\)"""
)


def js_resolve(spec: str, base_dir: str, files: set[str]) -> str | None:
    """Resolve a relative specifier the way bundlers do: exact, + extension, /index."""
    target = posixpath.normpath(posixpath.join(base_dir, spec))
    if target.startswith("../") or target == "..":
        return None
    stem = re.sub(r"\.[cm]?jsx?$", "", target)  # TS's "./x.js" means ./x.ts
    candidates = [target] + [b + e for b in (target, stem) for e in JS_EXTS]
    candidates += [f"{target}/index{e}" for e in JS_EXTS]
    return next((c for c in candidates if c in files), None)


def js_imports(path: str, text: str, files: set[str]) -> list[str]:
    """The repo files a JS/TS file imports by relative specifiers (others are not followed)."""
    found = []
    for match in _JS_IMPORT.finditer(text):
        spec = next(g for g in match.groups() if g)
        if spec.startswith("."):
            target = js_resolve(spec, dir_of(path), files)
            if target:
                found.append(target)
    return found


# --- through re-exports ---------------------------------------------------------------


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
            if stem_of(target) in ("__init__", "index"):
                todo += imports.get(target, ())
        out[src] = sorted(found)
    return out
