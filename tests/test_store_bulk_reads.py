"""Many aggregates read at once (`get_many`, as the consumer's batches read their cases and
POAs): the aggregates that reading each one gives, under the same seal checks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking

from consumers.batch import CaseEventBatch
from consumers.case_events import Outcome
from domain.case_events import parse_case_event
from domain.court_case import CourtCase
from domain.registry import Registry
from domain.seal import SealError
from tests.support.court_events import judgment
from tests.support.people import People
from tests.support.postgres import tamper


def test_get_many_gives_what_reading_each_one_gives(registry: Registry, people: People) -> None:
    kept = registry.issue(people.issue(case_number="BULK-1")).poa
    revoked = registry.issue(people.issue(case_number="BULK-2")).poa
    registry.revoke(revoked.id, people.act("epoa.revoke", revoked.id, people.principal))
    cases = {CourtCase.create_id(n): n for n in ("BULK-1", "BULK-2")}

    found = registry.get_many([kept.id, revoked.id, *cases, uuid4()])

    assert set(found) == {kept.id, revoked.id, *cases}
    for poa_id in (kept.id, revoked.id):
        assert vars(found[poa_id]) == vars(registry.get_poa(poa_id))
    for case_id, case_number in cases.items():
        assert vars(found[case_id]) == vars(registry.get_case(case_number))
    assert found[revoked.id].version == 2


def edit_first_record(url: str, stream: UUID) -> None:
    tamper(
        url,
        "UPDATE epoa_events SET state = overlay(state placing '\\x58'::bytea from 300 for 1)"
        " WHERE originator_id = %s AND originator_version = 1",
        stream,
    )


@pytest.mark.postgres
def test_a_byte_edited_in_one_stream_fails_a_read_of_it_and_of_no_other(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    broken = pg_registry.issue(people.issue(case_number="BULK-B")).poa.id
    kept = pg_registry.issue(people.issue(case_number="BULK-K")).poa.id
    edit_first_record(postgres_url, broken)

    with pytest.raises(SealError):
        pg_registry.get_many([kept, broken])
    assert list(pg_registry.get_many([kept])) == [kept]


@pytest.mark.postgres
def test_a_prefetched_case_that_cannot_be_read_fails_only_a_batch_that_needs_it(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    pg_registry.issue(people.issue(case_number="BULK-B"))
    edit_first_record(postgres_url, CourtCase.create_id("BULK-B"))
    good = parse_case_event(judgment(people, "BULK-G"), people.verifier)
    bad = parse_case_event(judgment(people, "BULK-B"), people.verifier)

    with ThreadPoolExecutor(1) as readers:
        batch = CaseEventBatch(pg_registry, readers)
        batch.prefetch(["BULK-B", "BULK-G"])  # as the messages' keys name them
        decisions = batch.apply([good])
        batch.commit(Tracking("bulk-test", 1))
        needing = CaseEventBatch(pg_registry, readers)
        needing.prefetch(["BULK-B"])
        with pytest.raises(SealError):
            needing.apply([bad])

    assert [d.outcome for d in decisions] == [Outcome.APPLIED]
    assert pg_registry.get_case("BULK-G").judgment is not None
