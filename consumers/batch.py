"""Several case events of one partition applied in ONE store transaction, with one position.

`Registry.record_case_event` is the one-message form of the same rules. This form reads
every case the events name at once (concurrent round trips, which may start before the
events are verified: `prefetch`), applies the events in order to the cases in memory, so
that the second event of a case sees what the first did, then reads the POAs of the cases
they concluded at once and ends them, and writes all the new events and the partition's
position together (`docs/decisions/0011-consumer-batches.md`).

The position recorded is that of the batch's last message. The library keeps one position
per tracking name and moves it only forward, so a batch whose position was already reached
(another member, a redelivery) fails with `IntegrityError` and writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from consumers.case_events import Decision, Outcome
from domain.court_case import CourtCase
from domain.errors import NotFoundError
from domain.outcomes import CaseEvent
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.sealed_application import collected

Aggregate = CourtCase | PowerOfAttorney


@dataclasses.dataclass
class _Conclusion:
    index: int
    case: CourtCase
    at: datetime
    source: str


class CaseEventBatch:
    """`apply` the events in memory, then `commit` them all. Used once: after a failed
    `commit` the aggregates hold events that were not written, so a retry starts anew."""

    def __init__(self, registry: Registry, readers: Executor) -> None:
        self.registry = registry
        self.readers = readers
        #: Every aggregate read or created, in the order first needed: their new events
        #: are written in that order.
        self.touched: dict[UUID, Aggregate] = {}
        self.reading: dict[UUID, Future[Aggregate]] = {}

    def prefetch(self, case_numbers: Iterable[str]) -> None:
        """Start reading these cases (e.g. named by the messages' keys, before their events
        are verified); a read not needed in the end is dropped, its failure with it."""
        for case_number in case_numbers:
            case_id = CourtCase.create_id(case_number)
            if case_id not in self.reading:
                self.reading[case_id] = self.readers.submit(self._case_or_new, case_number)

    def apply(self, case_events: Sequence[CaseEvent]) -> list[Decision]:
        """What each event does to its case and, if it concludes the case, to its POAs."""
        self._read(dict.fromkeys(e.case_number for e in case_events), self._case_or_new)
        decisions: list[Decision] = []
        conclusions: list[_Conclusion] = []
        for case_event in case_events:
            case = self.touched[CourtCase.create_id(case_event.case_number)]
            assert isinstance(case, CourtCase)
            at = self.registry.clock()
            applied, concluded_by = case_event.record_on(case, at)
            outcome = Outcome.APPLIED if applied else Outcome.DUPLICATE
            decisions.append(Decision(outcome, case.case_number, concluded=case.concluded))
            if concluded_by is not None:
                conclusions.append(_Conclusion(len(decisions) - 1, case, at, concluded_by))
        self._end_poas(conclusions, decisions)
        return decisions

    def commit(self, tracking: Tracking) -> None:
        """Write every new event and the position `tracking` in one transaction."""
        processing = collected(self.touched.values(), tracking)
        self.registry.events.put(processing.events, tracking=processing.tracking)

    def _end_poas(self, conclusions: list[_Conclusion], decisions: list[Decision]) -> None:
        """End the active POAs of each case concluded (no other case event touches a POA, so
        ending them after the batch's other events is the same as in between)."""
        poa_ids = [poa_id for c in conclusions for poa_id in c.case.poa_ids]
        self._read(dict.fromkeys(poa_ids), self.registry.get_poa)
        for conclusion in conclusions:
            ended = []
            for poa_id in conclusion.case.poa_ids:
                poa = self.touched[poa_id]
                assert isinstance(poa, PowerOfAttorney)
                if poa.end_with_case(conclusion.at, conclusion.source):
                    ended.append(poa_id)
            decision = decisions[conclusion.index]
            decisions[conclusion.index] = dataclasses.replace(decision, terminated=tuple(ended))

    def _read(self, keys: Iterable[Any], read: Callable[[Any], Aggregate]) -> None:
        """Read the aggregates not read yet, concurrently (each read is a round trip), and
        note them in the order given."""
        keys = list(keys)
        wanted = [_id_of(key) for key in keys]
        for key, aggregate_id in zip(keys, wanted, strict=True):
            if aggregate_id not in self.touched and aggregate_id not in self.reading:
                self.reading[aggregate_id] = self.readers.submit(read, key)
        for aggregate_id in wanted:
            if aggregate_id not in self.touched:
                self.touched[aggregate_id] = self.reading[aggregate_id].result()

    def _case_or_new(self, case_number: str) -> CourtCase:
        try:
            return self.registry.get_case(case_number)
        except NotFoundError:
            return CourtCase(case_number)


def _id_of(key: object) -> UUID:
    return key if isinstance(key, UUID) else CourtCase.create_id(str(key))
