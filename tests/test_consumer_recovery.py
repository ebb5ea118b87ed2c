"""The consumer survives what production does to it: SIGKILL mid-stream, a database outage.

The process test runs `consumers.kafka_loop.main` in a child process configured only by the
environment, as `epoa consume` runs; its test hook is a callback passed to `main`, so the
production code carries no switch for it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.partitioner.default import murmur2

from domain.registry import Registry
from epoa.settings import Settings
from epoa.storage import STORE_ATTEMPTS
from epoa.wiring import build_registry
from tests.support.court_events import execution, judgment, not_json, publish
from tests.support.kafka_fixtures import TOPIC_PARTITIONS
from tests.support.people import People
from tests.support.postgres import DATABASE, SERVER, connect, insert_lock_held, writers_waiting
from tests.test_consumer_kafka import (
    case_events_of,
    consumer_settings,  # noqa: F401  (the `settings` fixture)
    consuming,
    counted,
    eventually,
    position,
    read_topic,
    store_registry,  # noqa: F401  (the `store` fixture)
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
CONSUMER = """
import logging, os, signal, sys
from consumers.kafka_loop import main
from epoa.settings import Settings

def crash_after_commit(decision):
    if decision.outcome == "applied":
        os.kill(os.getpid(), signal.SIGKILL)

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
logging.getLogger("kafka").setLevel(logging.WARNING)
sys.exit(main(Settings(), after_commit=crash_after_commit if sys.argv[1:] == ["crash"] else None))
"""


def start_consumer(
    settings: Settings, people: People, log: Path, *args: str
) -> subprocess.Popen[bytes]:
    """`main(Settings())` in a child process, configured through `EPOA_*` variables only."""
    trusted = settings.var_dir / "trusted-ca.pem"
    trusted.write_bytes(people.ca.root.pem)
    env = {name: value for name, value in os.environ.items() if not name.startswith("EPOA_")}
    env |= {
        "EPOA_DATABASE_URL": settings.database_url,
        "EPOA_VAR_DIR": str(settings.var_dir),
        "EPOA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "EPOA_CASE_EVENTS_TOPIC": settings.case_events_topic,
        "EPOA_CASE_EVENTS_DLQ_TOPIC": settings.case_events_dlq_topic,
        "EPOA_CONSUMER_GROUP": settings.consumer_group,
        "EPOA_TRUSTED_CA": str(trusted),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CONSUMER, *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def committed(settings: Settings, partition: int) -> int | None:
    """The offset the group committed to Kafka for the partition, if any."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        groups = admin.list_group_offsets(settings.consumer_group)
    finally:
        admin.close()
    found = groups.get(settings.consumer_group, {}).get(
        TopicPartition(settings.case_events_topic, partition)
    )
    return None if found is None or found.offset < 0 else int(found.offset)


def test_a_consumer_killed_right_after_the_store_commit_loses_nothing_and_repeats_nothing(
    settings: Settings, store: Registry, people: People, tmp_path: Path
) -> None:
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    poa = store.issue(people.issue(case_number="R-1")).poa
    [(partition, _)] = publish(bootstrap, topic, [(b"R-1", judgment(people, "R-1"))])

    crashing = start_consumer(settings, people, tmp_path / "first.log", "crash")
    assert crashing.wait(30) == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    assert position(store, topic, partition) == 1
    assert case_events_of(store, "R-1") == [
        "Opened",
        "PowerOfAttorneyAttached",
        "JudgmentEnteredIntoForce",
    ]
    assert committed(settings, partition) in (None, 0)  # Kafka would have it redone

    publish(bootstrap, topic, [(b"R-1", execution(people, "R-1"))])
    restarted = start_consumer(settings, people, tmp_path / "second.log")
    try:
        eventually(lambda: store.get_case("R-1").concluded, "the restarted consumer concludes", 30)
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0
    finally:
        if restarted.poll() is None:
            restarted.kill()
    output = (tmp_path / "second.log").read_text()
    assert output.count("case event applied") == 1, output
    assert "case event duplicate" not in output, output
    events = case_events_of(store, "R-1")
    assert events.count("JudgmentEnteredIntoForce") == 1
    assert events.count("ExecutionDocumentsIssued") == 1
    assert events.count("Concluded") == 1
    assert store.get_poa(poa.id).status == "terminated"
    assert position(store, topic, partition) == 2
    assert committed(settings, partition) == 2  # committed on the way out, after SIGTERM


