"""A case's conclusion is never dated before a record it found: two replicas on PostgreSQL.

One replica records the case's concluding event while another replica's command on that
case or one of its POAs commits. Whatever the interleaving, the conclusion's moment
(`concluded_at`, and the `termination.at` of each POA it ends) comes after every record of
the case and its POAs that it saw, so no POA is shown issued, given an attorney, revoked or
renounced after the case concluded, and no one is authorised in a case after its end."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from consumers.backoff import Backoff
from consumers.case_events import Outcome
from consumers.dead_letters import DeadLetters
from consumers.metrics import ConsumerMetrics
from consumers.settling import Settler
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.court_events import execution
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.people import People, case_event

pytestmark = pytest.mark.postgres


class Meanwhile:
    """A replica's clock (real time) that, read once after `arm`, lets another replica's
    command commit right after the reading: as happens when that command commits between
    the moment the conclusion takes and the moment it has loaded the case's records."""

    def __init__(self) -> None:
        self.command: Callable[[], object] | None = None

    def arm(self, command: Callable[[], object]) -> None:
        self.command = command

    def __call__(self) -> datetime:
        now = datetime.now(UTC)
        command, self.command = self.command, None
        if command is not None:
            command()
        return now


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Registry, Registry, Meanwhile]]:
    """Two registries over one schema, as two API replicas: the first's clock is a
    `Meanwhile`, the second's real time."""
    meanwhile = Meanwhile()
    first = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path), clock=meanwhile)
    second = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    yield first, second, meanwhile
    first.close()
    second.close()


def issuing(people: People, case: str) -> Callable[[Registry, uuid.UUID], object]:
    return lambda replica, _: replica.issue(people.issue(case))


def adding(people: People, _: str) -> Callable[[Registry, uuid.UUID], object]:
    attorney = {"iin": people.second_attorney.iin}
    return lambda replica, poa_id: replica.add_attorney(
        poa_id, people.act("epoa.add-attorney", poa_id, people.principal, attorney=attorney)
    )


def revoking(people: People, _: str) -> Callable[[Registry, uuid.UUID], object]:
    return lambda replica, poa_id: replica.revoke(
        poa_id, people.act("epoa.revoke", poa_id, people.principal)
    )


def renouncing(people: People, _: str) -> Callable[[Registry, uuid.UUID], object]:
    iin = people.attorney.iin
    return lambda replica, poa_id: replica.renounce(
        poa_id, people.act("epoa.renounce", poa_id, people.attorney, attorney_iin=iin)
    )


COMMANDS = [issuing, adding, revoking, renouncing]
Command = Callable[[People, str], Callable[[Registry, uuid.UUID], object]]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_committed_while_the_case_concludes_is_before_its_conclusion(
    replicas: tuple[Registry, Registry, Meanwhile], people: People, command: Command
) -> None:
    concluding, other, meanwhile = replicas
    case = f"MOMENT-{uuid.uuid4().hex[:8]}"
    poa_id = other.issue(people.issue(case)).poa.id
    other.record_case_event(case_event(people, JUDGMENT_IN_FORCE, case))
    run = command(people, case)
    meanwhile.arm(lambda: run(other, poa_id))

    concluding.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED, case))

    assert meanwhile.command is None  # the other replica's command did commit meanwhile
    assert_concluded_after_all(concluding, people, case, command is issuing)


@pytest.mark.kafka
@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_committed_while_the_consumer_concludes_the_case_is_before_it(
    replicas: tuple[Registry, Registry, Meanwhile],
    people: People,
    command: Command,
    kafka_broker: KafkaEndpoint,
) -> None:
    """The same through the consumer, which settles a poll's messages as one batch."""
    concluding, other, meanwhile = replicas
    case = f"MOMENT-{uuid.uuid4().hex[:8]}"
    poa_id = other.issue(people.issue(case)).poa.id
    other.record_case_event(case_event(people, JUDGMENT_IN_FORCE, case))
    run = command(people, case)
    meanwhile.arm(lambda: run(other, poa_id))
    stop, metrics = threading.Event(), ConsumerMetrics()
    dead_letters = DeadLetters(kafka_broker.bootstrap, f"moment-{uuid.uuid4().hex[:8]}.dlq")
    settler = Settler(
        concluding, people.verifier, dead_letters, Backoff(stop, stop.wait, metrics), metrics
    )
    record = SimpleNamespace(
        topic="moment", partition=0, offset=0, key=case.encode(), value=execution(people, case)
    )
    settled = []
    try:
        settler.settle([record], lambda: True, lambda _, decision: settled.append(decision))
    finally:
        settler.close()
        dead_letters.close()

    assert [decision.outcome for decision in settled] == [Outcome.APPLIED]
    assert meanwhile.command is None
    assert_concluded_after_all(concluding, people, case, command is issuing)


def assert_concluded_after_all(registry: Registry, people: People, case: str, two: bool) -> None:
    """Every record of the case's POAs is dated at or before the case's conclusion, and no
    attorney is authorised at or after it."""
    state = registry.get_case(case)
    assert state.concluded_at is not None
    concluded_at = state.concluded_at
    assert len(state.poa_ids) == (2 if two else 1)
    for poa in [registry.get_poa(p) for p in state.poa_ids]:
        assert poa.issued_at <= concluded_at
        assert poa.termination is not None and poa.termination["at"] <= concluded_at
        for attorney in poa.attorneys:
            assert attorney["since"] <= concluded_at
            assert attorney["until"] is None or attorney["until"] <= concluded_at
        for iin in (people.attorney.iin, people.second_attorney.iin):
            for moment in (concluded_at, datetime.now(UTC)):
                assert registry.authority(case, iin, "represent_first_instance", moment) == []
