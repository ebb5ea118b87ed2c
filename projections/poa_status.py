"""What is the state of this power of attorney? (`projections.poa_list` pages through the
same rows: which POAs match these filters?)

Expiry is never stored: a POA expires by the clock, not by an event, so `expired` is
computed at query time from `expires_at`, and filtering by status compares with `now`.
"""

from __future__ import annotations

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
from epoa.storage import EVENTS_TABLE, SQLITE_EVENTS_TABLE
from projections.db import Database, Row
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
        self.named: list[tuple[str, str]] = []
        """New (poa_id, attorney_iin) pairs."""

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
        self.named.extend((poa_id, a["iin"]) for a in attorneys)

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
        self.named.append((poa["poa_id"], event.attorney["iin"]))

    def _attorney_renounced(self, event: Poa.AttorneyRenounced) -> None:
        """The attorney stays listed (and findable by IIN) with status `renounced`."""
        poa = self._poa(event)
        attorneys = from_json(poa["attorneys"])
        for attorney in attorneys:
            if attorney["iin"] == event.attorney_iin:
                attorney.update(status=RENOUNCED, until=stamp(event.at))
        poa["attorneys"] = to_json(attorneys)

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
        self.db.insert("poa_attorneys", ("poa_id", "attorney_iin"), self.named)


def _attorney(person: dict[str, Any], at: datetime) -> dict[str, Any]:
    since = stamp(at)
    return {
        "iin": person["iin"],
        "name": person.get("name"),
        "status": ACTIVE,
        "since": since,
        "until": None,
    }


def upgrade(db: Database) -> None:
    """A `poa_status` made before lists were ordered by log position gets its column: each
    row the position of its POA's `Issued` record (the first of its stream), read from the
    log's own columns, in one transaction, once, whichever process comes first."""
    if db.dialect == "postgresql":
        lock, events = "LOCK TABLE poa_status IN SHARE ROW EXCLUSIVE MODE", EVENTS_TABLE
        position, stream = "notification_id", "e.originator_id = CAST(poa_status.poa_id AS UUID)"
    else:
        lock, events = "", SQLITE_EVENTS_TABLE
        position, stream = "rowid", "e.originator_id = replace(poa_status.poa_id, '-', '')"
    with db.transaction():
        columns = db.columns("poa_status")
        if not columns or "issued_position" in columns:
            return
        if lock:
            db.execute(lock)
            if "issued_position" in db.columns("poa_status"):
                return
        for index in ("poa_status_by_time", "poa_status_by_case", "poa_status_by_principal"):
            db.execute(f"DROP INDEX IF EXISTS {index}")  # by issued_at: no longer read
        db.execute("ALTER TABLE poa_status ADD COLUMN issued_position BIGINT")
        db.execute(
            f"UPDATE poa_status SET issued_position = (SELECT e.{position} FROM {events} e"
            f" WHERE {stream} AND e.originator_version = 1)"
        )
        missing = db.fetch_one("SELECT count(*) FROM poa_status WHERE issued_position IS NULL")
        if missing is not None and missing[0]:
            raise RuntimeError(
                f"poa_status: {missing[0]} POA(s) whose first record the log does not hold; "
                "nothing was changed: run `epoa audit verify`"
            )
        if lock:  # a writer of an earlier version, still running, then fails, never skips
            db.execute("ALTER TABLE poa_status ALTER COLUMN issued_position SET NOT NULL")
        # The new indexes too, under the lock: a second process's `CREATE INDEX IF NOT
        # EXISTS` beside this one's would fail on PostgreSQL (pg_class_relname_nsp_index).
        db.create(DDL)


MODEL = ReadModel("poa_status", ("poa_attorneys", "poa_status"), DDL, apply, POA_EVENTS, upgrade)


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
