"""Where does this court case stand, and which POAs were issued in it?

A case's events carry its stream id, not its number, so the row keeps both: the number
arrives once, with `Opened`, which always precedes the case's other events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from domain.court_case import CourtCase, recorded_fact
from projections.db import Database
from projections.read_model import (
    Positioned,
    ReadModel,
    Record,
    RowBuffer,
    from_json,
    stamp,
    to_json,
)

DDL = (
    """CREATE TABLE IF NOT EXISTS cases (
        case_number TEXT PRIMARY KEY,
        case_id TEXT NOT NULL UNIQUE,
        judgment_at {sortable},
        execution_documents_at {sortable},
        concluded_at {sortable},
        judgment TEXT,
        execution_documents TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS case_poas (
        case_number TEXT NOT NULL,
        poa_id {sortable} NOT NULL,
        attached_at {sortable} NOT NULL,
        PRIMARY KEY (case_number, poa_id)
    )""",
)


COLUMNS = (
    "case_number",
    "case_id",
    "judgment_at",
    "execution_documents_at",
    "concluded_at",
    "judgment",
    "execution_documents",
)
Fact = CourtCase.JudgmentEnteredIntoForce | CourtCase.ExecutionDocumentsIssued


def apply(db: Database, events: Sequence[Positioned]) -> None:
    cases = RowBuffer(db, "cases", COLUMNS, ("case_number",), "case_id")
    attached: list[tuple[str, str, str]] = []
    for _, event in events:
        if isinstance(event, CourtCase.Opened):
            cases.add({column: None for column in COLUMNS} | _opened(event))
        elif isinstance(event, CourtCase.PowerOfAttorneyAttached):
            number = _number(cases, event)
            attached.append((number, str(event.poa_id), stamp(event.at)))
        elif isinstance(event, CourtCase.JudgmentEnteredIntoForce):
            _first_of(_case(cases, event), "judgment", event)
        elif isinstance(event, CourtCase.ExecutionDocumentsIssued):
            _first_of(_case(cases, event), "execution_documents", event)
        elif isinstance(event, CourtCase.Concluded):
            _case(cases, event)["concluded_at"] = stamp(event.at)
    cases.flush()
    db.insert("case_poas", ("case_number", "poa_id", "attached_at"), attached)


def _opened(event: CourtCase.Opened) -> Record:
    _NUMBERS.learn(event.originator_id, event.case_number)
    return {"case_number": event.case_number, "case_id": str(event.originator_id)}


def _case(cases: RowBuffer, event: CourtCase.Event) -> Record:
    rows = cases.group(str(event.originator_id))
    if not rows:
        raise LookupError(f"cases: {event.originator_id} was never opened")
    return rows[0]


def _number(cases: RowBuffer, event: CourtCase.Event) -> str:
    """The case's number, read from its row only the first time this process meets it."""
    number = _NUMBERS.of(event.originator_id)
    if number is None:
        number = str(_case(cases, event)["case_number"])
        _NUMBERS.learn(event.originator_id, number)
    return number


class _Numbers:
    """Case numbers by case id, at most `limit` of them (emptied when full). A case's id is
    `CourtCase.create_id` of its number, so a number is kept only where it gives the id: a
    wrong one (a row edited by hand) is read again each time, as before."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._numbers: dict[UUID, str] = {}

    def of(self, case_id: UUID) -> str | None:
        return self._numbers.get(case_id)

    def learn(self, case_id: UUID, number: str) -> None:
        if CourtCase.create_id(number) != case_id:
            return
        if len(self._numbers) >= self._limit:
            self._numbers.clear()
        self._numbers[case_id] = number


_NUMBERS = _Numbers()


def _first_of(case: Record, column: str, event: Fact) -> None:
    """As the aggregate does: the first report of a fact counts; later ones are kept only
    as evidence in the event log."""
    if case[column] is None:
        at = stamp(event.at)
        case[column], case[f"{column}_at"] = to_json(recorded_fact(at, event.data)), at


CASE_EVENTS = (
    CourtCase.Opened,
    CourtCase.PowerOfAttorneyAttached,
    CourtCase.JudgmentEnteredIntoForce,
    CourtCase.ExecutionDocumentsIssued,
    CourtCase.Concluded,
)
MODEL = ReadModel("cases", ("case_poas", "cases"), DDL, apply, CASE_EVENTS)


def get_case(db: Database, case_number: str) -> dict[str, Any] | None:
    """The case's state and its POAs (oldest first), or None if no event named it."""
    row = db.fetch_one(
        "SELECT case_number, judgment_at, execution_documents_at, concluded_at, judgment, "
        "execution_documents FROM cases WHERE case_number = ?",
        (case_number,),
    )
    if row is None:
        return None
    poas = db.fetch(
        "SELECT poa_id FROM case_poas WHERE case_number = ? ORDER BY attached_at, poa_id",
        (case_number,),
    )
    return {
        "case_number": row[0],
        "judgment_at": row[1],
        "execution_documents_at": row[2],
        "concluded": row[3] is not None,
        "concluded_at": row[3],
        "judgment": from_json(row[4]),
        "execution_documents": from_json(row[5]),
        "powers_of_attorney": [str(poa[0]) for poa in poas],
    }
