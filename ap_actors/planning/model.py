"""A plan (objectives with their waves and scopes, and contracts) and its error."""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from ap_actors.errors import ConfigError
from ap_actors.events import Contract, Objective


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
