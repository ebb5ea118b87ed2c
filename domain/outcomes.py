"""What the registry's commands take and answer: a verified court case event, and the
outcome of a command or of a case event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.court_case import CourtCase
from domain.evidence import SignedDocument
from domain.power_of_attorney import PowerOfAttorney


@dataclass
class Outcome:
    """What a command did: the POA after it, and whether this call recorded anything."""

    poa: PowerOfAttorney
    created: bool
    positions: list[int] = field(default_factory=list)
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True)
class CaseEvent:
    """A court's case event whose signature was verified (see `domain.case_events`)."""

    source: str
    event_id: str
    type: str
    case_number: str
    data: dict[str, Any]
    evidence: SignedDocument

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
