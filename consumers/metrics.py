"""Prometheus metrics of one consumer process, in a registry of its own (no global state)."""

from __future__ import annotations

import contextlib
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge

from consumers.health import Checks, serve


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "epoa_consumer_messages_total",
            "Case-event messages processed, by outcome (applied, duplicate, poison)",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "epoa_consumer_dead_letters_total",
            "Messages published to the dead-letter topic, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.transient_failures = Counter(
            "epoa_consumer_transient_failures_total",
            "Attempts that failed for a reason that may pass (store or broker down); retried",
            registry=self.registry,
        )
        self.lag = Gauge(
            "epoa_consumer_lag_messages",
            "Messages in the partition not yet processed (highwater - next offset)",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "epoa_consumer_ready",
            "1 while the consumer holds its assignment, polls and reaches the broker",
            registry=self.registry,
        )

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(topic, str(partition)).set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """A partition owned by another member now: its lag is theirs to report."""
        with contextlib.suppress(KeyError):
            self.lag.remove(topic, str(partition))

    def value(self, name: str, **labels: str) -> float:
        """The current value of a sample, 0 if absent (for tests and health checks)."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def serve(
        self, port: int, addr: str = "0.0.0.0", checks: Checks | None = None
    ) -> tuple[WSGIServer, threading.Thread]:
        """`/metrics`, `/healthz` and `/readyz` (asking `checks`) over HTTP from a daemon
        thread (`consumers.health`); `server.shutdown()` stops it."""
        return serve(self.registry, port, addr, checks)
