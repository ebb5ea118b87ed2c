"""Ed25519 signing and verification of seals, by libsodium (PyNaCl).

Every stored record carries a seal, so every append signs once and every reader (the
projections, the consumer's case reads, `epoa audit verify`) checks seals: libsodium does
both about twice as fast as OpenSSL on the machines this runs on (`bench/audit.py` prints
both). Keys stay `cryptography` objects everywhere else (PEM files, key ids); they are
turned into libsodium's form once per key. The signatures are the same bytes either way
(Ed25519 is deterministic, RFC 8032). libsodium's calls release the GIL, so a long list
of signatures is checked on every core at once (`all_verify`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey


class Signer:
    """Signs with one private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = SigningKey(private_key.private_bytes_raw())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature


@lru_cache(maxsize=64)
def _verify_key(raw: bytes) -> VerifyKey:
    return VerifyKey(raw)


def verifies(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `public_key`'s over `message`."""
    if len(signature) != 64:
        return False
    try:
        _verify_key(public_key.public_bytes_raw()).verify(message, signature)
    except BadSignatureError:
        return False
    return True


Check = tuple[Ed25519PublicKey, bytes, bytes]
"""(public key, signature, message)"""

PARALLEL_FROM = 64
"""Fewer checks than this run in the calling thread: handing them over costs more."""
_WORKERS = max(1, min(4, (os.cpu_count() or 1) - 1))


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_WORKERS, thread_name_prefix="epoa-ed25519")


def all_verify(checks: Sequence[Check]) -> list[bool]:
    """Whether each signature verifies, in order. A long list is split between the calling
    thread and a few shared worker threads, which verify at the same time."""
    if len(checks) < PARALLEL_FROM:
        return _verify_each(checks)
    size = -(-len(checks) // (_WORKERS + 1))
    parts = [checks[at : at + size] for at in range(0, len(checks), size)]
    handed = [_pool().submit(_verify_each, part) for part in parts[1:]]
    results = _verify_each(parts[0])
    for future in handed:
        results.extend(future.result())
    return results


def _verify_each(checks: Sequence[Check]) -> list[bool]:
    return [verifies(key, signature, message) for key, signature, message in checks]
