"""The audit log's tables as `epoa audit verify` reads them: whatever someone with the
database made of them.

The log's own rows are checked like the records (decision 0003), so they are read the way
`epoa.audit_rows` reads the events: a table dropped, a column gone, or a row holding what no
leaf or head can be (a hash that is not hex, a size that is no number) is a finding, and the
audit goes on with what can still be read. It is never 'the store cannot be read' (exit 2,
which says the store is down, not that it was damaged), nor a traceback. A log that never
ran has none of its tables: that is no damage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from domain.seal import Finding
from projections import audit_tree
from projections.audit_tree import Leaf, StoredCheckpoint
from projections.db import Database

Report = Callable[[Finding], None]
T = TypeVar("T")

COLUMNS = {
    "audit_leaves": {"leaf_index", "position", "originator_id", "version", "record_hash"},
    "audit_checkpoints": {"tree_size", "root_hash", "position", "signed_at", "note"},
    "audit_log_state": {"name", "origin", "position", "frontier"},
    "audit_nodes": {"level", "node_index", "hash"},
}
"""What the audit reads of each table."""
UNREADABLE = (ValueError, TypeError, OverflowError)
"""What reading a row that holds what no leaf or head can be raises."""


def _log_finding(kind: str, detail: str) -> Finding:
    return Finding(kind, "", 0, None, detail)


class LogTables:
    """The readable part of the audit log; each damage to its shape reported once."""

    def __init__(self, db: Database, report: Report) -> None:
        self._db = db
        found = {table: db.columns(table) for table in COLUMNS}
        self.usable = {table for table, columns in found.items() if columns >= COLUMNS[table]}
        if not any(found.values()):
            return  # the log never ran here
        for table, columns in found.items():
            lacking = ", ".join(sorted(COLUMNS[table] - columns))
            if not columns:
                report(_log_finding("audit-log-edited", f"the audit log's table {table} is gone"))
            elif lacking:
                detail = f"the audit log's table {table} has no column {lacking}"
                report(_log_finding("audit-log-edited", detail))

    def origin(self) -> str | None:
        if "audit_log_state" not in self.usable:
            return None
        row = self._db.fetch_one("SELECT origin FROM audit_log_state WHERE name = 'checkpoints'")
        return None if row is None else str(row[0])

    def tree_size(self, report: Report) -> int:
        """How many leaves the log holds; without readable leaves, the largest signed tree
        (read, like the leaves, before the pass fixes its last position)."""
        try:
            if "audit_leaves" in self.usable:
                return audit_tree.tree_size(self._db)
            if "audit_checkpoints" in self.usable:
                row = self._db.fetch_one("SELECT max(tree_size) FROM audit_checkpoints")
                return 0 if row is None or row[0] is None else int(row[0])
        except UNREADABLE as error:
            report(
                _log_finding("audit-log-edited", f"the audit log's size cannot be read ({error})")
            )
        return 0

    def leaves(self, stop: int | None, size: int, report: Report) -> Iterator[Leaf] | None:
        if "audit_leaves" not in self.usable:
            return None
        return _readable(
            audit_tree.leaves(self._db, stop, size), report, "audit-log-edited", "leaf"
        )

    def nodes(self, report: Report) -> Callable[[int], Iterator[tuple[int, bytes]]] | None:
        """The stored tiles of a level, by index, for `audit_merkle.TileCheck`."""
        if "audit_nodes" not in self.usable:
            return None
        return lambda level: _readable(
            _nodes(self._db, level), report, "audit-log-edited", f"level {level} tile"
        )

    def checkpoints(self, size: int, report: Report | None) -> Iterator[StoredCheckpoint]:
        if "audit_checkpoints" not in self.usable:
            return iter(())
        rows = audit_tree.checkpoints(self._db, size)
        return _readable(rows, report, "bad-checkpoint", "stored checkpoint")


def _readable(rows: Iterator[T], report: Report | None, kind: str, what: str) -> Iterator[T]:
    """`rows` up to the first that cannot be read; then a finding, and no more of them."""
    read = 0
    try:
        for row in rows:
            yield row
            read += 1
    except UNREADABLE as error:
        if report is not None:
            detail = (
                f"the audit log's {what} row {read + 1} (in its order) cannot be read "
                f"({type(error).__name__}: {error}): its table was edited; that row and the "
                "ones after it are not compared"
            )
            report(_log_finding(kind, detail))


def _nodes(db: Database, level: int) -> Iterator[tuple[int, bytes]]:
    """The stored tiles of `level`, (node index, hash) by index, a page at a time."""
    after = -1
    while True:
        rows = db.fetch(
            "SELECT node_index, hash FROM audit_nodes WHERE level = ? AND node_index > ? "
            "ORDER BY node_index LIMIT ?",
            (level, after, audit_tree.PAGE),
        )
        for row in rows:
            yield int(row[0]), bytes.fromhex(row[1])
        if len(rows) < audit_tree.PAGE:
            return
        after = int(rows[-1][0])
