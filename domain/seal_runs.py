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
    opened: list[tuple[OpenedRecord, bytes]] = []
    newest: dict[str, tuple[int, int]] = {}
    """stream -> (version, index) of its latest record so far"""
    vouched: set[int] = set()
    for index, record in enumerate(records):
        parts = open_state(record.state)
        stream, version = str(record.originator_id), record.originator_version
        digest = record_hash(stream, version, record.topic, parts.predecessor, parts.body)
        previous = newest.get(stream)
        if previous is not None and previous[0] == version - 1:
            if parts.predecessor != opened[previous[1]][1]:
                raise SealError(f"{stream}: version {version} does not link to its predecessor")
            vouched.add(previous[1])
        newest[stream] = (version, index)
        opened.append((parts, digest))
    checks = [opened[index] for index in range(len(opened)) if index not in vouched]
    check_seals(public_keys, checks)
    return opened
