"""The dashboard's WebSocket stream, on a real broadcaster fed by a real journal.

The broadcaster runs in-process (its options chosen per test: a small ``max_queue`` for
the slow-client case) and reads a journal process's log and bus; events are appended
with a real :class:`~ap_actors.Emitter`. Every check is on seqs: each event reaches a
client once, in seq order, with no gap, across the history/live boundary and across
reconnects. Synchronised on the messages the clients receive, never on sleep().
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ap_actors.actors.broadcaster import Broadcaster
from ap_actors.bus import Emitter
from ap_actors.eventlog import EventLog
from ap_actors.events import (
    Event,
    Objective,
    ObjectiveAssigned,
    ObjectiveCompleted,
    ObjectiveStarted,
    PlanProposed,
    WorkerActivity,
    WorkerError,
    WorkerMetrics,
    WorkerStarted,
)
from tests.integration.conftest import JournalProcess
from tests.support.dashboard import (
    Follower,
    Message,
    is_record,
    of_type,
    read_to_close,
    read_until,
    record_seqs,
    running_broadcaster,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def dashboard(journal: JournalProcess, tmp_path: Path) -> AsyncIterator[Broadcaster]:
    async with running_broadcaster(journal.mesh(), tmp_path) as b:
        yield b


@pytest.fixture
async def emitter(journal: JournalProcess) -> AsyncIterator[Emitter]:
    async with Emitter(journal.ingest, source="test") as e:
        yield e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def activities(n: int, description: str = "activity {}", **fields: Any) -> list[Event]:
    """``n`` worker activities (of w1 unless told), described by ``description.format(i)``."""
    fields.setdefault("worker_id", "w1")
    return [WorkerActivity(description=description.format(i), **fields) for i in range(n)]


def reached(seq: int) -> Any:
    """A ``read_until`` condition: the log event ``seq`` arrived."""
    return lambda m: is_record(m) and m["seq"] >= seq


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(url + "metrics") as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no {name} in /metrics")


# --- the stream ------------------------------------------------------------------------


async def test_a_client_gets_connected_then_the_history_then_caught_up_then_live_events(
    dashboard: Broadcaster, emitter: Emitter, http: aiohttp.ClientSession
) -> None:
    url = dashboard.url
    await emitter.emit_many(activities(10))
    async with http.ws_connect(ws_url(url)) as first:
        await read_until(first, reached(10))  # the broadcaster has folded 1..10
        async with http.ws_connect(ws_url(url, since=0)) as ws:
            head = await read_until(ws, of_type("caught_up"))
            async with http.get(url + "api/health") as r:
                assert (await r.json())["clients"] == 2
            assert await metric(http, url, "ap_ws_clients") == 2
            live = await emitter.emit_many(activities(5))
            tail = await read_until(ws, reached(live[-1]))

    connected = head[0]
    assert connected["type"] == "connected" and connected["message"] == "Connected to AP"
    assert (connected["since"], connected["last_seq"], connected["session"]) == (0, 10, None)
    assert dt.datetime.fromisoformat(connected["timestamp"]).tzinfo is not None
    assert record_seqs(head) == list(range(1, 11)) and len(head) == 12
    assert head[-1] == {"type": "caught_up", "seq": 10}
    assert record_seqs(tail) == [11, 12, 13, 14, 15] == live
    assert tail[0]["type"] == "worker_activity" and tail[0]["description"] == "activity 0"

    async with http.ws_connect(ws_url(url, since=12)) as ws:
        later = await read_until(ws, of_type("caught_up"))
    assert (later[0]["since"], later[0]["last_seq"]) == (12, 15)
    assert record_seqs(later) == [13, 14, 15] and later[-1]["seq"] == 15


async def test_every_seq_arrives_once_in_order_while_events_are_appended_during_the_catch_up(
    dashboard: Broadcaster, emitter: Emitter, http: aiohttp.ClientSession
) -> None:
    total, chunk, before = 5_000, 50, 2_500
    halfway, connected = asyncio.Event(), asyncio.Event()

    async def produce() -> None:
        for start in range(0, total, chunk):
            if start == before:
                halfway.set()
                await connected.wait()  # the rest is appended while the client catches up
            await emitter.emit_many(activities(chunk))

    producer = asyncio.create_task(produce())
    await halfway.wait()
    async with http.ws_connect(ws_url(dashboard.url)) as watcher:
        await read_until(watcher, reached(before))  # more than one page of history
    async with http.ws_connect(ws_url(dashboard.url, since=0)) as ws:
        hello = await ws.receive_json()
        connected.set()
        messages = [hello, *await read_until(ws, reached(total))]
    await producer

    head = hello["last_seq"]
    assert before <= head < total
    assert record_seqs(messages) == list(range(1, total + 1))
    caught_up = [i for i, m in enumerate(messages) if m["type"] == "caught_up"]
    assert caught_up == [head + 1] and messages[head + 1]["seq"] == head


async def test_a_session_filter_sends_only_that_sessions_events_and_cards(
    dashboard: Broadcaster, emitter: Emitter, http: aiohttp.ClientSession, journal: JournalProcess
) -> None:
    def mixed(n: int) -> list[Event]:
        return [
            WorkerActivity(worker_id="w1", session_id=("s-a", "s-b", "")[i % 3], tool_name="edit")
            for i in range(n)
        ]

    await emitter.emit_many(mixed(60))
    async with http.ws_connect(ws_url(dashboard.url, session="s-a", since=0)) as ws:
        messages = await read_until(ws, of_type("caught_up"))
        live = await emitter.emit_many(mixed(30))
        # The last event of s-a, then the card it caused (sent at most an interval later).
        messages += await read_until(
            ws, lambda m: m.get("derived") is True and m["seq"] == live[-3]
        )

    with EventLog(journal.log, readonly=True) as log:
        expected = [r.seq for r in log.read(0, session_id="s-a")]
    assert len(expected) == 30
    assert messages[0]["session"] == "s-a"
    assert record_seqs(messages) == expected
    rest = [m for m in messages if m["type"] not in ("connected", "caught_up")]
    assert {m["session_id"] for m in rest} == {"s-a"}
    cards = [m for m in rest if m.get("derived")]
    assert {c["worker_id"] for c in cards} == {"w1"} and cards[-1]["activities"] == 30


async def test_a_reconnect_with_the_last_seq_applied_continues_without_duplicates_or_gaps(
    dashboard: Broadcaster, emitter: Emitter, http: aiohttp.ClientSession
) -> None:
    url = dashboard.url
    await emitter.emit_many(activities(300))
    applied: list[int] = []

    async with http.ws_connect(ws_url(url, since=0)) as ws:  # cut in the history
        applied += record_seqs(await read_until(ws, reached(120)))
    await emitter.emit_many(activities(200))  # while no one listens
    async with http.ws_connect(ws_url(url, since=applied[-1])) as ws:  # cut in the live part
        applied += record_seqs(await read_until(ws, of_type("caught_up")))
        live = await emitter.emit_many(activities(100))
        applied += record_seqs(await read_until(ws, reached(live[49])))
    async with http.ws_connect(ws_url(url, since=applied[-1])) as ws:
        applied += record_seqs(await read_until(ws, reached(600)))

    assert applied == list(range(1, 601))


async def test_worker_events_are_followed_by_derived_worker_metrics_cards(
    dashboard: Broadcaster, emitter: Emitter, http: aiohttp.ClientSession
) -> None:
    s: dict[str, Any] = {"session_id": "s1"}
    w: dict[str, Any] = {**s, "worker_id": "w1"}
    async with http.ws_connect(ws_url(dashboard.url, session="s1")) as ws:
        await read_until(ws, of_type("caught_up"))
        seqs = await emitter.emit_many(
            [
                PlanProposed(**s, plan_id="p1", objectives=[Objective(id="o1", title="One")]),
                ObjectiveAssigned(**w, objective_id="o1"),
                ObjectiveStarted(**w, objective_id="o1"),
                WorkerStarted(**w, pid=4242, objective_id="o1"),
                *activities(5, **w, objective_id="o1", tool_name="edit"),
                WorkerMetrics(**w, cpu_percent=12.5, rss_bytes=1_000_000),
                WorkerError(**w, error="flaky test"),
                ObjectiveCompleted(**w, objective_id="o1", files_modified=["pkg/a.py"]),
            ]
        )
        _plan, assigned, started, pid, *_, metrics, error, completed = seqs
        messages = await read_until(
            ws, lambda m: m.get("derived") is True and m["seq"] == completed
        )
        more = await emitter.emit_many(activities(20, **w, tool_name="read"))
        messages += await read_until(
            ws, lambda m: m.get("derived") is True and m["seq"] == more[-1]
        )

    cards = {m["seq"]: m for m in messages if m.get("derived")}
    position = {m["seq"]: i for i, m in enumerate(messages) if is_record(m)}
    for i, m in enumerate(messages):
        if m.get("derived"):
            assert m["type"] == "worker_metrics" and m["session_id"] == "s1"
            assert position[m["seq"]] < i, "a card comes after the event that caused it"
            assert "feed" not in m and "appended_at" not in m
    assert set(cards[completed]) == {
        *("type", "derived", "seq", "session_id", "worker_id", "status", "objective_id"),
        *("pid", "tasks_completed", "tasks_failed", "tools_used", "files_modified"),
        *("activities", "errors", "cpu_percent", "rss_bytes", "uptime_seconds"),
        *("input_tokens", "output_tokens", "cost_usd"),
    }
    assert (cards[assigned]["status"], cards[assigned]["objective_id"]) == ("busy", "o1")
    assert cards[pid]["pid"] == 4242
    assert (cards[metrics]["cpu_percent"], cards[metrics]["rss_bytes"]) == (12.5, 1_000_000)
    assert (cards[error]["errors"], cards[error]["activities"]) == (1, 5)
    assert cards[error]["tools_used"] == {"edit": 5}
    final = cards[completed]
    assert (final["status"], final["objective_id"], final["pid"]) == ("idle", "", 0)
    assert (final["tasks_completed"], final["files_modified"]) == (1, ["pkg/a.py"])
    assert started in position
    # The reported worker_metrics event passes through as a plain event.
    (reported,) = [m for m in messages if is_record(m) and m["type"] == "worker_metrics"]
    assert "derived" not in reported and reported["cpu_percent"] == 12.5
    # Activities are batched into cards (at most one per interval); the last one is sent.
    last = cards[more[-1]]
    assert last["activities"] == 25 and last["tools_used"] == {"edit": 5, "read": 20}
    assert sum(1 for c in messages if c.get("derived") and c["seq"] in more) < len(more)


# --- the slow client -------------------------------------------------------------------


async def test_a_client_that_does_not_read_is_told_to_resync_and_a_reader_misses_nothing(
    journal: JournalProcess, tmp_path: Path, emitter: Emitter, http: aiohttp.ClientSession
) -> None:
    total, chunk = 5_000, 100
    # Large events, so the socket buffers of the client that does not read fill up and
    # its bounded queue on the server overflows.
    text = "x" * 4096
    async with running_broadcaster(journal.mesh(), tmp_path, max_queue=200) as b:
        slow = await http.ws_connect(ws_url(b.url, since=0))
        assert [(await slow.receive_json())["type"] for _ in range(2)] == ["connected", "caught_up"]
        fast = Follower(await http.ws_connect(ws_url(b.url, since=0)))
        for _ in range(total // chunk):
            seqs = await emitter.emit_many(activities(chunk, description=text))
            await fast.reached(seqs[-1])  # the reader keeps up; the other reads nothing
        assert seqs[-1] == total
        assert record_seqs(fast.messages) == list(range(1, total + 1))
        # Every event was published to the slow client's queue before the reader got
        # the last one: if it was going to overflow, it has.
        assert await metric(http, b.url, "ap_ws_resyncs_total") == 1

        cut = await read_to_close(slow)
        resync = cut[-1]
        assert resync["type"] == "resync" and 0 < resync["seq"] < total
        assert record_seqs(cut) == list(range(1, resync["seq"] + 1))
        assert slow.close_code == aiohttp.WSCloseCode.OK

        async with http.ws_connect(ws_url(b.url, since=resync["seq"])) as again:
            rest = await read_until(again, reached(total))
        assert (rest[0]["since"], rest[0]["last_seq"]) == (resync["seq"], total)
        assert record_seqs(rest) == list(range(resync["seq"] + 1, total + 1))
        assert await metric(http, b.url, "ap_ws_resyncs_total") == 1
        await fast.close()


# --- who may connect -------------------------------------------------------------------


async def test_a_websocket_from_another_origin_gets_403_and_same_origin_or_none_connects(
    dashboard: Broadcaster, http: aiohttp.ClientSession
) -> None:
    url = dashboard.url
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    for origin in (
        f"http://127.0.0.1:{port + 1}",
        f"http://localhost:{port}",
        "http://evil.example",
        f"http://evil.example:{port}",
        "null",
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url(url), origin=origin)
        assert refused.value.status == 403, origin
    for allowed in (url.rstrip("/"), None):  # the page's own origin; a non-browser client
        async with http.ws_connect(ws_url(url), origin=allowed) as ws:
            hello: Message = await ws.receive_json()
            assert hello["type"] == "connected", allowed
