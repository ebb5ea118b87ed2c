"""Request and response bodies of the public contract (section 4)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from domain.power_of_attorney import EXPIRED, PowerOfAttorney, attorneys_until, expires_at
from domain.times import RFC3339, parse_rfc3339

ISSUE_EXAMPLE = {
    "document": {
        "type": "epoa.issue",
        "document_id": "6f1c1f4e-3c2b-4b55-9a43-1d2f0c6e8a11",
        "signed_at": "2026-11-25T10:00:00Z",
        "case_number": "7594-26-00-2/1234",
        "principal": {"iin": "900101300017"},
        "attorneys": [{"iin": "850202400020"}],
        "rights": ["represent_first_instance", "appeal_judicial_acts"],
        "valid_until": "2027-12-31",
    },
    "signature": "MIIG...base64 DER CMS over the JCS bytes of document...",
}
ADD_EXAMPLE = {
    "document": {
        "type": "epoa.add-attorney",
        "document_id": "0b7c6a38-5f36-4a43-8d0e-8c1f7f1d2a55",
        "signed_at": "2026-11-26T09:00:00Z",
        "poa_id": "3d6f0a3e-1d59-4c1e-b4a5-6a9f2f9f5d10",
        "attorney": {"iin": "770303500039"},
    },
    "signature": "MIIG...",
}
REVOKE_EXAMPLE = {
    "document": {
        "type": "epoa.revoke",
        "document_id": "d2b1c0a4-7e0b-4f55-9b8e-5f0c2a1e9d77",
        "signed_at": "2026-11-27T09:00:00Z",
        "poa_id": "3d6f0a3e-1d59-4c1e-b4a5-6a9f2f9f5d10",
        "reason": "the principal will appear in person",
    },
    "signature": "MIIG...",
}
RENOUNCE_EXAMPLE = {
    "document": {
        "type": "epoa.renounce",
        "document_id": "a8c4e2f0-2b1d-4c3e-9f8a-7b6c5d4e3f21",
        "signed_at": "2026-11-27T09:00:00Z",
        "poa_id": "3d6f0a3e-1d59-4c1e-b4a5-6a9f2f9f5d10",
        "attorney_iin": "850202400020",
    },
    "signature": "MIIG...",
}


def _rfc3339(value: object) -> object:
    if isinstance(value, str):
        if not RFC3339.fullmatch(value):
            hint = ""
            if RFC3339.fullmatch(value[:-6] + "+" + value[-5:]) and value[-6] == " ":
                hint = " (a `+` in a query string reads as a space: send it as %2B)"
            raise ValueError(
                "an RFC 3339 date-time with its time zone is required, e.g. "
                f"2026-11-25T10:00:00Z{hint}"
            )
        parse_rfc3339(value)  # e.g. 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""A moment given in a query: RFC 3339 only, with its offset. Pydantic alone would also take
a bare number as seconds since 1970 (`at=20261125` meaning 1970-08-23)."""


class ReceiptRecord(BaseModel):
    position: int = Field(description="the record's position in the global log")
    originator_id: str = Field(description="the stream (POA, case, document) it belongs to")
    version: int = Field(description="its version in that stream")
    record_hash: str = Field(description="its seal hash, hex: the leaf of the audit log")


class Receipt(BaseModel):
    key_id: str = Field(description="the seal key that signed it, as /v1/audit/keys names it")
    issued_at: str = Field(description="when the service signed it (RFC 3339, UTC)")
    records: list[ReceiptRecord]
    signature: str = Field(
        description="Ed25519, base64, over the RFC 8785 bytes of the receipt without it"
    )


RECEIPT = (
    "The service's receipt for what a command recorded (null in reads; for the same "
    "document again, the records its first acceptance made, signed again): "
    "`key_id`, `issued_at`, `records` (each `position`, `originator_id`, `version`, "
    "`record_hash`) and `signature`, Ed25519 (base64) by the seal key `key_id` of "
    "/v1/audit/keys over the RFC 8785 bytes of the receipt without `signature`."
)


class SignedRequest(BaseModel):
    """A person's document and the detached CMS over its RFC 8785 canonical bytes."""

    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any]
    signature: str = Field(min_length=1, description="base64 DER CMS SignedData, detached")


class PersonRef(BaseModel):
    iin: str
    name: str | None


class AttorneyPublic(PersonRef):
    status: Literal["active", "renounced"]
    since: datetime
    until: datetime | None = Field(
        description="when the attorney's authority under this POA ended: their renunciation, "
        "or the POA's end (`termination.at`); null while both last"
    )


