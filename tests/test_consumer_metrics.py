"""The consumer's metrics are its own (no global registry) and can be scraped over HTTP, on
the port that also answers the liveness and readiness probes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from consumers.metrics import ConsumerMetrics
from consumers.readiness import Readiness


def test_two_consumers_count_apart_and_each_serves_its_own_metrics() -> None:
    first, second = ConsumerMetrics(), ConsumerMetrics()
    first.messages.labels("applied").inc()
    first.set_lag("court.case-events", 2, 7)
    assert second.value("epoa_consumer_messages_total", outcome="applied") == 0
    server, _ = first.serve(0, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    assert 'epoa_consumer_messages_total{outcome="applied"} 1.0' in text
    assert 'epoa_consumer_lag_messages{partition="2",topic="court.case-events"} 7.0' in text
    first.forget_partition("court.case-events", 2)
    first.forget_partition("court.case-events", 2)
    assert first.value("epoa_consumer_lag_messages", topic="court.case-events", partition="2") == 0


def test_the_metrics_port_answers_healthz_and_asks_the_checks_at_each_readyz() -> None:
    metrics = ConsumerMetrics()
    answers = iter([{"store": None, "broker": None}, {"store": None, "broker": "unreachable"}])
    server, _ = metrics.serve(0, "127.0.0.1", checks=lambda: next(answers))
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert json.loads(response.read())["checks"] == {"store": "ok", "broker": "ok"}
        with pytest.raises(urllib.error.HTTPError) as down:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert down.value.code == 503
        assert down.value.headers["Content-Type"] == "application/problem+json"
        assert json.loads(down.value.read())["down"] == ["broker"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing-here", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_member_that_has_not_polled_yet_names_every_check_it_cannot_pass_yet() -> None:
    failing: list[str | None] = [None]
    readiness = Readiness(lambda: failing[0])
    assert readiness.problems() == {
        "broker": "not polled yet",
        "group": "waiting for the group's assignment",
        "polling": "has not polled yet",
        "settling": None,
    }
    failing[0] = "court.case-events[0]@7 failed 3 time(s): SealError('sealed with unknown key')"
    assert readiness.problems()["settling"] == failing[0]
