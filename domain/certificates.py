"""Certificates as the verifier sees them: parsed once, with what does not depend on time.

The same few certificates (a court system's, the CAs') arrive with every message, so what
follows from a certificate's bytes alone is worked out once and kept in a bounded cache
keyed by the SHA-256 of its DER: the parsed certificate, its public key, the names and
serial the SignerInfo is matched against, its validity window, and whether it may sign and
for whom. Whether it was valid at a given time is still decided per message.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Generic, TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from domain.certificate_policy import (
    require_processed_extensions,
    require_signing_key_usage,
    require_within,
    signer_identity,
)
from domain.cms import carried_certificates
from domain.errors import InvalidSignatureError, UntrustedCertificateError
from domain.evidence import SignerKind
from domain.signed_data import SignerId

CACHE_LIMIT = 1024
"""Certificates kept per verifier: far more than the signers active at any one time."""
MAX_CACHED_BYTES = 8 * 1024
"""Larger certificates (real ones are 1-2 KiB) are parsed each time they come, so that the
caches stay within some tens of MiB whatever senders put in their CMS. Certificate sets are
kept up to twice that size, and a quarter as many of them as certificates."""

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


class BoundedCache(Generic[_Key, _Value]):
    """A thread-safe mapping that forgets its least recently used entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a cache must hold at least one entry")
        self._limit = limit
        self._items: OrderedDict[_Key, _Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _Key) -> _Value | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _Key, value: _Value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class CertificateFacts:
    """One certificate, parsed, with the answers that follow from its bytes alone."""

    def __init__(self, der: bytes, digest: bytes) -> None:
        try:
            cert = x509.load_der_x509_certificate(der)
            self.not_before = cert.not_valid_before_utc
            self.not_after = cert.not_valid_after_utc
            self.issuer_der = cert.issuer.public_bytes()
            self.subject = cert.subject  # decoded on first use: a malformed name or
            self.extensions = cert.extensions  # extension is refused here, not mid-path
        except (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension) as exc:
            # TypeError: a name attribute of a type its OID does not allow (a BIT STRING CN)
            raise InvalidSignatureError(f"malformed certificate in CMS: {exc}") from None
        self.der = der
        self.digest = digest
        self.certificate = cert
        self.serial = cert.serial_number
        self.key_oid = cert.public_key_algorithm_oid.dotted_string
        try:
            self.public_key: CertificatePublicKeyTypes | None = cert.public_key()
        except (UnsupportedAlgorithm, ValueError):
            self.public_key = None

    def named_by(self, sid: SignerId) -> bool:
        """True if the SignerInfo's identifier names this certificate."""
        if sid.key_id is not None:
            return self._key_id == sid.key_id
        if sid.serial != self.serial or sid.issuer is None:
            return False
        return self.issuer_der == sid.issuer or self._same_issuer(sid.issuer)

    def require_valid_at(self, when: datetime, role: str) -> None:
        require_within(self.not_before, self.not_after, when, role)

    def require_signing_key(self) -> None:
        if self._signing_refusal is not None:
            raise UntrustedCertificateError(self._signing_refusal)

    def signer_identity(self) -> tuple[str, SignerKind]:
        identity = self._identity
        if isinstance(identity, str):
            raise UntrustedCertificateError(identity)
        return identity

    def _same_issuer(self, issuer: bytes) -> bool:
        """Names compared as RFC 5280 says (case, spaces): right but slow, so only on need."""
        try:
            return bool(asn1_x509.Certificate.load(self.der).issuer == asn1_x509.Name.load(issuer))
        except (ValueError, TypeError):
            return False

    @functools.cached_property
    def _key_id(self) -> bytes | None:
        try:
            extension = self.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except (x509.ExtensionNotFound, ValueError):
            return None
        return extension.value.digest

    @functools.cached_property
    def _signing_refusal(self) -> str | None:
        try:
            require_processed_extensions(self.certificate, "signer")
            require_signing_key_usage(self.certificate)
        except UntrustedCertificateError as refused:
            return refused.detail
        return None

    @functools.cached_property
    def _identity(self) -> tuple[str, SignerKind] | str:
        try:
            return signer_identity(self.certificate)
        except UntrustedCertificateError as refused:
            return refused.detail


class CertificateCache:
    """`CertificateFacts` by the SHA-256 of their DER, at most `limit` of them.

    The certificate sets of CMS messages are kept too, by the SHA-256 of their encoding, so
    a set seen before is neither split nor hashed certificate by certificate.
    """

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._facts: BoundedCache[bytes, CertificateFacts] = BoundedCache(limit)
        self._sets: BoundedCache[bytes, tuple[CertificateFacts, ...]]
        self._sets = BoundedCache(max(1, limit // 4))

    def carried(self, certificate_set: bytes) -> tuple[CertificateFacts, ...]:
        """Every certificate of a `SignedData.certificate_set`."""
        digest = hashlib.sha256(certificate_set).digest()
        found = self._sets.get(digest)
        if found is None:
            found = tuple(self.load(der) for der in carried_certificates(certificate_set))
            if len(certificate_set) <= 2 * MAX_CACHED_BYTES:
                self._sets.put(digest, found)
        return found

    def load(self, der: bytes) -> CertificateFacts:
        digest = hashlib.sha256(der).digest()
        facts = self._facts.get(digest)
        if facts is None:
            facts = CertificateFacts(der, digest)
            if len(der) <= MAX_CACHED_BYTES:
                self._facts.put(digest, facts)
        return facts

    @property
    def entries(self) -> tuple[int, int]:
        """How many certificates and certificate sets are held."""
        return len(self._facts), len(self._sets)


def named_signer(
    sid: SignerId, carried: Sequence[CertificateFacts], when: datetime
) -> CertificateFacts:
    """The carried certificate the SignerInfo names, by issuer and serial or by key id.

    A key id names every certificate of a key renewed in place: of those, the one valid at
    `when` (the signing time), so that a CMS carrying the expired one too still verifies.
    """
    named = [facts for facts in carried if facts.named_by(sid)]
    if not named:
        raise InvalidSignatureError("the signer certificate is not in the CMS")
    valid = (facts for facts in named if facts.not_before <= when <= facts.not_after)
    return next(valid, named[0])
