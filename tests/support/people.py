"""The cast of the registry's tests: persons and a court, each with a real signing key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.eds import TrustStore, Verifier
from domain.evidence import SignedDocument
from domain.outcomes import CaseEvent
from tests.support.pki import Hierarchy, Issued, b64, complete_id, hierarchy, organisation
from tests.support.pki import person as person_name
from tests.support.pki import sign_cms as cms

CASE = "7594-26-00-2/1234"


@dataclass(frozen=True)
class Actor:
    iin: str
    issued: Issued


@dataclass(frozen=True)
class People:
    ca: Hierarchy
    principal: Actor
    attorney: Actor
    second_attorney: Actor
    third_attorney: Actor
    court: Actor
    verifier: Verifier

    def sign(self, document: dict[str, Any], actor: Actor) -> SignedDocument:
        """A real detached CMS by `actor` over the document, verified as the API would."""
        from domain.canonical import canonical_bytes

        signature = cms(canonical_bytes(document), actor.issued, self.ca.chain)
        return self.verifier.verify(document, b64(signature))

    def issue_document(self, case_number: str = CASE, **fields: Any) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": "epoa.issue",
            "document_id": str(uuid.uuid4()),
            "signed_at": now_text(),
            "case_number": case_number,
            "principal": {"iin": self.principal.iin},
            "attorneys": [{"iin": self.attorney.iin}],
            "rights": ["represent_first_instance", "appeal_judicial_acts"],
        }
        document.update(fields)
        return document

    def issue(self, case_number: str = CASE, **fields: Any) -> SignedDocument:
        return self.sign(self.issue_document(case_number, **fields), self.principal)

    def act(self, kind: str, poa_id: uuid.UUID, actor: Actor, **fields: Any) -> SignedDocument:
        document: dict[str, Any] = {
            "type": kind,
            "document_id": str(uuid.uuid4()),
            "signed_at": now_text(),
            "poa_id": str(poa_id),
            **fields,
        }
        return self.sign(document, actor)


def now_text() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")


def make_people() -> People:
    ca = hierarchy()

    def someone(first_eleven: str) -> Actor:
        iin = complete_id(first_eleven)
        return Actor(iin, ca.signer(person_name(iin)))

    court_bin = complete_id("05014000123")
    return People(
        ca=ca,
        principal=someone("90010130001"),
        attorney=someone("85020240002"),
        second_attorney=someone("77030350003"),
        third_attorney=someone("66040460004"),
        court=Actor(court_bin, ca.signer(organisation(court_bin))),
        verifier=Verifier(TrustStore([ca.root.cert])),
    )


def case_event(
    people: People,
    kind: str,
    case_number: str = CASE,
    source: str = "urn:court:ecourt",
    event_id: str | None = None,
) -> CaseEvent:
    """A court system's case event, signed by the court (BIN) and verified."""
    from tests.support.court_events import event_data

    data = event_data(kind, case_number)
    document: dict[str, Any] = {
        "type": kind,
        "document_id": str(uuid.uuid4()),
        "signed_at": now_text(),
        "source": source,
        "id": event_id or str(uuid.uuid4()),
        "data": data,
    }
    evidence = people.sign(document, people.court)
    return CaseEvent(source, document["id"], kind, case_number, data, evidence)
