"""A broker that stops answering in the middle of a batch, its connections left open (a hung
process, a network dropping every packet): `epoa consume` says on `/readyz` that its
messages are stuck, and once the broker answers again applies each of them exactly once,
the poison ones in the dead-letter topic, with nothing skipped; and it stops on SIGTERM
within seconds all the same.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from domain.registry import Registry
from epoa.settings import Settings
from tests.support.broker import Broker
from tests.support.court_events import execution, judgment, not_json, publish
from tests.support.people import People
from tests.support.postgres import insert_lock_held, writers_waiting
from tests.test_consumer_batches import cases_on
from tests.test_consumer_health import (
    TOPIC,
    WITHIN_S,
    Consume,
    consumer_of,
)
from tests.test_consumer_kafka import (
    case_events_of,
    position,
    read_topic,
    store_registry,  # noqa: F401  (the `store` fixture)
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 3


def caught_up(store: Registry, highwater: Counter[int]) -> bool:
    return all(position(store, TOPIC, p) == highwater[p] for p in range(PARTITIONS))


@pytest.fixture(name="settings")
def on_own_broker(postgres_url: str, tmp_path: Path, own_broker: Broker) -> Settings:
    settings = consumer_of(postgres_url, tmp_path, own_broker.bootstrap, "epoa-hung-broker")
    for name, partitions in ((TOPIC, PARTITIONS), (f"{TOPIC}.dlq", 1)):
        own_broker.create_topic(name, partitions)
    return settings


def test_a_broker_hung_mid_batch_is_named_on_readyz_and_nothing_is_lost_or_repeated(
    settings: Settings,
    store: Registry,
    postgres_url: str,
    tmp_path: Path,
    people: People,
    own_broker: Broker,
) -> None:
    cases = [case for p in range(PARTITIONS) for case in cases_on(p, "HUNG", 2)]
    poas = {case: store.issue(people.issue(case_number=case)).poa.id for case in cases}
    messages = [  # a poison message between each case's two facts
        (case.encode(), make(people, case))
        for case in cases
        for make in (judgment, not_json, execution)
    ]
    consume = Consume(settings, people, tmp_path)
    try:
        consume.wait_ready(200, "the store and the broker answer")
        # The member polls every partition's messages, then waits inside the transaction
        # of the first: the broker stops answering before it gets to the others.
        with insert_lock_held(postgres_url):
            placed = publish(own_broker.bootstrap, TOPIC, messages)
            deadline = time.monotonic() + WITHIN_S
            while writers_waiting(postgres_url) < 1:
                assert time.monotonic() < deadline, consume.log.read_text()
                time.sleep(0.05)
            own_broker.freeze()
        try:
            down = consume.wait_ready(503, "the dead letters are not acknowledged")
            assert down["down"] == ["settling"], down
            assert f"on {TOPIC}.dlq within 10 s" in down["checks"]["settling"], down
            assert "did not acknowledge the dead letter of" in down["checks"]["settling"]
            assert consume.get("/healthz")[0] == 200  # alive: no restart wanted
            highwater = Counter(partition for partition, _ in placed)
            assert not caught_up(store, highwater)
        finally:
            own_broker.thaw()
        consume.wait_ready(200, "the broker answers again")
        deadline = time.monotonic() + WITHIN_S
        while not caught_up(store, highwater):
            assert time.monotonic() < deadline, consume.log.read_text()
            time.sleep(0.1)
        metrics = consume.get("/metrics")[2].decode()
    finally:
        own_broker.thaw()
        assert consume.stop() == 0, consume.log.read_text()

    assert 'epoa_consumer_messages_total{outcome="applied"} 12.0' in metrics
    for case in cases:
        events = Counter(case_events_of(store, case))
        assert (events["JudgmentEnteredIntoForce"], events["ExecutionDocumentsIssued"]) == (1, 1)
        assert events["Concluded"] == 1
        assert store.get_poa(poas[case]).status == "terminated"
    dead = read_topic(own_broker.bootstrap, f"{TOPIC}.dlq")
    sources = set()
    for record in dead:
        headers = {key: raw.decode() for key, raw in record.headers}
        assert headers["epoa.reason"] == "validation"
        sources.add((int(headers["epoa.source.partition"]), int(headers["epoa.source.offset"])))
    # Each at least once: one the broker took late may have been sent again meanwhile.
    assert sources == {placed[i] for i in range(1, len(messages), 3)}


def test_sigterm_while_the_broker_is_hung_exits_cleanly_within_seconds(
    settings: Settings, store: Registry, tmp_path: Path, people: People, own_broker: Broker
) -> None:
    """Orchestrators kill a process that has not exited 30 s after SIGTERM (docker-compose's
    `stop_grace_period`, Kubernetes' default grace): leaving the group and the last offset
    commit, for monitoring only, must not wait for kafka-python's 30 s request timeout."""
    [case] = cases_on(0, "STOP", 1)
    consume = Consume(settings, people, tmp_path)
    try:
        consume.wait_ready(200, "the store and the broker answer")
        publish(own_broker.bootstrap, TOPIC, [(case.encode(), judgment(people, case))])
        deadline = time.monotonic() + WITHIN_S
        while position(store, TOPIC, 0) < 1:
            assert time.monotonic() < deadline, consume.log.read_text()
            time.sleep(0.1)
        own_broker.freeze()
        time.sleep(1.0)
        began = time.monotonic()
        assert consume.stop() == 0, consume.log.read_text()
        assert time.monotonic() - began < 15, consume.log.read_text()
    finally:
        own_broker.thaw()
        consume.stop()
