"""What the runner needs of a read model, the buffer they apply a batch in, and the formats
every read model stores.

Times are stored as fixed-width UTC text (`2026-11-25T10:00:00.000000+00:00`), so comparing
the text compares the times, on SQLite and PostgreSQL alike, with one code path. JSON is
written with sorted keys so that a rebuild yields byte-identical rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from domain.power_of_attorney import PowerOfAttorney as Poa
from domain.power_of_attorney import expires_at
from domain.times import in_utc
from projections.db import Database

POA_EVENTS: tuple[type, ...] = (
    Poa.Issued,
    Poa.AttorneyAdded,
    Poa.AttorneyRenounced,
    Poa.Revoked,
    Poa.Terminated,
)
"""What a POA's read models are made of."""


Positioned = tuple[int, object]
"""A domain event and its record's position in the log (the notification id)."""


class ReadModelShapeError(RuntimeError):
    """Tables an earlier version made that this one cannot bring to its shape; nothing of
    them was changed (the message says why)."""


@dataclass(frozen=True)
class ReadModel:
    name: str
    """Its row in `projection_tracking`."""
    tables: tuple[str, ...]
    """Dropped on rebuild, in this order."""
    ddl: tuple[str, ...]
    """`CREATE ... IF NOT EXISTS` statements, `{sortable}` for text compared as text."""
    apply: Callable[[Database, Sequence[Positioned]], None]
    """Apply a batch of domain events, in order, each with its position in the log; events
    it does not know are ignored."""
    events: tuple[type, ...] = ()
    """The event classes `apply` uses: the runner decodes (and checks) only records of these."""
    upgrade: Callable[[Database], None] | None = None
    """Bring tables an earlier version made to this shape, in place; run before `ddl`."""


Record = dict[str, Any]


class RowBuffer:
    """The rows of one table that a batch touches, changed in memory, written once at its end.

    A statement per event would make catching up a round trip per event; instead handlers
    change rows here, in event order, and `flush` upserts them all. Rows are grouped (by POA
    or case) and a group is read from the table the first time a handler asks for it; a
    group first met through `add` is new, so nothing is read for it. A row read and left
    as it was is not written again (a POA attached to a case reads the case's row for its
    number; the other grants of a POA are read when one attorney renounces).
    """

    def __init__(
        self, db: Database, table: str, columns: Sequence[str], key: Sequence[str], group: str
    ) -> None:
        self.db, self.table, self.columns, self.key, self.group_by = db, table, columns, key, group
        self._groups: dict[str, list[Record]] = {}
        self._read: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        """The values of each row read from the table, by key, as they were read."""

    def group(self, value: str) -> list[Record]:
        if value not in self._groups:
            rows = self.db.fetch(
                f"SELECT {', '.join(self.columns)} FROM {self.table} WHERE {self.group_by} = ?",
                (value,),
            )
            records = [dict(zip(self.columns, row, strict=True)) for row in rows]
            key_of, values_of = _tuple_of(self.key), _tuple_of(self.columns)
            self._read.update((key_of(record), values_of(record)) for record in records)
            self._groups[value] = records
        return self._groups[value]

    def add(self, row: Record) -> None:
        self._groups.setdefault(row[self.group_by], []).append(row)

    def flush(self) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
        key_of, values_of = _tuple_of(self.key), _tuple_of(self.columns)
        latest = {key_of(row): values_of(row) for rows in self._groups.values() for row in rows}
        changed = [values for key, values in latest.items() if self._read.get(key) != values]
        self.db.insert(
            self.table,
            self.columns,
            changed,
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}",
        )


def stamp(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, so that text order is time order. A naive time is
    taken as UTC (the domain records aware ones)."""
    return in_utc(moment).isoformat(timespec="microseconds")


def expiry_stamp(valid_until: str | None) -> str | None:
    """The first instant the POA is no longer valid, or None if it has no end date."""
    return stamp(expires_at(date.fromisoformat(valid_until))) if valid_until else None


def _tuple_of(names: Sequence[str]) -> Callable[[Record], tuple[Any, ...]]:
    """The values of `names` of a row, as a tuple (even of one name)."""
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda row: (get(row),)
    return get


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def to_json(value: Any) -> str:
    return _JSON.encode(value)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
