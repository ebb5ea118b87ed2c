"""RFC 9162 Merkle hashing, pinned to the Certificate Transparency reference vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from domain import merkle
from domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "merkle-ct-vectors.json").read_text()
)
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots_hex"]]
MANY = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]


def _path(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


def _mth(leaves: list[bytes]) -> bytes:
    """MTH straight from the recursive definition in RFC 9162 2.1.1, as a cross-check."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def test_the_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, len(ROOTS) + 1))
def test_the_root_of_the_first_n_reference_leaves_is_the_reference_root(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(
    "case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf_index']}@{c['tree_size']}"
)
def test_reference_inclusion_proofs_are_generated_and_verified(case: dict[str, Any]) -> None:
    index, size, expected = case["leaf_index"], case["tree_size"], _path(case["path_hex"])
    assert inclusion_proof(LEAVES, index, size) == expected
    assert verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}"
)
def test_reference_consistency_proofs_are_generated_and_verified(case: dict[str, Any]) -> None:
    first, second, expected = case["first"], case["second"], _path(case["path_hex"])
    assert consistency_proof(LEAVES, first, second) == expected
    assert verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], expected)


def test_every_inclusion_proof_of_small_trees_verifies_against_the_recursive_root() -> None:
    for size in range(1, 34):
        tree_root = _mth(MANY[:size])
        for index in range(size):
            proof = inclusion_proof(MANY, index, size)
            assert verify_inclusion(MANY[index], index, size, proof, tree_root), (index, size)


def test_every_consistency_proof_of_small_trees_verifies() -> None:
    roots = [_mth(MANY[:n]) for n in range(34)]
    for second in range(34):
        for first in range(second + 1):
            proof = consistency_proof(MANY, first, second)
            assert verify_consistency(first, second, roots[first], roots[second], proof), (
                first,
                second,
            )


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_an_inclusion_proof_with_a_wrong_sibling_is_refused() -> None:
    proof = inclusion_proof(LEAVES, 5, 8)
    for i in range(len(proof)):
        bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
        assert not verify_inclusion(LEAVES[5], 5, 8, bad, ROOTS[7])


def test_an_inclusion_proof_is_refused_for_another_leaf_index_size_or_root() -> None:
    # A size whose path has the same shape (5 of 7 vs 5 of 8) is told apart only by the
    # root; that is why a checkpoint signs the size and the root together.
    proof = inclusion_proof(LEAVES, 5, 8)
    assert not verify_inclusion(LEAVES[4], 5, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 4, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 7, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 6, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 16, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 7, proof, ROOTS[6])
    assert not verify_inclusion(LEAVES[5], 5, 8, proof, ROOTS[6])


def test_no_inclusion_proof_of_a_small_tree_passes_for_another_index() -> None:
    for size in range(1, 18):
        tree_root = root(MANY[:size])
        for index in range(size):
            proof = inclusion_proof(MANY, index, size)
            for other in set(range(size)) - {index}:
                assert not verify_inclusion(MANY[index], other, size, proof, tree_root)


def test_a_truncated_or_extended_inclusion_proof_is_refused() -> None:
    proof = inclusion_proof(LEAVES, 5, 8)
    assert not verify_inclusion(LEAVES[5], 5, 8, proof[:-1], ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 8, [], ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 8, [*proof, proof[0]], ROOTS[7])


