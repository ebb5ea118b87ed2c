"""The `PowerOfAttorney` aggregate: one POA, in one court case, for one or more attorneys.

Public commands check the rules (and that the signer is the actor); the private `@event`
methods only record, so replaying history never re-checks or re-verifies anything.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    ConflictError,
    InvalidInputError,
    PoaNotActiveError,
    SignerMismatchError,
)
from domain.evidence import SignedDocument
from domain.times import utc_text

ACTIVE, REVOKED, TERMINATED, EXPIRED = "active", "revoked", "terminated", "expired"
RENOUNCED = "renounced"

KZ_TIME = timezone(timedelta(hours=5), "Asia/Almaty")
"""`valid_until` is a calendar date in Kazakhstan: the POA is valid through its last second."""


def expires_at(valid_until: date) -> datetime:
    return datetime.combine(valid_until + timedelta(days=1), time(0), KZ_TIME)


def attorneys_until(
    attorneys: list[dict[str, Any]], termination: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The attorneys as a POA's state shows them: once the POA has ended (revoked,
    terminated or expired), each attorney who had not renounced has `until` at that end."""
    if termination is None:
        return attorneys
    return [a if a["until"] is not None else {**a, "until": termination["at"]} for a in attorneys]


class PowerOfAttorney(Aggregate):
    class Issued(Aggregate.Created):
        case_number: str
        principal: dict[str, Any]
        attorneys: list[dict[str, Any]]
        rights: list[str]
        valid_until: str | None
        at: datetime
        evidence: dict[str, str]

    class AttorneyAdded(Aggregate.Event):
        attorney: dict[str, Any]
        at: datetime
        evidence: dict[str, str]

    class AttorneyRenounced(Aggregate.Event):
        attorney_iin: str
        at: datetime
        evidence: dict[str, str]

    class Revoked(Aggregate.Event):
        reason: str | None
        at: datetime
        evidence: dict[str, str]

    class Terminated(Aggregate.Event):
        reason: str
        at: datetime
        source: str

    @event(Issued)
    def __init__(
        self,
        case_number: str,
        principal: dict[str, Any],
        attorneys: list[dict[str, Any]],
        rights: list[str],
        valid_until: str | None,
        at: datetime,
        evidence: dict[str, str],
    ) -> None:
        self.case_number = case_number
        self.principal = dict(principal)
        self.attorneys = [
            {"iin": a["iin"], "name": a.get("name"), "status": ACTIVE, "since": at, "until": None}
            for a in attorneys
        ]
        self.rights = list(rights)
        self.valid_until = date.fromisoformat(valid_until) if valid_until else None
        self.issued_at = at
        self.status = ACTIVE
        self.termination: dict[str, Any] | None = None

    # -- queries ---------------------------------------------------------------------------

    def status_at(self, moment: datetime) -> str:
        """The status at `moment`, given the events applied so far (expiry is exact)."""
        if self.status == ACTIVE and self.valid_until and moment >= expires_at(self.valid_until):
            return EXPIRED
        return self.status

    def is_active_at(self, moment: datetime) -> bool:
        return self.status_at(moment) == ACTIVE

    def active_attorneys(self) -> list[str]:
        return [a["iin"] for a in self.attorneys if a["status"] == ACTIVE]

    def not_before_last(self, at: datetime) -> datetime:
        """`at`, or the moment of the POA's latest event if `at` is earlier: a process whose
        clock is behind the one that recorded that event (another replica, the consumer's
        host, a clock stepped back) never records an act before it, such as a revocation
        before the issue, for which the POA's past would read one way from its events and
        another from the read models."""
        moments: list[datetime] = [self.issued_at, *(a["since"] for a in self.attorneys)]
        moments += [a["until"] for a in self.attorneys if a["until"] is not None]
        if self.termination is not None:
            moments.append(self.termination["at"])
        return max(at, *moments)

    # -- commands --------------------------------------------------------------------------

    def add_attorney(
        self, attorney: dict[str, Any], evidence: SignedDocument, at: datetime
    ) -> None:
        self.require_actor(evidence)
        at = self.not_before_last(at)
        self._require_active(at)
        if attorney["iin"] == self.principal["iin"]:
            raise InvalidInputError("attorney: the principal cannot be their own attorney")
        named = next((a for a in self.attorneys if a["iin"] == attorney["iin"]), None)
        if named is not None and named["status"] == RENOUNCED:
            raise ConflictError(
                f"attorney {attorney['iin']} renounced this POA; to appoint them again, the "
                "principal issues a new POA"
            )
        if named is not None:
            raise ConflictError(f"attorney {attorney['iin']} is already named in this POA")
        self._add_attorney(attorney=attorney, at=at, evidence=evidence.as_record())

    def revoke(self, reason: str | None, evidence: SignedDocument, at: datetime) -> None:
        self.require_actor(evidence)
        at = self.not_before_last(at)
        self._require_active(at)
        self._revoke(reason=reason, at=at, evidence=evidence.as_record())

    def renounce(self, attorney_iin: str, evidence: SignedDocument, at: datetime) -> None:
        self.require_actor(evidence)
        at = self.not_before_last(at)
        self._require_active(at)
        if attorney_iin not in self.active_attorneys():
            raise ConflictError(f"{attorney_iin} is not an active attorney of this POA")
        self._renounce(attorney_iin=attorney_iin, at=at, evidence=evidence.as_record())
        if not self.active_attorneys():
            self._terminate(reason="renounced_by_all_attorneys", at=at, source="attorneys")

    def end_with_case(self, at: datetime, source: str) -> bool:
        """Terminate because the case concluded; return whether anything was recorded. A POA
        that ended before (revoked, renounced, or expired at its own instant) keeps its end."""
        at = self.not_before_last(at)
        if self.status_at(at) != ACTIVE:
            return False
        self._terminate(reason="case_concluded", at=at, source=source)
        return True

    def require_actor(self, evidence: SignedDocument) -> None:
        """The document is signed by the person it says acts: the renouncing attorney for a
        renunciation, the principal otherwise. Checked before anything else, and on a repeat
        of an accepted document too, so no one else's signature over it is ever answered."""
        if evidence.type == "epoa.renounce":
            self._require_signer(
                evidence, str(evidence.document["attorney_iin"]), "the renouncing attorney"
            )
        else:
            self._require_signer(evidence, self.principal["iin"], "the principal")

    def _require_active(self, at: datetime) -> None:
        status = self.status_at(at)
        if status == ACTIVE:
            return
        if status == EXPIRED and self.valid_until is not None:
            how = f"valid_until {self.valid_until.isoformat()}"
            when = expires_at(self.valid_until)
        else:
            assert self.termination is not None
            how, when = self.termination["reason"], self.termination["at"]
        raise PoaNotActiveError(
            f"power of attorney {self.id} is {status} ({how}) since {utc_text(when)}"
        )

    @staticmethod
    def _require_signer(evidence: SignedDocument, iin: str, who: str) -> None:
        if evidence.signer_kind != "person" and evidence.signer_id == iin:
            raise SignerMismatchError(
                f"{who} must be a person (IIN); {iin} is the BIN of the organisation that "
                "signed: an organisation cannot act for itself in an e-POA here"
            )
        if evidence.signer_kind != "person" or evidence.signer_id != iin:
            raise SignerMismatchError(
                f"the document must be signed by {who} ({iin}); "
                f"it is signed by {evidence.signer_kind} {evidence.signer_id}"
            )

    # -- events ----------------------------------------------------------------------------

    @event(AttorneyAdded)
    def _add_attorney(
        self, attorney: dict[str, Any], at: datetime, evidence: dict[str, str]
    ) -> None:
        self.attorneys.append(
            {
                "iin": attorney["iin"],
                "name": attorney.get("name"),
                "status": ACTIVE,
                "since": at,
                "until": None,
            }
        )

    @event(AttorneyRenounced)
    def _renounce(self, attorney_iin: str, at: datetime, evidence: dict[str, str]) -> None:
        for attorney in self.attorneys:
            if attorney["iin"] == attorney_iin:
                attorney["status"] = RENOUNCED
                attorney["until"] = at

    @event(Revoked)
    def _revoke(self, reason: str | None, at: datetime, evidence: dict[str, str]) -> None:
        self.status = REVOKED
        self.termination = {
            "reason": "revoked_by_principal",
            "at": at,
            "source": "principal",
            "detail": reason,
        }

    @event(Terminated)
    def _terminate(self, reason: str, at: datetime, source: str) -> None:
        self.status = TERMINATED
        self.termination = {"reason": reason, "at": at, "source": source, "detail": None}
