"""What the commands read: POAs (now or at a moment) and cases, from the event store.

`Registry` adds the commands; the read models answer the API's reads (`projections/`), and
`authority` here is the same question answered from the events themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import takewhile
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, project_aggregate
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import InterfaceError, OperationalError

from domain.court_case import CourtCase
from domain.errors import NotFoundError, StoreUnavailableError
from domain.power_of_attorney import PowerOfAttorney
from domain.sealed_application import SealedApplication
from domain.times import utc_text


@contextmanager
def store_errors() -> Iterator[None]:
    """The store's connection failures as the domain's `StoreUnavailableError`."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailableError(f"the event store is unavailable: {error}") from error


class RegistryReads(SealedApplication):
    def get_poa(self, poa_id: UUID, version: int | None = None) -> PowerOfAttorney:
        with store_errors():
            try:
                poa: object = self.repository.get(poa_id, version=version)
            except AggregateNotFoundError:
                raise NotFoundError(f"power of attorney {poa_id} not found") from None
        if not isinstance(poa, PowerOfAttorney):
            raise NotFoundError(f"power of attorney {poa_id} not found")
        return poa

    def get_poas(self, poa_ids: Sequence[UUID]) -> list[PowerOfAttorney]:
        """These POAs, in this order, read in one statement (`get_many`): a case concluding
        reads all of its POAs at once, so a busy case leaves its save less time to conflict."""
        with store_errors():
            found = self.get_many(poa_ids)
        poas = []
        for poa_id in poa_ids:
            poa = found.get(poa_id)
            if not isinstance(poa, PowerOfAttorney):
                raise NotFoundError(f"power of attorney {poa_id} not found")
            poas.append(poa)
        return poas

    def get_poa_at(self, poa_id: UUID, moment: datetime) -> PowerOfAttorney:
        """The POA as it stood at `moment`, replayed from its events."""
        with store_errors():
            events = list(self.events.get(poa_id))
        poa = state_at(events, moment)
        if poa is None:
            raise NotFoundError(f"power of attorney {poa_id} did not exist at {utc_text(moment)}")
        return poa

    def get_case(self, case_number: str) -> CourtCase:
        with store_errors():
            try:
                case: object = self.repository.get(CourtCase.create_id(case_number))
            except AggregateNotFoundError:
                raise NotFoundError(f"case {case_number} not found") from None
        assert isinstance(case, CourtCase)
        return case

    def authority(
        self, case_number: str, attorney_iin: str, right: str, moment: datetime
    ) -> list[UUID]:
        """The POAs by which the attorney may exercise `right` in the case at `moment`."""
        try:
            case = self.get_case(case_number)
        except NotFoundError:
            return []
        with store_errors():
            streams = self.get_streams(case.poa_ids)
        found = []
        for poa_id in case.poa_ids:
            poa = state_at(streams.get(poa_id, []), moment)
            if (
                poa is not None
                and right in poa.rights
                and poa.is_active_at(moment)
                and (attorney_iin in poa.active_attorneys())
            ):
                found.append(poa_id)
        return found

    def _cache_saved(self, case: CourtCase) -> None:
        """A case this command saved becomes the cached one, unless a later version is
        cached already: the next command in the case then reads only what others recorded
        after it, not this command's own record again. The command must not change `case`
        after this (the repository hands out copies of what it caches)."""
        cache = self.repository.cache
        if cache is None:
            return
        try:
            cached: Any = cache.get(case.id)
        except KeyError:
            cached = None
        if cached is None or cached.version < case.version:
            cache.put(case.id, case)

    def _case_or_new(self, case_number: str) -> CourtCase:
        try:
            return self.get_case(case_number)
        except NotFoundError:
            return CourtCase(case_number)


def state_at(
    events: Iterable[DomainEventProtocol[UUID]], moment: datetime
) -> PowerOfAttorney | None:
    """The POA replayed from its events up to `moment` (None if not issued by then): the
    events before the first one later than `moment`, since a POA's moments never go back."""
    before = list(takewhile(lambda e: getattr(e, "at", moment) <= moment, events))
    poa = project_aggregate(None, before) if before else None
    return poa if isinstance(poa, PowerOfAttorney) else None
