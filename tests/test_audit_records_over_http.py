"""An auditor recomputes record hashes from the HTTP answers alone, by
`docs/record-format.md` (SHA-256 and Ed25519, nothing of epoa)."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient

from epoa.settings import Settings
from tests.support.api import api_settings, auth, issue, running
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
