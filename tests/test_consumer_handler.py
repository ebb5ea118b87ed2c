"""The case-event handler on its own: one decision per message, each position recorded once."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import Tracking

from api.commands import MAX_BODY_BYTES
from consumers.case_events import CaseEventHandler, Outcome
from consumers.positions import resume_offset, stream_name, tracking_for
from domain.registry import Registry
from tests.support.court_events import (
    POISON,
    execution,
    in_binary_mode,
    judgment,
    unknown_type,
)
from tests.support.people import People

TOPIC = "court.case-events"


def at(offset: int, partition: int = 0) -> Tracking:
    return tracking_for(TOPIC, partition, offset)


def position(registry: Registry, partition: int = 0) -> int:
    return resume_offset(registry.process_recorder, TOPIC, partition)


@pytest.fixture
def handler(registry: Registry, people: People) -> CaseEventHandler:
    return CaseEventHandler(registry, people.verifier)


def test_a_partition_with_nothing_tracked_resumes_at_offset_zero(registry: Registry) -> None:
    assert position(registry) == 0
    assert stream_name(TOPIC, 3) == "kafka:court.case-events:3"
    assert at(0).notification_id == 1


def test_both_events_conclude_the_case_and_move_the_position_with_them(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    poa = registry.issue(people.issue(case_number="H-1")).poa
    first = handler.handle(judgment(people, "H-1"), at(0))
    assert first.outcome is Outcome.APPLIED and not first.concluded
    assert position(registry) == 1
    second = handler.handle(execution(people, "H-1"), at(1))
    assert second.outcome is Outcome.APPLIED and second.concluded
    assert second.terminated == (poa.id,)
    assert registry.get_poa(poa.id).status == "terminated"
    assert position(registry) == 2


def test_the_same_message_delivered_again_changes_nothing(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    message = judgment(people, "H-2")
    handler.handle(message, at(0))
    stored = registry.recorder.max_notification_id()
    again = handler.handle(message, at(0))
    assert again.outcome is Outcome.DUPLICATE
    assert registry.recorder.max_notification_id() == stored
    assert position(registry) == 1


def test_a_copy_of_an_event_at_a_later_offset_changes_nothing_but_the_position(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    message = judgment(people, "H-3", id="evt-copy")
    handler.handle(message, at(0))
    stored = registry.recorder.max_notification_id()
    copy = handler.handle(judgment(people, "H-3", id="evt-copy"), at(5))
    assert copy.outcome is Outcome.DUPLICATE
    assert registry.recorder.max_notification_id() == stored
    assert position(registry) == 6


@pytest.mark.parametrize("name", list(POISON))
def test_a_poison_message_gets_its_reason_and_moves_the_position_only_once_settled(
    handler: CaseEventHandler, registry: Registry, people: People, name: str
) -> None:
    make, reason = POISON[name]
    decision = handler.handle(make(people, "H-4"), at(0))
    assert decision.outcome is Outcome.POISON
    assert decision.reason == reason, decision.detail
    assert decision.detail
    assert position(registry) == 0
    handler.settle(at(0))
    handler.settle(at(0))
    assert position(registry) == 1
    assert handler.handle(make(people, "H-4"), at(0)).outcome is Outcome.DUPLICATE
    assert registry.recorder.max_notification_id() in (None, 0)


def test_a_message_without_a_value_is_poison(handler: CaseEventHandler) -> None:
    decision = handler.handle(None, at(0))
    assert (decision.outcome, decision.reason) == (Outcome.POISON, "validation")


def test_an_event_over_the_http_body_limit_is_poison_on_kafka_too(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    """`POST /v1/case-events` refuses a body over 1 MiB (413): the same event from Kafka is
    dead-lettered, not recorded into its case, which every later command would replay."""
    poa = registry.issue(people.issue(case_number="H-9")).poa
    documents = [f"EL-{n:07d}" + "x" * 100 for n in range(10_000)]
    data = {"case_number": "H-9", "issued_on": "2026-11-24", "documents": documents}
    big = execution(people, "H-9", data=data)
    assert len(big) > MAX_BODY_BYTES
    decision = handler.handle(big, at(0))
    assert (decision.outcome, decision.reason) == (Outcome.POISON, "validation")
    assert f"more than {MAX_BODY_BYTES}" in (decision.detail or "")
    assert registry.get_case("H-9").execution_documents is None
    handler.settle(at(0))
    handler.handle(judgment(people, "H-9"), at(1))
    handler.handle(execution(people, "H-9"), at(2))
    assert registry.get_poa(poa.id).status == "terminated"


def test_a_message_in_binary_content_mode_is_poison_that_says_so(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    """A court system whose CloudEvents SDK sends binary mode (`ce_*` headers) learns that
    structured mode is expected, not only which attributes its value lacks."""
    value, headers = in_binary_mode("H-10")
    decision = handler.handle(value, at(0), headers)
    assert (decision.outcome, decision.reason) == (Outcome.POISON, "validation")
    assert "binary content mode" in (decision.detail or ""), decision.detail
    assert "structured" in (decision.detail or ""), decision.detail
    assert "missing" in (decision.detail or ""), decision.detail  # and what the value lacks
    plain = handler.handle(value, at(0))
    assert "binary" not in (plain.detail or ""), plain.detail
    structured = handler.handle(unknown_type(people, "H-10"), at(0), headers)
    assert "binary" not in (structured.detail or ""), structured.detail
    assert registry.recorder.max_notification_id() in (None, 0)


def test_an_id_reused_with_other_content_is_poison_naming_its_case(
    handler: CaseEventHandler, registry: Registry, people: People
) -> None:
    """The event verified, so its case is known: the log line of its refusal names it, as
    an operator looking into that case searches the logs for it."""
    handler.handle(judgment(people, "H-11", id="court-reused"), at(0))
    stored = registry.recorder.max_notification_id()
    decision = handler.handle(execution(people, "H-11", id="court-reused"), at(1))
    assert (decision.outcome, decision.reason) == (Outcome.POISON, "duplicate-document")
    assert decision.case_number == "H-11"
    assert decision.log_fields()["case_number"] == "H-11"
    assert registry.recorder.max_notification_id() == stored
