"""An auditor recomputes record hashes and leaves from the HTTP answers alone, by
`docs/record-format.md` (SHA-256 and Ed25519, nothing of epoa): the events of a POA, and
any record of the log through its inclusion proof, the records of cases and of accepted
documents included, which no other answer shows."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from epoa.audit_proofs import ProofError, verify_inclusion_proof
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.checkpoints import CheckpointLog
from tests.support.api import api_settings, auth, cloud_event, issue, running
from tests.support.people import People

COURT = auth("court")
HEADER = 4 + 8 + 32 + 64


@pytest.fixture
def settings(tmp_path: Path, people: People) -> Settings:
    return api_settings(f"sqlite:///{tmp_path}/epoa.sqlite", tmp_path, people)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings, run_checkpoints=False) as client:
        yield client


@pytest.fixture
def log(settings: Settings, client: TestClient) -> Iterator[CheckpointLog]:
    registry = build_registry(settings)
    log = CheckpointLog(registry, settings.database_url, "epoa/records-test", every_records=1)
    yield log
    log.close()
    registry.close()


def seal_keys(client: TestClient) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for key in client.get("/v1/audit/keys").json()["keys"]:
        public_key = load_pem_public_key(key["public_key_pem"].encode())
        assert isinstance(public_key, Ed25519PublicKey)
        keys[key["key_id"]] = public_key
    return keys


def recomputed(originator_id: str, version: int, topic: str, state_b64: str) -> tuple[bytes, ...]:
    """(record hash, predecessor, key id, signature) from a record's state, by the page."""
    state = base64.b64decode(state_b64)
    assert state[:4] == b"EPS1"
    key_id, predecessor, signature, body = state[4:12], state[12:44], state[44:108], state[108:]
    digest = hashlib.sha256()
    for part in (originator_id, str(version), topic):
        digest.update(struct.pack(">I", len(part.encode())) + part.encode())
    digest.update(predecessor + hashlib.sha256(body).digest())
    return digest.digest(), predecessor, key_id, signature


def leaf_root(index: int, size: int, leaf: bytes, path: list[str]) -> bytes:
    """The root an RFC 9162 inclusion path leads to (section 2.1.3.2)."""
    node, fn, sn = hashlib.sha256(b"\x00" + leaf).digest(), index, size - 1
    for sibling in (bytes.fromhex(p) for p in path):
        if fn & 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return node


def test_each_sealed_event_carries_the_state_its_record_hash_is_computed_from(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people, "REC-1")
    keys = seal_keys(client)
    events = client.get(f"/v1/powers-of-attorney/{poa['poa_id']}/events", headers=COURT).json()
    receipted = {
        r["version"]: r["record_hash"]
        for r in poa["receipt"]["records"]
        if r["originator_id"] == poa["poa_id"]
    }
    for event in events:
        seal = event["seal"]
        digest, predecessor, key_id, signature = recomputed(
            poa["poa_id"], event["version"], event["topic"], event["state"]
        )
        assert digest.hex() == seal["record_hash"] == receipted[event["version"]]
        assert predecessor.hex() == seal["predecessor"] and key_id.hex() == seal["key_id"]
        keys[key_id.hex()].verify(signature, digest)


def test_an_inclusion_proof_carries_the_record_its_leaf_stands_for(
    client: TestClient, log: CheckpointLog, people: People
) -> None:
    poa = issue(client, people, "REC-2")
    log.catch_up()
    keys = seal_keys(client)
    root = bytes.fromhex(client.get("/v1/audit/checkpoints/latest").json()["root_hash"])
    topics = []
    for record in poa["receipt"]["records"]:
        response = client.get(
            "/v1/audit/proofs/inclusion", params={"position": record["position"]}, headers=COURT
        )
        assert response.status_code == 200, response.text
        proof = response.json()
        digest, _, key_id, signature = recomputed(
            proof["originator_id"], proof["version"], proof["topic"], proof["state"]
        )
        assert digest.hex() == proof["record_hash"] == record["record_hash"]
        keys[key_id.hex()].verify(signature, digest)
        path = proof["audit_path"]
        assert leaf_root(proof["leaf_index"], proof["tree_size"], digest, path) == root
        topics.append(proof["topic"].rsplit(":", 1)[1])
    assert topics == [
        "PowerOfAttorney.Issued",
        "CourtCase.Opened",
        "CourtCase.PowerOfAttorneyAttached",
        "AcceptedDocument.Accepted",
    ]


def test_a_proof_of_a_record_the_store_no_longer_holds_is_an_integrity_problem(
    client: TestClient, log: CheckpointLog, people: People, settings: Settings
) -> None:
    poa = issue(client, people, "REC-3")
    log.catch_up()
    first = poa["receipt"]["records"][0]
    path = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM stored_events WHERE rowid = ?", (first["position"],))
    response = client.get(
        "/v1/audit/proofs/inclusion", params={"position": first["position"]}, headers=COURT
    )
    assert response.status_code == 500
    problem: dict[str, Any] = response.json()
    assert problem["type"] == "urn:epoa:problem:integrity"
    assert "not in the store" in problem["detail"]


def test_a_receipt_is_issued_after_the_records_it_names_were_recorded(
    client: TestClient, people: People
) -> None:
    """Its `issued_at` is when the service signed it, the records stored: a case event's
    receipt is not dated at the moment the command began, before its records existed."""
    poa = issue(client, people, "REC-4")
    answers = [poa["receipt"]]
    for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED):
        event = cloud_event(people, kind, "REC-4", str(uuid.uuid4()))
        response = client.post("/v1/case-events", json=event, headers=COURT)
        assert response.status_code == 202, response.text
        answers.append(response.json()["receipt"])
    events = client.get(f"/v1/powers-of-attorney/{poa['poa_id']}/events", headers=COURT).json()
    recorded = {e["seal"]["record_hash"]: datetime.fromisoformat(e["recorded_at"]) for e in events}
    assert len(recorded) == 2  # issued, then terminated with the case
    for receipt in (answers[0], answers[2]):
        issued_at = datetime.fromisoformat(receipt["issued_at"])
        named = [
            recorded[r["record_hash"]] for r in receipt["records"] if r["record_hash"] in recorded
        ]
        assert named and all(at <= issued_at for at in named), (receipt["issued_at"], named)


def test_the_offline_verifier_refuses_a_proof_whose_record_is_not_the_one_it_proves(
    client: TestClient, log: CheckpointLog, people: People
) -> None:
    issue(client, people, "REC-5")
    log.catch_up()
    proof = client.get("/v1/audit/proofs/inclusion", params={"position": 1}, headers=COURT).json()
    keys = list(seal_keys(client).values())
    verify_inclusion_proof(proof, keys)
    state = bytearray(base64.b64decode(proof["state"]))
    state[-2] ^= 1
    changed = {**proof, "state": base64.b64encode(bytes(state)).decode()}
    with pytest.raises(ProofError, match="does not hash"):
        verify_inclusion_proof(changed, keys)
    with pytest.raises(ProofError, match="malformed"):
        verify_inclusion_proof({**proof, "state": "not base64!"}, keys)
    with pytest.raises(ProofError, match="does not hash"):
        verify_inclusion_proof({**proof, "version": proof["version"] + 1}, keys)
