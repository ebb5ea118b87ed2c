"""Verification of a signed document: CMS signature, certificate path, key usage, identity.

Everything is pure code over `cryptography` (signatures, certificates, CRLs) and
`asn1crypto` (the CMS structure), see docs/decisions/0002-cms-verification.md.

Reference time: a certificate must be valid at the document's own `signed_at`, not at
receipt, so that a record signed in time stays verifiable after the certificate expires.
`signed_at` may lie at most `clock_skew` after the receipt time. Without a trusted
timestamp, `signed_at` (like the CMS signing-time) is the signer's own claim: a holder whose
certificate has expired or been revoked since could backdate a document. Revocation entries
are compared with `signed_at` all the same, as the contract fixes validity at `signed_at`.

Cost: what depends only on a certificate's bytes (parsing, key, key usage, identity, the
path to an anchor and its validity window) is kept in bounded caches, so a message from a
known signer costs its own CMS reading, one digest, one signature check and the time checks.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.canonical import canonical_bytes, parse_json_object
from domain.certificates import CACHE_LIMIT, CertificateCache, named_signer
from domain.cms import open_signed_data
from domain.errors import InvalidInputError, InvalidSignatureError, SignerMismatchError
from domain.evidence import SignedDocument, SignerKind
from domain.times import RFC3339, parse_rfc3339
from domain.trust import PathValidator, TrustStore, load_crl

__all__ = ["TrustStore", "Verifier", "load_crl", "require_signer"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Verifier:
    """Turns a document and its base64 CMS into a `SignedDocument`, or a domain error.

    Instances are safe to share between threads; their caches only ever hold results
    keyed by the digests of the exact DER bytes that produced them, at most `cache_size`
    certificates and as many paths.
    """

    def __init__(
        self,
        trust_store: TrustStore,
        crls: Sequence[bytes] = (),
        clock_skew: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = _utc_now,
        cache_size: int = CACHE_LIMIT,
        court_bins: Iterable[str] = (),
    ) -> None:
        self.court_bins = frozenset(court_bins)
        """The court systems whose signatures may record case events (empty: any BIN)."""
        self._certificates = CertificateCache(cache_size)
        self._paths = PathValidator(trust_store, crls, cache_size)
        self._skew = clock_skew
        self._clock = clock

    @property
    def cache_entries(self) -> dict[str, int]:
        """How much the verifier holds now: each count stays within `cache_size`."""
        certificates, sets = self._certificates.entries
        return {"certificates": certificates, "sets": sets, "paths": self._paths.cached_chains}

    def verify(
        self,
        document: Mapping[str, Any],
        signature_b64: str,
        *,
        at: datetime | None = None,
        signed_at_field: str = "signed_at",
    ) -> SignedDocument:
        """Verify a document received now (or at `at`, the receipt time).

        `signed_at_field` names the member holding the signing time: `signed_at` in the
        commands of the contract, `time` in the court's CloudEvents.
        """
        if not isinstance(document, Mapping):
            raise InvalidInputError("the document must be a JSON object")
        now = self._clock()
        received_at = now if at is None else _as_utc(at, "at")
        canonical = canonical_bytes(document)
        signature = _decode_signature(signature_b64)
        return self._verify(canonical, signature, now, received_at, signed_at_field)

    def verify_record(
        self, record: Mapping[str, str], *, signed_at_field: str | None = None
    ) -> SignedDocument:
        """Re-verify stored evidence (`SignedDocument.as_record()`) as of its receipt.

        The recorded `received_at` stands in for "now", so an old record whose certificate
        has expired since still verifies; the result reflects the CRLs known today. The
        signing time is read from `signed_at`, or from `time` in a document without it
        (a CloudEvent), unless `signed_at_field` says otherwise.
        """
        try:
            canonical = base64.b64decode(record["canonical"], validate=True)
            cms_der = base64.b64decode(record["cms"], validate=True)
            received_at = _as_utc(datetime.fromisoformat(record["received_at"]), "received_at")
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"malformed evidence record: {exc}") from None
        document = parse_json_object(canonical)
        if canonical_bytes(document) != canonical:
            raise InvalidSignatureError("stored document bytes are not canonical JSON")
        field = signed_at_field or ("signed_at" if "signed_at" in document else "time")
        verified = self._verify(canonical, cms_der, received_at, received_at, field)
        again = verified.as_record()
        for name in ("signer_id", "signer_kind", "certificate", "signed_at"):
            if again[name] != record.get(name):
                raise InvalidSignatureError(f"stored {name} differs from the signature's")
        return verified

    def _verify(
        self, canonical: bytes, cms_der: bytes, now: datetime, received_at: datetime, field: str
    ) -> SignedDocument:
        document = json.loads(canonical)
        signed_at = self._signed_at(document.get(field), field, now, received_at)
        signed = open_signed_data(cms_der)
        carried = self._certificates.carried(signed.certificate_set)
        signer = named_signer(signed.signer, carried, signed_at)
        signed.check_content(canonical)
        signed.check_signature(signer.public_key, signer.key_oid)
        if signed.signing_time is not None and signed.signing_time > received_at + self._skew:
            raise InvalidSignatureError("the CMS signing-time is later than the receipt time")
        signer.require_valid_at(signed_at, "signer")
        signer.require_signing_key()
        chain = self._paths.path(signer, carried, signed_at)
        revocation = self._paths.revocation(signer, chain, signed_at, received_at)
        signer_id, signer_kind = signer.signer_identity()
        return SignedDocument(
            document=document,
            canonical=canonical,
            cms=cms_der,
            certificate=signer.der,
            signer_id=signer_id,
            signer_kind=signer_kind,
            signed_at=signed_at,
            received_at=received_at,
            revocation=revocation,
        )

    def _signed_at(
        self, value: object, field: str, now: datetime, received_at: datetime
    ) -> datetime:
        if not isinstance(value, str) or not RFC3339.fullmatch(value):
            raise InvalidInputError(f"{field} must be an RFC 3339 time with a zone")
        try:
            signed_at = parse_rfc3339(value).astimezone(UTC)
        except ValueError:
            raise InvalidInputError(f"{field} is not a valid time: {value!r}") from None
        if signed_at > now + self._skew:
            raise InvalidInputError(f"{field} is in the future")
        if signed_at > received_at + self._skew:
            raise InvalidInputError(f"{field} is later than the receipt time")
        return signed_at


def require_signer(evidence: SignedDocument, signer_id: str, kind: SignerKind = "person") -> None:
    """The verified signer must be the actor the document names (contract, section 3)."""
    if evidence.signer_kind != kind or evidence.signer_id != signer_id:
        raise SignerMismatchError(
            f"signed by {evidence.signer_kind} {evidence.signer_id}, expected {kind} {signer_id}"
        )


def _decode_signature(signature_b64: str) -> bytes:
    if not isinstance(signature_b64, str):
        raise InvalidSignatureError("the signature must be a base64 string")
    compact = "".join(signature_b64.split())
    if not compact:
        raise InvalidSignatureError("the signature is empty")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignatureError("the signature is not valid base64") from None


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must carry a time zone")
    return value.astimezone(UTC)
