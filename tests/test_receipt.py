"""Receipts: signed by the seal key over their canonical body, checkable by anyone."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from eventsourcing.persistence import Notification

from domain.canonical import canonical_bytes
from domain.receipt import make_receipt, verify_receipt
from domain.seal import GENESIS, SealKey, seal_state

TOPIC = "domain.power_of_attorney:PowerOfAttorney.Issued"


def test_a_receipt_carries_the_signature_any_ed25519_implementation_makes() -> None:
    """Ed25519 is deterministic: the signature is the one OpenSSL makes over the body,
    and the receipt verifies with the public key alone."""
    key = SealKey.generate()
    originator = uuid.uuid4()
    state, digest = seal_state(key, originator, 1, TOPIC, GENESIS, b'{"a": 1}')
    record = Notification(
        originator_id=originator, originator_version=1, topic=TOPIC, state=state, id=7
    )
    receipt = make_receipt(key, [record], datetime(2026, 12, 1, tzinfo=UTC))
    body = {name: value for name, value in receipt.items() if name != "signature"}
    assert body["records"][0]["record_hash"] == digest.hex()
    assert base64.b64decode(receipt["signature"]) == key.private_key.sign(canonical_bytes(body))
    assert verify_receipt(receipt, {key.key_id: key.public_key})
    assert not verify_receipt(
        {**receipt, "issued_at": "2026-12-02T00:00:00Z"}, {key.key_id: key.public_key}
    )
