"""Adding attorneys, revoking, renouncing and expiry, through the application."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import (
    ConflictError,
    InvalidInputError,
    PoaNotActiveError,
    SignerMismatchError,
)
from domain.registry import Registry
from tests.conftest import Clock
from tests.support.people import CASE, People
from tests.test_issue import refused

RIGHT = "represent_first_instance"


def authorised(registry: Registry, iin: str, moment: datetime | None = None) -> bool:
    return bool(registry.authority(CASE, iin, RIGHT, moment or registry.clock()))


def test_an_added_attorney_gains_the_poas_rights(registry: Registry, people: People) -> None:
    poa = registry.issue(people.issue()).poa
    added = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    after = registry.add_attorney(poa.id, added).poa
    assert after.active_attorneys() == [people.attorney.iin, people.second_attorney.iin]
    assert authorised(registry, people.second_attorney.iin)


def test_an_attorney_already_named_cannot_be_added_again(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue()).poa
    again = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.attorney.iin}
    )
    refused(registry, ConflictError, registry.add_attorney, poa.id, again)


def test_the_principal_added_as_their_own_attorney_is_refused_as_on_issue(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue()).poa
    themselves = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.principal.iin}
    )
    detail = refused(registry, InvalidInputError, registry.add_attorney, poa.id, themselves)
    assert "own attorney" in detail


def test_only_the_principal_may_add_an_attorney(registry: Registry, people: People) -> None:
    poa = registry.issue(people.issue()).poa
    by_attorney = people.act(
        "epoa.add-attorney", poa.id, people.attorney, attorney={"iin": people.second_attorney.iin}
    )
    refused(registry, SignerMismatchError, registry.add_attorney, poa.id, by_attorney)


def test_a_document_for_one_poa_cannot_be_replayed_onto_another(
    registry: Registry, people: People
) -> None:
    first = registry.issue(people.issue()).poa
    second = registry.issue(people.issue()).poa
    revocation = people.act("epoa.revoke", first.id, people.principal)
    refused(registry, InvalidInputError, registry.revoke, second.id, revocation)


def test_a_revoked_poa_grants_nothing_and_accepts_nothing(
    registry: Registry, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    issued_at = clock.now
    clock.advance(minutes=5)
    revoked = registry.revoke(
        poa.id, people.act("epoa.revoke", poa.id, people.principal, reason="changed my mind")
    ).poa
    assert revoked.status == "revoked"
    assert revoked.termination is not None
    assert revoked.termination["reason"] == "revoked_by_principal"
    assert not authorised(registry, people.attorney.iin)
    assert authorised(registry, people.attorney.iin, issued_at + timedelta(minutes=1))
    again = people.act("epoa.revoke", poa.id, people.principal)
    refused(registry, PoaNotActiveError, registry.revoke, poa.id, again)
    add = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    refused(registry, PoaNotActiveError, registry.add_attorney, poa.id, add)


def test_only_the_principal_may_revoke(registry: Registry, people: People) -> None:
    poa = registry.issue(people.issue()).poa
    forged = people.act("epoa.revoke", poa.id, people.attorney)
    refused(registry, SignerMismatchError, registry.revoke, poa.id, forged)


def test_one_attorney_renouncing_leaves_the_others_authorised(
    registry: Registry, people: People
) -> None:
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    poa = registry.issue(people.issue(attorneys=both)).poa
    renounce = people.act(
        "epoa.renounce", poa.id, people.attorney, attorney_iin=people.attorney.iin
    )
    after = registry.renounce(poa.id, renounce).poa
    assert after.status == "active"
    assert after.attorneys[0]["status"] == "renounced"
    assert after.attorneys[0]["until"] is not None
    assert not authorised(registry, people.attorney.iin)
    assert authorised(registry, people.second_attorney.iin)


def test_when_every_attorney_renounced_the_poa_terminates(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue()).poa
    renounce = people.act(
        "epoa.renounce", poa.id, people.attorney, attorney_iin=people.attorney.iin
    )
    after = registry.renounce(poa.id, renounce).poa
    assert after.status == "terminated"
    assert after.termination is not None
    assert after.termination["reason"] == "renounced_by_all_attorneys"


def test_an_attorney_cannot_renounce_for_another(registry: Registry, people: People) -> None:
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    poa = registry.issue(people.issue(attorneys=both)).poa
    forged = people.act(
        "epoa.renounce", poa.id, people.second_attorney, attorney_iin=people.attorney.iin
    )
    refused(registry, SignerMismatchError, registry.renounce, poa.id, forged)


def test_a_stranger_cannot_renounce_a_poa_they_are_not_named_in(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue()).poa
    stranger = people.act(
        "epoa.renounce", poa.id, people.third_attorney, attorney_iin=people.third_attorney.iin
    )
    refused(registry, ConflictError, registry.renounce, poa.id, stranger)


def test_an_expired_poa_grants_nothing_and_accepts_no_attorney(
    registry: Registry, people: People, clock: Clock
) -> None:
    until = (datetime.now(UTC) + timedelta(days=2)).date()
    poa = registry.issue(people.issue(valid_until=until.isoformat())).poa
    assert authorised(registry, people.attorney.iin)
    clock.advance(days=3)
    assert registry.get_poa(poa.id).status_at(clock.now) == "expired"
    assert not authorised(registry, people.attorney.iin)
    add = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    said = refused(registry, PoaNotActiveError, registry.add_attorney, poa.id, add)
    assert f"expired (valid_until {until.isoformat()}) since {until.isoformat()}T19:00:00Z" in said


def test_the_state_at_a_past_moment_replays_only_what_happened_before_it(
    registry: Registry, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue()).poa
    before_revocation = clock.advance(minutes=1)
    clock.advance(minutes=1)
    registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    assert registry.get_poa_at(poa.id, before_revocation).status == "active"
    assert registry.get_poa_at(poa.id, clock.now).status == "revoked"
    with pytest.raises(Exception, match="did not exist"):
        registry.get_poa_at(poa.id, before_revocation - timedelta(hours=1))


def test_an_organisation_named_as_attorney_is_told_an_attorney_signs_as_a_person(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue(attorneys=[{"iin": people.court.iin}])).poa
    renounce = people.act("epoa.renounce", poa.id, people.court, attorney_iin=people.court.iin)
    detail = refused(registry, SignerMismatchError, registry.renounce, poa.id, renounce)
    assert "must be a person (IIN)" in detail and people.court.iin in detail


def test_an_attorney_who_renounced_is_not_added_again_and_is_told_why(
    registry: Registry, people: People
) -> None:
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    poa = registry.issue(people.issue(attorneys=both)).poa
    attorney = people.attorney
    registry.renounce(
        poa.id, people.act("epoa.renounce", poa.id, attorney, attorney_iin=attorney.iin)
    )
    again = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": attorney.iin}
    )
    detail = refused(registry, ConflictError, registry.add_attorney, poa.id, again)
    assert "renounced this POA" in detail and "issues a new POA" in detail
