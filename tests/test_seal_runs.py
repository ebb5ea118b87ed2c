"""Reading a batch with one signature check per run of a stream: every edit of what is read
is still refused; the seals it does not check one by one are the auditor's to check."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from domain.registry import Registry
from domain.seal import (
    RawRecord,
    SealError,
    SealKey,
    open_state,
    public_keys_of,
    seal_state,
    verify_records,
)
from domain.seal_runs import open_runs
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.people import People
from tests.test_projections import dump
from tests.test_seal import TOPIC, stream


def stored(records: list[RawRecord]) -> list[StoredEvent]:
    return [StoredEvent(r.originator_id, r.version, r.topic, r.state) for r in records]


def edited(record: RawRecord, at: int) -> RawRecord:
    state = bytearray(record.state)
    state[at] ^= 0x01
    return RawRecord(record.originator_id, record.version, record.topic, bytes(state))


def test_interleaved_untouched_streams_open_with_their_bodies() -> None:
    key = SealKey.generate()
    a, b = stream(key, str(uuid.uuid4()), 3), stream(key, str(uuid.uuid4()), 2)
    records = [a[0], b[0], a[1], b[1], a[2]]
    opened = open_runs(public_keys_of(key.public_key), stored(records))
    assert [parts.body for parts, _ in opened] == [open_state(r.state).body for r in records]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_byte_edited_in_any_body_of_a_run_is_refused(index: int) -> None:
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 3)
    records[index] = edited(records[index], -2)
    with pytest.raises(SealError):
        open_runs(public_keys_of(key.public_key), stored(records))


def test_a_validly_sealed_record_of_another_history_is_refused() -> None:
    key = SealKey.generate()
    originator = str(uuid.uuid4())
    first = stream(key, originator, 1)[0]
    state, _ = seal_state(key, originator, 2, TOPIC, bytes([1]) * 32, b'{"n": 2}')
    with pytest.raises(SealError, match="does not link"):
        open_runs(
            public_keys_of(key.public_key), stored([first, RawRecord(originator, 2, TOPIC, state)])
        )


def test_a_run_ending_in_a_foreign_seal_is_refused() -> None:
    key, foreign = SealKey.generate(), SealKey.generate()
    originator = str(uuid.uuid4())
    with pytest.raises(SealError, match="unknown key"):
        open_runs(public_keys_of(key.public_key), stored(stream(foreign, originator, 2)))


@pytest.mark.parametrize("index", [0, 150, 299])
def test_a_broken_seal_anywhere_in_a_long_batch_is_refused(index: int) -> None:
    """Many streams: their seals are checked on several threads at once, and a broken one
    at the start, middle or end of the batch is caught all the same."""
    key = SealKey.generate()
    records = [stream(key, str(uuid.uuid4()), 1)[0] for _ in range(300)]
    keys = public_keys_of(key.public_key)
    assert len(open_runs(keys, stored(records))) == 300
    records[index] = edited(records[index], 4 + 8 + 32 + 10)  # a byte of the signature
    with pytest.raises(SealError, match="seal signature does not verify"):
        open_runs(keys, stored(records))


def test_a_broken_signature_inside_a_run_is_left_to_the_auditor() -> None:
    """The bytes read are vouched for by the run's newest seal; the auditor names the seal."""
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 3)
    records[1] = edited(records[1], 4 + 8 + 32 + 10)  # a byte of the signature
    opened = open_runs(public_keys_of(key.public_key), stored(records))
    assert [parts.body for parts, _ in opened] == [open_state(r.state).body for r in records]
    findings = list(verify_records(records, public_keys_of(key.public_key)))
    assert next((f.kind, f.version) for f in findings) == ("bad-seal", 2)


def test_the_projection_refuses_an_edited_record_vouched_for_by_a_later_one(
    tmp_path: Path, people: People, clock: Clock
) -> None:
    url = f"sqlite:///{tmp_path}/epoa.sqlite"
    app = build_registry(Settings(database_url=url, var_dir=tmp_path / "var"), clock=clock)
    with ProjectionRunner(app, url) as projection:
        poa = app.issue(people.issue()).poa
        app.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
        empty = dump(projection.db)
        with sqlite3.connect(tmp_path / "epoa.sqlite") as conn:
            (state,) = conn.execute(
                "SELECT state FROM stored_events "
                "WHERE originator_id = ? AND originator_version = 1",
                (poa.id.hex,),
            ).fetchone()
            forged = state[:-3] + bytes([state[-3] ^ 1]) + state[-2:]
            conn.execute(
                "UPDATE stored_events SET state = ? WHERE originator_id = ? "
                "AND originator_version = 1",
                (forged, poa.id.hex),
            )
        with pytest.raises(SealError, match="does not link"):
            projection.run_once()
        assert dump(projection.db) == empty
    app.close()


def test_batches_holding_only_records_no_read_model_uses_still_move_on(
    registry: Registry, database_url: str, people: People
) -> None:
    for _ in range(3):
        registry.issue(people.issue())
    with ProjectionRunner(registry, database_url, batch_size=1) as one_by_one:
        one_by_one.catch_up()
        assert one_by_one.position() == registry.recorder.max_notification_id()
        by_ones = dump(one_by_one.db)
        one_by_one.rebuild()
        assert dump(one_by_one.db) == by_ones


@pytest.mark.parametrize("at", ["signature", "body", "key id"])
def test_a_record_read_once_and_changed_since_is_refused_when_read_again(at: str) -> None:
    """A seal that verified is not checked again for the same bytes; a record whose bytes
    changed since (its signature, its body, the key it names) is checked afresh."""
    key, other = SealKey.generate(), SealKey.generate()
    keys = public_keys_of(key.public_key, other.public_key)
    records = stream(key, str(uuid.uuid4()), 2)
    open_runs(keys, stored(records))
    state = bytearray(records[-1].state)
    if at == "key id":  # a known key, which did not make this seal
        state[4:12] = other.key_id
    else:
        state[{"signature": 4 + 8 + 32, "body": -1}[at]] ^= 0x01
    records[-1] = RawRecord(records[-1].originator_id, 2, TOPIC, bytes(state))
    with pytest.raises(SealError):
        open_runs(keys, stored(records))
    open_runs(keys, stored(stream(key, str(uuid.uuid4()), 2)))  # others still open
