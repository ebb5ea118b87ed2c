"""The global audit log: a Merkle tree over every record, in log order, with signed heads.

Per-aggregate hash chains cannot show that a whole stream was deleted, the tail of the log
cut off, or two records of different streams swapped. A signed tree head can: any later
head must be provably consistent with it, and any copy of it outside the database (the
witness file, an auditor's download, a receipt) pins the history it covers.

One writer follows the notification log in batches. Each batch's leaves, completed tiles
(`projections.audit_tree`), the tree's `Frontier` and the log position commit in ONE
transaction; a head is signed in that transaction when `every_records` records or
`every_seconds` seconds have passed since the last one. Each record's seal is verified
first: the service never signs a head over a record it did not seal. On PostgreSQL an
advisory lock elects the writer; the state row, re-read under a row lock, keeps a second
writer from ever applying a batch twice. See docs/decisions/0003-global-checkpoints.md.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import Notification

from domain import merkle
from domain.checkpoint import CheckpointError, sign_checkpoint, verify_checkpoint
from domain.registry import Registry
from domain.seal import SealError, verify_state
from domain.seal_runs import open_runs
from projections import audit_tree
from projections.audit_tree import Leaf, StoredCheckpoint
from projections.db import connect
from projections.read_model import stamp
from projections.writer_lock import PostgresWriterLock, WriterLock

log = logging.getLogger("epoa.checkpoints")
STATE = "checkpoints"


class CheckpointWriterLock(PostgresWriterLock):
    """The projections' advisory lock, under another name: both writers run at once."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self._schema = f"{self._schema}#audit-checkpoints"


def _writer_lock(database_url: str) -> WriterLock:
    if database_url.startswith(("postgresql:", "postgres:")):
        return CheckpointWriterLock(database_url)
    return WriterLock()


@dataclass
class _State:
    position: int
    frontier: merkle.Frontier