TerminationReason = Literal[
    "revoked_by_principal", "renounced_by_all_attorneys", "case_concluded", "expired"
]
"""The contract's termination reasons (section 4)."""


class TerminationListed(BaseModel):
    reason: TerminationReason
    at: datetime
    source: str


class TerminationPublic(TerminationListed):
    detail: str | None = None


Status = Literal["active", "revoked", "terminated", "expired"]


class _PoaFields(BaseModel):
    """What a POA's state and its list item both show first, in this order."""

    poa_id: UUID
    case_number: str
    principal: PersonRef
    attorneys: list[AttorneyPublic]
    rights: list[str]
    issued_at: datetime
    valid_until: date | None


class PowerOfAttorneyPublic(_PoaFields):
    status: Status
    termination: TerminationPublic | None
    version: int
    receipt: Receipt | None = Field(default=None, description=RECEIPT)

    @classmethod
    def of(cls, poa: PowerOfAttorney, at: datetime) -> PowerOfAttorneyPublic:
        status = poa.status_at(at)
        termination = poa.termination
        if status == EXPIRED and poa.valid_until is not None:
            termination = {
                "reason": "expired",
                "at": expires_at(poa.valid_until).astimezone(UTC),
                "source": "valid_until",
                "detail": None,
            }
        return cls(
            poa_id=poa.id,
            case_number=poa.case_number,
            principal=PersonRef(**poa.principal),
            attorneys=[AttorneyPublic(**a) for a in attorneys_until(poa.attorneys, termination)],
            rights=poa.rights,
            issued_at=poa.issued_at,
            valid_until=poa.valid_until,
            status=status,  # type: ignore[arg-type]
            termination=TerminationPublic(**termination) if termination else None,
            version=poa.version,
        )


class PowerOfAttorneyListed(_PoaFields):
    """A POA as a list shows it: the fields of its state, times written as
    `GET /v1/powers-of-attorney/{poa_id}` writes them, and `expires_at` (the first instant
    it is no longer valid, from `valid_until`); the free-text `detail` of a termination
    (a revocation's reason) is shown by that GET only."""

    expires_at: datetime | None
    status: Status
    termination: TerminationListed | None
    version: int


class PowerOfAttorneyPage(BaseModel):
    items: list[PowerOfAttorneyListed]
    next_cursor: str | None


class AuthorityPublic(BaseModel):
    authorized: bool
    powers_of_attorney: list[UUID]
    at: datetime
    case_number: str
    attorney_iin: str
    right: str


class CaseEventAccepted(BaseModel):
    case_number: str
    applied: bool
    concluded: bool
    terminated: list[UUID]
    receipt: Receipt | None = Field(default=None, description=RECEIPT)


class PersonPublic(BaseModel):
    iin: str
    full_name: str
    birth_date: date


# The bodies below are built as plain JSON by their routes; these models only document them
# in the OpenAPI (`responses=`), where the API's fuzz test holds the routes to them.


class CasePublic(BaseModel):
    case_number: str
    status: Literal["open", "concluded"]
    judgment: dict[str, Any] | None
    execution_documents: dict[str, Any] | None
    concluded_at: datetime | None
    powers_of_attorney: list[PowerOfAttorneyPublic]
    version: int


class RightTitle(BaseModel):
    en: str
    ru: str
    kk: str


class RightPublic(BaseModel):
    code: str
    article: str
    title: RightTitle


class SealKeyPublic(BaseModel):
    key_id: str = Field(description="the first 8 bytes of SHA-256 of the public key, hex")
    algorithm: Literal["Ed25519"]
    public_key_pem: str
    current: bool


class SealKeysPublic(BaseModel):
    keys: list[SealKeyPublic]


class SealPublic(BaseModel):
    key_id: str
    predecessor: str = Field(description="the record hash of the previous record, hex")
    record_hash: str
    signature: str = Field(description="Ed25519, base64")


class SealedEventPublic(BaseModel):
    position: int | None = Field(description="the record's place in the global log")
    version: int
    type: str
    topic: str
    recorded_at: datetime
    payload: dict[str, Any]
    evidence: dict[str, Any] | None = Field(description="the actor's signed document, if any")
    state: str = Field(
        description="the record's stored state, base64, as the export writes it: the bytes "
        "its record hash is computed from (docs/record-format.md); payload and evidence are "
        "read from it"
    )
    seal: SealPublic


class HealthPublic(BaseModel):
    status: Literal["ok"]


class ReadyPublic(BaseModel):
    status: Literal["ready"]
    position: int = Field(description="the newest notification id in the store")
