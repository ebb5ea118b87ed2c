"""`poa_status` and `poa_attorneys` tables an earlier version made, brought to this shape in
place: once, in one transaction each, whichever process comes first. On PostgreSQL a new
column is NOT NULL once filled, so a writer of an earlier version still running fails on
its next insert instead of writing rows without it."""

from __future__ import annotations

from collections.abc import Sequence

from domain.power_of_attorney import ACTIVE, RENOUNCED
from epoa.storage import EVENTS_TABLE, SQLITE_EVENTS_TABLE
from projections.db import Database
from projections.read_model import ReadModelShapeError, from_json


def upgrade(db: Database, ddl: Sequence[str]) -> None:
    """Run before `ddl`, the tables' statements of this version."""
    _add_issued_positions(db, ddl)
    _add_attorney_statuses(db)


def _add_issued_positions(db: Database, ddl: Sequence[str]) -> None:
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
            raise ReadModelShapeError(
                f"poa_status: {missing[0]} POA(s) whose first record the log does not hold; "
                "nothing was changed: run `epoa audit verify`"
            )
        if lock:  # a writer of an earlier version, still running, then fails, never skips
            db.execute("ALTER TABLE poa_status ALTER COLUMN issued_position SET NOT NULL")
        # The new indexes too, under the lock: a second process's `CREATE INDEX IF NOT
        # EXISTS` beside this one's would fail on PostgreSQL (pg_class_relname_nsp_index).
        db.create(ddl)


def _add_attorney_statuses(db: Database) -> None:
    """A `poa_attorneys` made before lists filtered by the attorney's own status gets its
    column: `renounced` where the POA's `attorneys` say so, `active` elsewhere."""
    postgres = db.dialect == "postgresql"
    with db.transaction():
        columns = db.columns("poa_attorneys")
        if not columns or "status" in columns:
            return
        if postgres:
            db.execute("LOCK TABLE poa_attorneys IN SHARE ROW EXCLUSIVE MODE")
            if "status" in db.columns("poa_attorneys"):
                return
        db.execute(f"ALTER TABLE poa_attorneys ADD COLUMN status TEXT NOT NULL DEFAULT '{ACTIVE}'")
        rows = db.fetch(
            f"SELECT poa_id, attorneys FROM poa_status WHERE attorneys LIKE '%{RENOUNCED}%'"
        )
        db.executemany(
            f"UPDATE poa_attorneys SET status = '{RENOUNCED}' "
            "WHERE poa_id = ? AND attorney_iin = ?",
            [
                (poa_id, attorney["iin"])
                for poa_id, attorneys in rows
                for attorney in from_json(attorneys)
                if attorney["status"] == RENOUNCED
            ],
        )
        if postgres:
            db.execute("ALTER TABLE poa_attorneys ALTER COLUMN status DROP DEFAULT")
