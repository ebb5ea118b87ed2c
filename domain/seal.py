"""Seals: the service's Ed25519 signature on every stored record, hash-chained per aggregate.

A sealed record's state is `MAGIC || key id (8) || predecessor hash (32) || signature (64) ||
body`. The signature covers the record hash

    SHA-256(len-prefixed originator id, version, topic, predecessor hash, SHA-256(body))

and the record hash is what the next record of the same aggregate names as its predecessor
(version 1 names `GENESIS`). Editing a byte, moving a seal to another row or stream,
renumbering, or removing a record from the middle of a stream breaks a signature or a link.
Everything here is pure: the auditor verifies raw rows with public keys only.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.ed25519 import Signer, verifies

MAGIC = b"EPS1"
GENESIS = bytes(32)
_HEADER = len(MAGIC) + 8 + 32 + 64


class SealError(Exception):
    """A stored record is not what the service sealed: the store has been tampered with."""


def key_id_of(public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8]


@dataclass(frozen=True)
class SealKey:
    """The service's current signing key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @cached_property
    def key_id(self) -> bytes:
        return key_id_of(self.public_key)

    @cached_property
    def signer(self) -> Signer:
        return Signer(self.private_key)

    @classmethod
    def generate(cls) -> SealKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SealKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the seal key must be an Ed25519 private key (PEM, PKCS#8)")
        return cls(key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def public_keys_of(*keys: Ed25519PublicKey) -> dict[bytes, Ed25519PublicKey]:
    """Public keys by key id: the current one and every retired one still to be verified."""
    return {key_id_of(key): key for key in keys}


def record_hash(
    originator_id: UUID | str, version: int, topic: str, predecessor: bytes, body: bytes
) -> bytes:
    if not isinstance(topic, str):
        raise SealError(f"record has no topic (stored as {type(topic).__name__})")
    digest = hashlib.sha256()
    for part in (str(originator_id).encode(), str(version).encode(), topic.encode()):
        digest.update(struct.pack(">I", len(part)))
        digest.update(part)
    digest.update(predecessor)
    digest.update(hashlib.sha256(body).digest())
    return digest.digest()


@dataclass(frozen=True)
class OpenedRecord:
    """A sealed state taken apart (not yet verified)."""

    key_id: bytes
    predecessor: bytes
    signature: bytes
    body: bytes


def seal_state(
    key: SealKey,
    originator_id: UUID | str,
    version: int,
    topic: str,
    predecessor: bytes,
    body: bytes,
) -> tuple[bytes, bytes]:
    """Return (sealed state, record hash)."""
    digest = record_hash(originator_id, version, topic, predecessor, body)
    signature = key.signer.sign(digest)
    return MAGIC + key.key_id + predecessor + signature + body, digest


def open_state(state: bytes) -> OpenedRecord:
    if not isinstance(state, bytes):
        raise SealError(f"record has no sealed state (stored as {type(state).__name__})")
    if len(state) < _HEADER or not state.startswith(MAGIC):
        raise SealError("record carries no seal")
    at = len(MAGIC)
    return OpenedRecord(
        key_id=state[at : at + 8],
        predecessor=state[at + 8 : at + 40],
        signature=state[at + 40 : at + 104],
        body=state[_HEADER:],
    )


def verify_state(
    public_keys: Mapping[bytes, Ed25519PublicKey],
    originator_id: UUID | str,
    version: int,
    topic: str,
    state: bytes,
) -> tuple[OpenedRecord, bytes]:
    """Check one record's seal; return it opened and its record hash. Raises SealError."""
    opened = open_state(state)
    digest = record_hash(originator_id, version, topic, opened.predecessor, opened.body)
    check_seal(public_keys, opened, digest)
    return opened, digest


def check_seal(
    public_keys: Mapping[bytes, Ed25519PublicKey], opened: OpenedRecord, digest: bytes
) -> None:
    """Check that the record's signature is a known key's over its hash. Raises SealError."""
    if not verifies(sealing_key(public_keys, opened), opened.signature, digest):
        raise SealError(BAD_SIGNATURE)


BAD_SIGNATURE = "seal signature does not verify"


def sealing_key(
    public_keys: Mapping[bytes, Ed25519PublicKey], opened: OpenedRecord
) -> Ed25519PublicKey:
    """The known public key the record names. Raises SealError for an unknown one."""
    public_key = public_keys.get(opened.key_id)
    if public_key is None:
        raise SealError(f"sealed with unknown key {opened.key_id.hex()}")
    return public_key


@dataclass(frozen=True)
class RawRecord:
    """A row as the database holds it."""

    originator_id: str
    version: int
    topic: str
    state: bytes
    position: int | None = None


@dataclass(frozen=True)
class Finding:
    """One piece of damage, naming the record."""

    kind: str
    originator_id: str
    version: int
    position: int | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.originator_id} v{self.version}"
        if self.position is not None:
            where += f" @{self.position}"
        return f"{self.kind}: {where}: {self.detail}"


class HeadStore(Protocol):
    """Where a chain check keeps each stream's newest (version, record hash)."""

    def get(self, stream: str) -> tuple[int, bytes] | None: ...
    def put(self, stream: str, version: int, digest: bytes) -> None: ...
    def drop(self, stream: str) -> None: ...


class MemoryHeads:
    def __init__(self) -> None:
        self._heads: dict[str, tuple[int, bytes]] = {}

    def get(self, stream: str) -> tuple[int, bytes] | None:
        return self._heads.get(stream)

    def put(self, stream: str, version: int, digest: bytes) -> None:
        self._heads[stream] = (version, digest)

    def drop(self, stream: str) -> None:
        self._heads.pop(stream, None)


Verdict = tuple[OpenedRecord, bytes] | SealError
"""What checking a record's seal gave: the record opened and its hash, or the error."""

Predecessor = Callable[[RawRecord], tuple[int, bytes] | None]
"""Looks up the head a stream had before a verified range starts (version, record hash)."""


class ChainVerifier:
    """Checks raw rows one at a time, each aggregate's rows in version order (global order
    does that); keeps one chain head per aggregate in `heads`."""

    def __init__(
        self,
        public_keys: Mapping[bytes, Ed25519PublicKey],
        heads: HeadStore | None = None,
        predecessor: Predecessor | None = None,
    ) -> None:
        self.public_keys = public_keys
        self.heads: HeadStore = heads if heads is not None else MemoryHeads()
        self.predecessor = predecessor

    def check(self, record: RawRecord) -> list[Finding]:
        return self.check_and_hash(record)[0]

    def check_and_hash(
        self, record: RawRecord, verdict: Verdict | None = None
    ) -> tuple[list[Finding], bytes | None]:
        """The findings about this record's seal and link, and its record hash if sealed.
        `verdict` is the outcome of `verify_state` on the record, if already known."""

        def finding(kind: str, detail: str) -> Finding:
            return Finding(kind, record.originator_id, record.version, record.position, detail)

        stream = record.originator_id
        try:
            if verdict is None:
                verdict = verify_state(
                    self.public_keys, stream, record.version, record.topic, record.state
                )
            if isinstance(verdict, SealError):
                raise verdict
            opened, digest = verdict
        except SealError as error:
            kind = "unknown-key" if "unknown key" in str(error) else "bad-seal"
            self.heads.drop(stream)
            return [finding(kind, str(error))], None
        previous = self.heads.get(stream)
        if previous is None and record.version > 1 and self.predecessor is not None:
            previous = self.predecessor(record)
        found = []
        if previous is None:
            if record.version != 1:
                found.append(
                    finding("missing-predecessor", f"stream starts at version {record.version}")
                )
            elif opened.predecessor != GENESIS:
                found.append(finding("chain-broken", "version 1 does not link to genesis"))
        elif record.version != previous[0] + 1:
            found.append(finding("version-gap", f"follows version {previous[0]}"))
        elif opened.predecessor != previous[1]:
            found.append(
                finding("chain-broken", "predecessor hash does not match the previous record")
            )
        self.heads.put(stream, record.version, digest)
        return found, digest


def verify_records(
    records: Iterable[RawRecord], public_keys: Mapping[bytes, Ed25519PublicKey]
) -> Iterator[Finding]:
    """Verify seals and per-aggregate chains of raw rows."""
    chain = ChainVerifier(public_keys)
    for record in records:
        yield from chain.check(record)
