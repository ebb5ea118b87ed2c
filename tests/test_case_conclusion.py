"""A case concludes when its judgment is in force AND execution documents are issued."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.errors import (
    CaseConcludedError,
    DomainError,
    DuplicateDocumentError,
    NotFoundError,
)
from domain.outcomes import case_event_key
from domain.power_of_attorney import KZ_TIME, expires_at
from domain.registry import Registry
from tests.conftest import Clock
from tests.support.people import CASE, People, case_event
from tests.test_issue import refused, stored_count


@pytest.mark.parametrize(
    "order",
    [
        (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED),
        (EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE),
    ],
)
def test_both_events_in_either_order_terminate_every_active_poa_of_the_case(
    registry: Registry, people: People, order: tuple[str, str]
) -> None:
    first = registry.issue(people.issue()).poa
    second = registry.issue(people.issue()).poa
    elsewhere = registry.issue(people.issue(case_number="OTHER-9")).poa
    half = registry.record_case_event(case_event(people, order[0]))
    assert half.applied and not half.case.concluded
    assert registry.get_poa(first.id).status == "active"
    done = registry.record_case_event(case_event(people, order[1]))
    assert done.case.concluded
    assert sorted(done.terminated) == sorted([first.id, second.id])
    for poa_id in (first.id, second.id):
        poa = registry.get_poa(poa_id)
        assert poa.status == "terminated"
        assert poa.termination is not None
        assert poa.termination["reason"] == "case_concluded"
    assert registry.get_poa(elsewhere.id).status == "active"


def test_a_case_event_seen_twice_changes_nothing(registry: Registry, people: People) -> None:
    registry.issue(people.issue())
    judgment = case_event(people, JUDGMENT_IN_FORCE, event_id="evt-1")
    registry.record_case_event(judgment)
    count = stored_count(registry)
    again = registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-1"))
    assert not again.applied
    assert stored_count(registry) == count


def test_a_case_event_seen_twice_is_answered_with_the_receipt_of_its_records(
    registry: Registry, people: People
) -> None:
    registry.issue(people.issue())
    first = registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-r"))
    again = registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-r"))
    assert first.receipt is not None and again.receipt is not None
    assert again.receipt["records"] == first.receipt["records"]


def test_a_case_event_recorded_before_ids_had_marks_is_answered_with_its_case_record(
    registry: Registry, people: People
) -> None:
    """A store made by an earlier version holds case events without their (source, id)'s
    record: a repeat of one is answered with the receipt of what there is, not as damage."""
    registry.issue(people.issue())
    judgment = case_event(people, JUDGMENT_IN_FORCE, event_id="evt-old")
    case = registry.get_case(CASE)
    judgment.record_on(case, registry.clock())
    [recorded] = [r.notification for r in registry.save(case)]  # as earlier versions saved it
    again = registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-old"))
    assert not again.applied and again.receipt is not None
    assert [(r["position"], r["version"]) for r in again.receipt["records"]] == [
        (recorded.id, recorded.originator_version)
    ]


def test_an_id_seen_before_with_other_content_is_refused_not_taken_as_seen(
    registry: Registry, people: People
) -> None:
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-2"))
    reused = case_event(people, EXECUTION_DOCUMENTS_ISSUED, event_id="evt-2")
    detail = refused(registry, DuplicateDocumentError, registry.record_case_event, reused)
    assert "evt-2" in detail and "other content" in detail
    assert registry.get_case(CASE).execution_documents is None


def test_an_id_recorded_in_one_case_changes_nothing_in_another(
    registry: Registry, people: People
) -> None:
    """(source, id) names one event of its source, whichever case it names."""
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, event_id="evt-3"))
    elsewhere = case_event(people, JUDGMENT_IN_FORCE, case_number="OTHER-3", event_id="evt-3")
    detail = refused(registry, DuplicateDocumentError, registry.record_case_event, elsewhere)
    assert "evt-3" in detail
    with pytest.raises(NotFoundError):
        registry.get_case("OTHER-3")


def test_sources_and_ids_that_join_alike_name_different_events(
    registry: Registry, people: People
) -> None:
    """`#` may stand in a source (a URI reference) and in an id: ("urn:x#1", "2") and
    ("urn:x", "1#2") are two events, and neither source can take the other's ids."""
    poa = registry.issue(people.issue()).poa
    registry.record_case_event(
        case_event(people, JUDGMENT_IN_FORCE, source="urn:x#1", event_id="2")
    )
    other = registry.record_case_event(
        case_event(people, EXECUTION_DOCUMENTS_ISSUED, source="urn:x", event_id="1#2")
    )
    assert other.applied and other.case.concluded
    assert other.terminated == [poa.id]
    for source in ("urn:x%231", "urn:x%25231"):  # what the first's name encodes, and more
        other_source = case_event(people, JUDGMENT_IN_FORCE, source=source, event_id="2")
        assert registry.record_case_event(other_source).applied
    assert case_event_key("urn:court:a%20b", "7") == "case-event:urn:court:a%20b#7"  # as ever


