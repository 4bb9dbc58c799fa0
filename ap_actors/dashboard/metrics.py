"""The dashboard's Prometheus metrics (``GET /metrics``, text exposition format).

One private registry per broadcaster (prometheus-client), so tests and several meshes in
one process do not share counters. Names follow Prometheus conventions (``_total`` for
counters, base units).
"""

from __future__ import annotations

from collections import Counter as _Counter

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ap_actors.projections import Sessions


class DashboardMetrics:
    """Counters and gauges of one broadcaster.

    Args:
        sessions: the broadcaster's folded sessions (read at scrape time).
    """

    def __init__(self, sessions: Sessions) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "ap_events_broadcast_total",
            "Events the broadcaster folded and forwarded to its WebSocket clients, by type.",
            ["type"],
            registry=self.registry,
        )
        self.clients = Gauge(
            "ap_ws_clients", "WebSocket clients connected.", registry=self.registry
        )
        self.resyncs = Counter(
            "ap_ws_resyncs_total",
            "WebSocket clients cut off because their queue was full.",
            registry=self.registry,
        )
        self.last_seq = Gauge(
            "ap_last_seq", "Seq of the last event the broadcaster folded.", registry=self.registry
        )
        self.registry.register(_SessionCollector(sessions))

    def render(self) -> bytes:
        """The exposition text (content type ``text/plain; version=0.0.4``)."""
        return generate_latest(self.registry)


class _SessionCollector(Collector):
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily("ap_sessions", "Sessions by status.", labels=["status"])
        counts = _Counter(v.status for v in self.sessions.views.values())
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        yield family
