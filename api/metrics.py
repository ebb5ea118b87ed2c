"""Prometheus metrics of one app instance (its own registry: no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from epoa.clock_offset import Clock, ClockOffsetCollector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "epoa_http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "epoa_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.commands = Counter(
            "epoa_commands_total",
            "Commands by name and outcome (recorded, idempotent, or the problem kind)",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "epoa_projection_lag_events",
            "Events recorded but not yet applied to the read models",
            registry=self.registry,
        )
        self.projection_position = Gauge(
            "epoa_projection_position",
            "The last notification id applied to the read models",
            registry=self.registry,
        )

    def watch_clock(self, database_url: str, clock: Clock) -> None:
        """Add `epoa_clock_offset_seconds`: `clock` (the app's) against the server's."""
        self.registry.register(ClockOffsetCollector(database_url, clock))
