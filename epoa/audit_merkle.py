"""The global checks of `epoa audit verify`: the store's records against signed tree heads,
against the audit log's own list of leaves, and against receipts held outside.

A per-stream chain cannot see a stream deleted whole, a log cut short or two streams'
records swapped; a Merkle root over every record hash in log order can. Recomputing the
tree needs one `Frontier` (O(log n) hashes); each claimed head (stored checkpoint, witness
file, export) is compared when the tree reaches its size. The audit log's leaf table names
what a mismatch alone cannot: which record at which position went missing or changed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from domain import merkle
from domain.seal import Finding, RawRecord
from projections.audit_tree import STEP, Leaf

StoredNodes = Callable[[int], Iterable[tuple[int, bytes]]]
"""The stored tiles of one level, (node index, hash) by index (`audit_tree.store_tiles`)."""


@dataclass(frozen=True, order=True)
class Claim:
    """A tree head someone vouches for: its size and root, and where it came from."""

    size: int
    root: bytes
    source: str


class TreeCheck:
    """Grows a tree leaf by leaf and compares it with each claim as it reaches its size.

    Claims must come in non-decreasing size; one smaller than the tree already is cannot be
    checked any more and is reported as out of order."""

    def __init__(self, claims: Iterable[Claim]) -> None:
        self.frontier = merkle.Frontier()
        self._claims: Iterator[Claim] = iter(claims)
        self._next: Claim | None = next(self._claims, None)
        self.checked = 0
        self._pending = self.compare()
        """Claims about the empty tree (a checkpoint signed before the first record)."""

    def append(self, leaf_hash: bytes) -> list[tuple[Claim, bool]]:
        results, self._pending = self._pending, []
        self.frontier.append(leaf_hash)
        return results + self.compare()

    def compare(self) -> list[tuple[Claim, bool]]:
        """(claim, matches) for each claim of the current size (or an earlier one)."""
        results = []
        while self._next is not None and self._next.size <= self.frontier.size:
            claim = self._next
            if claim.size < self.frontier.size:
                results.append((claim, False))
            else:
                self.checked += 1
                results.append((claim, hmac.compare_digest(claim.root, self.frontier.root())))
            self._next = next(self._claims, None)
        return results

    def beyond(self) -> Iterator[Claim]:
        """The claims about a bigger tree than the records allowed to grow."""
        while self._next is not None:
            yield self._next
            self._next = next(self._claims, None)


class LeafLedger:
    """Walks the audit log's leaves beside the store's records, both in log order.

    The leaves must themselves match the stored checkpoints (`tree`), or the log's table was
    edited too and its reports below are not to be trusted."""

    def __init__(
        self, leaves: Iterable[Leaf], claims: Iterable[Claim], tiles: TileCheck | None = None
    ) -> None:
        self._leaves = iter(leaves)
        self._next: Leaf | None = next(self._leaves, None)
        self.tree = TreeCheck(claims)
        self._tiles = tiles
        self._expected_index = 0
        self._unverified_from: Leaf | None = None

    def observe(self, record: RawRecord, digest: bytes) -> list[Finding]:
        found = []
        while self._next is not None and self._next.position < (record.position or 0):
            found += self._missing(self._take())
        leaf = self._next
        if leaf is None:
            return found  # not in the audit log yet
        if leaf.position == record.position:
            found += self._log_findings(self._take())
            if (leaf.originator_id, leaf.version, leaf.record_hash) != (
                record.originator_id,
                record.version,
                digest,
            ):
                found.append(
                    _at(
                        record,
                        "record-changed",
                        f"the audit log recorded {leaf.originator_id} v{leaf.version} "
                        f"with hash {leaf.record_hash.hex()[:16]}... at this position",
                    )
                )
        else:
            found.append(
                _at(record, "record-inserted", "the audit log has no record at this position")
            )
        return found

    def finish(self) -> list[Finding]:
        found = []
        while self._next is not None:
            found += self._missing(self._take())
        return found

    def _take(self) -> Leaf:
        assert self._next is not None
        leaf, self._next = self._next, next(self._leaves, None)
        return leaf

    def _missing(self, leaf: Leaf) -> list[Finding]:
        gone = Finding(
            "record-missing",
            leaf.originator_id,
            leaf.version,
            leaf.position,
            f"leaf {leaf.leaf_index} of the audit log (hash {leaf.record_hash.hex()[:16]}...) "
            "is not in the store",
        )
        return [gone, *self._log_findings(leaf)]

    def _log_findings(self, leaf: Leaf) -> list[Finding]:
        found = []
        if leaf.leaf_index != self._expected_index:
            found.append(
                Finding(
                    "audit-log-edited",
                    leaf.originator_id,
                    leaf.version,
                    leaf.position,
                    f"leaf index {leaf.leaf_index} where {self._expected_index} was due",
                )
            )
        self._expected_index = leaf.leaf_index + 1
        first = self._unverified_from = self._unverified_from or leaf
        hashed = merkle.leaf_hash(leaf.record_hash)
        if self._tiles is not None:
            where = (leaf.originator_id, leaf.version, leaf.position)
            found += [Finding("audit-log-edited", *where, d) for d in self._tiles.append(hashed)]
        for claim, ok in self.tree.append(hashed):
            self._unverified_from = None
            if not ok:
                found.append(
                    Finding(
                        "audit-log-edited",
                        first.originator_id,
                        first.version,
                        first.position,
                        f"the audit log's leaves from this one up to its checkpoint of tree "
                        f"size {claim.size} do not match that checkpoint: its table was edited",
                    )
                )
        return found


class TileCheck:
    """The audit log's stored tiles (a node per 256 leaves, per 256 of those, ...) against the
    leaves they are made of. Proofs are built from them: one edited or missing makes every
    proof through it fail, though the leaves and the heads still agree."""

    def __init__(self, stored: StoredNodes) -> None:
        self._stored = stored
        self._children: dict[int, list[bytes]] = {}
        self._made: dict[int, int] = {}
        self._rows: dict[int, Iterator[tuple[int, bytes]]] = {}
        self._ahead: dict[int, tuple[int, bytes] | None] = {}

    def append(self, leaf_hash: bytes) -> list[str]:
        """What is wrong with the tiles this leaf completes, if it completes any."""
        problems: list[str] = []
        level, child = STEP, leaf_hash
        while True:
            children = self._children.setdefault(level, [])
            children.append(child)
            if len(children) < 1 << STEP:
                return problems
            node = merkle.root(children)
            children.clear()
            index = self._made.get(level, 0)
            self._made[level] = index + 1
            stored = self._stored_node(level, index)
            if stored is None or not hmac.compare_digest(stored, node):
                problems.append(
                    f"tile {index} of level {level} (leaves {index << level} to "
                    f"{((index + 1) << level) - 1}) is "
                    f"{'missing' if stored is None else 'not the one its leaves make'}: every "
                    "proof through it fails; the audit log's audit_nodes table was edited"
                )
            level, child = level + STEP, node

    def _stored_node(self, level: int, index: int) -> bytes | None:
        if level not in self._rows:
            self._rows[level] = iter(self._stored(level))
            self._ahead[level] = next(self._rows[level], None)
        while (ahead := self._ahead[level]) is not None and ahead[0] < index:
            self._ahead[level] = next(self._rows[level], None)
        return ahead[1] if ahead is not None and ahead[0] == index else None


@dataclass(frozen=True)
class Receipted:
    originator_id: str
    version: int
    record_hash: bytes
    receipt: str
    """Which receipt said so (its line in the file)."""


class ReceiptCheck:
    """Every record a receipt names must be in the store, at its position, with its hash.
    Memory holds the receipts given, not the store."""

    def __init__(self, expected: dict[int, Receipted]) -> None:
        self.expected = expected

    def observe(self, record: RawRecord, digest: bytes) -> list[Finding]:
        want = self.expected.pop(record.position or 0, None)
        if want is None:
            return []
        if (want.originator_id, want.version, want.record_hash) == (
            record.originator_id,
            record.version,
            digest,
        ):
            return []
        return [
            _at(
                record,
                "receipted-record-changed",
                f"{want.receipt} names {want.originator_id} v{want.version} "
                f"with hash {want.record_hash.hex()[:16]}... at this position",
            )
        ]

    def finish(self, start: int | None = None, stop: int | None = None) -> list[Finding]:
        """The receipted records never met, within the positions the pass covered."""
        return [
            Finding(
                "receipted-record-missing",
                want.originator_id,
                want.version,
                position,
                f"{want.receipt} names this record; the store does not hold it",
            )
            for position, want in sorted(self.expected.items())
            if (start is None or position >= start) and (stop is None or position <= stop)
        ]


def _at(record: RawRecord, kind: str, detail: str) -> Finding:
    return Finding(kind, record.originator_id, record.version, record.position, detail)
