"""The sealed store on a real PostgreSQL: append-only in the database, tampering detected."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from domain.registry import Registry
from domain.seal import RawRecord, SealError, SealKey, public_keys_of, verify_records
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.people import People
from tests.support.postgres import connect, tamper

pytestmark = pytest.mark.postgres


def raw_rows(url: str) -> list[RawRecord]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state, notification_id "
            "FROM epoa_events ORDER BY notification_id"
        ).fetchall()
    return [RawRecord(str(r[0]), int(r[1]), str(r[2]), bytes(r[3]), int(r[4])) for r in rows]  # type: ignore[call-overload, arg-type]


def findings(registry: Registry, url: str) -> list[str]:
    keys = public_keys_of(registry.seal_key.public_key)
    return [f.kind for f in verify_records(raw_rows(url), keys)]


def revoked_poa(registry: Registry, people: People) -> UUID:
    poa = registry.issue(people.issue()).poa
    registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    return poa.id


@pytest.mark.parametrize(
    "statement",
    ["UPDATE epoa_events SET topic = topic", "DELETE FROM epoa_events", "TRUNCATE epoa_events"],
)
def test_the_database_itself_refuses_to_change_or_remove_event_rows(
    pg_registry: Registry, people: People, postgres_url: str, statement: str
) -> None:
    pg_registry.issue(people.issue())
    before = raw_rows(postgres_url)
    with connect(postgres_url) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute(statement)  # type: ignore[arg-type]
    assert raw_rows(postgres_url) == before


def test_states_are_stored_lz4_compressed_and_read_back_whole(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    poa = pg_registry.issue(people.issue()).poa
    with connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT pg_column_compression(state), pg_column_size(state), length(state) "
            "FROM epoa_events WHERE originator_id = %s",
            (poa.id,),
        ).fetchall()
    assert [r[0] for r in rows] == ["lz4"]
    assert int(rows[0][1]) < int(rows[0][2])  # type: ignore[call-overload]
    assert pg_registry.get_poa(poa.id).case_number == poa.case_number
    assert findings(pg_registry, postgres_url) == []


def test_an_untouched_store_verifies_clean(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    revoked_poa(pg_registry, people)
    assert findings(pg_registry, postgres_url) == []


def test_a_byte_edited_in_a_stored_event_is_detected_on_read_and_by_the_auditor(
    pg_registry: Registry, people: People, postgres_url: str, tmp_path: Path
) -> None:
    poa_id = revoked_poa(pg_registry, people)
    tamper(
        postgres_url,
        "UPDATE epoa_events SET state = overlay(state placing '\\x58'::bytea from 200 for 1) "
        "WHERE originator_id = %s AND originator_version = 1",
        poa_id,
    )
    assert "bad-seal" in findings(pg_registry, postgres_url)
    # The service keeps the copy it verified when it recorded the events; a process that
    # reads the rows (a restart, another replica) refuses them.
    assert pg_registry.get_poa(poa_id).status == "revoked"
    fresh = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    try:
        with pytest.raises(SealError):
            fresh.get_poa(poa_id)
    finally:
        fresh.close()


def test_a_seal_moved_to_another_stream_is_detected(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    first = revoked_poa(pg_registry, people)
    second = revoked_poa(pg_registry, people)
    tamper(
        postgres_url,
        "UPDATE epoa_events SET state = (SELECT state FROM epoa_events WHERE originator_id = %s "
        "AND originator_version = 2) WHERE originator_id = %s AND originator_version = 2",
        first,
        second,
    )
    assert "bad-seal" in findings(pg_registry, postgres_url)


def test_a_middle_event_deleted_is_detected(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    poa = pg_registry.issue(people.issue()).poa
    add = people.act(
        "epoa.add-attorney", poa.id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    pg_registry.add_attorney(poa.id, add)
    pg_registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    tamper(
        postgres_url,
        "DELETE FROM epoa_events WHERE originator_id = %s AND originator_version = 2",
        poa.id,
    )
    assert "version-gap" in findings(pg_registry, postgres_url)
    with pytest.raises(SealError):
        list(pg_registry.events.get(poa.id))


def test_an_event_renumbered_is_detected(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    poa_id = revoked_poa(pg_registry, people)
    tamper(
        postgres_url,
        "UPDATE epoa_events SET originator_version = 3 "
        "WHERE originator_id = %s AND originator_version = 2",
        poa_id,
    )
    assert "bad-seal" in findings(pg_registry, postgres_url)


def test_a_row_resealed_with_a_foreign_key_is_detected(
    pg_registry: Registry, people: People, postgres_url: str, tmp_path: Path
) -> None:
    poa_id = revoked_poa(pg_registry, people)
    foreign = SealKey.generate()
    key_file = tmp_path / "foreign.pem"
    key_file.write_bytes(foreign.to_pem())
    forger = build_registry(
        Settings(database_url=postgres_url, var_dir=tmp_path, seal_key=key_file)
    )
    try:
        forger.issue(people.issue(case_number="FORGED-1"))
    finally:
        forger.close()
    kinds = findings(pg_registry, postgres_url)
    assert kinds.count("unknown-key") == 4
    assert pg_registry.get_poa(poa_id).status == "revoked"


def test_the_first_event_of_a_stream_deleted_is_detected_on_read(
    pg_registry: Registry, people: People, postgres_url: str, tmp_path: Path
) -> None:
    """A stream read from its start must start at version 1, even in a process that has
    never seen it (nothing cached to link the first row it reads to)."""
    poa_id = revoked_poa(pg_registry, people)
    tamper(
        postgres_url,
        "DELETE FROM epoa_events WHERE originator_id = %s AND originator_version = 1",
        poa_id,
    )
    reader = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    try:
        with pytest.raises(SealError, match="version 1 is missing"):
            list(reader.events.get(poa_id))
        with pytest.raises(SealError, match="version 1 is missing"):
            reader.get_poa(poa_id)
    finally:
        reader.close()
