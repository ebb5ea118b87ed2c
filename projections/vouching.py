"""Batches of the log vouched for by a signed tree head, so that their seals need no check.

The global audit log (`projections.checkpoints`) signs heads of one Merkle tree over every
record's hash, in log order, and signs only after it has checked every record's seal. A
runner hashes each record it reads into a frontier of the same tree: from empty when it
reads from the start of the log, else from the stored tiles up to where it starts, once a
signed head proves them. When a signed head covers what it has read (the frontier's root
is the head's tree cut at that size: equal, or proven a prefix by a consistency proof from
the stored tiles), each record read is exactly one the log checked. The batch then needs
one signature check per head instead of one per stream and batch.

The tiles' hashes come from the database and are not trusted: they only help the root
computed from the records read to meet the signed one; a wrong hash makes them miss. So
anything else falls back to the seal checks, which refuse a changed record: no head yet
over the batch (a runner tailing the log is ahead of the heads), a proof that does not
hold (a record, a leaf or a tile changed), an audit log that has not reached the runner's
position or never ran.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain import merkle
from domain.checkpoint import Checkpoint, CheckpointError, parse_checkpoint, verify_checkpoint
from projections import audit_tree
from projections.db import connect

log = logging.getLogger("epoa.projections")
ASK_EVERY = 1.0
"""Seconds between two questions for a newer head (heads come every 10 s by default)."""
CACHED_SUBTREES = 4096
"""Perfect subtree roots kept between batches: successive proofs share most of them."""


class Vouching:
    def __init__(self, database_url: str, public_keys: Mapping[bytes, Ed25519PublicKey]) -> None:
        self._db = connect(database_url)
        self._keys = list(public_keys.values())
        self._lock = threading.Lock()
        self._frontier: merkle.Frontier | None = None
        self._at = 0
        """The notification id of the last record hashed into the frontier."""
        self._head: Checkpoint | None = None
        self._head_note = ""
        self._asked = self._resume_tried = -ASK_EVERY
        self._perfect: dict[tuple[int, int], bytes] = {}

    def covers(self, after: int, last: int, record_hashes: Sequence[bytes]) -> bool:
        """Whether a signed head vouches for the batch read after notification id `after`,
        ending at `last`, whose records have `record_hashes` (every record, in order). The
        records are hashed into the frontier either way: a batch that falls back to the
        seal checks is vouched for with the next one a head covers."""
        with self._lock:
            if after == 0:  # from the start (a rebuild): ask for the newest head now
                self._frontier, self._asked = merkle.Frontier(), -ASK_EVERY
                self._perfect.clear()  # hashes read before, in case the tables were mended
            elif self._frontier is None or after != self._at:
                self._frontier = None  # not read on from the last batch: start again there
                if not self._resumed_at(after):
                    return False
            assert self._frontier is not None
            self._frontier.extend(merkle.leaf_hash(digest) for digest in record_hashes)
            self._at = last
            try:
                return self._signed_over(self._frontier)
            except Exception:  # a missing table, a short tile, a lost connection
                log.debug("no signed head vouches for records to %d", last, exc_info=True)
                return False

    def _resumed_at(self, after: int) -> bool:
        """Take the tree as far as the record at `after` from the stored tiles, once a
        signed head proves it (a runner that stopped and started again goes on vouched);
        tried at most once every `ASK_EVERY` seconds."""
        now = time.monotonic()
        if now - self._resume_tried < ASK_EVERY:
            return False
        self._resume_tried = now
        try:
            leaf = audit_tree.leaf_at(self._db, after)
            if leaf is None:  # the audit log has not reached it (or never ran)
                return False
            frontier = merkle.Frontier.of_perfect(self._perfect_root, leaf.leaf_index + 1)
            if not self._signed_over(frontier):
                return False
        except Exception:  # a missing table, a short tile, a lost connection
            log.debug("cannot resume the audit tree at %d", after, exc_info=True)
            return False
        self._frontier, self._at = frontier, after
        return True

    def forget(self) -> None:
        """A batch could not be hashed: nothing after it is vouched for in this run."""
        with self._lock:
            self._frontier = None

    def _signed_over(self, frontier: merkle.Frontier) -> bool:
        head = self._head_over(frontier.size)
        if head is None or head.size < frontier.size:
            return False
        root = frontier.root()
        if head.size == frontier.size:
            return hmac.compare_digest(root, head.root)
        proof = merkle.consistency_proof_from(
            audit_tree.subtree_roots_over(self._perfect_root), frontier.size, head.size
        )
        return merkle.verify_consistency(frontier.size, head.size, root, head.root, proof)

    def _head_over(self, size: int) -> Checkpoint | None:
        """A signed head over at least `size` records if one is known; the newest stored
        one is asked for at most once every `ASK_EVERY` seconds (a runner tailing the log
        is ahead of the heads, and a batch or two is cheaper checked by its seals)."""
        if self._head is not None and self._head.size >= size:
            return self._head
        now = time.monotonic()
        if now - self._asked < ASK_EVERY:
            return None
        self._asked = now
        return self._latest_head()

    def _latest_head(self) -> Checkpoint | None:
        """The newest stored head, once one of the seal keys has signed it."""
        stored = audit_tree.latest_checkpoint(self._db)
        if stored is None:
            return None
        if stored.note != self._head_note:
            try:
                claimed = parse_checkpoint(stored.note).origin
                head = verify_checkpoint(stored.note, {claimed: self._keys})
            except CheckpointError:
                log.warning("the newest checkpoint is not signed by a seal key: seals checked")
                return None
            self._head, self._head_note = head, stored.note
        return self._head

    def _perfect_root(self, start: int, height: int) -> bytes:
        """A stored perfect subtree's root, remembered: the log's perfect subtrees never
        change, and successive batches' proofs are made mostly of the same ones."""
        key = (start, height)
        found = self._perfect.get(key)
        if found is None:
            found = audit_tree.perfect_root(self._db, start, height)
            if len(self._perfect) >= CACHED_SUBTREES:
                self._perfect.clear()
            self._perfect[key] = found
        return found

    def close(self) -> None:
        self._db.close()
