"""What the ANALYTIC phase found: :class:`RepoAnalysis` and its ``analysis_completed``."""

from __future__ import annotations

from typing import Any

import msgspec

from ap_actors.events import AnalysisCompleted, TaskType


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
