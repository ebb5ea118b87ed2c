"""What is the state of this power of attorney? (`projections.poa_list` pages through the
same rows: which POAs match these filters?)

Expiry is never stored: a POA expires by the clock, not by an event, so `expired` is
computed at query time from `expires_at`, and filtering by status compares with `now`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.power_of_attorney import (
    ACTIVE,
    EXPIRED,
    RENOUNCED,
    REVOKED,
    TERMINATED,
    attorneys_until,
)
from domain.power_of_attorney import PowerOfAttorney as Poa
from projections.db import Database, Row
from projections.poa_status_upgrades import upgrade
from projections.read_model import (
    POA_EVENTS,
    Positioned,
    ReadModel,
    Record,
    RowBuffer,
    expiry_stamp,
    from_json,
    stamp,
    to_json,
)

STATUSES = (ACTIVE, REVOKED, TERMINATED, EXPIRED)

DDL = (
    """CREATE TABLE IF NOT EXISTS poa_status (
        poa_id {sortable} PRIMARY KEY,
        case_number TEXT NOT NULL,
        principal_iin TEXT NOT NULL,
        principal_name TEXT,
        status TEXT NOT NULL,
        issued_at {sortable} NOT NULL,
        valid_until TEXT,
        expires_at {sortable},
        termination_reason TEXT,
        termination_at {sortable},
        termination_source TEXT,
        version INTEGER NOT NULL,
        attorneys TEXT NOT NULL,
        rights TEXT NOT NULL,
        issued_position BIGINT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS poa_status_by_position ON poa_status (issued_position)",
    """CREATE INDEX IF NOT EXISTS poa_status_by_case_position
        ON poa_status (case_number, issued_position)""",
    """CREATE INDEX IF NOT EXISTS poa_status_by_principal_position
        ON poa_status (principal_iin, issued_position)""",
    """CREATE TABLE IF NOT EXISTS poa_attorneys (
        poa_id {sortable} NOT NULL,
        attorney_iin TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (poa_id, attorney_iin)
    )""",
    "CREATE INDEX IF NOT EXISTS poa_attorneys_by_iin ON poa_attorneys (attorney_iin, poa_id)",
)

COLUMN_NAMES = (
    "poa_id",
    "case_number",
    "principal_iin",
    "principal_name",
    "status",
    "issued_at",
    "valid_until",
    "expires_at",
    "termination_reason",
    "termination_at",
    "termination_source",
    "version",
    "attorneys",
    "rights",
    "issued_position",
)
COLUMNS = ", ".join(COLUMN_NAMES)


# -- handlers ------------------------------------------------------------------------------


def apply(db: Database, events: Sequence[Positioned]) -> None:
    batch = _Batch(db)
    for position, event in events:
        batch.handle(position, event)
    batch.flush()


