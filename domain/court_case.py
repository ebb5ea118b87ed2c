"""The `CourtCase` aggregate: one per case number; knows its POAs and when it concluded.

Issuing a POA appends `PowerOfAttorneyAttached` to the case in the same save as the POA, so
the case's version serialises issuing against concluding: no POA slips through a conclusion.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.accepted_document import digest_of
from domain.canonical import canonical_bytes
from domain.errors import CaseConcludedError, DuplicateDocumentError, InvalidInputError
from domain.times import utc_text

CASE_NUMBER = re.compile(r"[0-9A-Za-z/_.\-]{1,64}")
CASE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:epoa:court-case")

JUDGMENT_IN_FORCE = "kz.court.case.judgment-entered-into-force"
EXECUTION_DOCUMENTS_ISSUED = "kz.court.case.execution-documents-issued"
CASE_EVENT_TYPES = (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED)


def parse_case_number(value: object) -> str:
    if not isinstance(value, str) or not CASE_NUMBER.fullmatch(value):
        raise InvalidInputError("case_number: 1 to 64 characters from [0-9A-Za-z/_.-] are required")
    return value


class CourtCase(Aggregate):
    class Opened(Aggregate.Created):
        case_number: str

    class PowerOfAttorneyAttached(Aggregate.Event):
        poa_id: UUID
        at: datetime

    class JudgmentEnteredIntoForce(Aggregate.Event):
        source: str
        event_id: str
        data: dict[str, Any]
        at: datetime
        evidence: dict[str, str]

    class ExecutionDocumentsIssued(Aggregate.Event):
        source: str
        event_id: str
        data: dict[str, Any]
        at: datetime
        evidence: dict[str, str]

    class Concluded(Aggregate.Event):
        at: datetime

    @staticmethod
    def create_id(case_number: str) -> UUID:
        return uuid5(CASE_NAMESPACE, case_number)

    @event(Opened)
    def __init__(self, case_number: str) -> None:
        self.case_number = case_number
        self.poa_ids: list[UUID] = []
        self.judgment: dict[str, Any] | None = None
        self.execution_documents: dict[str, Any] | None = None
        self.concluded_at: datetime | None = None
        self.seen: dict[tuple[str, str], str] = {}
        """The digest of what each (source, id) recorded here said (`facts_digest`)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> CourtCase:
        """A copy for one command (the repository hands out copies of cached aggregates).
        A POA id is immutable, so the list of them is copied without copying each one: a
        command in a case with many POAs does not pay for every POA of the case. Every
        other attribute is copied deeply, as the library would."""
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            copied.__dict__[name] = list(value) if name == "poa_ids" else copy.deepcopy(value, memo)
        return copied

    @property
    def concluded(self) -> bool:
        return self.concluded_at is not None

    def attach(self, poa_id: UUID, at: datetime) -> None:
        if self.concluded_at is not None:
            raise CaseConcludedError(
                f"case {self.case_number} concluded at {utc_text(self.concluded_at)}: "
                "no new power of attorney can be issued in it"
            )
        self._attach(poa_id=poa_id, at=at)

    def record(
        self,
        kind: str,
        source: str,
        event_id: str,
        data: dict[str, Any],
        at: datetime,
        evidence: dict[str, str],
    ) -> bool:
        """Record a court's case event; return False if (source, id) was seen already.
        The same (source, id) saying something else (another type or data) is refused:
        a court system that reused an id must learn that its event was not recorded."""
        known = self.seen.get((source, event_id))
        if known is not None:
            if known != facts_digest(kind, self.case_number, data):
                raise reused_id(source, event_id)
            return False
        concludes = self.would_conclude(kind)
        if kind == JUDGMENT_IN_FORCE:
            self._judgment(source=source, event_id=event_id, data=data, at=at, evidence=evidence)
        elif kind == EXECUTION_DOCUMENTS_ISSUED:
            self._execution(source=source, event_id=event_id, data=data, at=at, evidence=evidence)
        else:
            raise InvalidInputError(f"unknown case event type {kind!r}")
        if concludes:
            self._conclude(at=at)
        return True

    def would_conclude(self, kind: str) -> bool:
        """Whether a new event of `kind` concludes the case: it brings the second fact."""
        if self.concluded:
            return False
        if kind == JUDGMENT_IN_FORCE:
            return self.execution_documents is not None
        return kind == EXECUTION_DOCUMENTS_ISSUED and self.judgment is not None

    @event(PowerOfAttorneyAttached)
    def _attach(self, poa_id: UUID, at: datetime) -> None:
        self.poa_ids.append(poa_id)

    @event(JudgmentEnteredIntoForce)
    def _judgment(
        self,
        source: str,
        event_id: str,
        data: dict[str, Any],
        at: datetime,
        evidence: dict[str, str],
    ) -> None:
        self.seen[(source, event_id)] = facts_digest(JUDGMENT_IN_FORCE, self.case_number, data)
        if self.judgment is None:
            self.judgment = recorded_fact(at, data)

    @event(ExecutionDocumentsIssued)
    def _execution(
        self,
        source: str,
        event_id: str,
        data: dict[str, Any],
        at: datetime,
        evidence: dict[str, str],
    ) -> None:
        self.seen[(source, event_id)] = facts_digest(
            EXECUTION_DOCUMENTS_ISSUED, self.case_number, data
        )
        if self.execution_documents is None:
            self.execution_documents = recorded_fact(at, data)

    @event(Concluded)
    def _conclude(self, at: datetime) -> None:
        self.concluded_at = at


def recorded_fact(at: object, data: dict[str, Any]) -> dict[str, Any]:
    """A fact of the case as it is shown: when the registry recorded it, then what the court
    said. An `at` in `data` (an event recorded before such a member was refused) never
    stands in for the registry's own; the evidence keeps it."""
    return {"at": at, **{name: value for name, value in data.items() if name != "at"}}


def facts_digest(kind: str, case_number: str, data: dict[str, Any]) -> str:
    """What a case event says: its type, case and data (not its time or extension
    attributes, which a redelivery through another path may change)."""
    return digest_of(canonical_bytes({"type": kind, "subject": case_number, "data": data}))


def reused_id(source: str, event_id: str) -> DuplicateDocumentError:
    """The refusal of a case event whose (source, id) was recorded saying something else."""
    return DuplicateDocumentError(
        f"case event {event_id!r} of {source!r} was recorded before with other content "
        "(type, case or data); an id names one event of its source"
    )
