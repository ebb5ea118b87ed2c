"""Offline checks of what `/v1/audit/*` returns, with the seal's public keys only.

A court holding a record (or a receipt naming its hash) verifies that it is in the tree a
signed checkpoint commits to; an auditor holding an older checkpoint verifies that a newer
one extends it, so nothing it covered was removed or rewritten. Nothing here trusts the
service's answer beyond what the signature and the hashes prove.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain import merkle
from domain.checkpoint import Checkpoint, CheckpointError, parse_checkpoint, verify_checkpoint
from domain.seal import SealError, open_state, record_hash


class ProofError(Exception):
    """The proof, or the checkpoint it is checked against, does not hold."""


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Seal public keys from `/v1/audit/keys` JSON, an export header, or PEM blocks one
    after another, every one of them; ValueError (or KeyError, TypeError for JSON of
    another shape) for a file with none, or with a key that is not Ed25519."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        pems = [k["public_key_pem"] for k in data.get("keys", [])]
    else:
        marker = "-----BEGIN PUBLIC KEY-----"
        pems = [marker + part for part in text.split(marker)[1:]]
    if not pems:
        raise ValueError("it holds no seal public key")
    keys = []
    for number, pem in enumerate(pems, start=1):
        try:
            keys.append(public_key_from_pem(pem))
        except ValueError as error:
            raise ValueError(f"its key #{number}: {error}") from None
    return keys


def public_key_from_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key (as a seal key must be)")
    return key


def pem_of(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_note(
    note: str, keys: Iterable[Ed25519PublicKey], origin: str | None = None
) -> Checkpoint:
    """The checkpoint, once one of the seal keys signed it (its key name is its origin)."""
    try:
        claimed = parse_checkpoint(note).origin
        return verify_checkpoint(note, {claimed: list(keys)}, origin=origin)
    except CheckpointError as error:
        raise ProofError(f"checkpoint: {error}") from None


def record_hash_of(originator_id: str, version: int, topic: str, state: bytes | str) -> bytes:
    """A stored record's hash (its Merkle leaf is `leaf_hash` of it), from the raw row or
    from an export line's base64 `state`."""
    raw = base64.b64decode(state, validate=True) if isinstance(state, str) else state
    opened = open_state(raw)
    return record_hash(originator_id, version, topic, opened.predecessor, opened.body)


def verify_inclusion_proof(
    proof: Mapping[str, Any],
    keys: Iterable[Ed25519PublicKey],
    note: str | None = None,
    *,
    record_hash: bytes | None = None,
    origin: str | None = None,
) -> Checkpoint:
    """Check an inclusion proof against its signed checkpoint (the proof's own `checkpoint`
    unless `note` is given); with `record_hash`, also that the proof is about that record,
    and, when the proof carries its record's `state` (as `/v1/audit/proofs/inclusion`
    does), that the state hashes to the proof's `record_hash`. Returns the verified
    checkpoint; raises `ProofError`."""
    checkpoint = verify_note(_note(note, proof.get("checkpoint")), keys, origin)
    try:
        claimed = bytes.fromhex(str(proof["record_hash"]))
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        carried = _carried_hash(proof)
    except (KeyError, TypeError, ValueError, SealError) as error:
        raise ProofError(f"malformed inclusion proof: {error}") from None
    if record_hash is not None and claimed != record_hash:
        raise ProofError("the proof is about another record")
    if carried is not None and carried != claimed:
        raise ProofError("the record the proof carries does not hash to its record_hash")
    if size != checkpoint.size:
        raise ProofError(f"the proof is for a tree of {size}, the checkpoint of {checkpoint.size}")
    if not merkle.verify_inclusion(merkle.leaf_hash(claimed), index, size, path, checkpoint.root):
        raise ProofError("the record is not in the tree the checkpoint signs")
    return checkpoint


def verify_consistency_proof(
    proof: Mapping[str, Any],
    keys: Iterable[Ed25519PublicKey],
    first_note: str | None = None,
    second_note: str | None = None,
    *,
    origin: str | None = None,
) -> tuple[Checkpoint, Checkpoint]:
    """Check that the second checkpoint's tree extends the first's (the notes default to
    those in the proof; pass the one you kept from before to make the check mean something)."""
    keys = list(keys)
    first = verify_note(_note(first_note, proof.get("first_checkpoint")), keys, origin)
    second = verify_note(_note(second_note, proof.get("second_checkpoint")), keys, origin)
    if first.origin != second.origin:
        raise ProofError("the checkpoints are of different logs")
    try:
        path = [bytes.fromhex(h) for h in proof["consistency_path"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ProofError(f"malformed consistency proof: {error}") from None
    if (proof.get("first"), proof.get("second")) != (first.size, second.size):
        raise ProofError("the proof is for other tree sizes than the checkpoints")
    if not merkle.verify_consistency(first.size, second.size, first.root, second.root, path):
        raise ProofError("the newer tree does not extend the older one")
    return first, second


def _carried_hash(proof: Mapping[str, Any]) -> bytes | None:
    """The record hash of the record a proof carries (`topic` and `state`), if it does."""
    if proof.get("state") is None:
        return None
    return record_hash_of(
        str(proof["originator_id"]), int(proof["version"]), str(proof["topic"]), proof["state"]
    )


def _note(given: str | None, carried: object) -> str:
    note = given if given is not None else carried
    if not isinstance(note, str):
        raise ProofError("no signed checkpoint to check the proof against")
    return note
