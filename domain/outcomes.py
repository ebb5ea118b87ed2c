"""What the registry's commands take and answer: a verified court case event, and the
outcome of a command or of a case event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.accepted_document import AcceptedDocument
from domain.court_case import CourtCase, facts_digest, reused_id
from domain.evidence import SignedDocument
from domain.power_of_attorney import PowerOfAttorney


@dataclass
class Outcome:
    """What a command did: the POA after it, and whether this call recorded anything."""

    poa: PowerOfAttorney
    created: bool
    positions: list[int] = field(default_factory=list)
    receipt: dict[str, Any] | None = None


def case_event_key(source: str, event_id: str) -> str:
    """A case event's name in the store: its (`source`, `id`), which names one event.

    The first `#` parts them, so a source without `#` keeps the name it always had. One
    with `#` would share it with another pair ("urn:x#1", "2" and "urn:x", "1#2"): it is
    named apart, its `%` and `#` percent-encoded, after `case-event#:`, a start no name of
    the first kind has (there `:` follows `case-event`)."""
    if "#" not in source:
        return f"case-event:{source}#{event_id}"
    encoded = source.replace("%", "%25").replace("#", "%23")
    return f"case-event#:{encoded}#{event_id}"


@dataclass(frozen=True)
class CaseEvent:
    """A court's case event whose signature was verified (see `domain.case_events`)."""

    source: str
    event_id: str
    type: str
    case_number: str
    data: dict[str, Any]
    evidence: SignedDocument

    @property
    def key(self) -> str:
        """The event's name in the store (`case_event_key`)."""
        return case_event_key(self.source, self.event_id)

    def mark(self) -> AcceptedDocument:
        """Saved with the event: a second event under its (source, id), in any case, meets
        it (a version conflict) and is then held against it (`require_same_as`)."""
        digest = facts_digest(self.type, self.case_number, self.data)
        return AcceptedDocument(
            document_id=self.key, document_type=self.type, digest=digest, poa_id=None
        )

    def require_same_as(self, mark: AcceptedDocument) -> None:
        """Refuse this event if its (source, id) was recorded saying something else."""
        if mark.digest != facts_digest(self.type, self.case_number, self.data):
            raise reused_id(self.source, self.event_id)

    def record_on(self, case: CourtCase, at: datetime) -> tuple[bool, str | None]:
        """Record this event on its case: whether it was new to the case and, if it
        concluded the case, the source that the case's POAs end with."""
        was_concluded = case.concluded
        applied = case.record(
            self.type, self.source, self.event_id, self.data, at, self.evidence.as_record()
        )
        if applied and case.concluded and not was_concluded:
            return True, f"case-event:{self.source}#{self.event_id}"
        return applied, None


@dataclass
class CaseEventOutcome:
    case: CourtCase
    applied: bool
    terminated: list[UUID] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    receipt: dict[str, Any] | None = None
