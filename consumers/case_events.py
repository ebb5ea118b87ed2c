"""What one court case event does to the registry, whatever brought it (Kafka or HTTP).

`handle` is idempotent: the message's position (`Tracking`) is recorded in the same
transaction as its effects, so a redelivered message, or a second copy of an event with the
same (`source`, `id`), changes nothing. A message that can never succeed is a poison message:
`handle` records nothing for it, because its position may only move once the dead-letter
topic holds it (`settle`); failures of the store are not poison and propagate, to be retried.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from domain.case_events import CaseEventVerifier, parse_case_event
from domain.errors import (
    DomainError,
    DuplicateDocumentError,
    InvalidInputError,
    SignerMismatchError,
)
from domain.outcomes import CaseEvent
from domain.registry import Registry
from domain.registry_reads import store_errors

log = logging.getLogger("epoa.consumer")

#: The DLQ reason of a message that made the parser itself fail: a defect to fix, after
#: which the message can be replayed from the dead-letter topic.
INTERNAL_ERROR = "internal-error"


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    POISON = "poison"


@dataclass(frozen=True)
class Decision:
    """What handling a message did; for poison, why it can never succeed."""

    outcome: Outcome
    case_number: str | None = None
    reason: str | None = None
    detail: str | None = None
    concluded: bool = False
    terminated: tuple[UUID, ...] = ()

    @classmethod
    def poison(cls, reason: str, detail: str) -> Decision:
        return cls(Outcome.POISON, reason=reason, detail=detail)

    def log_fields(self) -> dict[str, object]:
        """The decision as structured log fields (`extra=`)."""
        return {
            "outcome": self.outcome.value,
            "case_number": self.case_number,
            "reason": self.reason,
            "detail": self.detail,
            "concluded": self.concluded,
            "terminated": [str(poa_id) for poa_id in self.terminated],
        }


Headers = Iterable[tuple[str, bytes | None]]
"""A Kafka message's headers, as kafka-python gives them."""
BINARY_MODE = "ce_specversion"
"""The header of a message in CloudEvents binary content mode (its Kafka binding)."""


def binary_mode_header(headers: Headers) -> str | None:
    """The header by which a message says it is in binary content mode, if it has one."""
    names = [str(name) for name, _ in headers]
    return next((name for name in names if name.lower() == BINARY_MODE), None)


REFUSALS = (DuplicateDocumentError, InvalidInputError, SignerMismatchError)
"""What the registry refuses of a verified event by the rules, given what the store holds
(e.g. its id recorded before with other content): poison, like a bad signature."""


class CaseEventHandler:
    def __init__(self, registry: Registry, verifier: CaseEventVerifier) -> None:
        self.registry = registry
        self.verifier = verifier
        self.recorder = registry.process_recorder

    def handle(self, value: bytes | None, tracking: Tracking, headers: Headers = ()) -> Decision:
        """Apply the message, or say why it is poison; store failures raise."""
        parsed = self.parse(value, headers)
        if isinstance(parsed, Decision):
            if self._tracked(tracking):
                return Decision(Outcome.DUPLICATE, reason=parsed.reason, detail=parsed.detail)
            return parsed
        try:
            outcome = self.registry.record_case_event(parsed, tracking)
        except REFUSALS as error:  # what the case holds refuses it: it never will pass
            return Decision(
                Outcome.POISON, parsed.case_number, reason=error.kind, detail=error.detail
            )
        return Decision(
            Outcome.APPLIED if outcome.applied else Outcome.DUPLICATE,
            case_number=parsed.case_number,
            concluded=outcome.case.concluded,
            terminated=tuple(outcome.terminated),
        )

    def parse(self, value: bytes | None, headers: Headers = ()) -> CaseEvent | Decision:
        """The verified event, or the poison decision. Pure: it reads no store."""
        if value is None:
            return Decision.poison("validation", "a message without a value")
        try:
            return parse_case_event(
                value, self.verifier, binary_mode_header=binary_mode_header(headers)
            )
        except DomainError as error:
            return Decision.poison(error.kind, error.detail)
        except Exception as error:
            log.exception("the case event parser failed on a message")
            return Decision.poison(INTERNAL_ERROR, f"{type(error).__name__}: {error}")

    def settle(self, tracking: Tracking) -> None:
        """Record the position of a poison message, once the dead-letter topic holds it."""
        try:
            with store_errors():
                self.registry.record_position(tracking)
        except IntegrityError:
            if not self._tracked(tracking):
                raise

    def _tracked(self, tracking: Tracking) -> bool:
        with store_errors():
            return self.recorder.has_tracking_id(
                tracking.application_name, tracking.notification_id
            )
