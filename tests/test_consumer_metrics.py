"""The consumer's metrics are its own (no global registry) and can be scraped over HTTP."""

from __future__ import annotations

import urllib.request

from consumers.metrics import ConsumerMetrics


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
