"""What the registry's commands take and answer: a verified court case event, and the
outcome of a command or of a case event."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class CaseEventOutcome:
    case: CourtCase
    applied: bool
    terminated: list[UUID] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    receipt: dict[str, Any] | None = None
