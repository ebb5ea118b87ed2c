"""The event table's rows as the audit reads them: each column as stored, whatever someone
with the database put there.

The library's read makes a `Notification` of each row and fails on a NULL state or topic
(PostgreSQL), or on a state that SQLite holds as text that is not UTF-8: the audit would
end at the first such row, naming none. Read here, a missing value is empty and a value of
another type is its bytes, and a stream id is taken as the store finds it, so the row fails
its seal check and is named like any other damaged record.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteAggregateRecorder

from domain.postgres_recorder import RetryingProcessRecorder, event_rows
from domain.seal import RawRecord


def raw_page(recorder: Any, start: int, limit: int, stop: int) -> list[RawRecord]:
    """The rows of positions start..stop (at most `limit` of them), in order, as stored."""
    if isinstance(recorder, RetryingProcessRecorder):
        return recorder.retried(lambda: _postgres(recorder, start, limit, stop))
    if isinstance(recorder, SQLiteAggregateRecorder):
        return _sqlite(recorder, start, limit, stop)
    page = recorder.select_notifications(start, limit, stop=stop)
    return [
        _record(n.id, _uuid(n.originator_id), n.originator_version, n.topic, n.state) for n in page
    ]


def rows_before_the_log(recorder: Any, limit: int) -> list[RawRecord]:
    """Rows at positions below 1, where positions start: no reader of the log (the audit's
    pass, the audit log, the projections) ever reads them, while a read of their stream
    does. Only a row moved or inserted by hand is there."""
    return raw_page(recorder, -(2**63), limit, 0)


def _postgres(
    recorder: RetryingProcessRecorder, start: int, limit: int, stop: int
) -> list[RawRecord]:
    rows = event_rows(
        recorder,
        "SELECT notification_id, originator_id, originator_version, topic, state"
        " FROM {schema}.{table} WHERE notification_id BETWEEN %s AND %s"
        " ORDER BY notification_id LIMIT %s",
        (start, stop, limit),
    )
    return [
        _record(
            row["notification_id"],
            _uuid(row["originator_id"]),
            row["originator_version"],
            row["topic"],
            row["state"],
        )
        for row in rows
    ]


def _sqlite(
    recorder: SQLiteAggregateRecorder, start: int, limit: int, stop: int
) -> list[RawRecord]:
    statement = (
        "SELECT rowid, originator_id, originator_version, CAST(topic AS BLOB),"
        f" CAST(state AS BLOB) FROM {recorder.events_table_name}"
        " WHERE rowid BETWEEN ? AND ? ORDER BY rowid LIMIT ?"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (start, stop, limit))
        return [_record(p, _sqlite_id(i), v, t, s) for p, i, v, t, s in cursor.fetchall()]


def _record(position: int, stream: str, version: Any, topic: Any, state: Any) -> RawRecord:
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", errors="replace")
    return RawRecord(stream, version, topic or "", bytes(state or b""), position)


def _sqlite_id(value: object) -> str:
    """SQLite's stream id as the seal signs it, if it is spelt as the store finds a stream's
    rows by it (bare lower-case hex). An id spelt otherwise (upper case, braces, hyphens)
    names the same UUID but is lost to every read of its stream: it is kept as spelt, so
    that its record fails its seal."""
    text = value if isinstance(value, str) else str(value)
    try:
        parsed = UUID(text)
    except ValueError:
        return text
    return str(parsed) if parsed.hex == text else text


def _uuid(value: object) -> str:
    """The stream's id as the seal signs it (a UUID, hyphenated)."""
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value)))
    except ValueError:
        return str(value)
