"""Seals and per-aggregate chains for `epoa audit verify`, in memory that does not grow with
the store.

The rules are those of `domain.seal.ChainVerifier` (and the finding kinds the same); what
differs is where the chain heads live. A store of hundreds of millions of aggregates has
as many heads, so the most recent ones stay in memory and the rest spill to a temporary
SQLite file (`Scratch`), which the conclusion checks share. Each check also returns the
record's hash, the Merkle leaf of the global audit log.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.seal import (
    ChainVerifier,
    Finding,
    Predecessor,
    RawRecord,
    SealError,
    Verdict,
    open_state,
    record_hash,
)

FLUSH_ROWS = 1_000
"""Rows `Scratch.later` holds before writing them: memory stays bounded."""


class Scratch:
    """A temporary SQLite file for what the audit remembers about the whole history.

    Nothing in it needs to survive a crash, so it is written without a journal or syncs;
    `commit()` once per page keeps inserts cheap."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="epoa-audit-")
        path = Path(self._dir.name) / "scratch.sqlite"
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("BEGIN")
        self._pending: dict[str, list[tuple[object, ...]]] = {}
        self._count = 0

    def later(self, statement: str, params: tuple[object, ...]) -> None:
        """Run `statement` at the next `flush` (each statement's rows in the order given):
        one `executemany` per statement costs a fraction of a call per row."""
        self._pending.setdefault(statement, []).append(params)
        self._count += 1
        if self._count >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what `later` holds; before any read of the tables it writes."""
        for statement, rows in self._pending.items():
            self.conn.executemany(statement, rows)
        self._pending.clear()
        self._count = 0

    def commit(self) -> None:
        self.flush()
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    def close(self) -> None:
        self.conn.close()
        self._dir.cleanup()


class Heads:
    """Stream -> (version, record hash) of its newest record: recent ones in memory, the
    others in the scratch file."""

    def __init__(
        self, scratch: Scratch, capacity: int = 5_000, spill_rows: int = FLUSH_ROWS
    ) -> None:
        self._db = scratch.conn
        self._db.execute(
            "CREATE TABLE heads (stream TEXT PRIMARY KEY, version INTEGER, digest BLOB)"
        )
        self._recent: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._capacity, self._spill_rows = capacity, spill_rows
        self._spilling: dict[str, tuple[int, bytes]] = {}
        """Heads out of `_recent` not written yet: written `spill_rows` at a time."""

    def get(self, stream: str) -> tuple[int, bytes] | None:
        found = self._recent.get(stream) or self._spilling.get(stream)
        if found is not None:
            return found
        row = self._db.execute(
            "SELECT version, digest FROM heads WHERE stream = ?", (stream,)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def put(self, stream: str, version: int, digest: bytes) -> None:
        self._recent[stream] = (version, digest)
        self._recent.move_to_end(stream)
        self._spilling.pop(stream, None)
        if len(self._recent) > self._capacity:
            old, head = self._recent.popitem(last=False)
            self._spilling[old] = head
            if len(self._spilling) >= self._spill_rows:
                self._db.executemany(
                    "INSERT OR REPLACE INTO heads VALUES (?, ?, ?)",
                    [(name, version, digest) for name, (version, digest) in self._spilling.items()],
                )
                self._spilling.clear()

    def drop(self, stream: str) -> None:
        self._recent.pop(stream, None)
        self._spilling.pop(stream, None)
        self._db.execute("DELETE FROM heads WHERE stream = ?", (stream,))


def stated_hash(record: RawRecord) -> bytes:
    """The record hash its state claims, seal checked or not; for a state that is not even
    a sealed one, a hash of it (it can then match no signed leaf)."""
    try:
        opened = open_state(record.state)
    except SealError:
        return hashlib.sha256(b"unsealed\x00" + record.state).digest()
    return record_hash(
        record.originator_id, record.version, record.topic, opened.predecessor, opened.body
    )


class ChainCheck:
    """`domain.seal.ChainVerifier` over the spilling `Heads`, always giving a record hash."""

    def __init__(
        self,
        public_keys: Mapping[bytes, Ed25519PublicKey],
        heads: Heads,
        predecessor: Predecessor | None = None,
    ) -> None:
        self._verifier = ChainVerifier(public_keys, heads, predecessor)

    def check(
        self, record: RawRecord, verdict: Verdict | None = None
    ) -> tuple[list[Finding], bytes]:
        """The findings about this record's seal and link, and its record hash."""
        found, digest = self._verifier.check_and_hash(record, verdict)
        return found, digest if digest is not None else stated_hash(record)
