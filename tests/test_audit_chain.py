"""The audit's chain check keeps few heads in memory, yet judges as the domain's does."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.registry import Registry
from domain.seal import RawRecord, public_keys_of, verify_records
from epoa.audit_chain import ChainCheck, Heads, Scratch, stated_hash
from tests.support.people import People

Damage = Callable[[list[RawRecord]], list[RawRecord]]


def history(registry: Registry, people: People) -> list[RawRecord]:
    for case in ("CHAIN-1", "CHAIN-2", "CHAIN-1"):
        poa = registry.issue(people.issue(case_number=case)).poa
        registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
    found = registry.recorder.select_notifications(1, 1000)
    return [
        RawRecord(str(n.originator_id), n.originator_version, n.topic, n.state, n.id) for n in found
    ]


def _edit_byte(rows: list[RawRecord]) -> list[RawRecord]:
    row = rows[3]
    edited = row.state[:-5] + bytes([row.state[-5] ^ 1]) + row.state[-4:]
    return [
        *rows[:3],
        RawRecord(row.originator_id, row.version, row.topic, edited, row.position),
        *rows[4:],
    ]


DAMAGES: dict[str, Damage] = {
    "none": lambda rows: rows,
    "a middle record dropped": lambda rows: rows[:4] + rows[5:],
    "the first record dropped": lambda rows: rows[1:],
    "a byte edited": _edit_byte,
    "two records of one stream swapped": lambda rows: [rows[0], rows[4], *rows[1:4], *rows[5:]],
}


@pytest.mark.parametrize("spill_rows", [1, 1000], ids=["spilled to the file", "spilling"])
@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_with_one_head_in_memory_the_findings_are_the_domain_verifiers(
    registry: Registry, people: People, damage: Damage, spill_rows: int
) -> None:
    rows = damage(history(registry, people))
    keys = public_keys_of(registry.seal_key.public_key)
    scratch = Scratch()
    try:
        check = ChainCheck(keys, Heads(scratch, capacity=1, spill_rows=spill_rows))
        ours = [finding for row in rows for finding in check.check(row)[0]]
    finally:
        scratch.close()
    assert ours == list(verify_records(rows, keys))


def test_each_check_returns_the_record_hash_the_seal_signs(
    registry: Registry, people: People
) -> None:
    rows = history(registry, people)
    scratch = Scratch()
    try:
        check = ChainCheck(public_keys_of(registry.seal_key.public_key), Heads(scratch))
        assert [check.check(row)[1] for row in rows] == [stated_hash(row) for row in rows]
    finally:
        scratch.close()
