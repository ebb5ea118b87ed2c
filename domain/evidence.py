"""The actor's signed document, as verified on receipt and as kept inside events.

A `SignedDocument` is only ever built by the EDS verifier (`domain.eds`) after every check
passed; the domain trusts it and stores `as_record()` in the event, so an auditor can
re-verify the exact signed bytes years later without trusting the service.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

SignerKind = Literal["person", "organisation"]


@dataclass(frozen=True)
class SignedDocument:
    document: dict[str, Any]
    """The parsed document (the JSON object whose canonical form was signed)."""
    canonical: bytes
    """The exact RFC 8785 bytes the CMS signs."""
    cms: bytes
    """The DER CMS SignedData."""
    certificate: bytes
    """The signer certificate, DER."""
    signer_id: str
    """The signer's IIN (person) or BIN (organisation), read from the certificate."""
    signer_kind: SignerKind
    signed_at: datetime
    """The document's own `signed_at` (or the CMS signing time)."""
    received_at: datetime
    """When the service verified it; re-verification uses this time."""
    revocation: str
    """What the service knew of revocation at receipt, e.g. `crl:not-revoked`, `no-crl`."""

    @property
    def type(self) -> str:
        return str(self.document["type"])

    @property
    def document_id(self) -> UUID:
        return UUID(str(self.document["document_id"]))

    def as_record(self) -> dict[str, str]:
        """The evidence as stored in an event: plain strings only."""
        return {
            "canonical": base64.b64encode(self.canonical).decode(),
            "cms": base64.b64encode(self.cms).decode(),
            "certificate": base64.b64encode(self.certificate).decode(),
            "signer_id": self.signer_id,
            "signer_kind": self.signer_kind,
            "signed_at": self.signed_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "revocation": self.revocation,
        }

    @classmethod
    def from_record(cls, record: dict[str, str]) -> SignedDocument:
        canonical = base64.b64decode(record["canonical"])
        kind: SignerKind = "organisation" if record["signer_kind"] == "organisation" else "person"
        return cls(
            document=json.loads(canonical),
            canonical=canonical,
            cms=base64.b64decode(record["cms"]),
            certificate=base64.b64decode(record["certificate"]),
            signer_id=record["signer_id"],
            signer_kind=kind,
            signed_at=datetime.fromisoformat(record["signed_at"]),
            received_at=datetime.fromisoformat(record["received_at"]),
            revocation=record["revocation"],
        )
