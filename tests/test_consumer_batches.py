"""The messages one poll brings from a partition are settled together: one transaction for
the good ones and the position, the poison ones in the dead-letter topic, each exactly once.

The batch is given as the broker hands it out: the records are read back from a real broker
by a plain kafka-python consumer, then settled as the consumer settles a poll's records,
against a real PostgreSQL and a real dead-letter topic.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest
from kafka.partitioner.default import murmur2

from consumers.backoff import Backoff
from consumers.case_events import Decision, Outcome
from consumers.dead_letters import DeadLetters
from consumers.metrics import ConsumerMetrics
from consumers.settling import Settler
from domain.errors import NotFoundError
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.court_events import bit_flipped_signature, execution, judgment, publish
from tests.support.kafka_fixtures import TOPIC_PARTITIONS
from tests.support.people import People
from tests.support.postgres import tamper
from tests.test_consumer_kafka import (
    case_events_of,
    consumer_settings,  # noqa: F401  (the `settings` fixture)
    position,
    read_topic,
    store_registry,  # noqa: F401  (the `store` fixture)
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITION = 1


def cases_on(partition: int, prefix: str, count: int) -> list[str]:
    """Case numbers whose events the default partitioner puts on `partition`."""
    found = []
    for number in itertools.count():
        case = f"{prefix}-{number}"
        if (murmur2(case.encode()) & 0x7FFFFFFF) % TOPIC_PARTITIONS == partition:
            found.append(case)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


class Settling:
    """A `Settler` as the consumer has one, with what it settled, in order."""

    def __init__(self, settings: Settings, people: People) -> None:
        self.registry = build_registry(settings)
        self.stop = threading.Event()
        self.metrics = ConsumerMetrics()
        self.dead_letters = DeadLetters(
            settings.kafka_bootstrap or "", settings.case_events_dlq_topic
        )
        backoff = Backoff(self.stop, self.stop.wait, self.metrics)
        self.settler = Settler(
            self.registry, people.verifier, self.dead_letters, backoff, self.metrics
        )
        self.settled: list[tuple[int, Decision]] = []

    def settle(self, records: list[Any]) -> list[Outcome]:
        self.settled.clear()
        self.settler.settle(
            records, lambda: True, lambda record, d: self.settled.append((record.offset, d))
        )
        return [decision.outcome for _, decision in self.settled]

    def close(self) -> None:
        self.stop.set()
        self.settler.close()
        self.dead_letters.close()
        self.registry.close()


@pytest.fixture
def settling(settings: Settings, people: People) -> Iterator[Settling]:
    made = Settling(settings, people)
    yield made
    made.close()


def records_of(settings: Settings, partition: int) -> list[Any]:
    everything = read_topic(settings.kafka_bootstrap or "", settings.case_events_topic)
    return sorted((r for r in everything if r.partition == partition), key=lambda r: r.offset)


def test_a_batch_with_a_poison_message_in_the_middle_applies_every_good_one_once(
    settings: Settings, store: Registry, people: People, settling: Settling
) -> None:
    first, second, third = cases_on(PARTITION, "B", 3)
    poas = {case: store.issue(people.issue(case_number=case)).poa.id for case in (first, second)}
    poison = bit_flipped_signature(people, second)
    repeated = judgment(people, third, id="sent-twice")
    messages = [
        (first, judgment(people, first)),
        (first, execution(people, first)),
        (second, judgment(people, second)),
        (second, poison),
        (second, execution(people, second)),
        (third, repeated),
        (third, repeated),  # the court sent the same event twice
    ]
    placed = publish(
        settings.kafka_bootstrap or "",
        settings.case_events_topic,
        [(case.encode(), value) for case, value in messages],
    )
    assert {p for p, _ in placed} == {PARTITION}
    records = records_of(settings, PARTITION)
    before = store.recorder.max_notification_id()

    outcomes = settling.settle(records)

    applied, poisoned, duplicate = Outcome.APPLIED, Outcome.POISON, Outcome.DUPLICATE
    assert outcomes == [applied, applied, applied, poisoned, applied, applied, duplicate]
    concluding = [settling.settled[i][1] for i in (1, 4)]
    assert [(d.case_number, d.terminated) for d in concluding] == [
        (first, (poas[first],)),
        (second, (poas[second],)),
    ]
    for case in (first, second):
        assert store.get_case(case).concluded
        assert store.get_poa(poas[case]).status == "terminated"
        assert case_events_of(store, case).count("Concluded") == 1
    assert case_events_of(store, third) == ["Opened", "JudgmentEnteredIntoForce"]
    assert position(store, settings.case_events_topic, PARTITION) == records[-1].offset + 1
    [dead] = read_topic(settings.kafka_bootstrap or "", settings.case_events_dlq_topic)
    headers = {key: raw.decode() for key, raw in dead.headers}
    assert dead.value == poison
    assert headers["epoa.reason"] == "invalid-signature"
    assert headers["epoa.source.offset"] == str(records[3].offset)
    stored = store.recorder.max_notification_id()
    assert stored is not None and before is not None and stored > before

    # The same poll again, as after a crash between the store's commit and Kafka's.
    assert settling.settle(records) == [duplicate] * len(records)
    assert store.recorder.max_notification_id() == stored
    assert len(read_topic(settings.kafka_bootstrap or "", settings.case_events_dlq_topic)) == 1


def test_a_message_the_store_cannot_apply_holds_up_only_itself_and_those_after_it(
    settings: Settings, store: Registry, people: People, settling: Settling
) -> None:
    first, second, third = cases_on(PARTITION, "F", 3)
    broken = store.issue(people.issue(case_number=second)).poa.id
    tamper(  # an administrator edits a byte of the POA
        settings.database_url,
        "UPDATE epoa_events SET state = overlay(state placing '\\x58'::bytea from 300 for 1)"
        " WHERE originator_id = %s AND originator_version = 1",
        broken,
    )
    messages = [
        (first, judgment(people, first)),
        (first, execution(people, first)),
        (second, judgment(people, second)),
        (second, execution(people, second)),  # concluding it must end the broken POA
        (third, judgment(people, third)),
    ]
    publish(
        settings.kafka_bootstrap or "",
        settings.case_events_topic,
        [(case.encode(), value) for case, value in messages],
    )
    records = records_of(settings, PARTITION)
    settler = threading.Thread(target=settling.settle, args=(records,))
    settler.start()
    deadline = time.monotonic() + 20
    while settling.metrics.value("epoa_consumer_transient_failures_total") < 3:
        assert time.monotonic() < deadline, "the broken message was not retried"
        time.sleep(0.05)
    settling.stop.set()  # as a shutdown or a rebalance would
    settler.join(20)

    assert [offset for offset, _ in settling.settled] == [r.offset for r in records[:3]]
    assert position(store, settings.case_events_topic, PARTITION) == records[2].offset + 1
    assert store.get_case(first).concluded
    assert case_events_of(store, second)[-1] == "JudgmentEnteredIntoForce"
    assert read_topic(settings.kafka_bootstrap or "", settings.case_events_dlq_topic) == []
    with pytest.raises(NotFoundError):
        store.get_case(third)


def test_an_id_reused_in_another_case_of_the_same_batch_goes_to_the_dead_letter_topic(
    settings: Settings, store: Registry, people: People, settling: Settling
) -> None:
    first, second = cases_on(PARTITION, "R", 2)
    reused = judgment(people, second, id="court-31")  # the same (source, id), another case
    messages = [(first, judgment(people, first, id="court-31")), (second, reused)]
    publish(
        settings.kafka_bootstrap or "",
        settings.case_events_topic,
        [(case.encode(), value) for case, value in messages],
    )
    records = records_of(settings, PARTITION)

    assert settling.settle(records) == [Outcome.APPLIED, Outcome.POISON]
    assert case_events_of(store, first) == ["Opened", "JudgmentEnteredIntoForce"]
    with pytest.raises(NotFoundError):
        store.get_case(second)
    [dead] = read_topic(settings.kafka_bootstrap or "", settings.case_events_dlq_topic)
    headers = {key: raw.decode() for key, raw in dead.headers}
    assert dead.value == reused
    assert headers["epoa.reason"] == "duplicate-document"
    assert position(store, settings.case_events_topic, PARTITION) == records[-1].offset + 1


@pytest.mark.parametrize(
    ("padding", "header", "reason"),
    [(1_046_000, 0, "validation"), (1, 1_046_000, "invalid-signature")],
    ids=["value", "headers"],
)
def test_a_poison_message_too_large_to_send_again_is_dead_lettered_without_its_value(
    settings: Settings,
    store: Registry,
    people: People,
    settling: Settling,
    padding: int,
    header: int,
    reason: str,
) -> None:
    """Too large by its value or by its own headers: neither is sent again."""
    [case] = cases_on(PARTITION, "L", 1)
    event = json.loads(judgment(people, case))
    event["data"]["padding"] = "x" * padding  # its signature no longer covers it
    huge = json.dumps(event).encode()
    own = [("trace", b"t" * header)] if header else []
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "partitioner": "murmur2_random",
            "message.max.bytes": 2_000_000,
        }
    )
    for value, headers in ((huge, own), (judgment(people, case), [])):
        producer.produce(
            settings.case_events_topic, key=case.encode(), value=value, headers=headers
        )
    assert producer.flush(15) == 0
    records = records_of(settings, PARTITION)
    settler = threading.Thread(target=settling.settle, args=(records,))
    settler.start()
    settler.join(20)
    settling.stop.set()  # were it still retrying the dead letter
    settler.join(20)

    assert [decision.outcome for _, decision in settling.settled] == [
        Outcome.POISON,
        Outcome.APPLIED,
    ]
    assert store.get_case(case).judgment is not None
    [dead] = read_topic(settings.kafka_bootstrap or "", settings.case_events_dlq_topic)
    headers = {key: raw.decode() for key, raw in dead.headers}
    assert (dead.key, dead.value) == (case.encode(), b"")
    assert headers["epoa.reason"] == reason  # a value over 1 MiB is refused as it is read
    digest = hashlib.sha256(huge).hexdigest()
    assert headers["epoa.value.omitted"] == f"{len(huge)} bytes, sha256 {digest}"
    assert headers["epoa.source.offset"] == str(records[0].offset)
    assert "trace" not in headers
