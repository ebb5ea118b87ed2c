"""A case-events topic deleted and created again (or another cluster's copy put in its
place) starts its offsets anew, below the positions the store recorded: its first messages
would be taken for ones already applied and never applied. The consumer holds such a
partition instead, names it on `/readyz`, and goes on with the others.
"""

from __future__ import annotations

import time
from pathlib import Path

import confluent_kafka
import pytest

from domain.errors import NotFoundError
from domain.registry import Registry
from epoa.wiring import build_registry
from tests.support.broker import Broker
from tests.support.court_events import judgment
from tests.support.people import People
from tests.test_consumer_health import (
    TOPIC,
    WITHIN_S,
    Consume,
    consumer_of,
    publish_and_see_applied,
)
from tests.test_consumer_recovery import case_on_partition

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def publish_to(bootstrap: str, partition: int, messages: list[tuple[str, bytes]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for case, value in messages:
        producer.produce(TOPIC, key=case.encode(), value=value, partition=partition)
    assert producer.flush(15) == 0


def test_a_partition_starting_over_below_the_stores_position_is_held_not_skipped(
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
            assert not _has(store, case)  # held back, for an operator: neither lost nor taken
        metrics = consume.get("/metrics")[2].decode()
        assert 'epoa_consumer_messages_total{outcome="duplicate"}' not in metrics
    finally:
        assert consume.stop() == 0, consume.log.read_text()
        store.close()
    assert "partition court.case-events[0] held" in consume.log.read_text()


def _has(store: Registry, case: str) -> bool:
    try:
        store.get_case(case)
    except NotFoundError:
        return False
    return True
