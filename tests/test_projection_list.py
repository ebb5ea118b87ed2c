"""Listing POAs: filters, status at a moment, and cursor pages that never repeat or skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import InvalidInputError
from domain.power_of_attorney import expires_at
from domain.registry import Registry
from projections.poa_list import encode_cursor, list_poas
from projections.read_model import stamp
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.people import CASE, People


@pytest.fixture
def runner(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    with ProjectionRunner(registry, database_url) as projection:
        yield projection


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["poa_id"] for row in rows]


def every_page(runner: ProjectionRunner, limit: int, **filters: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        rows, cursor = list_poas(runner.db, limit=limit, cursor=cursor, **filters)
        pages.append(ids(rows))
        if cursor is None:
            return pages


def test_pages_of_every_size_list_each_poa_exactly_once_in_issue_order(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    issued = []
    for number in range(7):
        if number % 3 == 0:
            clock.advance(seconds=1)  # some POAs share their issue time; the id breaks ties
        issued.append(registry.issue(people.issue()).poa)
    runner.catch_up()
    everything, _ = list_poas(runner.db, now=clock.now, limit=100)
    assert sorted(ids(everything)) == sorted(str(p.id) for p in issued)
    assert [(r["issued_at"], r["poa_id"]) for r in everything] == sorted(
        (r["issued_at"], r["poa_id"]) for r in everything
    )
    for limit in (1, 2, 3, 7, 8):
        pages = every_page(runner, limit, now=clock.now)
        assert [poa for page in pages for poa in page] == ids(everything)
        assert all(len(page) == limit for page in pages[:-1])


def test_a_poa_issued_while_paging_neither_repeats_nor_shifts_earlier_pages(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    first = [registry.issue(people.issue()).poa for _ in range(3)]
    runner.catch_up()
    page, cursor = list_poas(runner.db, now=clock.now, limit=2)
    clock.advance(seconds=1)
    late = registry.issue(people.issue()).poa
    runner.catch_up()
    rest, end = list_poas(runner.db, now=clock.now, limit=10, cursor=cursor)
    assert end is None
    assert sorted(ids(page) + ids(rest)) == sorted(str(p.id) for p in [*first, late])


def test_filters_by_case_principal_and_attorney_combine(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    here = registry.issue(people.issue()).poa
    elsewhere = registry.issue(people.issue(case_number="OTHER-2")).poa
    by_attorney = people.sign(
        people.issue_document(
            principal={"iin": people.attorney.iin},
            attorneys=[{"iin": people.second_attorney.iin}],
        ),
        people.attorney,
    )
    theirs = registry.issue(by_attorney).poa
    runner.catch_up()

    def listed(**filters: Any) -> set[str]:
        return set(ids(list_poas(runner.db, now=clock.now, **filters)[0]))

    assert listed(case_number=CASE) == {str(here.id), str(theirs.id)}
    assert listed(principal_iin=people.principal.iin) == {str(here.id), str(elsewhere.id)}
    assert listed(attorney_iin=people.second_attorney.iin) == {str(theirs.id)}
    assert listed(case_number="OTHER-2", attorney_iin=people.attorney.iin) == {str(elsewhere.id)}
    assert listed(case_number="NONE-1") == set()


def test_status_filters_tell_active_from_expired_at_the_given_moment(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    until = (datetime.now(UTC) + timedelta(days=2)).date()
    expiring = registry.issue(people.issue(valid_until=until.isoformat())).poa
    lasting = registry.issue(people.issue()).poa
    revoked = registry.issue(people.issue()).poa
    registry.revoke(revoked.id, people.act("epoa.revoke", revoked.id, people.principal))
    ended = registry.issue(people.issue()).poa
    registry.renounce(
        ended.id,
        people.act("epoa.renounce", ended.id, people.attorney, attorney_iin=people.attorney.iin),
    )
    runner.catch_up()
    before, after = clock.now, expires_at(until)

    def listed(status: str, now: datetime) -> set[str]:
        return set(ids(list_poas(runner.db, now=now, status=status)[0]))

    assert listed("active", before) == {str(expiring.id), str(lasting.id)}
    assert listed("expired", before) == set()
    assert listed("active", after) == {str(lasting.id)}
    assert listed("expired", after) == {str(expiring.id)}
    assert listed("revoked", after) == {str(revoked.id)}
    assert listed("terminated", after) == {str(ended.id)}
    shown = list_poas(runner.db, now=after, status="expired")[0][0]
    assert shown["status"] == "expired"


def test_a_cursor_or_status_or_limit_not_of_this_service_is_refused(
    runner: ProjectionRunner, clock: Clock
) -> None:
    forged = [
        encode_cursor("x", "x"),
        encode_cursor(stamp(clock.now), "x"),
        encode_cursor("x", str(uuid.uuid4())),
    ]
    bad_ones = [{"cursor": "not-a-cursor"}, {"status": "asleep"}, {"limit": 0}]
    for bad in bad_ones + [{"cursor": cursor} for cursor in forged]:
        with pytest.raises(InvalidInputError):
            list_poas(runner.db, now=clock.now, **bad)
