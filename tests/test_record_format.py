"""`docs/record-format.md` is enough to verify an export: a verifier written from that page
alone (SHA-256 and Ed25519, nothing of epoa) accepts a real export, and refuses it changed."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.registry import Registry
from epoa.audit_export import export_to
from epoa.settings import Settings
from projections.checkpoints import CheckpointLog
from projections.db import connect
from tests.support.people import People, case_event


def record_hash(record: dict[str, Any], predecessor: bytes, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (record["originator_id"], str(record["version"]), record["topic"]):
        encoded = part.encode()
        digest.update(struct.pack(">I", len(encoded)) + encoded)
    digest.update(predecessor + hashlib.sha256(body).digest())
    return digest.digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = merkle_root(leaves[:split]), merkle_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def check(lines: list[dict[str, Any]]) -> list[str]:
    """What the page's rules find wrong with an export; empty if it checks out."""
    keys: dict[str, Any] = {}
    for key in lines[0]["keys"]:
        public_key = load_pem_public_key(key["public_key_pem"].encode())
        assert isinstance(public_key, Ed25519PublicKey)
        keys[key["key_id"]] = public_key
    heads: dict[str, tuple[int, bytes]] = {}
    leaves, problems = [], []
    for record in (line for line in lines if line["type"] == "record"):
        state = base64.b64decode(record["state"])
        assert state[:4] == b"EPS1"
        key_id, predecessor, signature = state[4:12], state[12:44], state[44:108]
        digest = record_hash(record, predecessor, state[108:])
        where = f"{record['originator_id']} v{record['version']}"
        try:
            keys[key_id.hex()].verify(signature, digest)
        except InvalidSignature:
            problems.append(f"{where}: bad signature")
        version, previous = heads.get(record["originator_id"], (0, bytes(32)))
        if record["version"] != version + 1 or predecessor != previous:
            problems.append(f"{where}: broken chain")
        heads[record["originator_id"]] = (record["version"], digest)
        leaves.append(digest)
    for checkpoint in (line for line in lines if line["type"] == "checkpoint"):
        if merkle_root(leaves[: checkpoint["tree_size"]]).hex() != checkpoint["root_hash"]:
            problems.append(f"tree of size {checkpoint['tree_size']}: another root")
    return problems


@pytest.fixture
def exported(registry: Registry, people: People, settings: Settings, tmp_path: Path) -> Path:
    log = CheckpointLog(registry, settings.database_url, "epoa/format-test", every_records=1)
    db = connect(settings.database_url)
    try:
        poa = registry.issue(people.issue()).poa
        log.catch_up()
        registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
        registry.issue(people.issue())
        for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED):
            registry.record_case_event(case_event(people, kind))
        log.catch_up()
        path = tmp_path / "export.jsonl"
        export_to(path, registry, db, "epoa/format-test")
        return path
    finally:
        db.close()
        log.close()


def test_a_verifier_written_from_the_page_accepts_a_real_export(exported: Path) -> None:
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [line["type"] for line in lines[:1] + lines[-1:]] == ["header", "end"]
    assert sum(line["type"] == "checkpoint" for line in lines) >= 2
    assert check(lines) == []


def test_the_same_verifier_refuses_a_changed_body(exported: Path) -> None:
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    record = next(line for line in lines if line["type"] == "record" and line["version"] == 2)
    state = bytearray(base64.b64decode(record["state"]))
    state[-2] ^= 1
    record["state"] = base64.b64encode(bytes(state)).decode()
    problems = check(lines)
    assert f"{record['originator_id']} v2: bad signature" in problems
    assert any(problem.startswith("tree of size") for problem in problems)
