"""The test broker speaks enough Kafka for the case-events consumer, proven with real clients.

Messages are produced with confluent-kafka (librdkafka), an implementation independent of
kafka-python, so a bug shared by a client and its own test double cannot hide here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import confluent_kafka
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from tests.support.broker import GROUP_CONSUMER_CONFIG
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.kafka_fixtures import TOPIC_PARTITIONS

pytestmark = pytest.mark.kafka

DEADLINE_S = 12.0
Headers = list[tuple[str, str | bytes | None]]


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, Headers]]) -> list[int]:
    """Produce (key, value, headers) with librdkafka, one batch; return each message's offset."""
    # murmur2 is the Java and kafka-python key hash; librdkafka's default hash differs.
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    offsets: dict[int, int] = {}
    errors: list[confluent_kafka.KafkaError] = []

    def on_delivery_of(index: int) -> Callable[[confluent_kafka.KafkaError | None, object], None]:
        def on_delivery(error: confluent_kafka.KafkaError | None, msg: object) -> None:
            if error is not None:
                errors.append(error)
            else:
                assert isinstance(msg, confluent_kafka.Message)
                offset = msg.offset()
                assert offset is not None
                offsets[index] = offset

        return on_delivery

    for index, (key, value, headers) in enumerate(messages):
        producer.produce(
            topic, key=key, value=value, headers=headers, on_delivery=on_delivery_of(index)
        )
    assert producer.flush(DEADLINE_S) == 0, "messages still queued after flush"
    assert not errors
    return [offsets[index] for index in range(len(messages))]


def partition_for(key: bytes) -> int:
    """The partition Kafka's default partitioner chooses for `key`."""
    return int(murmur2(key) & 0x7FFFFFFF) % TOPIC_PARTITIONS


@contextmanager
def kafka_python_consumer(bootstrap: str, **config: object) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **config,
    )
    try:
        yield consumer
    finally:
        consumer.close()


def poll_until(
    consumer: KafkaConsumer, done: Callable[[list[ConsumerRecord]], bool]
) -> list[ConsumerRecord]:
    """Poll, collecting records, until `done(records)` or the deadline fails the test."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + DEADLINE_S
    while not done(records):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {DEADLINE_S} s with {len(records)} records")
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def test_a_message_from_another_client_arrives_with_key_value_and_headers_intact(
    kafka_broker: KafkaEndpoint, kafka_topic: str
) -> None:
    key = b"7599-25-00-2/123"
    value = json.dumps({"specversion": "1.0", "id": "e-1", "subject": key.decode()}).encode()
    headers: Headers = [
        ("content-type", b"application/cloudevents+json"),
        ("reason", "подпись не прошла проверку".encode()),
        ("reason", b"\x00\xff binary"),
        ("empty", b""),
        ("absent", None),
    ]
    [offset] = produce(kafka_broker.bootstrap, kafka_topic, [(key, value, headers)])

    partitions = [TopicPartition(kafka_topic, p) for p in range(TOPIC_PARTITIONS)]
    with kafka_python_consumer(kafka_broker.bootstrap) as consumer:
        consumer.assign(partitions)
        [record] = poll_until(consumer, lambda records: len(records) >= 1)

    assert (record.partition, record.offset) == (partition_for(key), offset)
    assert record.key == key
    assert record.value == value
    assert record.headers == headers


def test_a_group_member_is_assigned_and_seek_rereads_from_an_offset(
    kafka_broker: KafkaEndpoint, kafka_topic: str, fresh_group_id: str
) -> None:
    key = b"2-1234-25-00001"
    messages: list[tuple[bytes, bytes, Headers]] = [
        (key, f"event-{n}".encode(), []) for n in range(5)
    ]
    offsets = produce(kafka_broker.bootstrap, kafka_topic, messages)
    assert offsets == [0, 1, 2, 3, 4]
    partition = TopicPartition(kafka_topic, partition_for(key))

    with kafka_python_consumer(
        kafka_broker.bootstrap, group_id=fresh_group_id, **GROUP_CONSUMER_CONFIG
    ) as consumer:
        consumer.subscribe([kafka_topic])
        first = poll_until(consumer, lambda records: len(records) >= 5)
        assert consumer.assignment() == {
            TopicPartition(kafka_topic, p) for p in range(TOPIC_PARTITIONS)
        }
        assert [r.offset for r in first] == offsets
        assert consumer.highwater(partition) == 5

        consumer.seek(partition, 2)
        again = poll_until(consumer, lambda records: len(records) >= 3)
        assert [(r.offset, r.value) for r in again] == [
            (n, f"event-{n}".encode()) for n in (2, 3, 4)
        ]

        consumer.commit({partition: OffsetAndMetadata(3, "", -1)})
        assert consumer.committed(partition) == 3


def test_highwater_is_the_end_offset_across_batches_and_empty_partitions(
    kafka_broker: KafkaEndpoint, kafka_topic: str
) -> None:
    key = b"case-a"
    produce(kafka_broker.bootstrap, kafka_topic, [(key, b"one", []), (key, b"two", [])])
    produce(kafka_broker.bootstrap, kafka_topic, [(key, b"three", [])])
    busy = TopicPartition(kafka_topic, partition_for(key))
    partitions = [TopicPartition(kafka_topic, p) for p in range(TOPIC_PARTITIONS)]

    with kafka_python_consumer(kafka_broker.bootstrap) as consumer:
        consumer.assign(partitions)
        poll_until(
            consumer,
            lambda records: (
                len(records) >= 3 and all(consumer.highwater(tp) is not None for tp in partitions)
            ),
        )
        lag = {tp.partition: consumer.highwater(tp) - consumer.position(tp) for tp in partitions}
        assert consumer.highwater(busy) == 3
        for tp in partitions:
            if tp != busy:
                assert consumer.highwater(tp) == 0
        assert lag == dict.fromkeys(range(TOPIC_PARTITIONS), 0)