def test_malformed_inclusion_input_is_refused_without_raising() -> None:
    proof = inclusion_proof(LEAVES, 5, 8)
    assert not verify_inclusion(LEAVES[5], -1, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 8, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(LEAVES[5][:31], 5, 8, proof, ROOTS[7])
    assert not verify_inclusion(LEAVES[5], 5, 8, [*proof[:-1], proof[-1][:16]], ROOTS[7])


def test_a_consistency_proof_with_a_wrong_node_is_refused() -> None:
    proof = consistency_proof(LEAVES, 6, 8)
    for i in range(len(proof)):
        bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
        assert not verify_consistency(6, 8, ROOTS[5], ROOTS[7], bad)


def test_a_consistency_proof_is_refused_for_other_sizes_or_roots() -> None:
    proof = consistency_proof(LEAVES, 6, 8)
    assert not verify_consistency(5, 8, ROOTS[5], ROOTS[7], proof)
    assert not verify_consistency(6, 7, ROOTS[5], ROOTS[6], proof)
    assert not verify_consistency(6, 16, ROOTS[5], ROOTS[7], proof)
    assert not verify_consistency(7, 8, ROOTS[5], ROOTS[7], proof)
    assert not verify_consistency(6, 8, ROOTS[4], ROOTS[7], proof)
    assert not verify_consistency(6, 8, ROOTS[5], ROOTS[6], proof)
    assert not verify_consistency(8, 6, ROOTS[7], ROOTS[5], proof)


def test_a_truncated_or_extended_consistency_proof_is_refused() -> None:
    for first, second in [(1, 8), (2, 5), (6, 8)]:
        proof = consistency_proof(LEAVES, first, second)
        old, new = ROOTS[first - 1], ROOTS[second - 1]
        assert not verify_consistency(first, second, old, new, proof[:-1])
        assert not verify_consistency(first, second, old, new, proof[1:])
        assert not verify_consistency(first, second, old, new, [*proof, proof[0]])
        assert not verify_consistency(first, second, old, new, [])


def test_trivial_consistency_needs_an_empty_proof_and_matching_roots() -> None:
    assert verify_consistency(8, 8, ROOTS[7], ROOTS[7], [])
    assert not verify_consistency(8, 8, ROOTS[7], ROOTS[6], [])
    assert not verify_consistency(8, 8, ROOTS[7], ROOTS[7], [ROOTS[0]])
    assert verify_consistency(0, 8, EMPTY_ROOT, ROOTS[7], [])
    assert not verify_consistency(0, 8, ROOTS[0], ROOTS[7], [])


def test_proofs_outside_the_tree_are_not_generated() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES, 8, 8)
    with pytest.raises(ValueError):
        inclusion_proof(LEAVES, 0, 9)
    with pytest.raises(ValueError):
        consistency_proof(LEAVES, 5, 4)
    with pytest.raises(ValueError):
        consistency_proof(LEAVES, 1, 9)


def test_a_short_leaf_read_fails_loudly_instead_of_giving_a_wrong_proof() -> None:
    subtree_root = merkle.subtree_roots_from(lambda start, end: LEAVES[start : end - 1])
    with pytest.raises(ValueError):
        merkle.inclusion_proof_from(subtree_root, 0, 8)


def test_proofs_hash_about_as_many_nodes_as_there_are_leaves() -> None:
    fetched: list[int] = []

    def fetch(start: int, end: int) -> list[bytes]:
        fetched.append(end - start)
        return MANY[start:end]

    subtree_root = merkle.subtree_roots_from(fetch)
    merkle.inclusion_proof_from(subtree_root, 37, 70)
    assert sum(fetched) == 69 and len(fetched) <= 7
    fetched.clear()
    merkle.consistency_proof_from(subtree_root, 37, 70)
    assert sum(fetched) <= 70 and len(fetched) <= 8


def test_the_frontier_root_equals_the_root_at_every_size() -> None:
    frontier = Frontier()
    for size in range(71):
        assert frontier.size == size
        assert frontier.root() == root(MANY[:size]) == _mth(MANY[:size])
        if size < 70:
            frontier.append(MANY[size])


def test_the_frontier_keeps_one_hash_per_binary_digit_of_its_size() -> None:
    frontier = Frontier()
    frontier.extend(MANY[:69])
    assert len(frontier.to_dict()["hashes"]) == bin(69).count("1")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 2, 7, 8, 33, 70])
def test_the_frontier_round_trips_through_its_stored_form(size: int) -> None:
    frontier = Frontier()
    frontier.extend(MANY[:size])
    stored = json.loads(json.dumps(frontier.to_dict()))
    restored = Frontier.from_dict(stored)
    assert restored == frontier and restored.root() == frontier.root()
    restored.append(MANY[0])
    frontier.append(MANY[0])
    assert restored.root() == frontier.root() == root([*MANY[:size], MANY[0]])


@pytest.mark.parametrize(
    "stored",
    [
        {"size": 3, "hashes": [MANY[0].hex()]},
        {"size": -1, "hashes": []},
        {"size": True, "hashes": [MANY[0].hex()]},
        {"size": 1, "hashes": ["zz" * 32]},
        {"size": 1, "hashes": [MANY[0].hex()[:62]]},
        {"size": 1, "hashes": [MANY[0]]},
        {"hashes": []},
    ],
)
def test_a_corrupt_stored_frontier_is_refused(stored: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Frontier.from_dict(stored)


def test_the_frontier_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError):
        Frontier().append(b"record")
