"""Checking many seals at once: the signatures of a batch are verified together, on several
threads (`domain.ed25519.all_verify`), while each record is still judged on its own.

The readers that follow the log in one process (the projections, the audit log's
checkpoints) each check the newest seal of every stream in their batches, mostly the same
ones: a seal that verified is remembered (`VERIFIED`), by the whole of what was checked
(the public key, the signature and the record hash computed from the bytes read), so the
same check is not made twice. A record changed since gives another hash or signature and
is checked afresh. `epoa audit verify` checks every seal itself (`verify_states`)."""

from __future__ import annotations

import threading
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


class Verified:
    """The latest `limit` checks that passed: (public key, signature, record hash)."""

    def __init__(self, limit: int = 8192) -> None:
        self._limit = limit
        self._passed: dict[tuple[bytes, bytes, bytes], None] = {}
        self._lock = threading.Lock()

    def __contains__(self, check: tuple[bytes, bytes, bytes]) -> bool:
        return check in self._passed

    def add(self, check: tuple[bytes, bytes, bytes]) -> None:
        with self._lock:
            if len(self._passed) >= self._limit:
                del self._passed[next(iter(self._passed))]
            self._passed[check] = None


VERIFIED = Verified()


def check_seals(
    public_keys: Mapping[bytes, Ed25519PublicKey], records: Sequence[tuple[OpenedRecord, bytes]]
) -> None:
    """`check_seal` of each (opened record, record hash). Raises SealError at the first
    unknown key or bad signature."""
    for verdict in _verdicts(public_keys, list(records), VERIFIED):
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
    verified: Verified | None = None,
) -> list[Verdict]:
    verdicts: list[Verdict] = list(opened)
    checks, at, remembered = [], [], []
    for index, item in enumerate(opened):
        if isinstance(item, SealError):
            continue
        parts, digest = item
        try:
            key = sealing_key(public_keys, parts)
        except SealError as error:
            verdicts[index] = error
            continue
        if verified is not None:
            check = (key.public_bytes_raw(), parts.signature, digest)
            if check in verified:
                continue
            remembered.append(check)
        checks.append((key, parts.signature, digest))
        at.append(index)
    for number, (index, good) in enumerate(zip(at, all_verify(checks), strict=True)):
        if not good:
            verdicts[index] = SealError(BAD_SIGNATURE)
        elif verified is not None:
            verified.add(remembered[number])
    return verdicts
