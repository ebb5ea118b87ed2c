"""The `attorney_authority` read model answers for any moment, as the events replayed would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.power_of_attorney import expires_at
from domain.registry import Registry
from projections.authority import authority_at
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.people import CASE, People, case_event

RIGHT = "represent_first_instance"
SECOND = timedelta(seconds=1)


@pytest.fixture
def runner(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    with ProjectionRunner(registry, database_url) as projection:
        yield projection


def authorised(
    runner: ProjectionRunner, registry: Registry, iin: str, at: datetime, right: str = RIGHT
) -> bool:
    """The read model's answer, checked against the aggregates replayed to the same moment."""
    runner.catch_up()
    found = authority_at(runner.db, CASE, iin, right, at)
    assert found == sorted(str(p) for p in registry.authority(CASE, iin, right, at))
    return bool(found)


def test_an_attorney_who_renounced_has_no_authority_after_but_had_before(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    issued_at = clock.now
    poa = registry.issue(people.issue(attorneys=both)).poa
    renounced_at = clock.advance(hours=2)
    renunciation = people.act(
        "epoa.renounce", poa.id, people.attorney, attorney_iin=people.attorney.iin
    )
    registry.renounce(poa.id, renunciation)
    iin = people.attorney.iin
    assert not authorised(runner, registry, iin, issued_at - SECOND)
    assert authorised(runner, registry, iin, issued_at)
    assert authorised(runner, registry, iin, renounced_at - SECOND)
    assert not authorised(runner, registry, iin, renounced_at)
    assert authorised(runner, registry, people.second_attorney.iin, renounced_at + SECOND)


def test_a_revoked_poa_gave_authority_until_the_moment_of_revocation(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    revoked_at = clock.advance(days=1)
    registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    iin = people.attorney.iin
    assert authorised(runner, registry, iin, revoked_at - SECOND)
    assert not authorised(runner, registry, iin, revoked_at)
    assert not authorised(runner, registry, iin, revoked_at + timedelta(days=30))


def test_authority_ends_at_the_first_instant_after_the_last_valid_day_in_kazakhstan(
    registry: Registry, runner: ProjectionRunner, people: People
) -> None:
    until = (datetime.now(UTC) + timedelta(days=3)).date()
    registry.issue(people.issue(valid_until=until.isoformat()))
    end = expires_at(until)
    iin = people.attorney.iin
    assert authorised(runner, registry, iin, end - timedelta(microseconds=1))
    assert not authorised(runner, registry, iin, end)


def test_a_concluded_case_ends_the_authority_of_every_attorney_in_it(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    clock.advance(days=1)
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    assert authorised(runner, registry, people.attorney.iin, clock.now)
    concluded_at = clock.advance(days=1)
    registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    assert authorised(runner, registry, people.attorney.iin, concluded_at - SECOND)
    assert not authorised(runner, registry, people.attorney.iin, concluded_at)
    assert registry.get_poa(poa.id).status == "terminated"


def test_an_added_attorney_has_every_right_of_the_poa_from_the_addition_on(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    added_at = clock.advance(minutes=30)
    addition = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.third_attorney.iin}
    )
    registry.add_attorney(poa.id, addition)
    iin = people.third_attorney.iin
    assert not authorised(runner, registry, iin, added_at - SECOND)
    assert authorised(runner, registry, iin, added_at)
    assert authorised(runner, registry, iin, added_at, right="appeal_judicial_acts")


def test_no_authority_for_a_right_not_granted_or_in_another_case(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    registry.issue(people.issue())
    iin = people.attorney.iin
    assert not authorised(runner, registry, iin, clock.now, right="represent_cassation")
    runner.catch_up()
    assert authority_at(runner.db, "OTHER-1", iin, RIGHT, clock.now) == []


def test_two_poas_for_the_same_attorney_are_both_named(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    first = registry.issue(people.issue()).poa
    second = registry.issue(people.issue()).poa
    runner.catch_up()
    found = authority_at(runner.db, CASE, people.attorney.iin, RIGHT, clock.now)
    assert found == sorted([str(first.id), str(second.id)])


def test_a_revocation_by_a_process_whose_clock_is_behind_is_never_before_the_issue(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    """Another replica's clock 3 ms behind: the POA never held before its issue, and its
    revocation is recorded at the issue, not 3 ms before it."""
    issued_at = clock.now
    poa = registry.issue(people.issue()).poa
    clock.advance(milliseconds=-3)
    registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    iin = people.attorney.iin
    assert not authorised(runner, registry, iin, issued_at - timedelta(milliseconds=2))
    assert not authorised(runner, registry, iin, issued_at)
    state = registry.get_poa(poa.id)
    assert state.termination is not None and state.termination["at"] == issued_at


def test_a_conclusion_by_a_consumer_whose_clock_is_behind_ends_a_poa_after_its_last_act(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    """The attorney added at 10:00:00.005 by an API replica, the case concluded by a consumer
    whose clock reads 10:00:00.002: the added attorney never held the POA before their
    addition, and the POA ends at it."""
    poa = registry.issue(people.issue()).poa
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    added_at = clock.advance(seconds=1)
    addition = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.third_attorney.iin}
    )
    registry.add_attorney(poa.id, addition)
    clock.advance(milliseconds=-3)
    registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    for moment in (added_at - timedelta(milliseconds=2), added_at):
        assert not authorised(runner, registry, people.third_attorney.iin, moment)
    assert authorised(runner, registry, people.attorney.iin, added_at - SECOND)
    assert not authorised(runner, registry, people.attorney.iin, added_at)
    state = registry.get_poa(poa.id)
    assert state.termination is not None and state.termination["at"] == added_at
