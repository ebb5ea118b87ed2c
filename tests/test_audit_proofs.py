"""Inclusion and consistency proofs from the audit log, checked offline with public keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.errors import InvalidInputError, NotFoundError
from domain.registry import Registry
from domain.seal import SealKey
from epoa.audit_proofs import (
    ProofError,
    record_hash_of,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from epoa.settings import Settings
from projections import audit_tree
from projections.checkpoints import CheckpointLog
from projections.db import Database, connect
from tests.support.people import People

ORIGIN = "epoa/proof-test"


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    connection = connect(settings.database_url)
    yield connection
    connection.close()


@pytest.fixture
def logged(registry: Registry, people: People, settings: Settings) -> Iterator[CheckpointLog]:
    """Two heads: one over the first POA's records, one over all three POAs'."""
    log = CheckpointLog(registry, settings.database_url, ORIGIN, every_records=1)
    registry.issue(people.issue(case_number="PROOF-1"))
    log.catch_up()
    registry.issue(people.issue(case_number="PROOF-2"))
    registry.issue(people.issue(case_number="PROOF-3"))
    log.catch_up()
    yield log
    log.close()


def test_a_record_read_from_the_store_is_proven_in_the_latest_checkpoint(
    registry: Registry, logged: CheckpointLog, db: Database
) -> None:
    row = registry.recorder.select_notifications(6, 1)[0]
    proof = audit_tree.inclusion(db, 6, None)
    assert (proof["tree_size"], proof["leaf_index"], proof["position"]) == (12, 5, 6)
    own = record_hash_of(str(row.originator_id), row.originator_version, row.topic, row.state)
    keys = [registry.seal_key.public_key]
    checkpoint = verify_inclusion_proof(proof, keys, record_hash=own, origin=ORIGIN)
    assert checkpoint.size == 12


def test_a_proof_does_not_pass_for_another_record_key_path_or_log(
    registry: Registry, logged: CheckpointLog, db: Database
) -> None:
    proof = audit_tree.inclusion(db, 6, None)
    keys = [registry.seal_key.public_key]
    with pytest.raises(ProofError, match="another record"):
        verify_inclusion_proof(proof, keys, record_hash=bytes(32))
    with pytest.raises(ProofError, match="trusted key"):
        verify_inclusion_proof(proof, [SealKey.generate().public_key])
    bent = {**proof, "audit_path": [proof["audit_path"][0][::-1], *proof["audit_path"][1:]]}
    with pytest.raises(ProofError, match="not in the tree"):
        verify_inclusion_proof(bent, keys)
    with pytest.raises(ProofError, match="expected"):
        verify_inclusion_proof(proof, keys, origin="epoa/another-log")


def test_a_record_is_proven_in_an_older_tree_against_that_trees_note(
    registry: Registry, logged: CheckpointLog, db: Database
) -> None:
    proof = audit_tree.inclusion(db, 2, 4)
    assert proof["checkpoint"] is not None
    verify_inclusion_proof(proof, [registry.seal_key.public_key])
    latest = audit_tree.latest_checkpoint(db)
    assert latest is not None
    with pytest.raises(ProofError, match="tree of 4"):
        verify_inclusion_proof(proof, [registry.seal_key.public_key], note=latest.note)


def test_the_latest_checkpoint_provably_extends_an_older_one(
    registry: Registry, logged: CheckpointLog, db: Database
) -> None:
    first = audit_tree.checkpoint_of_size(db, 4)
    assert first is not None
    proof = audit_tree.consistency(db, 4, None)
    keys = [registry.seal_key.public_key]
    older, newer = verify_consistency_proof(proof, keys, first_note=first.note)
    assert (older.size, newer.size) == (4, 12)
    swapped = {**proof, "consistency_path": list(reversed(proof["consistency_path"]))}
    with pytest.raises(ProofError, match="does not extend"):
        verify_consistency_proof(swapped, keys, first_note=first.note)
    # Sizes that are no numbers are a proof that does not hold, not a ValueError.
    for first_size in ("four", None, [4]):
        with pytest.raises(ProofError, match="other tree sizes"):
            verify_consistency_proof({**proof, "first": first_size}, keys, first_note=first.note)


def test_a_proof_of_something_the_log_does_not_hold_is_refused(
    logged: CheckpointLog, db: Database
) -> None:
    with pytest.raises(NotFoundError):
        audit_tree.inclusion(db, 999, None)
    with pytest.raises(InvalidInputError):
        audit_tree.inclusion(db, 2, 13)
    with pytest.raises(InvalidInputError, match="leaf 5, outside the tree of size 4: ask for"):
        audit_tree.inclusion(db, 6, 4)  # no tree of size 4 will ever hold leaf 5
    with pytest.raises(InvalidInputError):
        audit_tree.consistency(db, 12, 4)


def test_without_any_checkpoint_there_is_no_latest_one(settings: Settings, db: Database) -> None:
    assert audit_tree.latest_checkpoint(db) is None
    with pytest.raises(NotFoundError, match="no checkpoint"):
        audit_tree.inclusion(db, 1, None)
