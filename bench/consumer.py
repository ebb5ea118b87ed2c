"""Case events/s through the consumer (verify, apply, track) beside kafka-python's raw rate.

Run: `.venv/bin/python bench/consumer.py [N]` (default 2,000). Starts its own tansu broker
and uses a fresh schema of database `epoa_test` on the local server (EPOA_TEST_POSTGRES),
dropped afterwards. N signed events, half judgments and half execution documents over N/2
cases, are published once; then a plain kafka-python consumer reads them five times without
doing anything (the ceiling: the median pass), and `run_consumer` applies them in a consumer
group. The end-to-end rate is taken from the moment the consumer holds its positioned
partitions (its ready gauge turns 1) to the last event applied, leaving the group join out
but not the first batch; the ratio is what to compare between runs and machines.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaConsumer, TopicPartition

from consumers.case_events import Decision, Outcome
from consumers.kafka_loop import run_consumer
from consumers.metrics import ConsumerMetrics
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.broker import Broker
from tests.support.court_events import execution, judgment, publish
from tests.support.people import make_people
from tests.support.postgres import ensure_database, fresh_schema

TOPIC = "bench.case-events"
PARTITIONS = 6
TARGET_RATIO = 0.3
TIMEOUT_S = 600.0
RAW_PASSES = 5


class Span:
    """When the work could start, the last moment something happened, and how many times."""

    def __init__(self) -> None:
        self.first = self.last = 0.0
        self.count = 0
        self.done = threading.Event()

    def tick(self, expected: int) -> None:
        self.last = time.perf_counter()
        self.count += 1
        if self.count >= expected:
            self.done.set()

    def rate(self) -> float:
        return self.count / (self.last - self.first) if self.last > self.first else 0.0


def raw_rate(bootstrap: str, expected: int) -> float:
    """Messages/s kafka-python hands out, clock started before the first fetch."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    received = 0
    began = time.perf_counter()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while received < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += len(records)
        return received / (time.perf_counter() - began)
    finally:
        consumer.close()


def consumer_rate(settings: Settings, verifier: object, expected: int) -> float:
    span = Span()

    def after_commit(decision: Decision) -> None:
        if decision.outcome is Outcome.APPLIED:
            span.tick(expected)

    registry = build_registry(settings)
    metrics = ConsumerMetrics()
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: run_consumer(
            settings, registry, verifier, stop, metrics, after_commit=after_commit
        )
    )
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while metrics.value("epoa_consumer_ready") != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    span.first = time.perf_counter()
    finished = span.done.wait(TIMEOUT_S)
    stop.set()
    thread.join()
    registry.close()
    if not finished:
        raise SystemExit(f"only {span.count} of {expected} events applied in {TIMEOUT_S} s")
    return span.rate()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    ensure_database()
    people = make_people()
    cases = [f"BENCH-{n}" for n in range(count // 2)]
    began = time.perf_counter()
    messages = [
        (case.encode(), make(people, case)) for case in cases for make in (judgment, execution)
    ]
    print(f"signed {len(messages)} events in {time.perf_counter() - began:.1f} s")
    with Broker() as broker, fresh_schema() as url, tempfile.TemporaryDirectory() as var:
        broker.create_topic(TOPIC, PARTITIONS)
        broker.create_topic(f"{TOPIC}.dlq", 1)
        publish(broker.bootstrap, TOPIC, messages, timeout=60)
        # The raw rate of one pass swings (about 2x between passes here): the median of
        # RAW_PASSES is the baseline, their spread printed beside it.
        passes = sorted(raw_rate(broker.bootstrap, len(messages)) for _ in range(RAW_PASSES))
        raw = statistics.median(passes)
        settings = Settings(
            database_url=url,
            var_dir=Path(var),
            kafka_bootstrap=broker.bootstrap,
            case_events_topic=TOPIC,
            case_events_dlq_topic=f"{TOPIC}.dlq",
            consumer_group="bench-consumer",
        )
        applied = consumer_rate(settings, people.verifier, len(messages))
    ratio = applied / raw
    print(
        f"kafka-python, consume only: {raw:10.0f} messages/s "
        f"(median of {RAW_PASSES} passes, {passes[0]:.0f} to {passes[-1]:.0f})"
    )
    print(f"consumer, end to end:       {applied:10.0f} events/s (verify, apply, track)")
    verdict = "meets" if ratio >= TARGET_RATIO else "below"
    print(f"ratio: {ratio:.3f} ({verdict} the target {TARGET_RATIO})")


if __name__ == "__main__":
    main()
