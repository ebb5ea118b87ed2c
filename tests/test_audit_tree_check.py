"""The verifier's tree check against signed tree heads, including the empty tree."""

from __future__ import annotations

from domain import merkle
from epoa.audit_merkle import Claim, TreeCheck


def leaves(count: int) -> list[bytes]:
    return [merkle.leaf_hash(bytes([n]) * 32) for n in range(count)]


def test_a_checkpoint_of_the_empty_tree_signed_before_the_first_record_matches() -> None:
    hashes = leaves(3)
    check = TreeCheck(
        [Claim(0, merkle.EMPTY_ROOT, "stored"), Claim(3, merkle.root(hashes), "stored")]
    )
    results = [result for leaf in hashes for result in check.append(leaf)]
    assert [(claim.size, ok) for claim, ok in results] == [(0, True), (3, True)]


def test_a_wrong_root_for_the_empty_tree_is_reported() -> None:
    check = TreeCheck([Claim(0, b"\x01" * 32, "witness")])
    assert [(claim.size, ok) for claim, ok in check.append(leaves(1)[0])] == [(0, False)]


def test_a_checkpoint_whose_root_differs_from_the_records_is_reported() -> None:
    hashes = leaves(4)
    check = TreeCheck([Claim(2, merkle.root(hashes[:3]), "witness")])
    results = [result for leaf in hashes for result in check.append(leaf)]
    assert [(claim.size, ok) for claim, ok in results] == [(2, False)]
