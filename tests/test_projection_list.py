"""Listing POAs: filters, status at a moment, and cursor pages that never repeat or skip."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from domain.errors import InvalidInputError
from domain.power_of_attorney import expires_at
from domain.registry import Registry
from projections.db import Database, connect
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
            clock.advance(seconds=1)  # some POAs share their issue time
        issued.append(registry.issue(people.issue()).poa)
    runner.catch_up()
    everything, _ = list_poas(runner.db, now=clock.now, limit=100)
    assert ids(everything) == [str(p.id) for p in issued]
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


def test_a_poa_recorded_after_a_page_is_listed_next_though_its_clock_read_earlier(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    """Concurrent issues commit in another order than their clocks read: a POA that reads
    the clock first and commits last still comes after the pages already read."""
    first = registry.issue(people.issue()).poa
    clock.advance(seconds=5)
    later = [registry.issue(people.issue()).poa for _ in range(2)]
    runner.catch_up()
    page, cursor = list_poas(runner.db, now=clock.now, limit=2)
    assert ids(page) == [str(first.id), str(later[0].id)]
    clock.advance(seconds=-3)  # its clock read before `later`'s, its commit after
    slow = registry.issue(people.issue()).poa
    assert slow.issued_at < later[0].issued_at
    runner.catch_up()
    rest, end = list_poas(runner.db, now=clock.now, limit=10, cursor=cursor)
    assert (ids(rest), end) == ([str(later[1].id), str(slow.id)], None)


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


def test_an_attorney_s_active_list_leaves_out_a_poa_they_renounced_that_others_keep(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    """`status=active` with `attorney_iin` lists the POAs that attorney may act under: one
    they renounced is active still, for the other attorney, but no longer theirs."""
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    renounced_at_once = registry.issue(people.issue(attorneys=both)).poa
    kept = registry.issue(people.issue(attorneys=both)).poa
    renounced_later = registry.issue(people.issue(attorneys=both)).poa

    def renounce(poa_id: uuid.UUID) -> None:
        registry.renounce(
            poa_id,
            people.act("epoa.renounce", poa_id, people.attorney, attorney_iin=people.attorney.iin),
        )

    renounce(renounced_at_once.id)  # named and renounced in one batch of the projector
    runner.catch_up()
    renounce(renounced_later.id)  # renounced in a later batch
    runner.catch_up()

    def listed(**filters: Any) -> set[str]:
        return set(ids(list_poas(runner.db, now=clock.now, **filters)[0]))

    everything = {str(renounced_at_once.id), str(kept.id), str(renounced_later.id)}
    assert listed(attorney_iin=people.attorney.iin, status="active") == {str(kept.id)}
    assert listed(attorney_iin=people.attorney.iin) == everything
    assert listed(attorney_iin=people.second_attorney.iin, status="active") == everything
    assert listed(status="active") == everything
    first = list_poas(runner.db, now=clock.now, attorney_iin=people.attorney.iin)[0][0]
    assert first["status"] == "active"
    assert [a["status"] for a in first["attorneys"]] == ["renounced", "active"]


def test_a_cursor_or_status_or_limit_not_of_this_service_is_refused(
    runner: ProjectionRunner, clock: Clock
) -> None:
    def raw(value: object) -> str:
        text = json.dumps(value).encode()
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    forged = [
        encode_cursor(0),
        encode_cursor(-1),
        encode_cursor(2**63),
        raw({"after": "12"}),
        raw({"after": 1.0}),
        raw({"after": True}),
        raw({"after": 1, "more": 2}),
        raw([1]),
        raw(1),
        raw([stamp(clock.now), str(uuid.uuid4())]),  # the form cursors had before
    ]
    bad_ones = [{"cursor": "not-a-cursor"}, {"status": "asleep"}, {"limit": 0}]
    for bad in bad_ones + [{"cursor": cursor} for cursor in forged]:
        with pytest.raises(InvalidInputError):
            list_poas(runner.db, now=clock.now, **bad)


def as_made_before_positions(db: Database) -> None:
    """`poa_status` as a version that ordered lists by `issued_at` made it."""
    for index in (
        "poa_status_by_position",
        "poa_status_by_case_position",
        "poa_status_by_principal_position",
    ):
        db.execute(f"DROP INDEX {index}")
    db.execute("ALTER TABLE poa_status DROP COLUMN issued_position")


def test_tables_made_before_lists_followed_the_log_get_each_poa_s_position_in_place(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    """An upgrade finds `poa_status` without `issued_position`: the column is added and
    filled from the log, and lists page as on tables built from the start."""
    issued = [registry.issue(people.issue()).poa for _ in range(3)]
    with ProjectionRunner(registry, database_url) as runner:
        runner.catch_up()
        built = runner.db.fetch("SELECT poa_id, issued_position FROM poa_status ORDER BY 1")
        as_made_before_positions(runner.db)
        runner.db.execute("CREATE INDEX poa_status_by_time ON poa_status (issued_at, poa_id)")
    with ProjectionRunner(registry, database_url) as runner:
        upgraded = runner.db.fetch("SELECT poa_id, issued_position FROM poa_status ORDER BY 1")
        assert upgraded == built
        assert [page for page in every_page(runner, 2, now=clock.now)] == [
            [str(issued[0].id), str(issued[1].id)],
            [str(issued[2].id)],
        ]
        later = registry.issue(people.issue()).poa
        runner.catch_up()
        everything, _ = list_poas(runner.db, now=clock.now, limit=10)
        assert ids(everything) == [str(p.id) for p in [*issued, later]]


def as_made_before_attorney_statuses(db: Database) -> None:
    """`poa_attorneys` as a version that filtered by the POA's status alone made it."""
    db.execute("ALTER TABLE poa_attorneys DROP COLUMN status")


