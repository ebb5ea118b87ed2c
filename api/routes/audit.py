"""`/v1/audit/checkpoints/latest` and the RFC 9162 proofs of the global audit log.

Hashes are hex, as in receipts; the signed notes carry the root in base64, as C2SP
checkpoints do. `epoa.audit_proofs` verifies what these return with public keys only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api import problem_docs
from api.deps import DECIMAL, ServicesDep, role
from domain.checkpoint import CheckpointError, parse_checkpoint, verify_checkpoint
from domain.checkpoint import key_id as checkpoint_key_id
from domain.errors import NotFoundError
from domain.history import sealed_record
from domain.seal import SealError
from projections import audit_tree

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Auditor = Annotated[str, Depends(role("court", "auditor"))]

MAX_POSITION = 2**63 - 1
"""The largest position or tree size a store can hold (PostgreSQL's BIGINT, SQLite's
INTEGER): a larger number is refused as invalid, not sent to the database."""


class CheckpointPublic(BaseModel):
    tree_size: int = Field(description="how many records the tree covers")
    root_hash: str = Field(description="the Merkle tree hash (RFC 9162), hex")
    position: int = Field(description="the position of the last record covered (not in the note)")
    signed_at: datetime = Field(description="when the service signed it (not covered by the note)")
    note: str = Field(description="the C2SP checkpoint: a signed note, the seal key's signature")
    signature: str = Field(
        description="the note's Ed25519 signature, base64 (64 bytes): over the note's text, "
        "its lines before the blank line, each ending in a newline"
    )
    key_id: str = Field(
        description="the seal key that made `signature`, as /v1/audit/keys names it"
    )


class InclusionProofPublic(BaseModel):
    position: int
    originator_id: str
    version: int
    leaf_index: int
    tree_size: int
    record_hash: str = Field(description="the record's seal hash, hex: the leaf is its hash")
    topic: str = Field(description="the record's topic, as the export writes it")
    state: str = Field(
        description="the record's stored state, base64, as the export writes it: the bytes "
        "its record hash is computed from (docs/record-format.md)"
    )
    audit_path: list[str] = Field(description="RFC 9162 inclusion proof, leaf to root, hex")
    checkpoint: str | None = Field(description="the signed note of this tree size, if signed")


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    consistency_path: list[str] = Field(description="RFC 9162 consistency proof, hex")
    first_checkpoint: str | None
    second_checkpoint: str | None


@contextmanager
def _log_read() -> Iterator[None]:
    """The audit log's rows are checked like the records: one that holds what no leaf, tile
    or head can be, or one gone from under a proof, is an integrity problem that says so,
    not an anonymous internal error."""
    try:
        yield
    except (ValueError, TypeError, LookupError) as error:
        raise SealError(f"the audit log's tables were edited: {error}") from None


@router.get("/checkpoints/latest", responses=problem_docs.responses(404))
def latest_checkpoint(services: ServicesDep) -> CheckpointPublic:
    with _log_read():
        found = audit_tree.latest_checkpoint(services.read_models.db())
    if found is None:
        raise NotFoundError("no checkpoint has been signed yet")
    key_id, signature = _seal_signature(services, found)
    return CheckpointPublic(**found.as_public(), signature=signature, key_id=key_id)


def _seal_signature(services: ServicesDep, found: audit_tree.StoredCheckpoint) -> tuple[str, str]:
    """The seal key's id and its signature in a stored head, once that signature verifies
    and the note signs the size and root stored beside it: a head no seal key signed, or
    one its row says otherwise of (edited), is never served as the service's."""
    keys = services.registry.sealed_mapper.public_keys
    try:
        origin = parse_checkpoint(found.note).origin
        head = verify_checkpoint(found.note, {origin: list(keys.values())})
    except CheckpointError as error:
        raise SealError(
            f"the audit log's tables were edited: its newest checkpoint does not verify: {error}"
        ) from None
    if (head.size, head.root) != (found.tree_size, found.root_hash):
        raise SealError(
            "the audit log's tables were edited: its newest checkpoint's row says tree size "
            f"{found.tree_size}, root {found.root_hash.hex()}; its note signs {head.size}, "
            f"{head.root.hex()}"
        )
    for seal_id, key in keys.items():
        for line in head.signatures:
            if line.key_name == origin and line.key_id == checkpoint_key_id(origin, key):
                return seal_id.hex(), base64.b64encode(line.signature).decode()
    raise SealError("the audit log's newest checkpoint names no seal key")  # it verified


@router.get("/proofs/inclusion", responses=problem_docs.responses(404))
def inclusion_proof(
    services: ServicesDep,
    _: Auditor,
    position: Annotated[
        int, Query(ge=1, le=MAX_POSITION, description="the record's notification position"), DECIMAL
    ],
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=MAX_POSITION, description="default: the latest checkpoint's"),
        DECIMAL,
    ] = None,
) -> InclusionProofPublic:
    with _log_read():
        proof = audit_tree.inclusion(services.read_models.db(), position, tree_size)
    registry = services.registry
    record = sealed_record(
        registry.recorder, registry.sealed_mapper, UUID(proof["originator_id"]), proof["version"]
    )
    state = base64.b64encode(record.state).decode()
    return InclusionProofPublic(**proof, topic=record.topic, state=state)


@router.get("/proofs/consistency", responses=problem_docs.responses(404))
def consistency_proof(
    services: ServicesDep,
    _: Auditor,
    first: Annotated[int, Query(ge=0, le=MAX_POSITION, description="the older tree size"), DECIMAL],
    second: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_POSITION,
            description="the newer tree size; default: the latest checkpoint's",
        ),
        DECIMAL,
    ] = None,
) -> ConsistencyProofPublic:
    with _log_read():
        proof = audit_tree.consistency(services.read_models.db(), first, second)
    return ConsistencyProofPublic(**proof)
