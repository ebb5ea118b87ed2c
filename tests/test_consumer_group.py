"""Several `epoa consume` processes in one consumer group, one PostgreSQL store: every case
event applied exactly once while a member dies with SIGKILL in the middle of a transaction
and the group hands its partitions to the others.

The broker is the in-repo tansu (`tests/support/broker.py`): it runs real consumer groups,
assigns partitions among their members and rebalances when a member joins, leaves, or stops
heartbeating for the session timeout (6 s here), as Kafka does.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from domain.registry import Registry
from epoa.settings import Settings
from tests.support.court_events import bit_flipped_signature, execution, judgment, publish
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.people import People
from tests.support.postgres import insert_lock_held, writers_waiting
from tests.test_consumer_health import Consume
from tests.test_consumer_kafka import case_events_of, position, read_topic
from tests.test_consumer_recovery import committed

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 6
MEMBERS = 3
WITHIN_S = 45.0
APPLIED = re.compile(r"case event applied: \S+\[(\d+)\]@(\d+) ")


@pytest.fixture(name="group_settings")
def six_partitions(
    postgres_url: str, tmp_path: Path, kafka_broker: KafkaEndpoint, fresh_group_id: str
) -> Settings:
    topic = f"epoa-test.group.{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(topic, PARTITIONS)
    kafka_broker.create_topic(f"{topic}.dlq", 1)
    return Settings(
        database_url=f"{postgres_url}&pool_size=2",  # three processes share the server
        var_dir=tmp_path / "var",
        kafka_bootstrap=kafka_broker.bootstrap,
        case_events_topic=topic,
        case_events_dlq_topic=f"{topic}.dlq",
        consumer_group=fresh_group_id,
    )


@pytest.fixture(name="group_store")
def store_of_the_group(group_settings: Settings) -> Iterator[Registry]:
    from epoa.wiring import build_registry

    registry = build_registry(group_settings)
    yield registry
    registry.close()


def cases_per_partition(prefix: str, each: int) -> list[str]:
    """`each` case numbers on every partition, by the partitioner courts' producers use."""
    found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for number in itertools.count():
        case = f"{prefix}-{number}"
        bucket = found[(murmur2(case.encode()) & 0x7FFFFFFF) % PARTITIONS]
        if len(bucket) < each:
            bucket.append(case)
        if all(len(b) == each for b in found.values()):
            return [case for bucket in found.values() for case in bucket]
    raise AssertionError("unreachable")


def wait_for(check: object, what: str, logs: list[Consume], within: float = WITHIN_S) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {m.log}\n{m.log.read_text()[-3000:]}" for m in logs)
            pytest.fail(f"gave up after {within} s waiting until {what}\n{tails}")
        time.sleep(0.1)


def all_ready(members: list[Consume]) -> bool:
    return all(member.ready()[0] == 200 for member in members)


def test_a_group_member_killed_mid_transaction_hands_its_partitions_over_losing_nothing(
    group_settings: Settings,
    group_store: Registry,
    people: People,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    settings, store = group_settings, group_store
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    cases = cases_per_partition(f"G{uuid.uuid4().hex[:4]}", 3)
    poas = {case: store.issue(people.issue(case_number=case)).poa.id for case in cases}
    first_wave: list[tuple[bytes, bytes]] = []
    resent: list[tuple[bytes, bytes]] = []
    for number, case in enumerate(cases):
        facts = [judgment(people, case), execution(people, case)]
        if number % 2:
            facts.reverse()  # the writ first
        first_wave += [(case.encode(), fact) for fact in facts]
        resent.append((case.encode(), facts[0]))  # the court sends one of them again
    poisoned = cases[len(cases) // 2]
    poison = bit_flipped_signature(people, poisoned)
    first_wave.insert(len(first_wave) // 2, (poisoned.encode(), poison))

    workdirs = [tmp_path / f"member-{n}" for n in range(MEMBERS)]
    for workdir in workdirs:
        workdir.mkdir()
    members = [Consume(settings, people, workdir) for workdir in workdirs]
    logs = list(members)
    try:
        wait_for(lambda: all_ready(members), "the group has assigned every member", logs)
        with insert_lock_held(postgres_url):
            placed = publish(bootstrap, topic, first_wave)
            wait_for(
                lambda: writers_waiting(postgres_url) >= MEMBERS,
                "every member waits inside its transaction",
                logs,
            )
            victim = members.pop(0)
            victim.process.kill()
            assert victim.process.wait(10) < 0
        # The others commit; after the session timeout the group gives the victim's
        # partitions to them, and they resume at the store's positions.
        placed += publish(bootstrap, topic, resent)
        highwater = Counter(partition for partition, _ in placed)
        caught_up = lambda: all(  # noqa: E731
            position(store, topic, p) == highwater[p] for p in range(PARTITIONS)
        )
        wait_for(caught_up, "the survivors have settled every partition", logs)
        comeback = tmp_path / "member-back"
        comeback.mkdir()
        members.append(Consume(settings, people, comeback))  # and the group rebalances again
        logs.append(members[-1])
        wait_for(lambda: all_ready(members), "the restarted member holds partitions", logs)
    finally:
        stopped = [member.stop() for member in members]
    assert stopped == [0] * len(members), [m.log.read_text()[-3000:] for m in members]

    applied = Counter((int(p), int(o)) for m in logs for p, o in APPLIED.findall(m.log.read_text()))
    assert [where for where, times in applied.items() if times > 1] == []
    assert len(applied) == 2 * len(cases)
    assert "case event applied" not in logs[0].log.read_text()  # its transaction never was
    for case in cases:
        events = Counter(case_events_of(store, case))
        assert (events["JudgmentEnteredIntoForce"], events["ExecutionDocumentsIssued"]) == (1, 1)
        assert events["Concluded"] == 1, case
        poa = store.get_poa(poas[case])
        assert poa.termination is not None and poa.termination["reason"] == "case_concluded"
        assert [type(e).__name__ for e in store.events.get(poas[case])].count("Terminated") == 1
    dead = read_topic(bootstrap, settings.case_events_dlq_topic)
    # A member killed after publishing a poison message, before recording its position,
    # leaves it to be published again by the next owner: at least once, never lost.
    assert dead and {record.value for record in dead} == {poison}
    for record in dead:
        assert dict(record.headers)["epoa.reason"] == b"invalid-signature"
    for partition in range(PARTITIONS):
        assert position(store, topic, partition) == highwater[partition]
        assert committed(settings, partition) == highwater[partition]  # for lag dashboards
