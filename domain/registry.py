"""The `Registry` application: the commands of the e-POA registry.

Every command is one atomic save of every aggregate it touches plus the `AcceptedDocument`
of its signed document; a version conflict (a concurrent command on the same case or POA)
reloads and retries, a bounded number of times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from domain.accepted_document import AcceptedDocument, digest_of
from domain.court_case import CourtCase
from domain.documents import (
    IssueRequest,
    parse_iin,
    parse_person,
    parse_poa_id,
    parse_reason,
    stated_name,
)
from domain.errors import (
    ConflictError,
    DomainError,
    DuplicateDocumentError,
    InvalidInputError,
    SignerMismatchError,
    StoreUnavailableError,
)
from domain.evidence import SignedDocument
from domain.names import difference, same_name
from domain.outcomes import CaseEvent, CaseEventOutcome, Outcome
from domain.power_of_attorney import PowerOfAttorney
from domain.receipt import make_receipt
from domain.registry_reads import RegistryReads, store_errors
from domain.repeats import Place, case_event_places, document_places, mark_of, stored_at
from domain.seal import SealKey
from domain.sealed_application import collected

MAX_ATTEMPTS = 20
T = TypeVar("T")
NameLookup = Callable[[Sequence[str]], Mapping[str, str]]
"""The names the person directory has for some IINs, by IIN (unknown ones left out)."""


def no_names(_: Sequence[str]) -> Mapping[str, str]:
    return {}


AGGREGATE_CACHE = {"AGGREGATE_CACHE_MAXSIZE": "2000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
"""Aggregates loaded lately stay in memory; each load reads only the events recorded since
(by any process), so a case with many POAs is not replayed from its start per command.
Commands work on a copy, so a failed one leaves the cached aggregate as it was."""


class Registry(RegistryReads):
    name = "epoa"

    def __init__(
        self,
        env: Mapping[str, str],
        seal_key: SealKey,
        retired_keys: tuple[Ed25519PublicKey, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        names: NameLookup = no_names,
    ) -> None:
        self.seal_key = seal_key
        self.retired_keys = retired_keys
        self.clock = clock
        self.names = names
        super().__init__({**AGGREGATE_CACHE, **env})

    # -- commands --------------------------------------------------------------------------

    def issue(self, evidence: SignedDocument) -> Outcome:
        request = IssueRequest.parse(evidence.document)
        if evidence.signer_kind != "person" and evidence.signer_id == request.principal_iin:
            raise SignerMismatchError(
                f"the principal must be a person (IIN); {request.principal_iin} is the BIN of "
                "the organisation that signed: an organisation cannot issue an e-POA here"
            )
        if evidence.signer_kind != "person" or evidence.signer_id != request.principal_iin:
            raise SignerMismatchError(
                f"an issue must be signed by the principal {request.principal_iin}; "
                f"it is signed by {evidence.signer_kind} {evidence.signer_id}"
            )

        def attempt() -> Outcome:
            at = self.clock()
            request.require_unexpired(at)
            case = self._case_or_new(request.case_number)
            iins = [request.principal_iin, *request.attorney_iins]
            principal, *attorneys = self._people(iins, request.stated_names)
            poa = PowerOfAttorney(
                case_number=request.case_number,
                principal=principal,
                attorneys=attorneys,
                rights=request.rights,
                valid_until=request.valid_until.isoformat() if request.valid_until else None,
                at=at,
                evidence=evidence.as_record(),
            )
            case.attach(poa.id, at)
            outcome = self._save_with(evidence, poa, case)
            self._cache_saved(case)
            return outcome

        return self._once(evidence, attempt)

    def add_attorney(self, poa_id: UUID, evidence: SignedDocument) -> Outcome:
        parse_poa_id(evidence.document, "epoa.add-attorney", poa_id)
        attorney = parse_person(evidence.document["attorney"], "attorney")
        name = stated_name(evidence.document["attorney"], "attorney")
        stated = {attorney: name} if name is not None else {}

        def attempt() -> Outcome:
            poa = self.get_poa(poa_id)
            person = self._people([attorney], stated)[0]
            poa.add_attorney(person, evidence, self.clock())
            return self._save_with(evidence, poa)

        return self._once(evidence, attempt)

    def revoke(self, poa_id: UUID, evidence: SignedDocument) -> Outcome:
        parse_poa_id(evidence.document, "epoa.revoke", poa_id)
        reason = parse_reason(evidence.document)

        def attempt() -> Outcome:
            poa = self.get_poa(poa_id)
            poa.revoke(reason, evidence, self.clock())
            return self._save_with(evidence, poa)

        return self._once(evidence, attempt)

    def renounce(self, poa_id: UUID, evidence: SignedDocument) -> Outcome:
        parse_poa_id(evidence.document, "epoa.renounce", poa_id)
        attorney_iin = parse_iin(evidence.document["attorney_iin"], "attorney_iin")

        def attempt() -> Outcome:
            poa = self.get_poa(poa_id)
            poa.renounce(attorney_iin, evidence, self.clock())
            return self._save_with(evidence, poa)

        return self._once(evidence, attempt)

    def record_case_event(
        self, case_event: CaseEvent, tracking: Tracking | None = None
    ) -> CaseEventOutcome:
        """Apply a court's case event; concluding ends every active POA of the case.

        With `tracking` (a Kafka topic-partition and offset), the position is recorded in the
        same transaction as the events, so a redelivered message changes nothing.
        """
        if case_event.evidence.signer_kind != "organisation":
            raise SignerMismatchError("case events must be signed by a court system (BIN)")

        tries = 0

        def attempt() -> CaseEventOutcome:
            nonlocal tries
            tries += 1
            if tracking is not None and self.process_recorder.has_tracking_id(
                tracking.application_name, tracking.notification_id
            ):
                return CaseEventOutcome(self._case_or_new(case_event.case_number), applied=False)
            if tries > 1 and (mark := self._accepted(case_event.key)) is not None:
                case_event.require_same_as(mark)  # e.g. its (source, id) taken in another case
            case = self._case_or_new(case_event.case_number)
            poas = self.get_poas(case.poa_ids) if case.would_conclude(case_event.type) else []
            # The moment is taken once the case and its POAs are loaded: a command that
            # committed before is then dated before it, and one that commits later makes
            # this save conflict and the attempt run again.
            at = self.clock()
            applied, concluded_by = case_event.record_on(case, at)
            if not applied:
                if tracking is not None:
                    self.record_position(tracking)
                    return CaseEventOutcome(case, applied=False)
                return CaseEventOutcome(
                    case, applied=False, receipt=self._case_event_receipt(case, case_event)
                )
            ended: list[PowerOfAttorney] = []
            if concluded_by is not None:
                ended = [poa for poa in poas if poa.end_with_case(at, concluded_by)]
            recordings = self._record(collected([case, *ended, case_event.mark()], tracking))
            return CaseEventOutcome(
                case,
                True,
                [p.id for p in ended],
                [r.notification.id for r in recordings],
                make_receipt(self.seal_key, [r.notification for r in recordings], self.clock()),
            )

        return self._retrying(attempt)

    def record_position(self, tracking: Tracking | None) -> None:
        """A message that changes nothing still moves its partition's position."""
        if tracking is not None:
            self._record(ProcessingEvent(tracking))

    # -- helpers ---------------------------------------------------------------------------

    def _people(self, iins: Sequence[str], stated: Mapping[str, str]) -> list[dict[str, Any]]:
        """Each person with the directory's name (None if unknown): one lookup for all. A
        name the signed document gives must be the directory's (case, spacing and Unicode
        normal form aside), or the record would show a name the signer never saw."""
        found = self.names(iins)
        for iin, name in stated.items():
            known = found.get(iin)
            if known is not None and not same_name(name, known):
                raise InvalidInputError(
                    f"the name {name!r} given for {iin} is not the person directory's "
                    f"({known!r}): {difference(name, known)}; leave the name out or correct it"
                )
        return [{"iin": iin, "name": found.get(iin)} for iin in iins]

    def _save_with(self, evidence: SignedDocument, poa: PowerOfAttorney, *others: Any) -> Outcome:
        accepted = AcceptedDocument(
            document_id=str(evidence.document_id),
            document_type=evidence.type,
            digest=digest_of(evidence.canonical),
            poa_id=poa.id,
        )
        recordings = self.save(poa, *others, accepted)
        receipt = make_receipt(self.seal_key, [r.notification for r in recordings], self.clock())
        return Outcome(poa, True, [r.notification.id for r in recordings], receipt)

    def _accepted(self, document_id: UUID | str) -> AcceptedDocument | None:
        with store_errors():
            try:
                found: object = self.repository.get(AcceptedDocument.create_id(str(document_id)))
            except AggregateNotFoundError:
                return None
        assert isinstance(found, AcceptedDocument)
        return found

    def _once(self, evidence: SignedDocument, attempt: Callable[[], Outcome]) -> Outcome:
        """Run a command unless its document was accepted before (then answer as before).

        The first try does not look the document up: a document accepted before makes its
        save fail (its `AcceptedDocument` exists) or its rules refuse it (e.g. the POA is
        revoked already), and only then is it looked up, so a new document, the common
        case, costs no lookup."""
        tries = 0

        def guarded() -> Outcome:
            nonlocal tries
            tries += 1
            if tries == 1:
                try:
                    return attempt()
                except StoreUnavailableError:
                    raise  # nothing to look up while the store cannot be reached
                except DomainError:
                    accepted = self._accepted(evidence.document_id)
                    if accepted is None:
                        raise
            else:
                accepted = self._accepted(evidence.document_id)
                if accepted is None:
                    return attempt()
            if accepted.digest != digest_of(evidence.canonical):
                raise DuplicateDocumentError(
                    f"document_id {evidence.document_id} was accepted before with other content"
                )
            if accepted.poa_id is None:
                raise ConflictError(f"document_id {evidence.document_id} belongs to no POA")
            poa = self.get_poa(accepted.poa_id)
            poa.require_actor(evidence)  # the same document, signed again by someone else
            places = document_places(self.events, accepted, evidence)
            return Outcome(poa, created=False, receipt=self._receipt_of(places))

        return self._retrying(guarded)

    def _case_event_receipt(self, case: CourtCase, case_event: CaseEvent) -> dict[str, Any]:
        """A case event seen before: the receipt of what it recorded when it was new."""
        places = case_event_places(
            self.events, case, case_event.source, case_event.event_id, case_event.key
        )
        return self._receipt_of(places, optional=[mark_of(case_event.key)])

    def _receipt_of(
        self, places: Sequence[Place], optional: Sequence[Place] = ()
    ) -> dict[str, Any]:
        """A receipt, signed now, over the stored records at `places` (`domain.repeats`)."""
        records = stored_at(self.recorder, places, optional)
        return make_receipt(self.seal_key, records, self.clock())

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for number in range(MAX_ATTEMPTS):
            try:
                with store_errors():
                    return attempt()
            except IntegrityError:
                time.sleep(min(0.001 * 2**number, 0.05))
        raise ConflictError("too many concurrent changes to the same case or POA; try again")
