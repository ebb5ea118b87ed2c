"""RFC 9162 (Certificate Transparency v2) Merkle trees for the global audit log.

The audit projection appends each record hash, in global order, to one Merkle tree and
signs its head now and then (`domain.checkpoint`). Per-aggregate hash chains cannot show
that a whole stream was deleted or the tail of the log cut off; a signed tree head can,
because any later head must be provably consistent with it. The hashing is exactly that of
RFC 9162 section 2.1 (identical to RFC 6962), so third-party CT and tlog tooling can check
our proofs and the Certificate Transparency reference vectors pin them in the tests.

Everything here is pure code over `hashlib`. Generating a proof costs at most about
`tree_size` node hashes (the sibling subtrees along the path are disjoint), computed
iteratively; verifying one costs O(log n). Callers that keep subtree hashes (e.g. tiles)
can pass their own `SubtreeRoot` to make generation O(log n) lookups instead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeRoot = Callable[[int, int], bytes]
"""`f(start, end)` -> MTH(D[start:end]). Proofs only ask for nodes of the tree: start is a
multiple of a power of two >= end - start, so stored perfect-subtree hashes can answer."""

LeafFetcher = Callable[[int, int], Iterable[bytes]]
"""`f(start, end)` -> the leaf hashes `[start, end)` in order (e.g. a range query)."""


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf; the 0x00 prefix keeps a leaf from passing for an inner node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an inner node with the 0x01 prefix of RFC 9162 section 2.1.1."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves.

    A tree of n leaves is the left-to-right run of perfect subtrees given by the binary
    digits of n, so popcount(n) <= log2(n) + 1 hashes are all an appender needs to keep:
    the sealer can extend the tree and sign its root without re-reading the leaves, and
    persist this state as one small row (`to_dict`).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # largest (leftmost) subtree first

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash; merges equal-sized subtrees like a binary counter carry."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf_hash)}")
        hashes = self._hashes
        hashes.append(bytes(leaf_hash))
        carry = self._size
        while carry & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            carry >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the whole tree: fold the subtree roots from the right edge inwards."""
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def to_dict(self) -> dict[str, int | list[str]]:
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Frontier:
        """Rebuild from `to_dict()` output; refuses state that cannot be a frontier."""
        size, hashes = data.get("size"), data.get("hashes")
        if type(size) is not int or size < 0:
            raise ValueError("frontier size must be a non-negative integer")
        if not isinstance(hashes, list) or len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} holds {size.bit_count()} hashes")
        frontier = cls()
        for h in hashes:
            raw = bytes.fromhex(h) if isinstance(h, str) else b""
            if len(raw) != HASH_SIZE:
                raise ValueError("frontier hashes must be 64 hex digits")
            frontier._hashes.append(raw)
        frontier._size = size
        return frontier

    @classmethod
    def of_perfect(cls, perfect: Callable[[int, int], bytes], size: int) -> Frontier:
        """The frontier of the first `size` leaves from the roots of its perfect subtrees,
        `perfect(start, height)` (stored tiles, say: check its root before believing it)."""
        hashes, start = [], 0
        for height in reversed(range(size.bit_length())):
            if size >> height & 1:
                hashes.append(perfect(start, height).hex())
                start += 1 << height
        return cls.from_dict({"size": size, "hashes": hashes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 2.1.1 in one pass and O(log n) memory."""
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


def subtree_roots_from(fetch: LeafFetcher) -> SubtreeRoot:
    """Adapt a leaf-range reader into a `SubtreeRoot`, hashing what it returns.

    Each proof asks for O(log n) disjoint ranges, so at most `tree_size` leaves are read
    and hashed per proof. A short read raises instead of yielding a wrong proof.
    """

    def subtree_root(start: int, end: int) -> bytes:
        frontier = Frontier()
        frontier.extend(fetch(start, end))
        if frontier.size != end - start:
            raise ValueError(f"expected {end - start} leaves from {start}, got {frontier.size}")
        return frontier.root()

    return subtree_root


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162 2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof_from(subtree_root: SubtreeRoot, index: int, tree_size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, leaf to root, walking down from the root."""
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is outside a tree of size {tree_size}")
    path: list[bytes] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        mid = lo + _largest_power_of_two_below(hi - lo)
        if index < mid:
            path.append(subtree_root(mid, hi))
            hi = mid
        else:
            path.append(subtree_root(lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_proof_from(subtree_root: SubtreeRoot, first: int, second: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1 (SUBPROOF unrolled); empty if m is 0 or n."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    path: list[bytes] = []
    lo, hi, whole_old_tree = 0, second, True
    while first - lo != hi - lo:
        mid = lo + _largest_power_of_two_below(hi - lo)
        if first <= mid:
            path.append(subtree_root(mid, hi))
            hi = mid
        else:
            path.append(subtree_root(lo, mid))
            lo, whole_old_tree = mid, False
    if not whole_old_tree:
        path.append(subtree_root(lo, hi))
    path.reverse()
    return path


def _from_list(leaf_hashes: Sequence[bytes], tree_size: int) -> SubtreeRoot:
    if tree_size > len(leaf_hashes):
        raise ValueError(f"tree size {tree_size} exceeds the {len(leaf_hashes)} leaves given")
    return subtree_roots_from(lambda start, end: leaf_hashes[start:end])


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """Inclusion proof of leaf `index` in the first `tree_size` leaves (~tree_size hashes)."""
    return inclusion_proof_from(_from_list(leaf_hashes, tree_size), index, tree_size)


def consistency_proof(leaf_hashes: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """Proof that the first `first` leaves prefix the first `second` (~second hashes)."""
    return consistency_proof_from(_from_list(leaf_hashes, second), first, second)


def _well_formed(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2. Never raises on hostile input: anything malformed is False."""
    if not 0 <= index < tree_size or not _well_formed(leaf_hash, root, *proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, plus the trivial cases it leaves out (m = 0, m = n: empty proof).

    Never raises on hostile input: anything malformed is False.
    """
    if not 0 <= first <= second or not _well_formed(first_root, second_root, *proof):
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof and hmac.compare_digest(first_root, EMPTY_ROOT)
    if not proof:
        return False
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)
