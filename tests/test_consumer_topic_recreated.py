"""A case-events topic deleted and created again (or another cluster's copy put in its
place) starts its offsets anew, below the positions the store recorded: its first messages
would be taken for ones already applied and never applied. The consumer names such a
partition on `/readyz` and in its log, applies nothing of it below the position, and goes
on with the others. (Kafka also sends the client back to the partition's earliest offset,
which makes the consumer hold the partition; the test broker, tansu, answers a fetch past
the end with no records instead.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import confluent_kafka
import pytest
from kafka import TopicPartition

from consumers.case_events import Decision
from consumers.kafka_loop import CaseEventConsumer
from consumers.metrics import ConsumerMetrics
from domain.errors import NotFoundError
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.broker import Broker
from tests.support.court_events import judgment, publish
from tests.support.people import People
from tests.test_consumer_health import (
    TOPIC,
    WITHIN_S,
    Consume,
    consumer_of,
    publish_and_see_applied,
)
from tests.test_consumer_kafka import (
    DEADLINE_S,
    case_events_of,
    consumer_settings,  # noqa: F401  (the `settings` fixture)
    counted,
    eventually,
    store_registry,  # noqa: F401  (the `store` fixture)
)
from tests.test_consumer_recovery import case_on_partition

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def publish_to(bootstrap: str, partition: int, messages: list[tuple[str, bytes]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for case, value in messages:
        producer.produce(TOPIC, key=case.encode(), value=value, partition=partition)
    assert producer.flush(15) == 0


def test_a_partition_starting_over_below_the_stores_position_is_named_not_skipped(
    postgres_url: str, tmp_path: Path, people: People, own_broker: Broker
) -> None:
    settings = consumer_of(postgres_url, tmp_path, own_broker.bootstrap, "epoa-recreated")
    for name, partitions in ((TOPIC, 3), (f"{TOPIC}.dlq", 1)):
        own_broker.create_topic(name, partitions)
    consume = Consume(settings, people, tmp_path)
    store = build_registry(settings)
    try:
        consume.wait_ready(200, "the store and the broker answer")
        for number in range(3):
            publish_and_see_applied(consume, settings, people, case_on_partition(0, f"OLD{number}"))
        own_broker.kill()  # memory only: it comes back with no topics, as after a re-creation
        own_broker.start()
        for name, partitions in ((TOPIC, 3), (f"{TOPIC}.dlq", 1)):
            own_broker.create_topic(name, partitions)
        held = ["NEW-0", "NEW-1"]
        publish_to(own_broker.bootstrap, 0, [(case, judgment(people, case)) for case in held])
        publish_to(own_broker.bootstrap, 1, [("NEW-2", judgment(people, "NEW-2"))])

        deadline = time.monotonic() + WITHIN_S
        while (down := consume.ready()[2]).get("down") != ["settling"]:
            assert time.monotonic() < deadline, (down, consume.log.read_text())
            time.sleep(0.2)
        reason = down["checks"]["settling"]
        assert f"{TOPIC}[0] ends at offset 2, before the store's position 3" in reason, reason
        deadline = time.monotonic() + WITHIN_S
        while not _has(store, "NEW-2"):  # the other partitions go on
            assert time.monotonic() < deadline, consume.log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)
        for case in held:
            assert not _has(store, case)  # left for an operator, not taken for duplicates
        metrics = consume.get("/metrics")[2].decode()
        assert 'epoa_consumer_messages_total{outcome="duplicate"}' not in metrics
    finally:
        assert consume.stop() == 0, consume.log.read_text()
        store.close()
    assert f"partition {TOPIC}[0] ends at offset 2, before the store's position 3" in (
        consume.log.read_text()
    )


def _has(store: Registry, case: str) -> bool:
    try:
        store.get_case(case)
    except NotFoundError:
        return False
    return True


def test_a_client_sent_back_below_the_stores_position_holds_the_partition(
    settings: Settings, store: Registry, people: People
) -> None:
    """Kafka answers a fetch past a partition's end by sending the client to its earliest
    offset; here the client is sent back to offset 0 right after a message was applied, in
    the consumer's own thread, as that reset would."""
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    first, second = case_on_partition(0, "BACK"), case_on_partition(1, "ON")
    members: list[CaseEventConsumer] = []
    sent_back: list[int] = []

    def reset(decision: Decision) -> None:
        if decision.case_number == first and not sent_back:
            sent_back.append(1)
            members[0].consumer.seek(TopicPartition(topic, 0), 0)

    stop = threading.Event()
    registry = build_registry(settings)
    metrics = ConsumerMetrics()
    members.append(CaseEventConsumer(settings, registry, people.verifier, stop, metrics, reset))
    thread = threading.Thread(target=members[0].run)
    thread.start()
    try:
        publish(bootstrap, topic, [(first.encode(), judgment(people, first))])
        eventually(lambda: bool(members[0].partitions.held), "partition 0 is held")
        publish(bootstrap, topic, [(second.encode(), judgment(people, second))])
        eventually(lambda: _has(store, second), "partition 1 goes on")
        settling = members[0].readiness.problems()["settling"]
        assert settling is not None
        assert f"{topic}[0] restarts at offset 0, before the store's position 1" in settling
        assert metrics.value("epoa_consumer_ready") == 0
    finally:
        stop.set()
        thread.join(DEADLINE_S)
        registry.close()
    assert counted(metrics, "applied") == 2 and counted(metrics, "duplicate") == 0
    assert case_events_of(store, first).count("JudgmentEnteredIntoForce") == 1
