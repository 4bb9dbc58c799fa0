"""The PLANNING phase: objectives with exclusive scopes, grouped into waves, and contracts.

A plan comes from one of three places and is checked the same way (:func:`check_plan`):

- :func:`heuristic_plan`, the default: offline and deterministic, it carries out the
  scope strategy of the analysis (:func:`ap_actors.analysis.work_set`);
- :func:`load_plan_file`, the owner's ``--plan plan.toml`` or ``plan.json``;
- :func:`agent_plan`, a coding-agent CLI asked with :func:`plan_prompt`, whose answer
  :func:`parse_agent_plan` reads.

Whether two objectives of one wave can touch a common file is not checked here: that is
the scope validator's job (:func:`ap_actors.scope.find_conflicts`).

One module per concept: :mod:`~ap_actors.planning.model` (:class:`Plan`,
:class:`PlanError`), :mod:`~ap_actors.planning.heuristic` and
:mod:`~ap_actors.planning.units` (the heuristic planner),
:mod:`~ap_actors.planning.checks`, :mod:`~ap_actors.planning.planfile` and
:mod:`~ap_actors.planning.agent`. The public API is what this package exports.

Source: seed 001, "PHASE 2: PLANNING" (objectives, waves, SCOPE_TOUCH / SCOPE_FORBID,
integration contracts); DESIGN.md, "Events" (``plan_proposed``) and "Scopes".
"""

from ap_actors.planning.agent import agent_plan, parse_agent_plan, plan_prompt
from ap_actors.planning.checks import check_plan
from ap_actors.planning.heuristic import heuristic_plan
from ap_actors.planning.model import KeyPath, Plan, PlanError
from ap_actors.planning.planfile import PlanSource, load_plan_file

__all__ = [
    "KeyPath",
    "Plan",
    "PlanError",
    "PlanSource",
    "agent_plan",
    "check_plan",
    "heuristic_plan",
    "load_plan_file",
    "parse_agent_plan",
    "plan_prompt",
]
