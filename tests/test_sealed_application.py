"""The application's own `save` collects what the library's would, and records it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import ProcessingEvent

from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.sealed_application import collected
from tests.support.people import People


def new_poa(people: People) -> PowerOfAttorney:
    return PowerOfAttorney(
        case_number="2-100/2026",
        principal={"iin": people.principal.iin, "name": None},
        attorneys=[{"iin": people.attorney.iin}],
        rights=["represent_first_instance"],
        valid_until=None,
        at=datetime.now(UTC),
        evidence=people.issue().as_record(),
    )


def test_collects_aggregates_events_and_nothing_as_the_library_does(people: People) -> None:
    poa = new_poa(people)
    twin = copy.deepcopy(poa)  # the same pending event, for the library to collect
    loose_event = new_poa(people).collect_events()[0]
    ours = collected([poa, None, loose_event])
    library: ProcessingEvent[UUID] = ProcessingEvent()
    library.collect_events(twin, None, loose_event)

    assert len(ours.events) == 2
    assert ours.events == library.events
    assert ours.events[1] is loose_event
    assert ours.aggregates == {poa.id: poa}
    assert list(library.aggregates) == [poa.id]
    assert poa.collect_events() == []  # collecting took the pending events


def test_save_records_every_pending_event_once(registry: Registry, people: People) -> None:
    poa = new_poa(people)
    recordings = registry.save(poa)
    assert [r.domain_event.originator_id for r in recordings] == [poa.id]
    assert registry.save(poa) == []  # nothing pending: nothing recorded again
    assert registry.get_poa(poa.id).case_number == "2-100/2026"