@dataclass
class Outage:
    """A database role that can be refused logins or writes, its sessions ended, like a
    server going away, while the shared PostgreSQL cluster keeps running for other tests."""

    role: str
    password: str = "outage"

    def url(self, settings: Settings) -> str:
        """The settings' database URL, logging in as this role."""
        parts = urlsplit(settings.database_url)
        netloc = f"{self.role}:{self.password}@{parts.hostname}:{parts.port or 5432}"
        return urlunsplit(parts._replace(netloc=netloc))

    def refuse_logins(self) -> None:
        self._admin(f'ALTER ROLE "{self.role}" NOLOGIN', self._terminate())

    def allow_logins(self) -> None:
        self._admin(f'ALTER ROLE "{self.role}" LOGIN')

    def refuse_writes(self) -> None:
        self._admin(
            f'ALTER ROLE "{self.role}" SET default_transaction_read_only = on', self._terminate()
        )

    def allow_writes(self) -> None:
        self._admin(f'ALTER ROLE "{self.role}" RESET ALL', self._terminate())

    def drop(self) -> None:
        self._admin(
            f'ALTER ROLE "{self.role}" NOLOGIN',
            self._terminate(),
            f'REASSIGN OWNED BY "{self.role}" TO CURRENT_USER',
            f'DROP OWNED BY "{self.role}"',
            f'DROP ROLE "{self.role}"',
        )

    def _admin(self, *statements: str) -> None:
        with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def _terminate(self) -> str:
        return (
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.role}'"
        )


@pytest.fixture(name="outage")
def outage_role(postgres_url: str) -> Iterator[Outage]:
    role = Outage(f"epoa_outage_{uuid.uuid4().hex[:12]}")
    schema = postgres_url.rsplit("schema=", 1)[1]
    role._admin(
        f"CREATE ROLE \"{role.role}\" LOGIN PASSWORD '{role.password}'",
        f'ALTER SCHEMA "{schema}" OWNER TO "{role.role}"',
    )
    yield role
    role.drop()


@pytest.fixture(name="as_role")
def settings_as_role(settings: Settings, outage: Outage) -> Settings:
    """The consumer's settings: the same schema, reached through the outage's role.

    The role must create the tables, so a test asks for this fixture before `store`."""
    consumer = settings.model_copy(update={"database_url": outage.url(settings)})
    build_registry(consumer).close()  # the role creates, and so owns, the tables
    return consumer


def case_on_partition(partition: int, prefix: str) -> str:
    """A case number whose events the default partitioner puts on `partition`."""
    for number in itertools.count():
        case = f"{prefix}-{number}"
        if (murmur2(case.encode()) & 0x7FFFFFFF) % TOPIC_PARTITIONS == partition:
            return case
    raise AssertionError("unreachable")


def test_a_database_outage_is_waited_out_without_skipping_or_repeating_a_message(
    as_role: Settings, store: Registry, people: People, outage: Outage
) -> None:
    bootstrap, topic = as_role.kafka_bootstrap or "", as_role.case_events_topic
    poa = store.issue(people.issue(case_number="O-1")).poa
    [(partition, _)] = publish(bootstrap, topic, [(b"O-1", judgment(people, "O-1"))])
    later = case_on_partition(partition, "O")
    with consuming(as_role, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 1, "the judgment is applied")
        eventually(lambda: committed(as_role, partition) == 1, "its offset is committed")
        outage.refuse_logins()
        publish(
            bootstrap,
            topic,
            [(b"O-1", execution(people, "O-1")), (later.encode(), judgment(people, later))],
        )
        time.sleep(3.0)
        assert counted(metrics, "applied") == 1
        assert position(store, topic, partition) == 1
        assert committed(as_role, partition) == 1
        assert store.get_poa(poa.id).status == "active"
        outage.allow_logins()
        eventually(lambda: counted(metrics, "applied") == 3, "both events are applied after all")
        eventually(lambda: committed(as_role, partition) == 3, "their offsets are committed")
    assert position(store, topic, partition) == 3
    assert case_events_of(store, "O-1").count("ExecutionDocumentsIssued") == 1
    assert store.get_poa(poa.id).status == "terminated"


