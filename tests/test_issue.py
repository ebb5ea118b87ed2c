"""Issuing a power of attorney, on SQLite and PostgreSQL, with real signatures."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.errors import (
    DomainError,
    DuplicateDocumentError,
    InvalidInputError,
    SignerMismatchError,
    StoreUnavailableError,
)
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.conftest import Clock
from tests.support.people import CASE, People, case_event


def stored_count(registry: Registry) -> int:
    return registry.recorder.max_notification_id() or 0


def refused(registry: Registry, error: type[DomainError], command: object, *args: object) -> str:
    """Run a command that must fail; prove the store is exactly as it was."""
    before = stored_count(registry)
    with pytest.raises(error) as caught:
        command(*args)  # type: ignore[operator]
    assert stored_count(registry) == before
    return str(caught.value)


def test_an_issued_poa_is_active_for_its_attorneys_in_its_case(
    registry: Registry, people: People
) -> None:
    outcome = registry.issue(people.issue())
    poa = outcome.poa
    assert outcome.created and poa.status == "active"
    assert poa.case_number == CASE
    assert poa.principal["iin"] == people.principal.iin
    assert poa.active_attorneys() == [people.attorney.iin]
    assert poa.rights == ["represent_first_instance", "appeal_judicial_acts"]
    assert registry.get_case(CASE).poa_ids == [poa.id]
    assert registry.get_poa(poa.id).status == "active"


def test_the_signed_document_is_kept_as_evidence_in_the_event(
    registry: Registry, people: People
) -> None:
    evidence = people.issue()
    poa = registry.issue(evidence).poa
    issued = next(iter(registry.events.get(poa.id)))
    assert issued.evidence == evidence.as_record()  # type: ignore[attr-defined]
    assert people.verifier.verify_record(issued.evidence).signer_id == people.principal.iin  # type: ignore[attr-defined]


def test_the_same_document_again_answers_the_same_poa_and_records_nothing(
    registry: Registry, people: People
) -> None:
    document = people.issue_document()
    first = registry.issue(people.sign(document, people.principal))
    count = stored_count(registry)
    again = registry.issue(people.sign(document, people.principal))
    assert not again.created and again.poa.id == first.poa.id
    assert stored_count(registry) == count


def test_a_document_id_reused_with_other_content_is_refused(
    registry: Registry, people: People
) -> None:
    document = people.issue_document()
    registry.issue(people.sign(document, people.principal))
    other = dict(document, rights=["represent_appeal"])
    refused(registry, DuplicateDocumentError, registry.issue, people.sign(other, people.principal))


def test_an_attorney_cannot_sign_an_issue_for_the_principal(
    registry: Registry, people: People
) -> None:
    forged = people.sign(people.issue_document(), people.attorney)
    refused(registry, SignerMismatchError, registry.issue, forged)


def test_an_organisation_cannot_sign_a_persons_document(registry: Registry, people: People) -> None:
    forged = people.sign(people.issue_document(), people.court)
    refused(registry, SignerMismatchError, registry.issue, forged)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attorneys": []}, "at least one attorney"),
        ({"attorneys": {"iin": "850202400020"}}, "attorneys: a list of"),
        ({"rights": []}, "at least one right"),
        ({"rights": "represent_appeal"}, "rights: a list of right codes is required"),
        ({"rights": ["fly_to_the_moon"]}, "unknown right"),
        ({"rights": ["represent_appeal", "represent_appeal"]}, "listed twice"),
        ({"case_number": "7594 26"}, "case_number"),
        ({"case_number": "x" * 65}, "case_number"),
        ({"principal": {"iin": "900101300018"}}, "IIN"),
        ({"attorneys": [{"iin": "12345"}]}, "IIN"),
        ({"valid_until": "2020-01-01"}, "before the date of issue"),
        ({"valid_until": "2099-01-01"}, "at most three years"),
        ({"valid_until": "31.12.2027"}, "YYYY-MM-DD"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_a_document_breaking_a_rule_is_refused_and_changes_nothing(
    registry: Registry, people: People, fields: dict[str, object], message: str
) -> None:
    document = people.issue_document(**fields)
    signer = people.principal
    if "principal" in fields:
        document["principal"] = fields["principal"]
    detail = refused(registry, InvalidInputError, registry.issue, people.sign(document, signer))
    assert message in detail


def test_an_attorney_named_twice_is_refused(registry: Registry, people: People) -> None:
    twice = [{"iin": people.attorney.iin}, {"iin": people.attorney.iin}]
    evidence = people.issue(attorneys=twice)
    assert "twice" in refused(registry, InvalidInputError, registry.issue, evidence)


def test_the_principal_cannot_be_their_own_attorney(registry: Registry, people: People) -> None:
    evidence = people.issue(attorneys=[{"iin": people.principal.iin}])
    assert "own attorney" in refused(registry, InvalidInputError, registry.issue, evidence)


def test_a_poa_expires_exactly_at_the_end_of_its_valid_until_day(
    registry: Registry, people: People
) -> None:
    until = (datetime.now(UTC) + timedelta(days=10)).date()
    poa = registry.issue(people.issue(valid_until=until.isoformat())).poa
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), poa_zone())
    assert poa.status_at(end - timedelta(microseconds=1)) == "active"
    assert poa.status_at(end) == "expired"


def test_a_poa_whose_last_day_has_ended_in_kazakhstan_is_refused_not_stored_expired(
    registry: Registry, clock: Clock, people: People
) -> None:
    """19:30 UTC is 00:30 of the next day in Almaty, where a POA's last day ends. The latest
    19:30 UTC that has passed: within a day, so within the test certificates' validity."""
    now = datetime.now(UTC)
    evening = now.replace(hour=19, minute=30, second=0, microsecond=0)
    if evening > now:
        evening -= timedelta(days=1)
    clock.now = evening
    utc_today = evening.date().isoformat()
    signed_at = evening.isoformat().replace("+00:00", "Z")
    document = people.issue_document(valid_until=utc_today, signed_at=signed_at)
    detail = refused(
        registry, InvalidInputError, registry.issue, people.sign(document, people.principal)
    )
    assert "before the date of issue" in detail
    tomorrow = (evening + timedelta(days=1)).date().isoformat()
    poa = registry.issue(people.issue(valid_until=tomorrow, signed_at=signed_at)).poa
    assert poa.status_at(clock()) == "active"


