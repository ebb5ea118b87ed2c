"""Seals on raw records: every kind of tampering the per-stream chain can catch is caught."""

from __future__ import annotations

import uuid

from domain.seal import (
    GENESIS,
    RawRecord,
    SealKey,
    open_state,
    public_keys_of,
    seal_state,
    verify_records,
)

TOPIC = "domain.power_of_attorney:PowerOfAttorney.Issued"


def stream(key: SealKey, originator: str, count: int, start: int = 1) -> list[RawRecord]:
    records, predecessor = [], GENESIS
    for version in range(start, start + count):
        body = f'{{"n": {version}}}'.encode()
        state, predecessor = seal_state(key, originator, version, TOPIC, predecessor, body)
        records.append(RawRecord(originator, version, TOPIC, state, position=version))
    return records


def kinds(records: list[RawRecord], key: SealKey) -> list[str]:
    return [f.kind for f in verify_records(records, public_keys_of(key.public_key))]


def test_an_untouched_stream_verifies_clean() -> None:
    key = SealKey.generate()
    assert kinds(stream(key, str(uuid.uuid4()), 5), key) == []


def test_a_byte_edited_in_a_body_breaks_the_seal() -> None:
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 3)
    edited = bytearray(records[1].state)
    edited[-2] ^= 0x01
    records[1] = RawRecord(records[1].originator_id, 2, TOPIC, bytes(edited))
    assert kinds(records, key) == ["bad-seal", "missing-predecessor"]


def test_a_seal_copied_to_another_stream_is_refused() -> None:
    key = SealKey.generate()
    original = stream(key, str(uuid.uuid4()), 1)[0]
    moved = RawRecord(str(uuid.uuid4()), 1, TOPIC, original.state)
    assert kinds([moved], key) == ["bad-seal"]


def test_a_record_renumbered_is_refused() -> None:
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 3)
    renumbered = RawRecord(records[2].originator_id, 4, TOPIC, records[2].state)
    assert kinds([*records[:2], renumbered], key) == ["bad-seal"]


def test_a_middle_record_deleted_breaks_the_chain() -> None:
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 4)
    assert kinds([records[0], records[1], records[3]], key) == ["version-gap"]


def test_a_stream_cut_at_its_start_is_named() -> None:
    key = SealKey.generate()
    records = stream(key, str(uuid.uuid4()), 3)
    assert kinds(records[1:], key) == ["missing-predecessor"]


def test_a_record_resealed_with_a_foreign_key_is_refused() -> None:
    key, foreign = SealKey.generate(), SealKey.generate()
    originator = str(uuid.uuid4())
    records = stream(key, originator, 2)
    forged = stream(foreign, originator, 2)
    assert kinds([records[0], forged[1]], key) == ["unknown-key"]


def test_a_retired_key_still_verifies_its_records() -> None:
    old, new = SealKey.generate(), SealKey.generate()
    originator = str(uuid.uuid4())
    first = stream(old, originator, 1)[0]
    _, first_hash = seal_state(old, originator, 1, TOPIC, GENESIS, open_state(first.state).body)
    state, _ = seal_state(new, originator, 2, TOPIC, first_hash, b'{"n": 2}')
    second = RawRecord(originator, 2, TOPIC, state)
    keys = public_keys_of(old.public_key, new.public_key)
    assert list(verify_records([first, second], keys)) == []


def test_two_records_swapped_are_refused() -> None:
    key = SealKey.generate()
    originator = str(uuid.uuid4())
    a, b = stream(key, originator, 2)
    swapped = [RawRecord(originator, 1, TOPIC, b.state), RawRecord(originator, 2, TOPIC, a.state)]
    assert kinds(swapped, key) == ["bad-seal", "bad-seal"]


def test_seals_are_the_rfc_8032_signatures_any_ed25519_tool_checks() -> None:
    """A seal made before libsodium made them (OpenSSL's) verifies, and an auditor's
    OpenSSL verifies libsodium's: the stored history does not depend on the library."""
    key = SealKey.generate()
    originator = str(uuid.uuid4())
    body = b'{"n": 1}'
    state, digest = seal_state(key, originator, 1, TOPIC, GENESIS, body)
    key.public_key.verify(open_state(state).signature, digest)  # OpenSSL; raises if not
    by_openssl = b"EPS1" + key.key_id + GENESIS + key.private_key.sign(digest) + body
    assert by_openssl == state
    other = SealKey.generate()
    assert kinds([RawRecord(originator, 1, TOPIC, state)], key) == []
    assert [
        f.detail
        for f in verify_records(
            [RawRecord(originator, 1, TOPIC, state)], {key.key_id: other.public_key}
        )
    ] == ["seal signature does not verify"]