def test_a_store_refusing_writes_is_retried_with_backoff_and_the_message_applied_once(
    as_role: Settings, store: Registry, people: People, outage: Outage
) -> None:
    bootstrap, topic = as_role.kafka_bootstrap or "", as_role.case_events_topic
    poa = store.issue(people.issue(case_number="W-1")).poa
    [(partition, _)] = publish(bootstrap, topic, [(b"W-1", judgment(people, "W-1"))])
    with consuming(as_role, people) as metrics:
        eventually(lambda: counted(metrics, "applied") == 1, "the judgment is applied")
        outage.refuse_writes()
        publish(bootstrap, topic, [(b"W-1", execution(people, "W-1"))])
        eventually(
            lambda: metrics.value("epoa_consumer_transient_failures_total") >= 3,
            "the consumer has retried the writ",
        )
        assert counted(metrics, "applied") == 1
        assert position(store, topic, partition) == 1
        outage.allow_writes()
        eventually(lambda: counted(metrics, "applied") == 2, "the writ is applied after all")
    assert position(store, topic, partition) == 2
    assert case_events_of(store, "W-1").count("ExecutionDocumentsIssued") == 1
    assert store.get_poa(poa.id).status == "terminated"


def test_store_sessions_ended_inside_the_batch_transaction_lose_and_repeat_nothing(
    settings: Settings, store: Registry, people: People, postgres_url: str
) -> None:
    """The server ends the consumer's session while its batch waits inside its transaction,
    again on each retry, more often than the store's own retries allow: the batch is
    retried whole, its poison messages dead-lettered once, its events applied once."""
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    cases = [case_on_partition(p, f"S{p}") for p in range(TOPIC_PARTITIONS)]
    poas = {case: store.issue(people.issue(case_number=case)).poa.id for case in cases}
    messages = [
        (case.encode(), make(people, case))
        for case in cases
        for make in (judgment, not_json, execution)
    ]
    with consuming(settings, people) as metrics:
        eventually(lambda: metrics.value("epoa_consumer_ready") == 1, "the consumer is ready")
        with insert_lock_held(postgres_url):
            placed = publish(bootstrap, topic, messages)
            for _ in range(STORE_ATTEMPTS + 2):
                eventually(lambda: writers_waiting(postgres_url) >= 1, "the batch writes")
                end_waiting_writers(postgres_url)
        highwater = Counter(partition for partition, _ in placed)
        eventually(
            lambda: all(position(store, topic, p) == highwater[p] for p in highwater),
            "every partition is settled",
        )
        assert metrics.value("epoa_consumer_transient_failures_total") >= 1
        assert (counted(metrics, "applied"), counted(metrics, "poison")) == (6, 3)
    for case in cases:
        events = Counter(case_events_of(store, case))
        assert (events["JudgmentEnteredIntoForce"], events["ExecutionDocumentsIssued"]) == (1, 1)
        assert events["Concluded"] == 1
        assert store.get_poa(poas[case]).status == "terminated"
    dead = read_topic(bootstrap, settings.case_events_dlq_topic)
    assert sorted(record.value for record in dead) == sorted(v for _, v in messages[1::3])


def end_waiting_writers(database_url: str) -> None:
    """End the sessions of the transactions waiting for the insert lock, as a server
    restart or a failover would."""
    with connect(database_url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE relation = 'epoa_events'::regclass AND NOT granted"
        )