def test_a_poa_received_after_its_last_day_ended_is_refused_though_signed_in_time(
    registry: Registry, clock: Clock, people: People
) -> None:
    """Signed an hour ago on its last day in Almaty; the registry's clock reads two
    minutes after that day ended."""
    signed = datetime.now(UTC) - timedelta(hours=1)
    last_day = signed.astimezone(poa_zone()).date()
    clock.now = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), poa_zone())
    clock.now += timedelta(minutes=2)
    evidence = people.issue(valid_until=last_day.isoformat(), signed_at=signed.isoformat())
    detail = refused(registry, InvalidInputError, registry.issue, evidence)
    assert "before the document was received" in detail
    assert f"ended at {last_day.isoformat()}T19:00:00Z" in detail  # in UTC, as every time


@pytest.mark.parametrize("written", ["20271230", "2027-W52-4", "2027-12-3", " 2027-12-30"])
def test_valid_until_is_read_only_as_yyyy_mm_dd(
    registry: Registry, people: People, written: str
) -> None:
    evidence = people.issue(valid_until=written)
    assert "YYYY-MM-DD" in refused(registry, InvalidInputError, registry.issue, evidence)


def poa_zone() -> tzinfo:
    from domain.power_of_attorney import KZ_TIME

    return KZ_TIME


def test_names_of_attorneys_come_from_the_directory_as_they_were(
    settings: object, people: People
) -> None:
    from epoa.wiring import build_registry

    directory = {people.attorney.iin: "Aigerim Nurlanovna"}

    def names(iins: Sequence[str]) -> dict[str, str]:
        return {iin: directory[iin] for iin in iins if iin in directory}

    registry = build_registry(settings, names=names)
    try:
        poa = registry.issue(people.issue()).poa
        directory[people.attorney.iin] = "Renamed Later"
        assert registry.get_poa(poa.id).attorneys[0]["name"] == "Aigerim Nurlanovna"
    finally:
        registry.close()


def test_an_unknown_poa_is_not_found(registry: Registry) -> None:
    from domain.errors import NotFoundError

    with pytest.raises(NotFoundError):
        registry.get_poa(uuid.uuid4())


def test_a_store_outage_is_answered_at_once_without_looking_the_document_up(
    registry: Registry, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage is not a refusal: asking the store whether the document was accepted
    before would only wait out the outage a second time."""
    looked_up: list[object] = []

    def unreachable(*_: object, **__: object) -> None:
        raise StoreUnavailableError("the event store is unavailable")

    monkeypatch.setattr(registry, "save", unreachable)
    monkeypatch.setattr(registry, "_accepted", looked_up.append)
    with pytest.raises(StoreUnavailableError):
        registry.issue(people.issue())
    assert looked_up == []


@pytest.mark.parametrize(
    ("signed_on", "last_day", "refused_day"),
    [
        ("2028-03-01", "2031-03-01", "2031-03-02"),  # no 29 February in the three years
        ("2028-02-29", "2031-02-28", "2031-03-01"),  # none in the last year: its month's end
        ("2026-12-07", "2029-12-07", "2029-12-08"),  # a 29 February within them
    ],
)
def test_the_three_years_end_on_the_same_date_three_years_on(
    people: People, signed_on: str, last_day: str, refused_day: str
) -> None:
    """Civil Code art. 168 counts years, not 1,096 days: that allowed a day more whenever
    no 29 February fell in the term."""
    from domain.documents import IssueRequest

    signed_at = f"{signed_on}T10:00:00+05:00"
    latest = IssueRequest.parse(people.issue_document(signed_at=signed_at, valid_until=last_day))
    assert str(latest.valid_until) == last_day
    with pytest.raises(InvalidInputError, match=f"at most three years, so {last_day} at the"):
        IssueRequest.parse(people.issue_document(signed_at=signed_at, valid_until=refused_day))


def test_poas_issued_in_one_case_by_two_processes_in_turn_are_all_in_the_case(
    registry: Registry, settings: Settings, people: People
) -> None:
    """Each registry keeps the case as it saved it last; the next issue there still reads
    what the other process recorded since, so no POA is left out of the case and a
    conclusion ends every one of them."""
    other = build_registry(settings)
    try:
        issued = []
        for turn in range(4):
            by = registry if turn % 2 == 0 else other
            issued.append(by.issue(people.issue()).poa.id)
        for each in (registry, other):
            assert each.get_case(CASE).poa_ids == issued
        other.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
        outcome = registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
        assert sorted(outcome.terminated) == sorted(issued)
    finally:
        other.close()
