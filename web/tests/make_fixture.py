"""Write the fixtures of ``web/tests/state_check.mjs``: records and the views Python folds.

Each fixture is ``{"records": [record JSON as the dashboard gets it], "views": {session
id: ap_actors.projections.view_to_json(view)}}``, so the check can fold the records with
``web/js/state.js`` and compare with what the Python projection says.

Usage (from the repository root):

    .venv/bin/python web/tests/make_fixture.py          # fixtures/synthetic.json
    .venv/bin/python web/tests/make_fixture.py --log STATE/eventlog \
        --out web/tests/fixtures/demo.json              # a real log, e.g. make demo's

The synthetic sessions cover what a demo run does not: a plan revised after conflicts, a
retried objective, a scope violation, worker errors and metrics, a feed longer than 50, a
rejected-then-cancelled session, a merge conflict and results that arrive after the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from ap_actors.eventlog import EventLog
from ap_actors.events import (
    AnalysisCompleted,
    CancelRequested,
    Contract,
    Event,
    MergeConflicted,
    Objective,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    PlanApproved,
    PlanAwaitingApproval,
    PlanProposed,
    PlanRejected,
    PlanRevised,
    Record,
    ReportWritten,
    RequestSubmitted,
    ScopeConflict,
    ScopeValidated,
    ScopeViolated,
    SessionCancelled,
    SessionCompleted,
    SessionFailed,
    TranscriptRead,
    WaveCompleted,
    WaveMerged,
    WaveStarted,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
    record_to_json_dict,
)
from ap_actors.projections import Sessions, view_to_json

HERE = Path(__file__).parent
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
A, B, C = (
    "01SYNTHETICSESSIONAAAAAAAAA",
    "01SYNTHETICSESSIONBBBBBBBBB",
    "01SYNTHETICSESSIONCCCCCCCCC",
)
KINDS = ["tool_use", "reasoning", "command", "file_change", "testing", "message", "error"]


def synthetic() -> list[Event]:
    ids = itertools.count(1)
    clock = itertools.count(0)

    def ev(cls: type[Event], session: str, **fields: Any) -> Event:
        return cls(
            id=f"e{next(ids)}",
            session_id=session,
            ts=T0 + next(clock) * 0.25,
            source="fixture",
            **fields,
        )

    o1 = Objective(id="api", title="REST API", wave=1, scope_touch=["src/api/"], worker="w1")
    o2 = Objective(
        id="db",
        title="Storage",
        wave=1,
        scope_touch=["src/", "migrations/*.sql"],
        scope_forbid=["src/api/"],
    )
    o3 = Objective(
        id="glue",
        title="Exports",
        wave=2,
        scope_touch=["src/__init__.py"],
        depends_on=["api", "db"],
    )
    conflict = ScopeConflict(
        wave=1,
        objective_a="api",
        objective_b="db",
        pattern_a="src/api/",
        pattern_b="src/",
        witness="src/api/a",
    )
    o2b = Objective(
        id="db", title="Storage", wave=2, scope_touch=["src/", "migrations/*.sql"], depends_on=[]
    )
    o3b = Objective(
        id="glue",
        title="Exports",
        wave=3,
        scope_touch=["src/__init__.py"],
        depends_on=["api", "db"],
    )
    out: list[Event] = [
        ev(RequestSubmitted, A, request="Add a REST API", repo="/r", team=["w1", "w2"]),
        ev(
            AnalysisCompleted,
            A,
            task_type="feature",
            modules=["src/api", "src/db"],
            coordination_points=["src/__init__.py: package re-exports"],
            scope_strategy="By package.",
        ),
        ev(PlanProposed, A, plan_id="p1", objectives=[o1, o2, o3]),
        ev(ScopeValidated, A, plan_id="p1", valid=False, conflicts=[conflict], resolving=True),
        ev(
            PlanRevised,
            A,
            plan_id="p2",
            revises="p1",
            objectives=[o1, o2b, o3b],
            contracts=[Contract(name="db.get(id)", provider="db", consumers=["api"])],
        ),
        ev(ScopeValidated, A, plan_id="p1", valid=True),  # a stale plan: ignored
        ev(ScopeValidated, A, plan_id="p2", valid=True),
        ev(PlanAwaitingApproval, A, plan_id="p2"),
        ev(PlanApproved, A, plan_id="p1", by="owner"),  # not the current plan: ignored
        ev(PlanApproved, A, plan_id="p2", by="owner"),
        ev(WaveStarted, A, wave=1, objective_ids=["api"]),
        ev(ObjectiveAssigned, A, objective_id="api", worker_id="w1", attempt=1, base="c0"),
        ev(ObjectiveStarted, A, objective_id="api", worker_id="w1", attempt=1, workdir="/wt"),
        ev(WorkerStarted, A, worker_id="w1", pid=4242, objective_id="api"),
    ]
    for i in range(70):
        kind = KINDS[i % len(KINDS)]
        out.append(
            ev(
                WorkerActivity,
                A,
                worker_id="w1",
                objective_id="api",
                activity_type=kind,  # type: ignore[arg-type]
                tool_name=["edit", "shell", None][i % 3],
                description=f"step {i} <b>&amp;</b>",
                file_path="src/api/x.py" if i % 2 else None,
                exit_code=1 if kind == "error" else None,
            )
        )
    out += [
        ev(WorkerError, A, worker_id="w1", error="rate limited", objective_id="api"),
        ev(
            WorkerMetrics,
            A,
            worker_id="w1",
            uptime_seconds=12.5,
            cpu_percent=33.3,
            rss_bytes=1 << 20,
            input_tokens=900,
            output_tokens=100,
            cost_usd=0.02,
        ),
        ev(WorkerMetrics, A, worker_id="w1", uptime_seconds=13, input_tokens=500, cost_usd=0.01),
        ev(
            ObjectiveFailed, A, objective_id="api", worker_id="w1", exit_code=2, reason="tests fail"
        ),
        ev(TranscriptRead, A, objective_id="api", worker_id="w1", attempt=1, lines=70),
        ev(ObjectiveAssigned, A, objective_id="api", worker_id="w2", attempt=2),
        ev(ObjectiveCompleted, A, objective_id="api", worker_id="w1"),  # stale worker: ignored
        ev(ObjectiveStarted, A, objective_id="api", worker_id="w2", attempt=2),
        ev(
            WorkerActivity,
            A,
            worker_id="w2",
            objective_id="api",
            activity_type="tool_use",
            tool_name="edit",
            description="Editing api.py",
            file_path="src/api/api.py",
        ),
        ev(ScopeViolated, A, objective_id="api", worker_id="w2", paths=["setup.py", "README.md"]),
        ev(
            ObjectiveCompleted,
            A,
            objective_id="api",
            worker_id="w2",
            files_modified=["src/api/api.py", "src/api/x.py"],
            duration_s=3.5,
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.1,
        ),
        ev(WaveCompleted, A, wave=1, objective_ids=["api"]),
        ev(WaveMerged, A, wave=1, objective_ids=["api"], branch=f"ap/{A}", commit="abc123"),
        ev(WaveStarted, A, wave=2, objective_ids=["db"]),
        ev(ObjectiveAssigned, A, objective_id="db", worker_id="w1", attempt=1),
        ev(
            ObjectiveCompleted,
            A,
            objective_id="db",
            worker_id="w1",
            files_modified=["src/db.py", "src/api/x.py"],
        ),
        ev(WaveCompleted, A, wave=2),
        ev(WaveMerged, A, wave=2, branch=f"ap/{A}", commit="def456"),
        ev(WaveStarted, A, wave=3, objective_ids=["glue"]),
        ev(ObjectiveAssigned, A, objective_id="glue", worker_id="w2", attempt=1),
        ev(
            ObjectiveCompleted,
            A,
            objective_id="glue",
            worker_id="w2",
            files_modified=["src/__init__.py"],
        ),
        ev(WaveCompleted, A, wave=3),
        ev(WaveMerged, A, wave=3, branch=f"ap/{A}", commit="0123456789abcdef"),
        ev(WaveStarted, A, wave=9),  # a wave the plan does not have
        ev(ReportWritten, A, kind="plan", path="/docs/plan.md"),
        ev(
            SessionCompleted,
            A,
            summary="3 objectives",
            branch=f"ap/{A}",
            commit_message="feat: API",
        ),
        ev(SessionFailed, A, reason="too late"),  # ended stays ended
        # B: rejected, then cancelled
        ev(RequestSubmitted, B, request="Refactor everything", repo="/r", auto_approve=False),
        ev(AnalysisCompleted, B, task_type="refactor"),
        ev(PlanProposed, B, plan_id="q1", objectives=[o1]),
        ev(ScopeValidated, B, plan_id="q1", valid=True),
        ev(PlanAwaitingApproval, B, plan_id="q1"),
        ev(PlanRejected, B, plan_id="q1", by="owner", reason="too big"),
        ev(CancelRequested, B, reason="changed my mind"),
        ev(SessionCancelled, B, reason="", branch=""),
        # C: merge conflict, and an objective result racing the end
        ev(RequestSubmitted, C, request="Fix the bug", repo="/r", auto_approve=True),
        ev(PlanProposed, C, plan_id="r1", objectives=[o1, o2b]),
        ev(ScopeValidated, C, plan_id="r1", valid=False, reason="bad pattern"),
        ev(PlanApproved, C, plan_id="r1", by="auto"),
        ev(WaveStarted, C, wave=1),
        ev(ObjectiveAssigned, C, objective_id="api", worker_id="w1"),
        ev(
            ObjectiveCompleted,
            C,
            objective_id="api",
            worker_id="w1",
            files_modified=["src/api/a.py"],
        ),
        ev(
            MergeConflicted,
            C,
            wave=1,
            objective_id="api",
            branch="ap/c/api",
            paths=["src/api/a.py"],
        ),
        ev(SessionFailed, C, reason="merge conflict", branch=f"ap/{C}", commit_message="fix: bug"),
        ev(ObjectiveAssigned, C, objective_id="db", worker_id="w2"),
        ev(ObjectiveFailed, C, objective_id="db", worker_id="w2", reason="cancelled"),
        ev(SessionCompleted, C, summary="never"),
    ]
    return out


def to_records(events: list[Event]) -> list[Record]:
    return [Record(seq, T0 + seq * 0.25 + 0.001, e) for seq, e in enumerate(events, 1)]


def fixture(records: list[Record]) -> dict[str, Any]:
    sessions = Sessions().apply_records(records)
    return {
        "records": [record_to_json_dict(r) for r in records],
        "views": {sid: view_to_json(v) for sid, v in sessions.views.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="an event log directory to export instead")
    parser.add_argument("--out", default=str(HERE / "fixtures" / "synthetic.json"))
    args = parser.parse_args()
    if args.log:
        with EventLog(args.log, readonly=True) as log:
            records = list(log.read(0))
    else:
        records = to_records(synthetic())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture(records), indent=None, separators=(",", ":")) + "\n")
    print(f"{out}: {len(records)} records")


if __name__ == "__main__":
    main()
