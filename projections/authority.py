"""May this attorney exercise this right in this case at this moment, and by which POAs?

One row per (POA, attorney, right) with the interval in which it held: from when the
attorney gained it to when the attorney renounced or the POA ended (open while neither
happened), capped by the POA's expiry. A court asking about a past moment gets the answer
of that moment, not of today.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

from domain.power_of_attorney import PowerOfAttorney as Poa
from projections.db import Database
from projections.read_model import POA_EVENTS, Positioned, ReadModel, RowBuffer, expiry_stamp, stamp

DDL = (
    """CREATE TABLE IF NOT EXISTS attorney_authority (
        poa_id {sortable} NOT NULL,
        attorney_iin TEXT NOT NULL,
        right_code TEXT NOT NULL,
        case_number TEXT NOT NULL,
        valid_from {sortable} NOT NULL,
        valid_to {sortable},
        expires_at {sortable},
        PRIMARY KEY (poa_id, attorney_iin, right_code)
    )""",
    "CREATE INDEX IF NOT EXISTS attorney_authority_lookup "
    "ON attorney_authority (case_number, attorney_iin, right_code)",
)

COLUMNS = (
    "poa_id",
    "attorney_iin",
    "right_code",
    "case_number",
    "valid_from",
    "valid_to",
    "expires_at",
)

Ending = Poa.AttorneyRenounced | Poa.Revoked | Poa.Terminated


def apply(db: Database, events: Sequence[Positioned]) -> None:
    grants = RowBuffer(db, "attorney_authority", COLUMNS, COLUMNS[:3], "poa_id")
    for _, event in events:
        if isinstance(event, Poa.Issued):
            expires = expiry_stamp(event.valid_until)
            _grant(grants, event, event.attorneys, event.case_number, event.rights, expires)
        elif isinstance(event, Poa.AttorneyAdded):
            _attorney_added(grants, event)
        elif isinstance(event, Poa.AttorneyRenounced):
            _close(grants, event, event.attorney_iin)
        elif isinstance(event, Poa.Revoked | Poa.Terminated):
            _close(grants, event, None)
    grants.flush()


def _grant(
    grants: RowBuffer,
    event: Poa.Issued | Poa.AttorneyAdded,
    attorneys: list[dict[str, Any]],
    case_number: str,
    rights: Iterable[str],
    expires: str | None,
) -> None:
    poa_id, since = str(event.originator_id), stamp(event.at)
    for attorney in attorneys:
        for right in rights:
            grants.add(
                {
                    "poa_id": poa_id,
                    "attorney_iin": attorney["iin"],
                    "right_code": right,
                    "case_number": case_number,
                    "valid_from": since,
                    "valid_to": None,
                    "expires_at": expires,
                }
            )


def _attorney_added(grants: RowBuffer, event: Poa.AttorneyAdded) -> None:
    """The new attorney gains every right of the POA, from the moment of the addition."""
    rows = grants.group(str(event.originator_id))
    if not rows:
        return
    rights = sorted({row["right_code"] for row in rows})
    first = rows[0]
    _grant(grants, event, [event.attorney], first["case_number"], rights, first["expires_at"])


def _close(grants: RowBuffer, event: Ending, attorney_iin: str | None) -> None:
    """End the open grants of one attorney, or of everyone when the POA itself ends."""
    for row in grants.group(str(event.originator_id)):
        if row["valid_to"] is None and attorney_iin in (None, row["attorney_iin"]):
            row["valid_to"] = stamp(event.at)


MODEL = ReadModel("attorney_authority", ("attorney_authority",), DDL, apply, POA_EVENTS)


def authority_at(
    db: Database, case_number: str, attorney_iin: str, right: str, at: datetime
) -> list[str]:
    """The ids of the POAs by which the attorney held `right` in the case at `at`."""
    moment = stamp(at)
    rows = db.fetch(
        "SELECT DISTINCT poa_id FROM attorney_authority "
        "WHERE case_number = ? AND attorney_iin = ? AND right_code = ? AND valid_from <= ? "
        "AND (valid_to IS NULL OR ? < valid_to) AND (expires_at IS NULL OR ? < expires_at) "
        "ORDER BY poa_id",
        (case_number, attorney_iin, right, moment, moment, moment),
    )
    return [str(row[0]) for row in rows]


Interval: TypeAlias = tuple[str, str, str | None, str | None]
"""One row of the table as `intervals` reads it: poa_id, valid_from, valid_to, expires_at."""

INTERVALS_SQL = (
    "SELECT poa_id, valid_from, valid_to, expires_at FROM attorney_authority "
    "WHERE case_number = ? AND attorney_iin = ? AND right_code = ?"
)
"""Every interval in which an attorney held a right in a case, by any POA, at any time."""


def intervals(
    db: Database, case_number: str, attorney_iin: str, right: str
) -> tuple[Interval, ...]:
    """What `held_at` needs to answer for any moment without the database."""
    return intervals_of(db.fetch(INTERVALS_SQL, (case_number, attorney_iin, right)))


def intervals_of(rows: Iterable[Sequence[Any]]) -> tuple[Interval, ...]:
    """The rows of `INTERVALS_SQL`, however they were fetched."""
    return tuple(
        (str(poa_id), str(since), _text(until), _text(expires))
        for poa_id, since, until, expires in rows
    )


def held_at(found: Iterable[Interval], at: datetime) -> list[str]:
    """`authority_at` answered from the rows `intervals` read: the same conditions on the same
    fixed-width text stamps (byte order, as the table's collation compares them)."""
    moment = stamp(at)
    return sorted(
        {
            poa_id
            for poa_id, since, until, expires in found
            if since <= moment
            and (until is None or moment < until)
            and (expires is None or moment < expires)
        }
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
