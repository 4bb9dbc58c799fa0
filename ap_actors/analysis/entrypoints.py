"""Entry points: where a repository's programs start.

``__main__.py``, ``manage.py``, ``wsgi.py`` and ``asgi.py``; a Python script outside
any package with a top-level ``if __name__ == "__main__":`` (not a test); a Go
``cmd/<x>/`` folder or ``package main`` (its folder); Rust ``src/main.rs`` and
``src/bin/*.rs``; the targets of ``[project.scripts]``, ``[project.gui-scripts]`` and
``[tool.poetry.scripts]`` in pyproject.toml, of ``console_scripts``/``gui_scripts`` in
setup.cfg and setup.py, and package.json's ``bin`` and ``main``. A script whose target
is no file of the repository is listed as ``name = target``.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from typing import Any

from ap_actors.analysis.imports import PyFacts, PyIndex, js_resolve
from ap_actors.analysis.repository import dir_of, is_test_file, name_of


def _script_target(name: str, target: str, index: PyIndex) -> str:
    module = target.split(":")[0].strip()
    found = index.by_name.get(module) if module else None
    return found or f"{name} = {target.strip()}"


def find_entry_points(
    modules: list[str],
    texts: dict[str, str],
    facts: dict[str, PyFacts],
    index: PyIndex,
    files: set[str],
) -> list[str]:
    """Return the entry points (module docstring), sorted.

    Args:
        modules: the source files.
        texts: path -> text of the files read (sources, pyproject.toml, setup.cfg ...).
        facts: path -> facts of each Python file that parsed.
        index: the Python module names, to resolve a script's target to its file.
        files: every tracked path.
    """
    found: set[str] = set()
    for path in modules:
        name = name_of(path)
        if name in ("__main__.py", "manage.py", "wsgi.py", "asgi.py"):
            found.add(path)
        py = facts.get(path)
        if py and py.main_guard and dir_of(path) not in index.packages and not is_test_file(path):
            found.add(path)  # a script outside any package
        if path.endswith(".go") and (
            re.search(r"(^|/)cmd/[^/]+$", dir_of(path))
            or re.search(r"^package main\b", texts.get(path, ""), re.M)
        ):
            found.add(dir_of(path) + "/" if "/" in path else path)
        if path.endswith(".rs") and re.search(r"(^|/)src/(main\.rs|bin/[^/]+\.rs)$", path):
            found.add(path)
    for path, text in texts.items():
        name = name_of(path)
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


def _pyproject_scripts(text: str, index: PyIndex) -> list[str]:
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
            resolved = js_resolve("./" + target.removeprefix("./"), dir_of(path), files)
            out.append(resolved or f"{name} = {target}")
    return out