def test_a_revoked_poa_keeps_its_reason_when_the_case_concludes(
    registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue()).poa
    registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    done = registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    assert done.terminated == []
    termination = registry.get_poa(poa.id).termination
    assert termination is not None and termination["reason"] == "revoked_by_principal"


def test_an_expired_poa_keeps_its_expiry_when_the_case_concludes(
    registry: Registry, people: People, clock: Clock
) -> None:
    today = datetime.now(KZ_TIME).date()
    expiring = registry.issue(people.issue(valid_until=today.isoformat())).poa
    lasting = registry.issue(people.issue()).poa
    clock.now = expires_at(today) + timedelta(seconds=30)
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    done = registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    assert done.terminated == [lasting.id]
    expired = registry.get_poa(expiring.id)
    assert expired.version == expiring.version, "no event recorded on the expired POA"
    assert expired.status_at(clock.now) == "expired"
    assert expired.termination is None  # expiry is no event: its instant is valid_until's


def test_no_poa_can_be_issued_in_a_concluded_case(registry: Registry, people: People) -> None:
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    refused(registry, CaseConcludedError, registry.issue, people.issue())


def test_a_person_cannot_sign_a_case_event(registry: Registry, people: People) -> None:
    from dataclasses import replace

    from domain.errors import SignerMismatchError

    event = case_event(people, JUDGMENT_IN_FORCE)
    forged = replace(event, evidence=people.sign(event.evidence.document, people.principal))
    refused(registry, SignerMismatchError, registry.record_case_event, forged)


def test_issuing_racing_a_conclusion_never_leaves_an_active_poa_in_a_concluded_case(
    registry: Registry, people: People
) -> None:
    """8 threads issue into one case while another concludes it."""
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    documents = [people.issue() for _ in range(8 * 5)]
    conclusion = case_event(people, EXECUTION_DOCUMENTS_ISSUED)
    errors: list[BaseException] = []
    start = threading.Barrier(9)

    def worker(job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            start.wait()
            try:
                job()
            except DomainError as error:
                if not isinstance(error, CaseConcludedError):
                    errors.append(error)
            except BaseException as error:
                errors.append(error)

        return run

    def issue_batch(batch: list[object]) -> Callable[[], None]:
        def run() -> None:
            for evidence in batch:
                with contextlib.suppress(CaseConcludedError):
                    registry.issue(evidence)  # type: ignore[arg-type]

        return run

    threads = [threading.Thread(target=worker(issue_batch(documents[i::8]))) for i in range(8)]
    threads.append(threading.Thread(target=worker(lambda: registry.record_case_event(conclusion))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    case = registry.get_case(CASE)
    assert case.concluded
    statuses = [registry.get_poa(poa_id).status for poa_id in case.poa_ids]
    assert "active" not in statuses


def test_a_refused_issue_leaves_its_case_as_it_was(registry: Registry, people: People) -> None:
    """The refused command attached its POA to its copy of the cached case before its save
    failed; the case that later commands see knows only the POAs really issued in it."""
    document = people.issue_document()
    first = registry.issue(people.sign(document, people.principal)).poa
    reused = dict(document, rights=["refuse_claim"])
    refused(registry, DuplicateDocumentError, registry.issue, people.sign(reused, people.principal))
    assert registry.get_case(CASE).poa_ids == [first.id]
    second = registry.issue(people.issue()).poa
    assert registry.get_case(CASE).poa_ids == [first.id, second.id]
