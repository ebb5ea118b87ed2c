"""Opening many sealed records at once, with one signature check per run of a stream.

A record's hash covers its predecessor's hash, and its seal signs its hash. So when the
records of a stream are read as a run of consecutive versions, and each one's predecessor
field equals the hash of the one before (checked here, with SHA-256 only), the newest
record's signature vouches for every byte of the run that the hashes cover: id, version,
topic, predecessor and body. Reading a batch then costs one signature check per stream
in it instead of one per record, and a record edited anywhere in a run still fails.

What this does not look at is the signature and key id of the older records of a run:
they are not part of any hash, so they do not change what is read. `epoa audit verify`
checks every seal one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.seal import OpenedRecord, SealError, open_state, record_hash
from domain.seal_checks import check_seals


class Sealed(Protocol):
    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


def open_runs(
    public_keys: Mapping[bytes, Ed25519PublicKey], records: Sequence[Sealed]
) -> list[tuple[OpenedRecord, bytes]]:
    """Open `records` (any streams, each stream's in version order); return each opened,
    with its record hash. Raises SealError if a run's links or newest seal do not hold."""
    opened = open_all(records)
    check_runs(public_keys, records, opened)
    return opened


def open_all(records: Sequence[Sealed]) -> list[tuple[OpenedRecord, bytes]]:
    """Each record taken apart, with its record hash; nothing verified yet. Raises
    SealError for a record that carries no seal."""
    opened = []
    for record in records:
        parts = open_state(record.state)
        digest = record_hash(
            str(record.originator_id),
            record.originator_version,
            record.topic,
            parts.predecessor,
            parts.body,
        )
        opened.append((parts, digest))
    return opened


def check_runs(
    public_keys: Mapping[bytes, Ed25519PublicKey],
    records: Sequence[Sealed],
    opened: Sequence[tuple[OpenedRecord, bytes]],
) -> None:
    """Check `opened` (from `open_all(records)`): each run of a stream links, and its
    newest seal verifies. Raises SealError."""
    newest: dict[str, tuple[int, int]] = {}
    """stream -> (version, index) of its latest record so far"""
    vouched: set[int] = set()
    for index, (record, (parts, _)) in enumerate(zip(records, opened, strict=True)):
        stream, version = str(record.originator_id), record.originator_version
        previous = newest.get(stream)
        if previous is not None and previous[0] == version - 1:
            if parts.predecessor != opened[previous[1]][1]:
                raise SealError(f"{stream}: version {version} does not link to its predecessor")
            vouched.add(previous[1])
        newest[stream] = (version, index)
    check_seals(public_keys, [opened[i] for i in range(len(opened)) if i not in vouched])
