"""The case-events consumer end to end: a real broker, a real PostgreSQL, real signatures.

Events are published by librdkafka (confluent-kafka), a client independent of the
consumer's kafka-python, with the partitioner Java and kafka-python producers use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from consumers.case_events import CaseEventHandler, Outcome
from consumers.kafka_loop import run_consumer
from consumers.metrics import ConsumerMetrics
from consumers.positions import resume_offset, tracking_for
from domain.court_case import CourtCase
from domain.errors import NotFoundError
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.court_events import POISON, execution, in_binary_mode, judgment, publish
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.kafka_fixtures import TOPIC_PARTITIONS
from tests.support.people import People

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DEADLINE_S = 20.0
MESSAGES = "epoa_consumer_messages_total"


def eventually(check: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout} s waiting until {what}")
        time.sleep(0.05)


@pytest.fixture(name="settings")
def consumer_settings(
    postgres_url: str,
    tmp_path: Path,
    kafka_broker: KafkaEndpoint,
    kafka_topic: str,
    fresh_group_id: str,
) -> Settings:
    dead_letters = f"{kafka_topic}.dlq"
    kafka_broker.create_topic(dead_letters, 1)
    return Settings(
        database_url=postgres_url,
        var_dir=tmp_path / "var",
        kafka_bootstrap=kafka_broker.bootstrap,
        case_events_topic=kafka_topic,
        case_events_dlq_topic=dead_letters,
        consumer_group=fresh_group_id,
    )


@pytest.fixture(name="store")
def store_registry(settings: Settings) -> Iterator[Registry]:
    """The registry as the rest of the service sees it; the consumer builds its own."""
    registry = build_registry(settings)
    yield registry
    registry.close()


@contextmanager
def consuming(settings: Settings, people: People) -> Iterator[ConsumerMetrics]:
    """Run the consumer in a thread until the block ends, then stop it as SIGTERM would."""
    registry = build_registry(settings)
    metrics = ConsumerMetrics()
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            run_consumer(settings, registry, people.verifier, stop, metrics)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=run, name="case-events-consumer")
    thread.start()
    try:
        yield metrics
    finally:
        stop.set()
        thread.join(DEADLINE_S)
        registry.close()
    assert not thread.is_alive(), "the consumer did not stop"
    assert not failures, failures


def counted(metrics: ConsumerMetrics, outcome: str) -> int:
    return int(metrics.value(MESSAGES, outcome=outcome))


def position(registry: Registry, topic: str, partition: int) -> int:
    return resume_offset(registry.process_recorder, topic, partition)


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of every partition of `topic` (up to its highwater), read without a group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            marks = [(consumer.highwater(p), consumer.position(p)) for p in partitions]
            if all(mark is not None and at >= mark for mark, at in marks):
                return records
        pytest.fail(f"could not read {topic} to its end within {DEADLINE_S} s")
    finally:
        consumer.close()


def case_events_of(registry: Registry, case_number: str) -> list[str]:
    case_id = CourtCase.create_id(case_number)
    return [type(event).__name__ for event in registry.events.get(case_id)]


def test_signed_events_from_another_client_conclude_a_case_and_terminate_its_poas(
    settings: Settings, store: Registry, people: People
) -> None:
    first = store.issue(people.issue(case_number="K-1")).poa
    second = store.issue(people.issue(case_number="K-1")).poa
    elsewhere = store.issue(people.issue(case_number="K-2")).poa
    placed = publish(
        settings.kafka_bootstrap or "",
        settings.case_events_topic,
        [(b"K-1", judgment(people, "K-1")), (b"K-1", execution(people, "K-1"))],
    )
    [(partition, _), _] = placed
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 2, "both events are applied")
        eventually(lambda: metrics.value("epoa_consumer_ready") == 1, "the consumer is ready")
        lag = metrics.value(
            "epoa_consumer_lag_messages",
            topic=settings.case_events_topic,
            partition=str(partition),
        )
    assert lag == 0
    assert store.get_case("K-1").concluded
    for poa_id in (first.id, second.id):
        termination = store.get_poa(poa_id).termination
        assert termination is not None and termination["reason"] == "case_concluded"
    assert store.get_poa(elsewhere.id).status == "active"
    assert position(store, settings.case_events_topic, partition) == 2


@pytest.mark.parametrize("judgment_first", [True, False], ids=["judgment-first", "writ-first"])
def test_a_case_concludes_whichever_of_its_two_events_arrives_first(
    settings: Settings, store: Registry, people: People, judgment_first: bool
) -> None:
    poa = store.issue(people.issue(case_number="K-3")).poa
    events = [(b"K-3", judgment(people, "K-3")), (b"K-3", execution(people, "K-3"))]
    if not judgment_first:
        events.reverse()
    publish(settings.kafka_bootstrap or "", settings.case_events_topic, events)
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 2, "both events are applied")
    assert store.get_case("K-3").concluded
    assert store.get_poa(poa.id).status == "terminated"
    assert case_events_of(store, "K-3").count("Concluded") == 1


def test_redelivering_the_whole_topic_from_offset_zero_changes_nothing(
    settings: Settings, store: Registry, people: People
) -> None:
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    for case in ("K-4", "K-5"):
        store.issue(people.issue(case_number=case))
    events = [
        (case.encode(), make(people, case))
        for case in ("K-4", "K-5")
        for make in (judgment, execution)
    ]
    events.append((b"K-4", POISON["bad JSON"][0](people, "K-4")))
    publish(bootstrap, topic, events)
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 4, "every event is applied")
        eventually(lambda: counted(metrics, "poison") == 1, "the poison message is dead-lettered")
    stored = store.recorder.max_notification_id()

    again = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}.again"})
    with consuming(again, people) as metrics:
        eventually(lambda: metrics.value("epoa_consumer_ready") == 1, "a new group is assigned")
        time.sleep(1.0)
        assert sum(counted(metrics, o.value) for o in Outcome) == 0

    handler = CaseEventHandler(store, people.verifier)
    records = read_topic(bootstrap, topic)
    assert len(records) == len(events)
    decisions = [
        handler.handle(r.value, tracking_for(r.topic, r.partition, r.offset)) for r in records
    ]
    assert {d.outcome for d in decisions} == {Outcome.DUPLICATE}

    publish(bootstrap, topic, events[:4])  # the court sends them all again
    with consuming(again, people) as metrics:
        eventually(lambda: counted(metrics, "duplicate") == 4, "the copies are seen")
        assert counted(metrics, "applied") == 0
    assert store.recorder.max_notification_id() == stored
    assert len(read_topic(bootstrap, settings.case_events_dlq_topic)) == 1
    everything = read_topic(bootstrap, topic)
    for partition in range(TOPIC_PARTITIONS):
        highwater = sum(1 for r in everything if r.partition == partition)
        assert position(store, topic, partition) == highwater


def test_each_poison_message_lands_in_the_dead_letter_topic_and_the_next_one_is_applied(
    settings: Settings, store: Registry, people: People
) -> None:
    bootstrap = settings.kafka_bootstrap or ""
    poison = [(name, make(people, "K-6"), reason) for name, (make, reason) in POISON.items()]
    messages = [(b"K-6", value) for _, value, _ in poison]
    messages.append((b"K-6", judgment(people, "K-6")))
    own = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    spoofed = [("epoa.reason", b"none")]  # only the service says why
    placed = publish(bootstrap, settings.case_events_topic, messages, headers=own + spoofed)
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 1, "the good message is applied")
        assert counted(metrics, "poison") == len(poison)

    dead = read_topic(bootstrap, settings.case_events_dlq_topic)
    assert len(dead) == len(poison)
    for record, (name, value, reason), (partition, offset) in zip(
        dead, poison, placed, strict=False
    ):
        headers = {key: raw.decode() for key, raw in record.headers}
        assert (record.key, record.value) == (b"K-6", value), name
        assert record.headers[0] == own[0], name  # kept, for a replay as sent
        assert [key for key, _ in record.headers].count("epoa.reason") == 1, name
        assert headers["epoa.reason"] == reason, (name, headers["epoa.detail"])
        assert headers["epoa.detail"], name
        assert headers["epoa.source.topic"] == settings.case_events_topic
        assert headers["epoa.source.partition"] == str(partition)
        assert headers["epoa.source.offset"] == str(offset)
    assert store.get_case("K-6").judgment is not None
    assert position(store, settings.case_events_topic, placed[-1][0]) == len(messages)


def test_an_event_in_binary_content_mode_is_dead_lettered_saying_so_and_kept_as_sent(
    settings: Settings, store: Registry, people: People
) -> None:
    bootstrap = settings.kafka_bootstrap or ""
    value, headers = in_binary_mode("K-9")
    [(partition, offset)] = publish(
        bootstrap, settings.case_events_topic, [(b"K-9", value)], headers=headers
    )
    publish(bootstrap, settings.case_events_topic, [(b"K-9", judgment(people, "K-9"))])
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 1, "the structured event is applied")
        assert counted(metrics, "poison") == 1
    [dead] = read_topic(bootstrap, settings.case_events_dlq_topic)
    assert (dead.key, dead.value) == (b"K-9", value)
    assert dead.headers[: len(headers)] == headers  # as sent, for a replay
    said = {key: raw.decode() for key, raw in dead.headers}
    assert said["epoa.reason"] == "validation"
    assert "binary content mode" in said["epoa.detail"], said["epoa.detail"]
    assert (said["epoa.source.partition"], said["epoa.source.offset"]) == (
        str(partition),
        str(offset),
    )
    assert store.get_case("K-9").judgment is not None


def test_an_id_reused_with_other_content_goes_to_the_dead_letter_topic_and_the_rest_applies(
    settings: Settings, store: Registry, people: People
) -> None:
    bootstrap = settings.kafka_bootstrap or ""
    first = judgment(people, "K-7", id="court-17")
    reused = execution(people, "K-7", id="court-17")  # the same (source, id), another event
    elsewhere = judgment(people, "K-8", id="court-17")  # and in another case
    # All on K-7's partition, so that they are read in this order.
    messages = [(b"K-7", first), (b"K-7", reused), (b"K-7", first), (b"K-7", elsewhere)]
    messages.append((b"K-7", execution(people, "K-7", id="court-18")))
    publish(bootstrap, settings.case_events_topic, messages)
    with consuming(settings, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 2, "the two events are applied")
        eventually(lambda: counted(metrics, "poison") == 2, "the two reuses are refused")
        assert counted(metrics, "duplicate") == 1
    dead = read_topic(bootstrap, settings.case_events_dlq_topic)
    assert sorted(record.value for record in dead) == sorted([reused, elsewhere])
    for record in dead:
        headers = {key: raw.decode() for key, raw in record.headers}
        assert headers["epoa.reason"] == "duplicate-document", headers
        assert "court-17" in headers["epoa.detail"]
    assert store.get_case("K-7").concluded
    with pytest.raises(NotFoundError):
        store.get_case("K-8")
