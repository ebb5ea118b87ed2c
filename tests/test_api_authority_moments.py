"""`GET /v1/authority` at the exact instants where an answer changes, however `at` is written.

The registry's clock is set by the test, so each instant is known to the microsecond: the
issue (inclusive), an addition, a renunciation, a revocation and the case's conclusion (each
end exclusive), and 19:00Z of `valid_until`. Each moment is asked as `?at=` in UTC, at
+05:00 and at another offset, and, with the clock standing on it, without `at` (the answer
for "now", from the authority cache), and the answers must agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from tests.conftest import Clock
from tests.support.api import api_settings, body, cloud_event
from tests.support.authority import COURT, PORTAL, RIGHT
from tests.support.people import Actor, People
from tests.support.problems import assert_problem

MICROSECOND = timedelta(microseconds=1)
ZONES = (UTC, timezone(timedelta(hours=5)), timezone(timedelta(hours=-3, minutes=-30)))


@pytest.fixture
def clock() -> Clock:
    """A clock on a whole second and a fraction, so that second and microsecond differ."""
    moving = Clock()
    moving.now = moving.now.replace(microsecond=250_000) + timedelta(seconds=1)
    return moving


@pytest.fixture
def client(postgres_url: str, tmp_path: Path, people: People, clock: Clock) -> Iterator[TestClient]:
    app = create_app(api_settings(postgres_url, tmp_path, people), clock=clock)
    with TestClient(app) as client:
        yield client


def answers(
    client: TestClient, clock: Clock, case: str, iin: str, moment: datetime, right: str = RIGHT
) -> list[str]:
    """The POAs `?at=` names for `moment` written in each zone, and the answer for "now"
    with the clock at `moment`: all the same."""
    query = {"case_number": case, "attorney_iin": iin, "right": right}
    found = []
    for zone in ZONES:
        at = moment.astimezone(zone).isoformat()
        response = client.get("/v1/authority", params={**query, "at": at}, headers=COURT)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["at"] == moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        assert answer["authorized"] == bool(answer["powers_of_attorney"])
        found.append(answer["powers_of_attorney"])
    kept, clock.now = clock.now, moment
    try:
        now = client.get("/v1/authority", params=query, headers=COURT).json()
    finally:
        clock.now = kept
    assert all(f == found[0] for f in found) and now["powers_of_attorney"] == found[0], found
    return list(found[0])


def post(client: TestClient, path: str, evidence: Any) -> dict[str, Any]:
    response = client.post(path, json=body(evidence), headers=PORTAL)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def issue(client: TestClient, people: People, case: str, *attorneys: Actor, **fields: Any) -> str:
    named = [{"iin": a.iin} for a in attorneys or (people.attorney,)]
    evidence = people.issue(case, attorneys=named, **fields)
    return str(post(client, "/v1/powers-of-attorney", evidence)["poa_id"])


def case_number() -> str:
    return f"AT-{uuid.uuid4().hex[:8]}/1"


def test_authority_begins_at_the_issue_and_ends_at_the_revocation_to_the_microsecond(
    client: TestClient, people: People, clock: Clock
) -> None:
    case, iin = case_number(), people.attorney.iin
    issued_at = clock.now
    poa = issue(client, people, case)
    revoked_at = clock.advance(seconds=30)
    post(
        client,
        f"/v1/powers-of-attorney/{poa}/revocation",
        people.act("epoa.revoke", uuid.UUID(poa), people.principal),
    )
    clock.advance(seconds=30)
    assert answers(client, clock, case, iin, issued_at - timedelta(days=1)) == []
    assert answers(client, clock, case, iin, issued_at - MICROSECOND) == []
    assert answers(client, clock, case, iin, issued_at) == [poa]
    assert answers(client, clock, case, iin, revoked_at - MICROSECOND) == [poa]
    assert answers(client, clock, case, iin, revoked_at) == []
    assert answers(client, clock, case, iin, revoked_at + timedelta(days=365)) == []
    assert answers(client, clock, case_number(), iin, issued_at) == []  # a case never seen


def test_a_moment_finer_than_a_microsecond_is_read_down_to_its_microsecond(
    client: TestClient, people: People, clock: Clock
) -> None:
    """RFC 3339 allows any number of digits: 7 to 9 are cut, never rounded, so a moment a
    fraction of a microsecond before the issue is still before it."""
    case, issued_at = case_number(), clock.now
    poa = issue(client, people, case)
    query = {"case_number": case, "attorney_iin": people.attorney.iin, "right": RIGHT}
    before = (issued_at - MICROSECOND).isoformat().replace("+00:00", "999Z")
    on = issued_at.isoformat().replace("+00:00", "000Z")
    whole = issued_at.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    for at, expected in ((before, []), (on, [poa]), (whole, [])):
        answer = client.get("/v1/authority", params={**query, "at": at}, headers=COURT).json()
        assert answer["powers_of_attorney"] == expected, at


def test_a_moment_without_its_offset_is_refused_not_taken_as_utc_or_local_time(
    client: TestClient, people: People, clock: Clock
) -> None:
    case = case_number()
    issue(client, people, case)
    query = {"case_number": case, "attorney_iin": people.attorney.iin, "right": RIGHT}
    naive = clock.now.replace(tzinfo=None).isoformat()
    for at in (naive, naive[:19], naive.replace("T", " ")):
        response = client.get("/v1/authority", params={**query, "at": at}, headers=COURT)
        assert_problem(response, 422, "validation", "RFC 3339")
    lower = clock.now.isoformat().replace("+00:00", "z").replace("T", "t")
    response = client.get("/v1/authority", params={**query, "at": lower}, headers=COURT)
    assert response.json()["authorized"] is True


def test_valid_until_holds_through_its_last_instant_in_kazakhstan_and_ends_at_19_00z(
    client: TestClient, people: People, clock: Clock
) -> None:
    case, iin = case_number(), people.attorney.iin
    last_day = (clock.now + timedelta(hours=5)).date() + timedelta(days=2)
    poa = issue(client, people, case, valid_until=last_day.isoformat())
    end = datetime(last_day.year, last_day.month, last_day.day, 19, tzinfo=UTC)
    assert answers(client, clock, case, iin, end - MICROSECOND) == [poa]
    assert answers(client, clock, case, iin, end) == []
    midnight = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), ZONES[1])
    assert midnight == end
    state = client.get(
        f"/v1/powers-of-attorney/{poa}", params={"at": end.isoformat()}, headers=COURT
    ).json()
    assert state["status"] == "expired" and state["termination"]["at"] == (
        end.isoformat().replace("+00:00", "Z")
    )
    assert last_day > date.today()


def test_an_attorney_added_later_or_renouncing_changes_only_their_own_authority(
    client: TestClient, people: People, clock: Clock
) -> None:
    case = case_number()
    first, second, third = people.attorney, people.second_attorney, people.third_attorney
    issued_at = clock.now
    poa = issue(client, people, case, first, second)
    added_at = clock.advance(minutes=5)
    addition = people.act(
        "epoa.add-attorney", uuid.UUID(poa), people.principal, attorney={"iin": third.iin}
    )
    post(client, f"/v1/powers-of-attorney/{poa}/attorneys", addition)
    renounced_at = clock.advance(minutes=5)
    renunciation = people.act("epoa.renounce", uuid.UUID(poa), first, attorney_iin=first.iin)
    post(client, f"/v1/powers-of-attorney/{poa}/renunciation", renunciation)
    clock.advance(minutes=5)
    assert answers(client, clock, case, third.iin, issued_at) == []
    assert answers(client, clock, case, third.iin, added_at - MICROSECOND) == []
    assert answers(client, clock, case, third.iin, added_at) == [poa]
    assert answers(client, clock, case, third.iin, added_at, "appeal_judicial_acts") == [poa]
    assert answers(client, clock, case, first.iin, renounced_at - MICROSECOND) == [poa]
    assert answers(client, clock, case, first.iin, renounced_at) == []
    assert answers(client, clock, case, second.iin, renounced_at) == [poa]
    assert answers(client, clock, case, second.iin, clock.now) == [poa]


def test_a_case_concluding_ends_its_own_poas_at_the_second_fact_and_no_other_case(
    client: TestClient, people: People, clock: Clock
) -> None:
    ending, other, iin = case_number(), case_number(), people.attorney.iin
    poa, untouched = issue(client, people, ending), issue(client, people, other)
    for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED):
        concluded_at = clock.advance(hours=1)
        event = cloud_event(people, kind, ending, str(uuid.uuid4()))
        response = client.post("/v1/case-events", json=event, headers=COURT)
        assert response.status_code == 202, response.text
    clock.advance(hours=1)
    assert answers(client, clock, ending, iin, concluded_at - timedelta(hours=1)) == [poa]
    assert answers(client, clock, ending, iin, concluded_at - MICROSECOND) == [poa]
    assert answers(client, clock, ending, iin, concluded_at) == []
    assert answers(client, clock, other, iin, concluded_at) == [untouched]
    assert answers(client, clock, other, iin, clock.now) == [untouched]


def test_a_revocation_takes_effect_when_received_not_when_its_document_says_it_was_signed(
    client: TestClient, people: People, clock: Clock
) -> None:
    case, iin = case_number(), people.attorney.iin
    poa = issue(client, people, case)
    revocation = people.act("epoa.revoke", uuid.UUID(poa), people.principal)
    signed_at = datetime.fromisoformat(revocation.document["signed_at"])
    received_at = clock.advance(minutes=30)
    post(client, f"/v1/powers-of-attorney/{poa}/revocation", revocation)
    state = client.get(f"/v1/powers-of-attorney/{poa}", headers=COURT).json()
    assert state["termination"]["at"] == received_at.isoformat().replace("+00:00", "Z")
    assert answers(client, clock, case, iin, signed_at + timedelta(minutes=15)) == [poa]
    assert answers(client, clock, case, iin, received_at) == []
