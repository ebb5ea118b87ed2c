"""Several case events of one partition applied in ONE store transaction, with one position.

`Registry.record_case_event` is the one-message form of the same rules. This form reads
every case the events name at once (one statement, which may start before the events are
verified: `prefetch`), reads the POAs of the cases they will conclude at once, applies the
events in order to the cases in memory, so that the second event of a case sees what the
first did, ends the POAs of the cases concluded, and writes all the new events and the
partition's position together (`docs/decisions/0011-consumer-batches.md`).

The position recorded is that of the batch's last message. The library keeps one position
per tracking name and moves it only forward, so a batch whose position was already reached
(another member, a redelivery) fails with `IntegrityError` and writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import Tracking

from consumers.case_events import Decision, Outcome
from domain.accepted_document import AcceptedDocument
from domain.court_case import CASE_EVENT_TYPES, CourtCase
from domain.errors import NotFoundError
from domain.outcomes import CaseEvent
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.sealed_application import collected

Aggregate = CourtCase | PowerOfAttorney | AcceptedDocument
log = logging.getLogger("epoa.consumer")


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
        self.prefetched: tuple[frozenset[UUID], Future[dict[UUID, Aggregate]]] | None = None

    def prefetch(self, case_numbers: Iterable[str]) -> None:
        """Start reading these cases, in one statement (e.g. named by the messages' keys,
        before their events are verified). Where that read failed, or lacks a case needed,
        the cases needed are read again: a case named but not needed cannot fail a batch."""
        ids = list(dict.fromkeys(CourtCase.create_id(n) for n in case_numbers))
        if ids:
            self.prefetched = (frozenset(ids), self.readers.submit(self.registry.get_many, ids))

    def apply(self, case_events: Sequence[CaseEvent]) -> list[Decision]:
        """What each event does to its case and, if it concludes the case, to its POAs."""
        numbers = {CourtCase.create_id(e.case_number): e.case_number for e in case_events}
        found = self._read(list(numbers))
        for case_id, case_number in numbers.items():
            if case_id not in self.touched:
                case = found.get(case_id)
                self.touched[case_id] = CourtCase(case_number) if case is None else case
        self._read_poas(self._concluding(case_events))  # before any moment is taken
        decisions: list[Decision] = []
        conclusions: list[_Conclusion] = []
        for case_event in case_events:
            case = self.touched[CourtCase.create_id(case_event.case_number)]
            assert isinstance(case, CourtCase)
            at = self.registry.clock()
            applied, concluded_by = case_event.record_on(case, at)
            if applied:
                mark = case_event.mark()
                earlier = self.touched.get(mark.id)
                if isinstance(earlier, AcceptedDocument):  # its (source, id) taken in this batch
                    case_event.require_same_as(earlier)
                self.touched[mark.id] = mark  # another event under its (source, id): a conflict
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

    def _concluding(self, case_events: Sequence[CaseEvent]) -> list[CourtCase]:
        """The cases these events may conclude: not concluded yet, and with both facts once
        the events are in. Their POAs are read before the events are given their moments,
        so a command that committed on a POA before the read is dated before the
        conclusion, and one that commits after it makes the batch's write conflict."""
        kinds: dict[UUID, set[str]] = {}
        for case_event in case_events:
            kinds.setdefault(CourtCase.create_id(case_event.case_number), set()).add(
                case_event.type
            )
        found = []
        for case_id, types in kinds.items():
            case = self.touched[case_id]
            assert isinstance(case, CourtCase)
            if any(case.would_conclude(kind) for kind in types) or (
                not case.concluded and set(CASE_EVENT_TYPES) <= types
            ):
                found.append(case)
        return found

    def _read_poas(self, cases: Iterable[CourtCase]) -> None:
        """Read the POAs of these cases not read yet, in one statement."""
        poa_ids = list(dict.fromkeys(poa_id for case in cases for poa_id in case.poa_ids))
        found = self._read(poa_ids)
        for poa_id in poa_ids:
            if poa_id not in self.touched:
                if not isinstance(found.get(poa_id), PowerOfAttorney):
                    raise NotFoundError(f"power of attorney {poa_id} not found")
                self.touched[poa_id] = found[poa_id]

    def _end_poas(self, conclusions: list[_Conclusion], decisions: list[Decision]) -> None:
        """End the active POAs of each case concluded (no other case event touches a POA, so
        ending them after the batch's other events is the same as in between)."""
        self._read_poas(c.case for c in conclusions)  # read already: `_concluding` foresaw them
        for conclusion in conclusions:
            ended = []
            for poa_id in conclusion.case.poa_ids:
                poa = self.touched[poa_id]
                assert isinstance(poa, PowerOfAttorney)
                if poa.end_with_case(conclusion.at, conclusion.source):
                    ended.append(poa_id)
            decision = decisions[conclusion.index]
            decisions[conclusion.index] = dataclasses.replace(decision, terminated=tuple(ended))

    def _read(self, ids: list[UUID]) -> dict[UUID, Aggregate]:
        """Those of these aggregates not read yet that exist, all read in one statement:
        the prefetched read where it holds them all."""
        wanted = [aggregate_id for aggregate_id in ids if aggregate_id not in self.touched]
        if not wanted:
            return {}
        if self.prefetched is not None and self.prefetched[0].issuperset(wanted):
            try:
                return self.prefetched[1].result()
            except Exception:  # read again what is needed; that read's failure stands
                log.info("the prefetched cases could not be read; reading those needed")
        return self.registry.get_many(wanted)