def test_tables_made_before_attorneys_had_a_status_get_each_one_s_from_the_poa_in_place(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    """An upgrade finds `poa_attorneys` without `status`: each attorney's is read from
    their POA, and an active list leaves out what they renounced, as on tables built from
    the start."""
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    renounced = registry.issue(people.issue(attorneys=both)).poa
    kept = registry.issue(people.issue(attorneys=both)).poa
    registry.renounce(
        renounced.id,
        people.act(
            "epoa.renounce", renounced.id, people.attorney, attorney_iin=people.attorney.iin
        ),
    )
    rows = "SELECT poa_id, attorney_iin, status FROM poa_attorneys ORDER BY 1, 2"
    with ProjectionRunner(registry, database_url) as runner:
        runner.catch_up()
        built = runner.db.fetch(rows)
        as_made_before_attorney_statuses(runner.db)
    with ProjectionRunner(registry, database_url) as runner:
        assert runner.db.fetch(rows) == built
        active = list_poas(
            runner.db, now=clock.now, attorney_iin=people.attorney.iin, status="active"
        )
        assert ids(active[0]) == [str(kept.id)]
        if runner.db.dialect == "postgresql":  # a projector of the earlier version fails
            with pytest.raises(psycopg.errors.NotNullViolation):
                runner.db.execute(
                    "INSERT INTO poa_attorneys (poa_id, attorney_iin) VALUES (?, ?)",
                    (str(kept.id), people.principal.iin),
                )


def test_an_upgrade_that_finds_a_poa_the_log_does_not_hold_changes_nothing_and_says_so(
    registry: Registry, database_url: str, people: People
) -> None:
    registry.issue(people.issue())
    with ProjectionRunner(registry, database_url) as runner:
        runner.catch_up()
        as_made_before_positions(runner.db)
        runner.db.execute(
            "INSERT INTO poa_status SELECT ?, case_number, principal_iin, principal_name,"
            " status, issued_at, valid_until, expires_at, termination_reason, termination_at,"
            " termination_source, version, attorneys, rights FROM poa_status",
            (str(uuid.uuid4()),),
        )
    with pytest.raises(RuntimeError, match=r"1 POA\(s\) whose first record the log does not hold"):
        ProjectionRunner(registry, database_url)
    db = connect(database_url)
    try:
        assert "issued_position" not in db.columns("poa_status")
    finally:
        db.close()


def test_processes_starting_at_once_on_tables_made_before_lists_followed_the_log_all_start(
    registry: Registry, database_url: str, people: People
) -> None:
    """The first upgrades the table; the others, waiting on it, then find every index made
    (two `CREATE INDEX IF NOT EXISTS` at once fail on PostgreSQL)."""
    registry.issue(people.issue())
    for _ in range(3):
        with ProjectionRunner(registry, database_url) as runner:
            runner.catch_up()
            as_made_before_positions(runner.db)
            as_made_before_attorney_statuses(runner.db)
        failures: list[BaseException] = []
        together = threading.Barrier(3)
        starting = [
            threading.Thread(target=_start, args=(registry, database_url, together, failures))
            for _ in range(3)
        ]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        assert failures == []


def _start(
    registry: Registry,
    database_url: str,
    together: threading.Barrier,
    failures: list[BaseException],
) -> None:
    together.wait()
    try:
        ProjectionRunner(registry, database_url).close()
    except Exception as error:
        failures.append(error)
