"""pytest fixtures for a real Kafka-protocol broker.

`kafka_broker` starts one tansu broker per test session, or uses the broker named by
`EPOA_TEST_KAFKA_BOOTSTRAP`; `own_broker` is a tansu broker of one test alone. When no
broker is available the tests that need one fail under `EPOA_REQUIRE_SERVICES=1` (CI) and
are skipped, with the reason, everywhere else.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NoReturn

import pytest

from tests.support.broker import Broker, free_port
from tests.support.kafka_endpoint import BrokerError, KafkaEndpoint

BOOTSTRAP_ENV: Final = "EPOA_TEST_KAFKA_BOOTSTRAP"
REQUIRE_SERVICES_ENV: Final = "EPOA_REQUIRE_SERVICES"
TOPIC_PARTITIONS: Final = 3


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(f"service unavailable: {reason}")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaEndpoint]:
    """A reachable broker: `.bootstrap` for clients, `.create_topic()` for topics."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        endpoint = KafkaEndpoint(external)
        try:
            endpoint.wait_ready(timeout=10.0)
        except BrokerError as error:
            endpoint.close()
            _unavailable(f"Kafka at {BOOTSTRAP_ENV}={external}: {error}")
        yield endpoint
        endpoint.close()
        return
    broker = Broker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        broker.start()
    except BrokerError as error:
        _unavailable(f"tansu broker: {error}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone, on a port it keeps, so that it can be killed, frozen
    and brought back."""
    broker = Broker(port=free_port(), log_path=tmp_path / "tansu.log")
    try:
        broker.start()
    except BrokerError as error:
        _unavailable(f"tansu broker: {error}")
    yield broker
    broker.thaw()
    broker.stop()


def _unique_name(request: pytest.FixtureRequest) -> str:
    """`epoa-test.<test name>.<random>`: unique, legal as a topic or group, easy to trace."""
    label = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:60].strip("-")
    return f"epoa-test.{label}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_topic(kafka_broker: KafkaEndpoint, request: pytest.FixtureRequest) -> str:
    """A topic no other test uses, with three partitions, ready for producers and consumers."""
    name = _unique_name(request)
    kafka_broker.create_topic(name, TOPIC_PARTITIONS)
    return name


@pytest.fixture
def fresh_group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group id never used before: a group left mid-join stays stuck on tansu."""
    return _unique_name(request)
