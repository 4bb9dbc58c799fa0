"""The broadcaster actor: the dashboard's server (aiohttp, default http://127.0.0.1:8765/).

Source: ``DESIGN.md``, "Dashboard" and "Processes". It folds every event into the
session views (:mod:`ap_actors.projections`) that the REST API serves, and forwards each
live event, encoded to JSON once, to the WebSocket clients (:mod:`ap_actors.dashboard`),
with a derived ``worker_metrics`` card after each worker-related event (activities: at
most every ``card_interval_s`` per worker, the last one always sent). Owner actions that
arrive over HTTP (submit, approve, reject, cancel) become events through its emitter.

It binds the URL of ``[mesh] dashboard`` (``*`` as port = a free one); a restarted
broadcaster binds the URL its predecessor reported, which the supervisor keeps in
``mesh.json`` (``"dashboard"``), so pages reconnect by themselves. A non-loopback address
needs ``$AP_TOKEN`` (:mod:`ap_actors.dashboard.auth`).

Options: ``url``, ``web_dir``, ``max_queue`` (messages per client before it must
resync, default 10,000), ``card_interval_s`` (default 0.25).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from ap_actors.actors.sessions import SessionsActor
from ap_actors.dashboard import WEB_DIR, make_app
from ap_actors.dashboard.auth import TOKEN_ENV, check_bind
from ap_actors.dashboard.clients import Client, Fanout
from ap_actors.dashboard.metrics import DashboardMetrics
from ap_actors.errors import StartupError
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    CODEC,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveFailed,
    ObjectiveStarted,
    Record,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
    record_to_json,
    topic_of,
)
from ap_actors.team import team_option

WORKER_EVENTS = (
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
    ObjectiveAssigned,
    ObjectiveStarted,
    ObjectiveCompleted,
    ObjectiveFailed,
)


class Broadcaster(SessionsActor):
    """Serves the dashboard (module docstring)."""

    topics = ()  # everything

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.team = team_option(self.options)
        self.token = os.environ.get(TOKEN_ENV) or None
        self.started_at = time.time()
        self.metrics = DashboardMetrics(self.state)
        self.fanout = Fanout(int(self.options.get("max_queue", 10_000)), on_resync=self._resynced)
        self.card_interval_s = float(self.options.get("card_interval_s", 0.25))
        self.web_dir = Path(self.options.get("web_dir") or WEB_DIR)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._log: EventLog | None = None
        self._card_due: dict[tuple[str, str], int] = {}  # (session, worker) -> seq pending
        self._card_last: dict[tuple[str, str], float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._folded = asyncio.Condition()

    # --- life cycle -----------------------------------------------------------------

    async def on_recovered(self) -> None:
        wanted = self.mesh.dashboard or str(self.options.get("url", "http://127.0.0.1:8765/"))
        parts = urlsplit(wanted)
        host = parts.hostname or "127.0.0.1"
        port = 0 if parts.netloc.endswith(":*") else (parts.port or 80)
        check_bind(host, self.token)
        self._runner = web.AppRunner(
            make_app(self, token=self.token, web_dir=self.web_dir, bind_host=host),
            access_log=None,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as e:
            raise StartupError(
                f"the dashboard cannot listen on {host}:{port} ({e.strerror});"
                " set [mesh] dashboard to a free port, e.g. http://127.0.0.1:*/"
            ) from e
        bound = self._runner.addresses[0]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{parts.scheme or 'http'}://{shown}:{bound[1]}/"

    def ready_info(self) -> dict[str, Any]:
        return {"dashboard": self.url}

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        try:
            await super().run(ready)
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._log is not None:
                self._log.close()

    # --- live events ----------------------------------------------------------------

    def session_lock(self, session_id: str) -> asyncio.Lock:
        """The lock that serialises the owner's decisions on one session."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def folded(self, seq: int, timeout_s: float = 10.0) -> None:
        """Wait until this broadcaster has folded ``seq`` (at most ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s), self._folded:
                await self._folded.wait_for(lambda: self.last_seq >= seq)

    async def react(self, record: Record) -> None:
        async with self._folded:
            self._folded.notify_all()
        event = record.event
        self.metrics.last_seq.set(record.seq)
        self.metrics.events.labels(topic_of(event)).inc()
        if self.fanout.clients:
            self.fanout.publish(record.seq, event.session_id, self.encode(record))
        if isinstance(event, WORKER_EVENTS) and event.session_id:
            self._card(
                event.session_id,
                event.worker_id,
                record.seq,
                urgent=not isinstance(event, WorkerActivity),
            )

    def encode(self, record: Record) -> str:
        """A record as the dashboard's JSON text (``record_to_json_dict``)."""
        return record_to_json(record).decode()

    def _card(self, session_id: str, worker_id: str, seq: int, *, urgent: bool) -> None:
        """Send the worker's derived card now, or (activities) at most every interval."""
        key = (session_id, worker_id)
        pending = key in self._card_due
        self._card_due[key] = seq
        wait = self._card_last.get(key, 0.0) + self.card_interval_s - time.monotonic()
        if urgent or wait <= 0:
            self._send_card(key)
        elif not pending:
            asyncio.get_running_loop().call_later(wait, self._send_card, key)

    def _send_card(self, key: tuple[str, str]) -> None:
        seq = self._card_due.pop(key, None)
        if seq is None:
            return
        self._card_last[key] = time.monotonic()
        view = self.state.views.get(key[0])
        card = view.workers.get(key[1]) if view is not None else None
        if card is None or not self.fanout.clients:
            return
        data = msgspec.to_builtins(card)
        data.pop("feed", None)
        data.update(type="worker_metrics", derived=True, seq=seq, session_id=key[0])
        self.fanout.publish(0, key[0], CODEC.to_json(data).decode())

    def _resynced(self, client: Client) -> None:
        self.metrics.resyncs.inc()

    # --- reads for the API ------------------------------------------------------------

    @property
    def eventlog(self) -> EventLog:
        if self._log is None:
            self._log = EventLog(self.mesh.log, readonly=True)
        return self._log

    def read_history(
        self, since: int, until: int, session: str | None, limit: int
    ) -> tuple[list[tuple[int, str]], int]:
        """Records ``since < seq <= until`` (of ``session``), at most ``limit``, as JSON
        texts; and the seq up to which the log was covered (runs in a thread)."""
        if since >= until:
            return [], until
        records = list(self.eventlog.read(since, until=until, limit=limit, session_id=session))
        texts = [(r.seq, self.encode(r)) for r in records]
        covered = records[-1].seq if len(records) >= limit else until
        return texts, covered

    def read_session(self, session_id: str, since: int, limit: int) -> tuple[list[Record], int]:
        """A page of a session's records after ``since``, and the log's last seq."""
        last = self.eventlog.last_seq()
        if since >= last:
            return [], last
        records = list(self.eventlog.read(since, limit=limit, session_id=session_id))
        return records, last

    def worker_rows(self) -> list[dict[str, Any]]:
        """The team's workers with what each is doing now (``GET /api/workers``)."""
        rows = []
        for w in self.team.workers:
            busy = next(
                (
                    (v.session_id, o.objective.id)
                    for v in self.state.active()
                    for o in v.objectives.values()
                    if o.worker_id == w.id and o.status in ("assigned", "running")
                ),
                None,
            )
            rows.append(
                {
                    "worker_id": w.id,
                    "agent": w.agent,
                    "capabilities": w.capabilities,
                    "status": "busy" if busy else "idle",
                    "session_id": busy[0] if busy else "",
                    "objective_id": busy[1] if busy else "",
                }
            )
        return rows
