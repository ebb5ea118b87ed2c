"""Receipts: the service's signed statement that a command recorded these records.

Like a Certificate Transparency SCT, a receipt lets the principal or a court prove later
that the records existed, even if the database were rolled back to an older copy.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import Notification

from domain.canonical import canonical_bytes
from domain.seal import SealKey, open_state, record_hash
from domain.times import utc_text


def make_receipt(
    key: SealKey, notifications: Iterable[Notification], issued_at: datetime
) -> dict[str, Any]:
    """The receipt for these records (what a command recorded, with their positions)."""
    records = []
    for n in notifications:
        opened = open_state(n.state)
        digest = record_hash(
            n.originator_id, n.originator_version, n.topic, opened.predecessor, opened.body
        )
        records.append(
            {
                "position": n.id,
                "originator_id": str(n.originator_id),
                "version": n.originator_version,
                "record_hash": digest.hex(),
            }
        )
    body: dict[str, Any] = {
        "key_id": key.key_id.hex(),
        "issued_at": utc_text(issued_at),
        "records": records,
    }
    signature = key.signer.sign(canonical_bytes(body))  # libsodium: the same bytes, sooner
    return {**body, "signature": base64.b64encode(signature).decode()}


def verify_receipt(
    receipt: Mapping[str, Any], public_keys: Mapping[bytes, Ed25519PublicKey]
) -> bool:
    body = {k: v for k, v in receipt.items() if k != "signature"}
    try:
        key = public_keys.get(bytes.fromhex(str(receipt["key_id"])))
        signature = base64.b64decode(str(receipt["signature"]), validate=True)
    except (KeyError, ValueError):
        return False
    if key is None:
        return False
    try:
        key.verify(signature, canonical_bytes(body))
    except InvalidSignature:
        return False
    return True