class CheckpointLog:
    def __init__(
        self,
        registry: Registry,
        database_url: str,
        origin: str,
        *,
        every_records: int = 1000,
        every_seconds: float = 10.0,
        witness_file: Path | None = None,
        batch_size: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not origin or any(c.isspace() for c in origin) or "+" in origin:
            raise ValueError(f"checkpoint origin {origin!r}: non-empty, no spaces, no '+'")
        self.registry, self.origin, self.witness_file = registry, origin, witness_file
        self.every_records = max(1, every_records)
        self.every = timedelta(seconds=every_seconds)
        self.batch_size, self.clock = batch_size, clock
        self.db = connect(database_url)
        self._lock = _writer_lock(database_url)
        #: The tree this writer proved (`_proven`) or signed, extended since by the leaves it
        #: committed itself, and its position: while the stored state is still that tree, a
        #: head over it needs no proof again (no records read twice).
        self._known: tuple[int, merkle.Frontier] | None = None
        self._create()

    def _create(self) -> None:
        """Create the tables unless they exist: a schema's owner may have made them and
        granted this role no more than it needs (see the decision record)."""
        if not audit_tree.has_tables(self.db):
            self.db.create(audit_tree.DDL)
        self.db.execute(
            "INSERT INTO audit_log_state (name, origin, position, frontier) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (STATE, self.origin, json.dumps(merkle.Frontier().to_dict())),
        )
        row = self.db.fetch_one("SELECT origin FROM audit_log_state WHERE name = ?", (STATE,))
        if row is not None and row[0] != self.origin:
            raise ValueError(
                f"this audit log's origin is {row[0]!r}; it cannot become {self.origin!r}"
            )

    def _state(self, for_update: bool = False) -> _State:
        row = self.db.fetch_one(
            "SELECT position, frontier FROM audit_log_state WHERE name = ?"
            + (self.db.for_update if for_update else ""),
            (STATE,),
        )
        assert row is not None
        return _State(int(row[0]), merkle.Frontier.from_dict(json.loads(row[1])))

    # -- following the log --------------------------------------------------------------

    def run_once(self) -> int:
        """Log the next batch (and sign a head when one is due); return how many records."""
        if not self._lock.acquire():
            return 0
        state = self._state()
        batch = self.registry.recorder.select_notifications(
            state.position, self.batch_size, inclusive_of_start=False
        )
        leaves = self._leaves(batch, state.frontier.size)
        if not leaves and not self._due(state.frontier.size):
            return 0
        note = self._commit(state.position, leaves, force=False)
        if note is not None:
            self._witness(note)
        return len(leaves)

    def catch_up(self) -> int:
        total = 0
        while applied := self.run_once():
            total += applied
        return total

    def sign_now(self) -> str | None:
        """Sign a head over everything logged so far, unless the newest head already is one."""
        if not self._lock.acquire():
            return None
        state = self._state()
        note = self._commit(state.position, [], force=True)
        if note is not None:
            self._witness(note)
        return note

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        while not stop.is_set():
            try:
                logged = self.catch_up()
            except Exception:
                log.exception("audit log batch failed; retrying in %.1fs", poll_interval)
                logged = 0
            if not logged:
                stop.wait(poll_interval)

    def _leaves(self, batch: Sequence[Notification], first_index: int) -> list[Leaf]:
        """The batch's record hashes, checked as the projections check a batch (one seal per
        run of a stream, every link, decision 0009). When the batch does not hold, each
        record is checked alone, to name the first one that fails."""
        keys = self.registry.sealed_mapper.public_keys
        try:
            opened = open_runs(keys, batch)
        except SealError as error:
            for n in batch:
                try:
                    verify_state(keys, n.originator_id, n.originator_version, n.topic, n.state)
                except SealError as alone:
                    raise SealError(f"audit log stops at position {n.id}: {alone}") from None
            where = f"{batch[0].id}-{batch[-1].id}"
            raise SealError(f"audit log stops in positions {where}: {error}") from None
        return [
            Leaf(first_index + offset, n.id, str(n.originator_id), n.originator_version, digest)
            for offset, (n, (_, digest)) in enumerate(zip(batch, opened, strict=True))
        ]

    # -- one transaction per batch ------------------------------------------------------

    def _commit(self, position: int, leaves: list[Leaf], force: bool) -> str | None:
        with self.db.transaction():
            state = self._state(for_update=True)
            if state.position != position:
                return None  # another writer logged this batch meanwhile
            frontier = state.frontier
            proven = self._known == (state.position, frontier)
            self._known = None  # until this transaction commits
            old_size = frontier.size
            self.db.insert(
                "audit_leaves",
                ("leaf_index", "position", "originator_id", "version", "record_hash"),
                [
                    (x.leaf_index, x.position, x.originator_id, x.version, x.record_hash.hex())
                    for x in leaves
                ],
            )
            frontier.extend(merkle.leaf_hash(x.record_hash) for x in leaves)
            audit_tree.store_tiles(self.db, old_size, frontier.size)
            if leaves:
                position = leaves[-1].position
                self.db.execute(
                    "UPDATE audit_log_state SET position = ?, frontier = ? WHERE name = ?",
                    (position, json.dumps(frontier.to_dict()), STATE),
                )
            note = None
            if force or self._due(frontier.size):
                note = self._sign(frontier, position, proven)
        if proven or note is not None:
            self._known = (position, merkle.Frontier.from_dict(frontier.to_dict()))
        return note

    def _due(self, size: int) -> bool:
        last = audit_tree.latest_checkpoint(self.db)
        if last is None:
            return True
        if size <= last.tree_size:
            return False
        if size - last.tree_size >= self.every_records:
            return True
        return self.clock() - datetime.fromisoformat(last.signed_at) >= self.every

    def _sign(self, frontier: merkle.Frontier, position: int, proven: bool) -> str | None:
        """Sign a head over `frontier` unless the newest head covers it. A tree not `proven`
        (this writer's own since it last proved it) is proved first."""
        last = audit_tree.latest_checkpoint(self.db)
        if last is not None and last.tree_size >= frontier.size:
            return None
        if not proven and self._proven(last, position) != frontier:
            raise SealError(
                "audit log: its stored tree is not the one its newest signed head and the "
                "records after it make, so no head signed: its tables were edited "
                "(`epoa audit verify` names the rows)"
            )
        root = frontier.root()
        note = sign_checkpoint(self.origin, frontier.size, root, self.registry.seal_key.private_key)
        self.db.insert(
            "audit_checkpoints",
            ("tree_size", "root_hash", "position", "signed_at", "note"),
            [(frontier.size, root.hex(), position, stamp(self.clock()), note)],
        )
        return note

    def _proven(self, last: StoredCheckpoint | None, position: int) -> merkle.Frontier | None:
        """The tree of the records up to `position`, as the newest signed head and the records
        after it make it. Of the audit tables only the head's signature is believed: the tiles
        only help to make its root, which they must meet; the records after it are read again
        and their seals checked. A state row (or a tile) edited then cannot have the seal key
        sign, and the witness keep, a head over a tree that is not the records'."""
        tree, after = merkle.Frontier(), 0
        if last is not None:
            keys = {self.origin: list(self.registry.sealed_mapper.public_keys.values())}
            try:
                head = verify_checkpoint(last.note, keys, origin=self.origin)
                tree = merkle.Frontier.of_perfect(self._perfect_root, head.size)
            except (CheckpointError, LookupError, ValueError):
                return None
            if tree.root() != head.root:
                return None
            after = last.position
        while after < position:
            batch = self.registry.recorder.select_notifications(
                after, self.batch_size, stop=position, inclusive_of_start=False
            )
            if not batch:
                break
            tree.extend(merkle.leaf_hash(x.record_hash) for x in self._leaves(batch, tree.size))
            after = batch[-1].id
        return tree

    def _perfect_root(self, start: int, height: int) -> bytes:
        return audit_tree.perfect_root(self.db, start, height)

    def _witness(self, note: str) -> None:
        """Append the note to the witness file, kept where a database login cannot reach.

        After the commit: a crash in between loses one head from the file, never adds one
        the database lacks. A failed append is logged and does not stop the log."""
        if self.witness_file is None:
            return
        try:
            with self.witness_file.open("a", encoding="utf-8") as out:
                out.write(note + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            log.exception("could not append the checkpoint to %s", self.witness_file)

    def close(self) -> None:
        self._lock.release()
        self.db.close()

    def __enter__(self) -> CheckpointLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
