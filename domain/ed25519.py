"""Ed25519 signing and verification of seals, by libsodium (PyNaCl).

Every stored record carries a seal, so every append signs once and every reader (the
projections, the consumer's case reads, `epoa audit verify`) checks seals: libsodium does
both about twice as fast as OpenSSL on the machines this runs on (`bench/audit.py` prints
both). Keys stay `cryptography` objects everywhere else (PEM files, key ids); they are
turned into libsodium's form once per key. The signatures are the same bytes either way
(Ed25519 is deterministic, RFC 8032).
"""

from __future__ import annotations

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
