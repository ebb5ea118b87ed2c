"""What the records say, checked against the signed evidence and against each other.

A seal proves the service wrote a record; it does not prove the service (or an insider
holding its key) wrote a true one. So each event carrying evidence is re-verified as of
its receipt (`Verifier.verify_record`) AND bound to the event: the signer must be the actor
the event names and the document must say what the event says. Across records, every POA
attached to a concluded case must have ended, and every attachment must name a POA that
exists. Those facts go to the scratch file and are joined once, at the end, so memory does
not grow with the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

from domain.court_case import CourtCase
from domain.eds import Verifier
from domain.errors import DomainError
from domain.evidence import SignedDocument
from domain.power_of_attorney import PowerOfAttorney
from domain.seal import Finding, RawRecord
from epoa.audit_chain import Scratch
from epoa.audit_decode import UndecodableError

Decode = Callable[[RawRecord], object]

_FACTS = (
    "CREATE TABLE attached (case_id TEXT, poa_id TEXT, version INTEGER, position INTEGER)",
    "CREATE TABLE concluded (case_id TEXT PRIMARY KEY, version INTEGER, position INTEGER)",
    "CREATE TABLE ended (poa_id TEXT PRIMARY KEY)",
    "CREATE TABLE poas (poa_id TEXT PRIMARY KEY, case_id TEXT, principal TEXT,"
    " version INTEGER, position INTEGER)",
)
_INDEXES = (
    "CREATE INDEX attached_case ON attached (case_id)",
    "CREATE INDEX attached_poa ON attached (poa_id)",
)
_FINDINGS = (
    (
        "poa-outlived-case",
        "SELECT a.poa_id, p.version, p.position, a.case_id FROM attached a"
        " JOIN concluded c ON c.case_id = a.case_id JOIN poas p ON p.poa_id = a.poa_id"
        " LEFT JOIN ended e ON e.poa_id = a.poa_id"
        " WHERE e.poa_id IS NULL AND a.position < c.position ORDER BY p.position",
        "the case {3} concluded, yet this POA has no Revoked or Terminated event",
    ),
    (
        "stream-missing",
        "SELECT a.case_id, a.version, a.position, a.poa_id FROM attached a"
        " LEFT JOIN poas p ON p.poa_id = a.poa_id WHERE p.poa_id IS NULL ORDER BY a.position",
        "the POA {3} attached here has no records in the store",
    ),
    (
        "stream-missing",
        "SELECT p.poa_id, p.version, p.position, p.case_id FROM poas p"
        " LEFT JOIN attached a ON a.poa_id = p.poa_id AND a.case_id = p.case_id"
        " WHERE a.poa_id IS NULL AND p.case_id IS NOT NULL ORDER BY p.position",
        "the case {3} has no record attaching this POA",
    ),
    (
        "attached-to-another-case",
        "SELECT a.case_id, a.version, a.position, a.poa_id, p.case_id FROM attached a"
        " JOIN poas p ON p.poa_id = a.poa_id WHERE p.case_id != a.case_id ORDER BY a.position",
        "the POA {3} attached here was issued in the case {4}",
    ),
    (
        "attached-after-conclusion",
        "SELECT a.case_id, a.version, a.position, a.poa_id FROM attached a"
        " JOIN concluded c ON c.case_id = a.case_id WHERE a.position > c.position"
        " ORDER BY a.position",
        "the POA {3} was attached after the case concluded",
    ),
)


class EventChecks:
    def __init__(
        self, scratch: Scratch, decode: Decode, verifier: Verifier | None, facts: bool = True
    ) -> None:
        self.scratch, self.decode, self.verifier, self.facts = scratch, decode, verifier, facts
        for statement in _FACTS:
            scratch.conn.execute(statement)

    def check(self, record: RawRecord, sealed: bool) -> list[Finding]:
        """Findings about one record; evidence only of records whose seal verified."""
        try:
            event: Any = self.decode(record)
            self._remember(record, event)
        except UndecodableError as error:
            return [_finding("undecodable", record, str(error))]
        except Exception as error:  # a forged body can fail in any decoder, or in replay
            return [_finding("undecodable", record, f"{type(error).__name__}: {error}")]
        evidence = getattr(event, "evidence", None)
        if not sealed or not evidence or self.verifier is None:
            return []
        return self._backed(record, event, evidence, self.verifier)

    def _backed(
        self, record: RawRecord, event: Any, evidence: Any, verifier: Verifier
    ) -> list[Finding]:
        """The evidence verified and bound to the event, whatever shape a forger gave it."""
        try:
            signed = verifier.verify_record(evidence)
        except DomainError as error:
            return [_finding("bad-evidence", record, f"{error.kind}: {error.detail}")]
        except Exception as error:  # evidence of a shape no signed document has
            detail = f"unreadable evidence: {type(error).__name__}: {error}"
            return [_finding("bad-evidence", record, detail)]
        try:
            problem = self._mismatch(event, signed)
        except Exception as error:  # a signed document of another shape than the event's
            problem = f"the signed document cannot say what the event says: {error!r}"
        return [_finding("evidence-mismatch", record, problem)] if problem else []

    def _mismatch(self, event: Any, signed: SignedDocument) -> str | None:
        """Why the verified document does not back this event, if it does not."""
        doc, signer = signed.document, (signed.signer_kind, signed.signer_id)
        if isinstance(event, PowerOfAttorney.Issued):
            principal = event.principal["iin"]
            expected: dict[str, object] = {
                "type": "epoa.issue",
                "case_number": event.case_number,
                "principal": principal,
                "attorneys": [a["iin"] for a in event.attorneys],
                "rights": sorted(set(event.rights)),
                "valid_until": event.valid_until,
            }
            stated = {
                "type": doc.get("type"),
                "case_number": doc.get("case_number"),
                "principal": (doc.get("principal") or {}).get("iin"),
                "attorneys": [a.get("iin") for a in doc.get("attorneys") or []],
                "rights": sorted(set(doc.get("rights") or [])),
                "valid_until": _date(doc.get("valid_until")),
            }
            return _differ(expected, stated) or _signer(signer, ("person", principal))
        if isinstance(
            event, CourtCase.JudgmentEnteredIntoForce | CourtCase.ExecutionDocumentsIssued
        ):
            data = doc.get("data") or {}
            if CourtCase.create_id(str(data.get("case_number"))) != event.originator_id:
                return "the signed case event is about another case"
            stated = {"source": doc.get("source"), "id": doc.get("id"), "data": data}
            expected = {"source": event.source, "id": event.event_id, "data": event.data}
            return _differ(expected, stated) or (
                None if signer[0] == "organisation" else f"signed by {signer}, not a court"
            )
        return self._poa_command(event, doc, signer)

    def _poa_command(self, event: Any, doc: dict[str, Any], signer: tuple[str, str]) -> str | None:
        if str(doc.get("poa_id")) != str(event.originator_id):
            return f"the signed document acts on POA {doc.get('poa_id')}, not this one"
        stated: dict[str, object]
        expected: dict[str, object]
        if isinstance(event, PowerOfAttorney.AttorneyRenounced):
            stated = {"type": doc.get("type"), "attorney": doc.get("attorney_iin")}
            expected = {"type": "epoa.renounce", "attorney": event.attorney_iin}
            return _differ(expected, stated) or _signer(signer, ("person", event.attorney_iin))
        if isinstance(event, PowerOfAttorney.AttorneyAdded):
            stated = {"type": doc.get("type"), "attorney": (doc.get("attorney") or {}).get("iin")}
            expected = {"type": "epoa.add-attorney", "attorney": event.attorney["iin"]}
        elif isinstance(event, PowerOfAttorney.Revoked):
            stated = {"type": doc.get("type"), "reason": doc.get("reason")}
            expected = {"type": "epoa.revoke", "reason": event.reason}
        else:
            return None
        principal = self._principal(str(event.originator_id))
        differs = _differ(expected, stated)
        return differs or (_signer(signer, ("person", principal)) if principal else None)

    def _principal(self, poa_id: str) -> str | None:
        self.scratch.flush()
        row = self.scratch.conn.execute(
            "SELECT principal FROM poas WHERE poa_id = ?", (poa_id,)
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def _remember(self, record: RawRecord, event: object) -> None:
        db, at = self.scratch, (record.version, record.position)
        if isinstance(event, PowerOfAttorney.Event):
            case_id = None
            principal = None
            if isinstance(event, PowerOfAttorney.Issued):
                case_id = str(CourtCase.create_id(event.case_number))
                principal = event.principal["iin"]
            db.later(
                "INSERT INTO poas VALUES (?, ?, ?, ?, ?) ON CONFLICT (poa_id) DO UPDATE SET"
                " version = excluded.version, position = excluded.position,"
                " case_id = coalesce(poas.case_id, excluded.case_id),"
                " principal = coalesce(poas.principal, excluded.principal)",
                (record.originator_id, case_id, principal, *at),
            )
            if isinstance(event, PowerOfAttorney.Revoked | PowerOfAttorney.Terminated):
                db.later("INSERT OR IGNORE INTO ended VALUES (?)", (record.originator_id,))
        elif isinstance(event, CourtCase.PowerOfAttorneyAttached):
            db.later(
                "INSERT INTO attached VALUES (?, ?, ?, ?)",
                (record.originator_id, str(event.poa_id), *at),
            )
        elif isinstance(event, CourtCase.Concluded):
            db.later(
                "INSERT OR IGNORE INTO concluded VALUES (?, ?, ?)", (record.originator_id, *at)
            )

    def finish(self) -> Iterator[Finding]:
        """The cross-record findings, once every record has been seen."""
        if not self.facts:
            return
        self.scratch.commit()
        for statement in _INDEXES:
            self.scratch.conn.execute(statement)
        for kind, query, detail in _FINDINGS:
            for row in self.scratch.conn.execute(query):
                yield Finding(kind, str(row[0]), int(row[1]), row[2], detail.format(*row))


def _finding(kind: str, record: RawRecord, detail: str) -> Finding:
    return Finding(kind, record.originator_id, record.version, record.position, detail)


def _differ(expected: Mapping[str, object], stated: Mapping[str, object]) -> str | None:
    for name, value in expected.items():
        if stated.get(name) != value:
            return f"the signed document's {name} is {stated.get(name)!r}; the event's {value!r}"
    return None


def _signer(signer: tuple[str, str], actor: tuple[str, str | None]) -> str | None:
    if signer != actor:
        return f"signed by {signer[0]} {signer[1]}, but the actor is {actor[0]} {actor[1]}"
    return None


def _date(value: object) -> object:
    """`valid_until` as the event stores it (ISO), however the document spelled the date."""
    try:
        return date.fromisoformat(str(value)).isoformat() if value is not None else None
    except ValueError:
        return value
