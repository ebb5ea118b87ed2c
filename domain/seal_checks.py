"""Checking many seals at once: the signatures of a batch are verified together, on several
threads (`domain.ed25519.all_verify`), while each record is still judged on its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.ed25519 import all_verify
from domain.seal import (
    BAD_SIGNATURE,
    OpenedRecord,
    RawRecord,
    SealError,
    Verdict,
    open_state,
    record_hash,
    sealing_key,
)


def check_seals(
    public_keys: Mapping[bytes, Ed25519PublicKey], records: Sequence[tuple[OpenedRecord, bytes]]
) -> None:
    """`check_seal` of each (opened record, record hash). Raises SealError at the first
    unknown key or bad signature."""
    for verdict in _verdicts(public_keys, list(records)):
        if isinstance(verdict, SealError):
            raise verdict


def verify_states(
    public_keys: Mapping[bytes, Ed25519PublicKey], records: Sequence[RawRecord]
) -> list[Verdict]:
    """`verify_state` of each raw record, in order: each opened with its record hash, or
    the SealError that names what is wrong with it."""
    opened: list[tuple[OpenedRecord, bytes] | SealError] = []
    for record in records:
        try:
            parts = open_state(record.state)
        except SealError as error:
            opened.append(error)
            continue
        digest = record_hash(
            record.originator_id, record.version, record.topic, parts.predecessor, parts.body
        )
        opened.append((parts, digest))
    return _verdicts(public_keys, opened)


def _verdicts(
    public_keys: Mapping[bytes, Ed25519PublicKey],
    opened: Sequence[tuple[OpenedRecord, bytes] | SealError],
) -> list[Verdict]:
    verdicts: list[Verdict] = list(opened)
    checks, at = [], []
    for index, item in enumerate(opened):
        if isinstance(item, SealError):
            continue
        parts, digest = item
        try:
            key = sealing_key(public_keys, parts)
        except SealError as error:
            verdicts[index] = error
            continue
        checks.append((key, parts.signature, digest))
        at.append(index)
    for index, good in zip(at, all_verify(checks), strict=True):
        if not good:
            verdicts[index] = SealError(BAD_SIGNATURE)
    return verdicts
