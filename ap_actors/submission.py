"""What the owner may ask of a session, checked once for the CLI and the dashboard.

``ap submit`` and ``POST /api/sessions`` build a ``request_submitted`` through
:func:`prepare_submission`; ``ap approve|reject|cancel`` and ``POST
/api/sessions/{id}/approve|reject|cancel`` through :func:`owner_action`. Everything that
can be checked before an event is appended is checked here, so a mistake never becomes a
session: each check raises a :class:`ConfigError` (exit code 3, HTTP 400) or a
:class:`StateError` (the session is not in a state that allows it; HTTP 409) with one line
that says what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import msgspec

from ap_actors.errors import ConfigError
from ap_actors.events import (
    CancelRequested,
    Event,
    PlanApproved,
    PlanRejected,
    RequestSubmitted,
    new_id,
)
from ap_actors.projections import SessionView
from ap_actors.team import Team
from ap_actors.worktrees import repo_root, resolve_commit

OwnerAction = Literal["approve", "reject", "cancel"]


class StateError(ConfigError):
    """The session's status does not allow the action (e.g. approving a running one)."""


def prepare_submission(
    team: Team,
    request: str,
    repo: str | Path,
    *,
    base: str = "HEAD",
    plan: str | Path | None = None,
    approve: bool = False,
    workers: Sequence[str] = (),
    resolve_conflicts: bool = False,
) -> RequestSubmitted:
    """Check a submission and return its ``request_submitted`` (a new session id).

    Checks: the request is not empty; ``repo`` is a git repository with ``base``; the
    team has workers and knows every one of ``workers``; the plan file (if any) parses,
    passes the plan rules and, unless ``resolve_conflicts``, has no two objectives of a
    wave that can touch a common path (the message gives the witness).

    Raises:
        ConfigError: one line naming the problem and the fix.
    """
    if not request.strip():
        raise ConfigError('the request is empty; say what to do, e.g. ap submit "Add tests"')
    root = repo_root(Path(repo).expanduser())
    commit = resolve_commit(root, base)
    if not team.workers:
        raise ConfigError(
            "the mesh has no workers; start it with a team: `ap down`, then"
            " `ap up --team team.toml` (README, Team)"
        )
    unknown = [w for w in workers if team.worker(w) is None]
    if unknown:
        raise ConfigError(
            f"unknown worker(s) {', '.join(unknown)}; the team has {', '.join(team.ids())}"
        )
    plan_file = None
    if plan:
        # Imported here: planning and the scope algebra are a tenth of the dashboard
        # process's memory (about 4 MB), and a plan file comes with few submissions.
        from ap_actors.planning import load_plan_file
        from ap_actors.scope import find_conflicts

        path = Path(plan).expanduser().absolute()
        conflicts = find_conflicts(load_plan_file(path, team).objectives)
        if conflicts and not resolve_conflicts:
            c = conflicts[0]
            more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
            raise ConfigError(
                f"{path}: objectives {c.objective_a} and {c.objective_b} of wave {c.wave}"
                f" can both touch {c.witness} ({c.pattern_a!r} / {c.pattern_b!r}){more};"
                " make their scopes disjoint, move one to another wave, or pass"
                " --resolve-conflicts"
            )
        plan_file = str(path)
    return RequestSubmitted(
        session_id=new_id(),
        request=request.strip(),
        repo=str(root),
        base_ref=commit,
        plan_file=plan_file,
        auto_approve=approve,
        team=list(workers),
        resolve_conflicts=resolve_conflicts,
    )


def owner_action(view: SessionView, action: OwnerAction, by: str, reason: str = "") -> Event:
    """Return the event of the owner's decision on a session, its id and session set.

    Raises:
        StateError: approve/reject of a session not awaiting approval; cancel of a
            session that already ended.
        ConfigError: an unknown action.
    """
    event: Event
    if action in ("approve", "reject"):
        if view.status != "awaiting_approval":
            verb = "approved" if action == "approve" else "rejected"
            raise StateError(
                f"session {view.session_id} is {view.status.replace('_', ' ')}; only a"
                f" session awaiting approval can be {verb} (see `ap show {view.session_id}`)"
            )
        if action == "approve":
            event = PlanApproved(plan_id=view.plan_id, by=by)
        else:
            event = PlanRejected(plan_id=view.plan_id, by=by, reason=reason or None)
    elif action == "cancel":
        if view.ended:
            raise StateError(f"session {view.session_id} already {view.status}; nothing to cancel")
        event = CancelRequested(by=by, reason=reason)
    else:
        raise ConfigError(f"unknown action {action!r}; use approve, reject or cancel")
    return msgspec.structs.replace(event, id=new_id(), session_id=view.session_id)
