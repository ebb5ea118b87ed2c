"""How much the audit Merkle tree costs next to the SHA-256 it is made of.

Run: `.venv/bin/python bench/merkle.py [leaves]` (default 1,000,000). Rates are per
second on this machine; the ratio to raw SHA-256 is the number to compare across runs.
Appending a leaf costs one node hash on average, so appends/s should stay within a small
factor of hashes/s; proofs from leaves cost about one hash per leaf of the tree.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable

from domain import merkle


def _rate(count: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def main(leaves: int = 1_000_000) -> None:
    sha256 = hashlib.sha256
    block = b"\x01" + bytes(64)

    def raw() -> None:
        for _ in range(leaves):
            sha256(block).digest()

    inputs = [i.to_bytes(8, "big") for i in range(leaves)]
    hashes: list[bytes] = []
    frontier = merkle.Frontier()
    roots = max(1, leaves // 100)

    def many_roots() -> None:
        for _ in range(roots):
            frontier.root()

    rows = [
        ("raw SHA-256 (65-byte input)", _rate(leaves, raw)),
        ("leaf_hash", _rate(leaves, lambda: hashes.extend(map(merkle.leaf_hash, inputs)))),
        ("Frontier.append", _rate(leaves, lambda: frontier.extend(hashes))),
        (f"Frontier.root() at {leaves:,} leaves", _rate(roots, many_roots)),
        ("root() over a list (leaves/s)", _rate(leaves, lambda: merkle.root(hashes))),
        (
            "inclusion_proof (leaves/s)",
            _rate(leaves, lambda: merkle.inclusion_proof(hashes, 1, leaves)),
        ),
    ]
    assert frontier.root() == merkle.root(hashes)
    base = rows[0][1]
    print(f"{'operation':<40} {'per second':>14} {'vs SHA-256':>11}")
    for name, rate in rows:
        print(f"{name:<40} {rate:>14,.0f} {rate / base:>10.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
