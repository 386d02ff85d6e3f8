"""Prometheus metrics, named by Prometheus conventions; labels carry route templates, never raw paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from healthstack import __version__

# Buckets around the latency SLO (p99 < 20 ms reads; 300 ms objective for the latency alert).
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolCollector(Collector):
    """Pool size and in-use connections, read at scrape time rather than on every request."""

    def __init__(self, stats: Callable[[], dict[str, Any] | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        if stats is None:
            return
        yield GaugeMetricFamily("healthstack_db_pool_size", "Open connections", value=stats["size"])
        yield GaugeMetricFamily(
            "healthstack_db_pool_in_use", "Connections checked out", value=stats["in_use"]
        )
        yield GaugeMetricFamily(
            "healthstack_db_pool_max", "Configured POOL_SIZE", value=stats["max"]
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("http_requests_in_flight", "Requests being served", registry=r)
        self.db_ready = Gauge(
            "healthstack_db_ready", "1 when the database is reachable", registry=r
        )
        self.draining = Gauge("healthstack_draining", "1 after SIGTERM, while draining", registry=r)
        self.break_glass = Counter(
            "healthstack_break_glass",
            "Emergency-access (break-glass) requests granted",
            ["resource_type"],
            registry=r,
        )
        self.audit_failures = Counter(
            "healthstack_audit_write_failures",
            "Audit records that could not be written",
            registry=r,
        )
        self.auth_failures = Counter(
            "healthstack_auth_failures", "Rejected requests", ["reason"], registry=r
        )
        self.plugin_calls = Counter(
            "healthstack_plugin_invocations",
            "WASM plugin invocations",
            ["plugin", "outcome"],
            registry=r,
        )
        Info("healthstack_build", "Build information", registry=r).info({"version": __version__})

    def watch_pool(self, stats: Callable[[], dict[str, Any] | None]) -> None:
        self.registry.register(PoolCollector(stats))
