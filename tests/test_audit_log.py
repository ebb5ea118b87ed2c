"""The global audit log: gap-free leaves in log order, signed heads, tiles, one writer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

import pytest

from domain import merkle
from domain.checkpoint import verify_checkpoint
from domain.registry import Registry
from domain.seal import RawRecord, SealError
from epoa.audit_chain import stated_hash
from epoa.audit_inputs import split_notes
from epoa.audit_worker import start_checkpoint_log
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections import audit_tree
from projections.checkpoints import CheckpointLog
from projections.db import Database, connect
from tests.conftest import Clock
from tests.support.people import CASE, People

ORIGIN = "epoa/log-test"


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    connection = connect(settings.database_url)
    yield connection
    connection.close()


def new_log(registry: Registry, settings: Settings, **options: object) -> CheckpointLog:
    return CheckpointLog(registry, settings.database_url, ORIGIN, **options)  # type: ignore[arg-type]


def issue(registry: Registry, people: People, count: int) -> None:
    """Each in a case of its own: four records (POA, case opened and attached, document)."""
    for _ in range(count):
        registry.issue(people.issue(case_number=f"LOG-{uuid.uuid4().hex[:12]}"))


def rows(registry: Registry) -> list[RawRecord]:
    found = registry.recorder.select_notifications(1, 10_000)
    return [
        RawRecord(str(n.originator_id), n.originator_version, n.topic, n.state, n.id) for n in found
    ]


def test_each_record_becomes_the_next_leaf_with_its_seal_hash_in_log_order(
    registry: Registry, people: People, settings: Settings, db: Database
) -> None:
    issue(registry, people, 3)
    with new_log(registry, settings, batch_size=5) as log:
        assert log.catch_up() == 12
    leaves = list(audit_tree.leaves(db))
    assert [leaf.leaf_index for leaf in leaves] == list(range(12))
    assert [(x.position, x.record_hash) for x in leaves] == [
        (r.position, stated_hash(r)) for r in rows(registry)
    ]


def test_a_head_is_signed_each_n_records_and_appended_to_the_witness_file(
    registry: Registry, people: People, settings: Settings, db: Database, tmp_path: Path
) -> None:
    issue(registry, people, 5)
    witness = tmp_path / "witness.txt"
    with new_log(registry, settings, every_records=8, batch_size=4, witness_file=witness) as log:
        log.catch_up()
    heads = list(audit_tree.checkpoints(db))
    assert [head.tree_size for head in heads] == [4, 12, 20]
    logged = list(audit_tree.leaves(db))
    leaves = [merkle.leaf_hash(x.record_hash) for x in logged]
    key = {ORIGIN: registry.seal_key.public_key}
    for head in heads:
        checkpoint = verify_checkpoint(head.note, key, origin=ORIGIN)
        assert checkpoint.root == head.root_hash == merkle.root(leaves[: head.tree_size])
        assert head.position == logged[head.tree_size - 1].position
    assert split_notes(witness.read_text()) == [head.note for head in heads]


def test_a_head_is_signed_after_every_seconds_even_below_n_records(
    registry: Registry, people: People, settings: Settings, db: Database
) -> None:
    clock = Clock()
    issue(registry, people, 1)
    with new_log(registry, settings, every_records=1000, every_seconds=10, clock=clock) as log:
        log.catch_up()
        issue(registry, people, 1)
        log.catch_up()
        assert [h.tree_size for h in audit_tree.checkpoints(db)] == [4]
        clock.advance(seconds=11)
        assert log.run_once() == 0
        assert [h.tree_size for h in audit_tree.checkpoints(db)] == [4, 8]
        assert log.sign_now() is None  # nothing new since


def test_the_log_resumes_from_its_persisted_frontier(
    registry: Registry, people: People, settings: Settings, db: Database
) -> None:
    issue(registry, people, 2)
    with new_log(registry, settings) as log:
        log.catch_up()
    issue(registry, people, 2)
    with new_log(registry, settings) as log:
        assert log.catch_up() == 8
        log.sign_now()
    latest = audit_tree.latest_checkpoint(db)
    assert latest is not None and latest.tree_size == 16
    assert latest.root_hash == merkle.root(merkle.leaf_hash(stated_hash(r)) for r in rows(registry))


def test_two_writers_never_log_a_record_twice(
    registry: Registry, people: People, settings: Settings, db: Database
) -> None:
    issue(registry, people, 4)
    with new_log(registry, settings, batch_size=3) as one, new_log(registry, settings) as two:
        while one.run_once() + two.run_once():
            pass
        one.catch_up()
    positions = [leaf.position for leaf in audit_tree.leaves(db)]
    assert positions == [r.position for r in rows(registry)]


def test_the_origin_of_a_log_never_changes(registry: Registry, settings: Settings) -> None:
    new_log(registry, settings).close()
    with pytest.raises(ValueError, match="origin"):
        CheckpointLog(registry, settings.database_url, "epoa/another")


def test_the_log_stops_at_a_record_whose_seal_fails(people: People, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/e.sqlite", var_dir=tmp_path / "var")
    registry = build_registry(settings)
    issue(registry, people, 1)
    db = connect(settings.database_url)
    (state,) = db.fetch("SELECT state FROM stored_events WHERE rowid = 2")[0]
    edited = state[:150] + bytes([state[150] ^ 1]) + state[151:]
    db.execute("UPDATE stored_events SET state = ? WHERE rowid = 2", (edited,))
    with new_log(registry, settings) as log, pytest.raises(SealError, match="position 2"):
        log.run_once()
    assert audit_tree.tree_size(db) == 0
    db.close()
    registry.close()


def edit_audit_tables(db: Database, edited: str) -> None:
    other = merkle.Frontier()
    other.extend([bytes(32)] * audit_tree.tree_size(db))
    with db.transaction():
        if edited == "frontier":
            db.execute("UPDATE audit_log_state SET frontier = ?", (json.dumps(other.to_dict()),))
        elif edited == "tile":
            db.execute("UPDATE audit_nodes SET hash = ? WHERE level = 8", ("0" * 64,))
        else:
            db.execute("UPDATE audit_checkpoints SET position = position - 4")


def records_root(registry: Registry) -> bytes:
    tree = merkle.Frontier()
    tree.extend(merkle.leaf_hash(stated_hash(r)) for r in rows(registry))
    return tree.root()


@pytest.mark.parametrize("edited", ["frontier", "tile", "head position"])
def test_the_log_signs_no_head_over_a_tree_its_tables_were_edited_into(
    registry: Registry,
    people: People,
    settings: Settings,
    db: Database,
    tmp_path: Path,
    edited: str,
) -> None:
    """Only the signed heads and the records are believed: a tree row, a tile or a head's
    position edited would have the seal key sign (and the witness keep) a head over a tree
    that is not the records'. A writer started after the edit cannot prove the tree, and
    signs nothing; the writer that made the tree signs over it, the records' own, unless
    its stored state is no longer that tree."""
    witness = tmp_path / "witness.txt"
    with new_log(registry, settings, every_records=1, witness_file=witness) as log:
        issue(registry, people, 70)
        log.catch_up()
    signed = witness.read_text()
    edit_audit_tables(db, edited)
    issue(registry, people, 1)
    with (
        new_log(registry, settings, every_records=1, witness_file=witness) as log,
        pytest.raises(SealError, match="no head signed"),
    ):
        log.run_once()
    assert witness.read_text() == signed
    assert audit_tree.tree_size(db) == 70 * 4


@pytest.mark.parametrize("edited", ["frontier", "tile", "head position"])
def test_the_writer_that_made_the_tree_signs_only_the_records_tree_after_an_edit(
    registry: Registry,
    people: People,
    settings: Settings,
    db: Database,
    tmp_path: Path,
    edited: str,
) -> None:
    witness = tmp_path / "witness.txt"
    with new_log(registry, settings, every_records=1, witness_file=witness) as log:
        issue(registry, people, 70)
        log.catch_up()
        signed = witness.read_text()
        edit_audit_tables(db, edited)
        issue(registry, people, 1)
        if edited == "frontier":
            with pytest.raises(SealError, match="no head signed"):
                log.run_once()
            assert witness.read_text() == signed
            return
        log.catch_up()
    keys = {ORIGIN: list(registry.sealed_mapper.public_keys.values())}
    newest = verify_checkpoint(split_notes(witness.read_text())[-1], keys, origin=ORIGIN)
    assert newest.size == 71 * 4 and newest.root == records_root(registry)


def test_a_writer_signs_heads_over_its_own_tree_without_reading_the_records_again(
    registry: Registry, people: People, settings: Settings, tmp_path: Path
) -> None:
    """Proving the tree reads every record since the newest head again: the writer does it
    once, not for each head, while the stored tree is still the one it made."""
    witness = tmp_path / "witness.txt"
    with new_log(registry, settings, every_records=4, witness_file=witness) as log:
        issue(registry, people, 2)
        log.catch_up()
        with patch.object(log, "_proven", wraps=log._proven) as proving:
            for _ in range(5):
                issue(registry, people, 1)
                log.catch_up()
    assert len(split_notes(witness.read_text())) == 1 + 5  # 8 records at first, then 4 each
    assert proving.call_count == 0


def test_stored_tiles_give_the_same_proofs_as_every_leaf(tmp_path: Path) -> None:
    """Levels 8 and 16 exist once the tree passes 65,536 leaves."""
    db = connect(f"sqlite:///{tmp_path}/tiles.sqlite")
    db.create(audit_tree.DDL)
    size = 65_536 + 700
    hashes = [i.to_bytes(32, "big") for i in range(size)]
    with db.transaction():
        db.insert(
            "audit_leaves",
            ("leaf_index", "position", "originator_id", "version", "record_hash"),
            [(i, i + 1, "x", 1, h.hex()) for i, h in enumerate(hashes)],
        )
        audit_tree.store_tiles(db, 0, 300)
        audit_tree.store_tiles(db, 300, size)
    levels: dict[int, int] = dict(
        db.fetch("SELECT level, count(*) FROM audit_nodes GROUP BY level")
    )
    assert levels == {8: size // 256, 16: 1}
    leaves = [merkle.leaf_hash(h) for h in hashes]
    tiled = audit_tree.subtree_roots(db)
    for tree, index in ((size, 65_540), (size, 3), (65_536, 65_535), (66_000, 12_345)):
        assert merkle.inclusion_proof_from(tiled, index, tree) == merkle.inclusion_proof(
            leaves, index, tree
        )
    for first, second in ((65_536, size), (1000, 65_537), (300, 65_536)):
        assert merkle.consistency_proof_from(tiled, first, second) == merkle.consistency_proof(
            leaves, first, second
        )
    db.close()


def test_the_log_started_beside_the_service_signs_a_head_in_the_background(
    registry: Registry, people: People, settings: Settings, db: Database
) -> None:
    issue(registry, people, 1)
    running = start_checkpoint_log(settings, registry, poll_interval=0.01)
    try:
        deadline = time.monotonic() + 10
        while audit_tree.latest_checkpoint(db) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        running.close()
    latest = audit_tree.latest_checkpoint(db)
    assert latest is not None and latest.tree_size == 4
    assert datetime.fromisoformat(latest.signed_at) <= datetime.now(UTC)
    assert not any(t.name == "epoa-checkpoints" for t in threading.enumerate())


def test_the_log_names_a_record_edited_in_the_middle_of_its_stream(
    people: People, tmp_path: Path
) -> None:
    """The case's second record is edited; its later ones, in the same batch, still link to
    the original: the log stops and names the edited record, not the batch or the newest."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/e.sqlite", var_dir=tmp_path / "var")
    registry = build_registry(settings)
    for _ in range(3):
        registry.issue(people.issue())
    case_id = str(registry.get_case(CASE).id).replace("-", "")
    db = connect(settings.database_url)
    found = db.fetch(
        "SELECT rowid, state FROM stored_events WHERE originator_id = ? AND originator_version = 2",
        (case_id,),
    )
    (rowid, state) = found[0]
    edited = state[:150] + bytes([state[150] ^ 1]) + state[151:]
    db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, rowid))
    with new_log(registry, settings) as log, pytest.raises(SealError, match=f"position {rowid}:"):
        log.run_once()
    assert audit_tree.tree_size(db) == 0
    db.close()
    registry.close()
