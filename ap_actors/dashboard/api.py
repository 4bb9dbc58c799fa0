"""The dashboard's REST API (JSON over HTTP), served by the broadcaster.

- ``GET /api/health``: ``{"status": "ok", "last_seq", "clients", "uptime_s"}``.
- ``GET /api/sessions``: the sessions, newest first: ``[{"session_id", "status",
  "request", "repo", "submitted_at", "ended_at", "duration_s", "objectives",
  "objectives_completed", "branch", "reason"}]``.
- ``GET /api/sessions/{id}``: the session view (``projections.view_to_json``).
- ``GET /api/sessions/{id}/events?since=0&limit=1000``: ``{"events": [event JSON],
  "next": the seq to pass as since, "last_seq"}``; limit at most 10,000.
- ``GET /api/workers``: ``[{"worker_id", "agent", "capabilities", "status",
  "session_id", "objective_id"}]``.
- ``GET /metrics``: Prometheus text format.
- ``POST /api/sessions`` with ``{"request", "repo", "base"?, "plan"?, "approve"?,
  "workers"?, "resolve_conflicts"?}``: 201 ``{"session_id", "seq"}``.
- ``POST /api/sessions/{id}/approve``, ``/reject``, ``/cancel`` with ``{"reason"?}``:
  200 ``{"session_id", "seq"}``.

Errors are ``{"error": "one line"}``: 400 for invalid JSON, a wrong field or a request
the checks of :mod:`ap_actors.submission` refuse; 404 for an unknown session; 409 when
the session's status does not allow the action; 503 when the journal does not answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ap_actors.errors import ApError, BusError
from ap_actors.events import record_to_json_dict
from ap_actors.projections import SessionView, session_row, view_to_json
from ap_actors.protocol import MAX_SEQ
from ap_actors.submission import OwnerAction, StateError, owner_action, prepare_submission

if TYPE_CHECKING:
    from ap_actors.actors.broadcaster import Broadcaster

MAX_PAGE = 10_000


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    request: str
    repo: str
    base: str = "HEAD"
    plan: str | None = None
    approve: bool = False
    workers: list[str] = []
    resolve_conflicts: bool = False


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    by: str = "owner"


_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    """An HTTP error whose JSON body is ``{"error": message}``, the message one line.

    A message may quote the request (msgspec names an unknown field as sent): its control
    characters and line separators are written as Python escapes (``\\n``), not raw.
    """
    message = _LINE_BREAKING.sub(lambda m: repr(m.group())[1:-1], message)
    return status(
        text=msgspec.json.encode({"error": message}).decode(), content_type="application/json"
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


async def _body(request: web.Request, kind: type[Any]) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as e:
        raise _error(web.HTTPBadRequest, f"invalid field: {e}") from None
    except msgspec.DecodeError as e:
        raise _error(web.HTTPBadRequest, f"the body is not valid JSON: {e}") from None


def _int(request: web.Request, name: str, default: int, high: int, *, low: int = 0) -> int:
    """The integer query parameter ``name`` (``default`` when absent), within [low, high].

    Raises:
        HTTPBadRequest: not an integer, or out of range (the message says which).
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _error(web.HTTPBadRequest, f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise _error(web.HTTPBadRequest, f"{name} must be {low} or more and at most {high}")
    return value


def add_routes(app: web.Application, b: Broadcaster) -> None:
    """Add the API's routes to ``app``; ``b`` is the broadcaster that serves them."""

    def session(request: web.Request) -> SessionView:
        sid = request.match_info["id"]
        view = b.state.views.get(sid)
        if view is None:
            raise _error(web.HTTPNotFound, f"no session {sid!r}; list them at /api/sessions")
        return view

    async def health(request: web.Request) -> web.Response:
        return _json(
            {
                "status": "ok",
                "last_seq": b.last_seq,
                "clients": len(b.fanout.clients),
                "uptime_s": round(time.time() - b.started_at, 3),
            }
        )

    async def sessions(request: web.Request) -> web.Response:
        views = sorted(b.state.views.values(), key=lambda v: v.submitted_at, reverse=True)
        return _json([session_row(v) for v in views])

    async def one_session(request: web.Request) -> web.Response:
        return _json(view_to_json(session(request)))

    async def events(request: web.Request) -> web.Response:
        view = session(request)
        since = _int(request, "since", 0, MAX_SEQ)
        limit = _int(request, "limit", 1000, MAX_PAGE, low=1)
        records, last = await asyncio.to_thread(b.read_session, view.session_id, since, limit)
        page = [record_to_json_dict(r) for r in records]
        next_seq = records[-1].seq if records else since
        return _json({"events": page, "next": next_seq, "last_seq": last})

    async def workers(request: web.Request) -> web.Response:
        return _json(b.worker_rows())

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=b.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def submit(request: web.Request) -> web.Response:
        body: SubmitBody = await _body(request, SubmitBody)
        try:
            event = await asyncio.to_thread(
                prepare_submission,
                b.team,
                body.request,
                body.repo,
                base=body.base,
                plan=body.plan,
                approve=body.approve,
                workers=body.workers,
                resolve_conflicts=body.resolve_conflicts,
            )
        except ApError as e:  # ConfigError, GitError: the line `ap submit` prints
            raise _error(web.HTTPBadRequest, str(e)) from None
        seq = await _append(event)
        return _json({"session_id": event.session_id, "seq": seq}, status=201)

    async def act(request: web.Request) -> web.Response:
        view = session(request)
        action: OwnerAction = request.match_info["action"]  # type: ignore[assignment]
        body: ActionBody = await _body(request, ActionBody)
        # One decision at a time per session, each checked against a state that holds
        # the previous one: an approve and a reject sent together cannot both land.
        async with b.session_lock(view.session_id):
            try:
                event = owner_action(view, action, by=body.by or "owner", reason=body.reason)
            except StateError as e:
                raise _error(web.HTTPConflict, str(e)) from None
            seq = await _append(event)
            await b.folded(seq)
        return _json({"session_id": view.session_id, "seq": seq})

    async def _append(event: Any) -> int:
        try:
            seq: int = await b.emit(event)
        except BusError as e:
            raise _error(web.HTTPServiceUnavailable, f"the journal did not take it: {e}") from None
        return seq

    app.router.add_get("/api/health", health)
    app.router.add_get("/api/sessions", sessions)
    app.router.add_post("/api/sessions", submit)
    app.router.add_get("/api/sessions/{id}", one_session)
    app.router.add_get("/api/sessions/{id}/events", events)
    app.router.add_post("/api/sessions/{id}/{action:approve|reject|cancel}", act)
    app.router.add_get("/api/workers", workers)
    app.router.add_get("/metrics", metrics)
