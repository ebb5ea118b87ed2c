"""Tampering with a real PostgreSQL store, one way per test, each found and named by
`epoa audit verify`.

`tamper()` does what a database administrator can: switch the append-only triggers off and
edit rows. Without the seal key no forged row passes a seal; so the cases that need the
global checkpoints are those that leave every remaining row genuine (a record deleted at the
end of its stream, a stream deleted whole, the log cut short, two records swapped, the
database restored from an older copy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives import serialization

from domain.court_case import CourtCase
from domain.seal import GENESIS, Finding, SealKey, open_state, seal_state
from epoa.audit_proofs import ProofError, verify_inclusion_proof
from epoa.settings import Settings
from projections import audit_tree
from tests.support.people import People
from tests.support.postgres import connect, tamper
from tests.test_audit_verify import ORIGIN, Audited, Story, verify

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(postgres_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=postgres_url, var_dir=tmp_path / "var")


def position(url: str, originator_id: UUID | str, version: int) -> int:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT notification_id FROM epoa_events "
            "WHERE originator_id = %s AND originator_version = %s",
            (originator_id, version),
        ).fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, int)
    return value


def named(found: list[Finding]) -> set[tuple[str, str, int, int | None]]:
    return {(f.kind, f.originator_id, f.version, f.position) for f in found}


def test_an_untouched_store_verifies_clean(audited: Audited, people: People, story: Story) -> None:
    result, found = verify(audited, people, witness=audited.witness)
    assert found == [] and result.intact


def test_a_byte_edited_is_a_bad_seal(audited: Audited, people: People, story: Story) -> None:
    at = position(audited.url, story.revoked, 1)
    tamper(
        audited.url,
        "UPDATE epoa_events SET state = overlay(state placing '\\x58'::bytea from 300 for 1) "
        "WHERE notification_id = %s",
        at,
    )
    _, found = verify(audited, people)
    assert ("bad-seal", str(story.revoked), 1, at) in named(found)
    assert ("record-changed", str(story.revoked), 1, at) in named(found)


def test_a_seal_moved_to_another_row_is_a_bad_seal(
    audited: Audited, people: People, story: Story
) -> None:
    source, target = (
        position(audited.url, story.revoked, 2),
        position(audited.url, story.changed, 2),
    )
    tamper(
        audited.url,
        "UPDATE epoa_events SET state = (SELECT state FROM epoa_events WHERE notification_id = %s)"
        " WHERE notification_id = %s",
        source,
        target,
    )
    _, found = verify(audited, people)
    assert ("bad-seal", str(story.changed), 2, target) in named(found)


def test_a_middle_event_deleted_is_a_version_gap_and_a_missing_record(
    audited: Audited, people: People, story: Story
) -> None:
    gone = position(audited.url, story.changed, 2)
    tamper(audited.url, "DELETE FROM epoa_events WHERE notification_id = %s", gone)
    _, found = verify(audited, people)
    third = position(audited.url, story.changed, 3)
    assert ("version-gap", str(story.changed), 3, third) in named(found)
    assert ("record-missing", str(story.changed), 2, gone) in named(found)


def test_the_newest_event_of_a_stream_deleted_is_caught_by_the_checkpoint(
    audited: Audited, people: People, story: Story
) -> None:
    gone = position(audited.url, story.revoked, 2)
    tamper(audited.url, "DELETE FROM epoa_events WHERE notification_id = %s", gone)
    _, found = verify(audited, people)
    assert ("record-missing", str(story.revoked), 2, gone) in named(found)
    assert {f.kind for f in found} == {"record-missing", "records-removed"}


def test_a_whole_stream_deleted_is_named_record_by_record(
    audited: Audited, people: People, story: Story
) -> None:
    first, second = (position(audited.url, story.revoked, v) for v in (1, 2))
    tamper(audited.url, "DELETE FROM epoa_events WHERE originator_id = %s", story.revoked)
    _, found = verify(audited, people)
    assert {("record-missing", str(story.revoked), 1, first)} <= named(found)
    assert {("record-missing", str(story.revoked), 2, second)} <= named(found)
    case_id = str(CourtCase.create_id("CASE-A"))
    assert any(f.kind == "stream-missing" and f.originator_id == case_id for f in found)


def test_the_tail_of_the_log_truncated_is_caught_by_the_checkpoint(
    audited: Audited, people: People, story: Story
) -> None:
    last = audited.registry.recorder.max_notification_id()
    assert last is not None
    tamper(audited.url, "DELETE FROM epoa_events WHERE notification_id > %s", last - 3)
    _, found = verify(audited, people)
    missing = sorted(f.position or 0 for f in found if f.kind == "record-missing")
    assert missing == [last - 2, last - 1, last]
    assert [f.position for f in found if f.kind == "records-removed"] == [last - 3]


def test_two_events_of_different_streams_swapped_are_caught_by_the_checkpoint(
    audited: Audited, people: People, story: Story
) -> None:
    x, y = position(audited.url, story.revoked, 2), position(audited.url, story.changed, 1)
    assert x < y
    swap = "UPDATE epoa_events SET notification_id = %s WHERE notification_id = %s"
    for new, old in ((-1, x), (x, y), (y, -1)):
        tamper(audited.url, swap, new, old)
    _, found = verify(audited, people)
    assert named(found) >= {
        ("record-changed", str(story.changed), 1, x),
        ("record-changed", str(story.revoked), 2, y),
    }
    assert {f.kind for f in found} == {"record-changed", "checkpoint-mismatch"}


def test_a_row_resealed_with_a_foreign_key_has_an_unknown_key(
    audited: Audited, people: People, story: Story
) -> None:
    at = position(audited.url, story.revoked, 2)
    with connect(audited.url) as conn:
        row = conn.execute("SELECT topic, state FROM epoa_events WHERE notification_id = %s", (at,))
        topic, state = row.fetchone()  # type: ignore[misc]
    opened = open_state(bytes(state))  # type: ignore[arg-type]
    forged, _ = seal_state(
        SealKey.generate(), story.revoked, 2, str(topic), opened.predecessor, opened.body
    )
    tamper(audited.url, "UPDATE epoa_events SET state = %s WHERE notification_id = %s", forged, at)
    _, found = verify(audited, people)
    assert ("unknown-key", str(story.revoked), 2, at) in named(found)


def test_evidence_replaced_and_resealed_by_an_insider_is_caught_by_the_evidence_check(
    audited: Audited, people: People, story: Story
) -> None:
    """An insider with the seal key re-seals a POA's only record, whose evidence now is a
    document validly signed by someone else. Seal and chain hold; had a checkpoint covered
    the record, it would not match; here none has yet, so only the evidence check sees it."""
    registry = audited.registry
    poa = registry.issue(people.issue(case_number="CASE-F")).poa
    at = position(audited.url, poa.id, 1)
    with connect(audited.url) as conn:
        row = conn.execute("SELECT topic, state FROM epoa_events WHERE notification_id = %s", (at,))
        topic, state = row.fetchone()  # type: ignore[misc]
    transcoder = registry.sealed_mapper.transcoder
    body: dict[str, Any] = transcoder.decode(open_state(bytes(state)).body)  # type: ignore[arg-type]
    document = people.issue_document(case_number="CASE-F")
    body["evidence"] = people.sign(document, people.attorney).as_record()
    forged, _ = seal_state(
        registry.seal_key, poa.id, 1, str(topic), GENESIS, transcoder.encode(body)
    )
    tamper(audited.url, "UPDATE epoa_events SET state = %s WHERE notification_id = %s", forged, at)
    _, found = verify(audited, people)
    assert [(f.kind, f.originator_id, f.version, f.position) for f in found] == [
        ("evidence-mismatch", str(poa.id), 1, at)
    ]
    assert people.attorney.iin in found[0].detail


def test_a_poa_whose_termination_was_deleted_outlives_its_case(
    audited: Audited, people: People, story: Story
) -> None:
    gone = position(audited.url, story.concluded, 2)
    tamper(audited.url, "DELETE FROM epoa_events WHERE notification_id = %s", gone)
    _, found = verify(audited, people)
    assert ("record-missing", str(story.concluded), 2, gone) in named(found)
    assert any(
        f.kind == "poa-outlived-case" and f.originator_id == str(story.concluded) for f in found
    )


def test_the_audit_logs_own_rows_edited_are_caught_by_its_signed_heads(
    audited: Audited, people: People, story: Story
) -> None:
    at = position(audited.url, story.revoked, 2)
    with connect(audited.url) as conn:
        conn.execute("UPDATE audit_leaves SET record_hash = %s WHERE position = %s", ("0" * 64, at))
    _, found = verify(audited, people)
    assert ("record-changed", str(story.revoked), 2, at) in named(found)
    assert {f.kind for f in found} == {"audit-log-edited", "record-changed"}
    with connect(audited.url) as conn:
        conn.execute("UPDATE audit_checkpoints SET note = replace(note, 'epoa/', 'epoa//')")
    _, found = verify(audited, people)
    assert "bad-checkpoint" in {f.kind for f in found}


def test_a_store_rolled_back_to_an_older_consistent_copy_is_caught_only_by_what_was_kept_outside(
    audited: Audited, people: People, story: Story, tmp_path: Path
) -> None:
    with connect(audited.url) as conn:
        kept = conn.execute("SELECT origin, position, frontier FROM audit_log_state").fetchone()
    assert kept is not None
    older = audited.registry.recorder.max_notification_id()
    later = audited.registry.issue(people.issue(case_number="CASE-G"))
    assert later.receipt is not None
    audited.receipts[:] = [later.receipt]
    audited.log.catch_up()
    receipts = audited.receipts_file(tmp_path / "receipts.jsonl")
    rollback(audited.url, int(older or 0), kept)
    result, found = verify(audited, people)
    assert found == [] and result.intact  # consistent: every remaining row and head is genuine
    _, found = verify(audited, people, witness=audited.witness)
    assert [f.kind for f in found] == ["records-removed"]
    _, found = verify(audited, people, receipts=receipts)
    issued = later.receipt["records"][0]
    assert ("receipted-record-missing", str(later.poa.id), 1, issued["position"]) in named(found)
    assert {f.kind for f in found} == {"receipted-record-missing"}


def rollback(url: str, last: int, state: tuple[object, ...]) -> None:
    """Restore the store as it was at position `last`: events, audit log and its state."""
    tamper(url, "DELETE FROM epoa_events WHERE notification_id > %s", last)
    with connect(url) as conn:
        conn.execute("DELETE FROM audit_leaves WHERE position > %s", (last,))
        conn.execute("DELETE FROM audit_checkpoints WHERE position > %s", (last,))
        conn.execute("DELETE FROM audit_nodes")
        conn.execute(
            "UPDATE audit_log_state SET origin = %s, position = %s, frontier = %s",
            state,
        )


def test_the_command_line_exits_1_and_names_the_damage_in_json_lines(
    audited: Audited, people: People, story: Story, tmp_path: Path
) -> None:
    gone = position(audited.url, story.revoked, 2)
    tamper(audited.url, "DELETE FROM epoa_events WHERE notification_id = %s", gone)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    env = {
        **os.environ,
        "EPOA_DATABASE_URL": audited.url,
        "EPOA_VAR_DIR": str(tmp_path / "var"),
        "EPOA_TRUSTED_CA": str(ca),
    }
    epoa = Path(sys.executable).parent / "epoa"
    run = subprocess.run(
        [str(epoa), "audit", "verify", "--json", "--witness", str(audited.witness)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert {
        "kind": "record-missing",
        "originator_id": str(story.revoked),
        "version": 2,
        "position": gone,
    }.items() <= lines[0].items()
    assert lines[-1]["intact"] is False
    assert lines[-1]["kinds"] == {"record-missing": 1, "records-removed": 2}


def test_a_tile_of_the_audit_log_edited_is_named_since_every_proof_through_it_fails(
    audited: Audited, people: People, story: Story
) -> None:
    """Proofs are built from the stored tiles (a node per 256 leaves): one edited makes
    every proof through it fail, though the leaves and the heads still agree."""
    for number in range(64):
        audited.registry.issue(people.issue(case_number=f"CASE-T{number}"))
    audited.log.catch_up()
    with connect(audited.url) as conn:
        conn.execute(
            "UPDATE audit_nodes SET hash = %s WHERE level = 8 AND node_index = 0", ("0" * 64,)
        )
    later = next(leaf for leaf in audit_tree.leaves(audited.db) if leaf.leaf_index == 260)
    proof = audit_tree.inclusion(audited.db, later.position, None)
    with pytest.raises(ProofError):
        verify_inclusion_proof(proof, [audited.registry.seal_key.public_key], origin=ORIGIN)
    _, found = verify(audited, people)
    assert [(f.kind, f.position) for f in found] == [("audit-log-edited", 256)]
    assert "tile 0 of level 8 (leaves 0 to 255) is not the one its leaves make" in found[0].detail
    with connect(audited.url) as conn:
        conn.execute("DELETE FROM audit_nodes WHERE level = 8 AND node_index = 0")
    _, found = verify(audited, people)
    assert [(f.kind, f.position) for f in found] == [("audit-log-edited", 256)]
    assert "tile 0 of level 8 (leaves 0 to 255) is missing" in found[0].detail


def test_a_record_moved_before_the_first_position_is_named_though_its_stream_still_reads_it(
    audited: Audited, people: People, story: Story
) -> None:
    """Positions start at 1: a row moved (or inserted) below that is never read by a reader
    of the log, the audit's pass included, while every read of its stream still uses it."""
    poa = audited.registry.issue(people.issue(case_number="CASE-H")).poa
    audited.registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    at = position(audited.url, poa.id, 2)
    tamper(
        audited.url, "UPDATE epoa_events SET notification_id = -5 WHERE notification_id = %s", at
    )
    _, found = verify(audited, people)
    assert named(found) == {("record-outside-log", str(poa.id), 2, -5)}
    assert "before the log's first position" in found[0].detail