class _Batch:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.poas = RowBuffer(db, "poa_status", COLUMN_NAMES, ("poa_id",), "poa_id")
        self.named: list[tuple[str, str, str]] = []
        """New (poa_id, attorney_iin, status) rows."""
        self.renounced: list[tuple[str, str]] = []
        """(poa_id, attorney_iin) of each renunciation."""

    def handle(self, position: int, event: object) -> None:
        if isinstance(event, Poa.Issued):
            self._issued(position, event)
        elif isinstance(event, Poa.AttorneyAdded):
            self._attorney_added(event)
        elif isinstance(event, Poa.AttorneyRenounced):
            self._attorney_renounced(event)
        elif isinstance(event, Poa.Revoked):
            self._ended(event, REVOKED, "revoked_by_principal", "principal")
        elif isinstance(event, Poa.Terminated):
            self._ended(event, TERMINATED, event.reason, event.source)

    def _issued(self, position: int, event: Poa.Issued) -> None:
        poa_id = str(event.originator_id)
        attorneys = [_attorney(a, event.at) for a in event.attorneys]
        self.poas.add(
            {
                "poa_id": poa_id,
                "case_number": event.case_number,
                "principal_iin": event.principal["iin"],
                "principal_name": event.principal.get("name"),
                "status": ACTIVE,
                "issued_at": stamp(event.at),
                "valid_until": event.valid_until,
                "expires_at": expiry_stamp(event.valid_until),
                "termination_reason": None,
                "termination_at": None,
                "termination_source": None,
                "version": event.originator_version,
                "attorneys": to_json(attorneys),
                "rights": to_json(event.rights),
                "issued_position": position,
            }
        )
        self.named.extend((poa_id, a["iin"], ACTIVE) for a in attorneys)

    def _poa(self, event: Poa.Event) -> Record:
        """The POA's row as of the previous event, at the version of this one."""
        rows = self.poas.group(str(event.originator_id))
        if not rows:
            raise LookupError(f"poa_status: {event.originator_id} was never issued")
        rows[0]["version"] = event.originator_version
        return rows[0]

    def _attorney_added(self, event: Poa.AttorneyAdded) -> None:
        poa = self._poa(event)
        poa["attorneys"] = to_json(
            [*from_json(poa["attorneys"]), _attorney(event.attorney, event.at)]
        )
        self.named.append((poa["poa_id"], event.attorney["iin"], ACTIVE))

    def _attorney_renounced(self, event: Poa.AttorneyRenounced) -> None:
        """The attorney stays listed (and findable by IIN) with status `renounced`."""
        poa = self._poa(event)
        attorneys = from_json(poa["attorneys"])
        for attorney in attorneys:
            if attorney["iin"] == event.attorney_iin:
                attorney.update(status=RENOUNCED, until=stamp(event.at))
        poa["attorneys"] = to_json(attorneys)
        self.renounced.append((poa["poa_id"], event.attorney_iin))

    def _ended(
        self, event: Poa.Revoked | Poa.Terminated, status: str, reason: str, source: str
    ) -> None:
        self._poa(event).update(
            status=status,
            termination_reason=reason,
            termination_at=stamp(event.at),
            termination_source=source,
        )

    def flush(self) -> None:
        self.poas.flush()
        self.db.insert("poa_attorneys", ("poa_id", "attorney_iin", "status"), self.named)
        if self.renounced:  # after the insert: a batch may name and renounce an attorney
            self.db.executemany(
                f"UPDATE poa_attorneys SET status = '{RENOUNCED}' "
                "WHERE poa_id = ? AND attorney_iin = ?",
                self.renounced,
            )


def _attorney(person: dict[str, Any], at: datetime) -> dict[str, Any]:
    since = stamp(at)
    return {
        "iin": person["iin"],
        "name": person.get("name"),
        "status": ACTIVE,
        "since": since,
        "until": None,
    }


MODEL = ReadModel(
    "poa_status",
    ("poa_attorneys", "poa_status"),
    DDL,
    apply,
    POA_EVENTS,
    functools.partial(upgrade, ddl=DDL),
)


# -- queries -------------------------------------------------------------------------------


def find_poa(db: Database, poa_id: str, now: datetime) -> dict[str, Any] | None:
    """The POA's state in the shape of the public contract, or None if unknown."""
    row = db.fetch_one(f"SELECT {COLUMNS} FROM poa_status WHERE poa_id = ?", (poa_id,))
    return None if row is None else state_of(row, stamp(now))


def state_of(row: Row, at: str) -> dict[str, Any]:
    """A stored row in the contract's shape, with `expired` decided against `at`."""
    r = dict(zip(COLUMN_NAMES, row, strict=True))
    status = r["status"]
    if status == ACTIVE and r["expires_at"] is not None and r["expires_at"] <= at:
        status = EXPIRED
    termination = None
    if status == EXPIRED:  # as GET /v1/powers-of-attorney/{poa_id} shows it
        termination = {"reason": EXPIRED, "at": r["expires_at"], "source": "valid_until"}
    elif r["termination_reason"] is not None:
        termination = {
            "reason": r["termination_reason"],
            "at": r["termination_at"],
            "source": r["termination_source"],
        }
    return {
        "poa_id": r["poa_id"],
        "case_number": r["case_number"],
        "principal": {"iin": r["principal_iin"], "name": r["principal_name"]},
        "attorneys": attorneys_until(from_json(r["attorneys"]), termination),
        "rights": from_json(r["rights"]),
        "issued_at": r["issued_at"],
        "valid_until": r["valid_until"],
        "expires_at": r["expires_at"],
        "status": status,
        "termination": termination,
        "version": r["version"],
    }
