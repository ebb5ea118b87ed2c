"""The `poa_status` and `cases` read models: a POA's state and a case's, as the API shows them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.power_of_attorney import expires_at
from domain.registry import Registry
from projections.cases import get_case
from projections.poa_status import find_poa
from projections.read_model import stamp
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.people import CASE, People, case_event


@pytest.fixture
def runner(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    with ProjectionRunner(registry, database_url) as projection:
        yield projection


def state(projection: ProjectionRunner, poa_id: UUID, now: datetime) -> dict[str, Any]:
    projection.catch_up()
    found = find_poa(projection.db, str(poa_id), now)
    assert found is not None
    return found


def test_an_issued_poa_is_shown_active_with_its_principal_attorneys_and_rights(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    shown = state(runner, poa.id, clock.now)
    assert shown == {
        "poa_id": str(poa.id),
        "case_number": CASE,
        "principal": {"iin": people.principal.iin, "name": None},
        "attorneys": [
            {
                "iin": people.attorney.iin,
                "name": None,
                "status": "active",
                "since": stamp(clock.now),
                "until": None,
            }
        ],
        "rights": ["represent_first_instance", "appeal_judicial_acts"],
        "issued_at": stamp(clock.now),
        "valid_until": None,
        "expires_at": None,
        "status": "active",
        "termination": None,
        "version": poa.version,
    }


def test_an_added_attorney_is_listed_and_the_version_follows_the_aggregate(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    added_at = clock.advance(minutes=3)
    addition = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    after = registry.add_attorney(poa.id, addition).poa
    shown = state(runner, poa.id, clock.now)
    assert [a["iin"] for a in shown["attorneys"]] == after.active_attorneys()
    assert shown["attorneys"][1]["since"] == stamp(added_at)
    assert shown["version"] == after.version == 2


def test_an_attorney_who_renounced_is_shown_renounced_while_the_poa_stays_active(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    poa = registry.issue(people.issue(attorneys=both)).poa
    renounced_at = clock.advance(minutes=5)
    renunciation = people.act(
        "epoa.renounce", poa.id, people.attorney, attorney_iin=people.attorney.iin
    )
    registry.renounce(poa.id, renunciation)
    shown = state(runner, poa.id, clock.now)
    assert shown["status"] == "active"
    assert shown["attorneys"][0]["status"] == "renounced"
    assert shown["attorneys"][0]["until"] == stamp(renounced_at)
    assert shown["attorneys"][1]["status"] == "active"


def test_when_the_last_attorney_renounces_the_poa_is_shown_terminated(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    renunciation = people.act(
        "epoa.renounce", poa.id, people.attorney, attorney_iin=people.attorney.iin
    )
    registry.renounce(poa.id, renunciation)
    shown = state(runner, poa.id, clock.now)
    assert shown["status"] == "terminated"
    assert shown["termination"] == {
        "reason": "renounced_by_all_attorneys",
        "at": stamp(clock.now),
        "source": "attorneys",
    }


def test_a_revoked_poa_is_shown_revoked_by_its_principal(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    revoked_at = clock.advance(hours=1)
    after = registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal)).poa
    shown = state(runner, poa.id, clock.now)
    assert shown["status"] == "revoked"
    assert shown["termination"] == {
        "reason": "revoked_by_principal",
        "at": stamp(revoked_at),
        "source": "principal",
    }
    assert shown["version"] == after.version
    assert shown["attorneys"][0]["status"] == "active"
    assert shown["attorneys"][0]["until"] == stamp(revoked_at)


def test_a_poa_past_its_last_valid_day_is_shown_expired_without_any_event(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    until = (datetime.now(UTC) + timedelta(days=2)).date()
    poa = registry.issue(people.issue(valid_until=until.isoformat())).poa
    end = expires_at(until)
    assert state(runner, poa.id, end - timedelta(microseconds=1))["status"] == "active"
    expired = state(runner, poa.id, end)
    assert expired["status"] == "expired"
    assert expired["expires_at"] == stamp(end)
    assert expired["valid_until"] == until.isoformat()
    assert expired["termination"] == {
        "reason": "expired",
        "at": stamp(end),
        "source": "valid_until",
    }
    assert expired["attorneys"][0]["until"] == stamp(end)
    before = state(runner, poa.id, end - timedelta(microseconds=1))
    assert before["termination"] is None
    assert before["attorneys"][0]["until"] is None


def test_a_concluded_case_shows_its_facts_and_its_poas_terminated_with_it(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    first = registry.issue(people.issue()).poa
    clock.advance(minutes=1)
    second = registry.issue(people.issue()).poa
    judged_at = clock.advance(days=1)
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    concluded_at = clock.advance(days=1)
    outcome = registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    runner.catch_up()
    case = get_case(runner.db, CASE)
    assert case is not None
    assert case["powers_of_attorney"] == [str(first.id), str(second.id)]
    assert case["judgment_at"] == stamp(judged_at)
    assert case["judgment"]["judicial_act_id"] == "JA-2026-000123"
    assert case["execution_documents"]["documents"] == ["EL-1"]
    assert case["concluded"] and case["concluded_at"] == stamp(concluded_at)
    for poa_id in outcome.terminated:
        shown = state(runner, poa_id, clock.now)
        assert shown["status"] == "terminated"
        assert shown["termination"]["reason"] == "case_concluded"
        assert shown["termination"]["source"].startswith("case-event:")


def test_a_judgment_recorded_with_a_data_member_at_shows_when_the_registry_recorded_it(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    """An event recorded before a `data` member `at` was refused may hold one: the
    case shows the registry's own time under that name all the same, never the court's."""
    judged = case_event(people, JUDGMENT_IN_FORCE, "AT-1")
    forged = {**judged.data, "at": "2020-01-01T00:00:00Z"}
    registry.record_case_event(dataclasses.replace(judged, data=forged))
    case = registry.get_case("AT-1")
    assert case.judgment is not None and case.judgment["at"] == clock.now
    runner.catch_up()
    shown = get_case(runner.db, "AT-1")
    assert shown is not None and shown["judgment"]["at"] == stamp(clock.now)
    assert shown["judgment"]["judicial_act_id"] == judged.data["judicial_act_id"]


def test_a_case_never_named_in_any_event_is_not_found(runner: ProjectionRunner) -> None:
    runner.catch_up()
    assert get_case(runner.db, "NO-SUCH-1") is None
    assert find_poa(runner.db, "00000000-0000-0000-0000-000000000000", datetime.now(UTC)) is None


def test_read_model_times_are_utc_with_microseconds_so_text_order_is_time_order() -> None:
    almaty = timezone(timedelta(hours=5))
    assert stamp(datetime(2026, 11, 25, 23, 0, 0, 5, tzinfo=almaty)) == (
        "2026-11-25T18:00:00.000005+00:00"
    )
    assert stamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000+00:00"
    moments = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=n**3) for n in range(50)]
    assert sorted(stamp(m) for m in reversed(moments)) == [stamp(m) for m in moments]
