"""The global audit log's tables, and what readers ask of them: checkpoints, leaves, proofs.

`projections.checkpoints.CheckpointLog` writes these tables; the API and `epoa audit
verify` read them. Leaf `i` is the `i`-th record of the notification log (leaf indexes have
no gaps, notification ids may), and its Merkle leaf is `leaf_hash(record hash)`.

Besides the leaves, the writer keeps the hash of every perfect subtree whose height is a
multiple of eight (`audit_nodes`), as tlog tiles do: a proof then costs O(log n) queries of
at most 128 rows each, instead of reading every leaf of the tree. Hashes are hex text, so
one schema serves SQLite and PostgreSQL and an administrator can read the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from domain import merkle
from domain.errors import InvalidInputError, NotFoundError
from projections.db import Database

STEP = 8
"""Levels stored in `audit_nodes`: 8, 16, 24, ... (a node every 256 children)."""
PAGE = 1000

DDL = (
    """CREATE TABLE IF NOT EXISTS audit_leaves (
        leaf_index BIGINT PRIMARY KEY,
        position BIGINT NOT NULL UNIQUE,
        originator_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        record_hash TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_nodes (
        level INTEGER NOT NULL,
        node_index BIGINT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (level, node_index)
    )""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        tree_size BIGINT PRIMARY KEY,
        root_hash TEXT NOT NULL,
        position BIGINT NOT NULL,
        signed_at {sortable} NOT NULL,
        note TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log_state (
        name TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        position BIGINT NOT NULL,
        frontier TEXT NOT NULL
    )""",
)
TABLES = ("audit_leaves", "audit_nodes", "audit_checkpoints", "audit_log_state")


@dataclass(frozen=True)
class Leaf:
    leaf_index: int
    position: int
    originator_id: str
    version: int
    record_hash: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    position: int
    """The notification id of the last record in the tree (0 for the empty tree)."""
    signed_at: str
    note: str

    def as_public(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "position": self.position,
            "signed_at": self.signed_at,
            "note": self.note,
        }


def has_tables(db: Database) -> bool:
    """Readers never create tables: a log that never ran has no checkpoints, not an error."""
    if db.dialect == "sqlite":
        found = db.fetch_one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoints'"
        )
        return found is not None
    found = db.fetch_one("SELECT to_regclass('audit_checkpoints') IS NOT NULL")
    return bool(found and found[0])


def checkpoint_of(row: tuple[Any, ...]) -> StoredCheckpoint:
    """Raises ValueError or TypeError for a row that holds what no checkpoint can."""
    return StoredCheckpoint(int(row[0]), bytes.fromhex(row[1]), int(row[2]), str(row[3]), row[4])


CHECKPOINT_COLUMNS = ("tree_size", "root_hash", "position", "signed_at", "note")
_CHECKPOINT = f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM audit_checkpoints"


def latest_checkpoint(db: Database) -> StoredCheckpoint | None:
    if not has_tables(db):
        return None
    row = db.fetch_one(f"{_CHECKPOINT} ORDER BY tree_size DESC LIMIT 1")
    return checkpoint_of(row) if row else None


def checkpoint_of_size(db: Database, tree_size: int) -> StoredCheckpoint | None:
    if not has_tables(db):
        return None
    row = db.fetch_one(f"{_CHECKPOINT} WHERE tree_size = ?", (tree_size,))
    return checkpoint_of(row) if row else None


def checkpoints(db: Database, size: int | None = None) -> Iterator[StoredCheckpoint]:
    """Every stored checkpoint, smallest tree first, a page at a time; with `size`, only
    those of trees up to that size."""
    for row in checkpoint_rows(db, size):
        yield checkpoint_of(row)


def checkpoint_rows(db: Database, size: int | None = None) -> Iterator[tuple[Any, ...]]:
    """The rows of `checkpoints`, each column as stored (`CHECKPOINT_COLUMNS`)."""
    if not has_tables(db):
        return
    after = -1
    limit = "" if size is None else f" AND tree_size <= {int(size)}"
    while True:
        rows = db.fetch(
            f"{_CHECKPOINT} WHERE tree_size > ?{limit} ORDER BY tree_size LIMIT ?", (after, PAGE)
        )
        yield from rows
        if len(rows) < PAGE or not isinstance(rows[-1][0], int):
            return  # SQLite sorts a size that is no number after all numbers
        after = rows[-1][0]


_LEAF = "SELECT leaf_index, position, originator_id, version, record_hash FROM audit_leaves"


def _leaf(row: tuple[Any, ...]) -> Leaf:
    return Leaf(int(row[0]), int(row[1]), str(row[2]), int(row[3]), bytes.fromhex(row[4]))


def leaves(db: Database, stop: int | None = None, size: int | None = None) -> Iterator[Leaf]:
    """The logged leaves in order, a page at a time; with `stop`, only positions up to it,
    with `size`, only the first `size` leaves."""
    if not has_tables(db):
        return
    after = -1
    limit = "" if stop is None else f" AND position <= {int(stop)}"
    limit += "" if size is None else f" AND leaf_index < {int(size)}"
    while True:
        rows = db.fetch(
            f"{_LEAF} WHERE leaf_index > ?{limit} ORDER BY leaf_index LIMIT ?", (after, PAGE)
        )
        for row in rows:
            yield _leaf(row)
        if len(rows) < PAGE:
            return
        after = int(rows[-1][0])


def leaf_at(db: Database, position: int) -> Leaf | None:
    row = db.fetch_one(f"{_LEAF} WHERE position = ?", (position,)) if has_tables(db) else None
    return _leaf(row) if row else None


def tree_size(db: Database) -> int:
    """How many leaves the log holds."""
    if not has_tables(db):
        return 0
    row = db.fetch_one("SELECT max(leaf_index) FROM audit_leaves")
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def perfect_root(db: Database, start: int, height: int) -> bytes:
    """The hash of the perfect subtree of 2**height leaves from `start` (aligned), from the
    nearest stored level at or below it: at most 128 rows."""
    level = height // STEP * STEP
    return merkle.root(_hashes(db, level, start >> level, 1 << (height - level)))


def tile_root(db: Database, level: int, index: int) -> bytes:
    """The node `index` of a stored `level` (a multiple of STEP), from the level below."""
    below = level - STEP
    return merkle.root(_hashes(db, below, index << STEP, 1 << STEP))


def store_tiles(db: Database, old_size: int, new_size: int) -> None:
    """Store each node of levels 8, 16, ... completed by growing the tree to `new_size`
    (the writer calls this in the transaction that adds the leaves)."""
    level = STEP
    while new_size >> level > old_size >> level:
        rows = [
            (level, index, tile_root(db, level, index).hex())
            for index in range(old_size >> level, new_size >> level)
        ]
        db.insert("audit_nodes", ("level", "node_index", "hash"), rows)
        level += STEP


def _hashes(db: Database, level: int, first: int, count: int) -> list[bytes]:
    if level == 0:
        rows = db.fetch(
            "SELECT record_hash FROM audit_leaves WHERE leaf_index >= ? AND leaf_index < ? "
            "ORDER BY leaf_index",
            (first, first + count),
        )
        hashes = [merkle.leaf_hash(bytes.fromhex(row[0])) for row in rows]
    else:
        rows = db.fetch(
            "SELECT hash FROM audit_nodes WHERE level = ? AND node_index >= ? AND node_index < ? "
            "ORDER BY node_index",
            (level, first, first + count),
        )
        hashes = [bytes.fromhex(row[0]) for row in rows]
    if len(hashes) != count:
        raise LookupError(f"audit log: {count} hashes expected at level {level} from {first}")
    return hashes


def subtree_roots(db: Database) -> merkle.SubtreeRoot:
    """`merkle.SubtreeRoot` over the stored tiles: a range is a run of perfect subtrees."""
    return subtree_roots_over(lambda start, height: perfect_root(db, start, height))


def subtree_roots_over(perfect: Callable[[int, int], bytes]) -> merkle.SubtreeRoot:
    """`merkle.SubtreeRoot` from the roots of aligned perfect subtrees,
    `perfect(start, height)`: a range is a run of them, folded from the right."""

    def subtree_root(start: int, end: int) -> bytes:
        parts, at = [], start
        while at < end:
            height = (end - at).bit_length() - 1
            parts.append(perfect(at, height))
            at += 1 << height
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = merkle.node_hash(part, acc)
        return acc

    return subtree_root


def inclusion(db: Database, position: int, size: int | None) -> dict[str, Any]:
    """The inclusion proof of the record at `position`, in the tree of `size` leaves
    (by default the latest checkpoint's), with that tree's signed note if there is one."""
    asked = size
    size, note = _size_and_note(db, size)
    leaf = leaf_at(db, position)
    if leaf is None:
        later = has_tables(db) and db.fetch_one(
            "SELECT 1 FROM audit_leaves WHERE position > ? LIMIT 1", (position,)
        )
        if later:  # the tree follows the log in order: this one will never come
            raise NotFoundError(
                f"the log holds no record at position {position}: positions may skip "
                "numbers (a write that failed took one), and the audit log is past it"
            )
        raise NotFoundError(f"no record at position {position} is in the audit log yet")
    if leaf.leaf_index >= size:
        outside = f"the record at position {position} is leaf {leaf.leaf_index}, "
        if asked is not None:  # no tree of this size will ever hold it
            raise InvalidInputError(
                f"{outside}outside the tree of size {size}: ask for a tree_size above "
                f"{leaf.leaf_index}"
            )
        raise NotFoundError(
            f"{outside}outside the latest checkpoint's tree (size {size}); ask again after "
            "the next checkpoint"
        )
    path = merkle.inclusion_proof_from(subtree_roots(db), leaf.leaf_index, size)
    return {
        "position": position,
        "originator_id": leaf.originator_id,
        "version": leaf.version,
        "leaf_index": leaf.leaf_index,
        "tree_size": size,
        "record_hash": leaf.record_hash.hex(),
        "audit_path": [h.hex() for h in path],
        "checkpoint": note,
    }


def consistency(db: Database, first: int, second: int | None) -> dict[str, Any]:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second`."""
    second, second_note = _size_and_note(db, second)
    if not 0 <= first <= second:
        raise InvalidInputError(f"first ({first}) must be between 0 and second ({second})")
    path = merkle.consistency_proof_from(subtree_roots(db), first, second)
    found = checkpoint_of_size(db, first)
    return {
        "first": first,
        "second": second,
        "consistency_path": [h.hex() for h in path],
        "first_checkpoint": found.note if found else None,
        "second_checkpoint": second_note,
    }


def _size_and_note(db: Database, size: int | None) -> tuple[int, str | None]:
    if size is None:
        latest = latest_checkpoint(db)
        if latest is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return latest.tree_size, latest.note
    available = tree_size(db)
    if not 0 <= size <= available:
        raise InvalidInputError(f"tree_size {size}: the audit log holds {available} records")
    found = checkpoint_of_size(db, size)
    return size, found.note if found else None
