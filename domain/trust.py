"""Trust in a signer certificate: a path to a trusted CA, and what the CRLs say of it.

Anchors are only ever the certificates of the trust store, compared by key, never by name:
a rogue CA may copy a trusted CA's name, and certificates carried in a CMS are whatever the
sender chose to put there. Results are cached per exact certificate pair, since the same
intermediate and root link is checked on every verification.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from domain.certificate_policy import require_ca, require_valid_at
from domain.errors import UntrustedCertificateError

log = logging.getLogger(__name__)

MAX_INTERMEDIATES = 4
_CACHE_LIMIT = 4096


class TrustStore:
    """The CA certificates the service trusts, parsed once and indexed by subject name."""

    def __init__(self, anchors: Iterable[x509.Certificate]) -> None:
        self._anchors = tuple(anchors)
        if not self._anchors:
            raise ValueError("the trust store holds no CA certificate")
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for anchor in self._anchors:
            self._by_subject.setdefault(anchor.subject, []).append(anchor)

    @classmethod
    def from_pem(cls, bundle: bytes) -> TrustStore:
        return cls(x509.load_pem_x509_certificates(bundle))

    @classmethod
    def from_path(cls, path: str | Path) -> TrustStore:
        return cls.from_pem(Path(path).read_bytes())

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    def named(self, subject: x509.Name) -> Sequence[x509.Certificate]:
        """Anchors with this subject; a name alone proves nothing, the caller checks keys."""
        return self._by_subject.get(subject, ())


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from PEM or DER bytes; a malformed one is a configuration error (ValueError)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


@dataclass
class _Search:
    """The state of one path search: candidates, reference time, what was tried and why not."""

    carried: list[x509.Certificate]
    when: datetime
    explored: set[x509.Certificate] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)


class PathValidator:
    """Builds and checks certificate paths to a `TrustStore`; checks configured CRLs."""

    def __init__(self, trust_store: TrustStore, crls: Sequence[bytes] = ()) -> None:
        self._trust = trust_store
        self._crls = tuple(load_crl(data) for data in crls)
        self._issued: dict[tuple[x509.Certificate, x509.Certificate], bool] = {}
        self._crl_valid: dict[tuple[int, x509.Certificate], bool] = {}

    def path(
        self, signer: x509.Certificate, carried: list[x509.Certificate], when: datetime
    ) -> list[x509.Certificate]:
        """A path signer -> carried intermediates -> trust anchor, each link checked.

        Only certificates of the trust store end a path; certificates carried in the CMS
        serve as intermediates only, however they are named. Each carried certificate is
        explored once, so a CMS stuffed with look-alike CAs costs at most a few checks.
        """
        search = _Search(carried, when)
        path = self._extend([signer], search)
        if path is None:
            detail = "; ".join(dict.fromkeys(search.reasons))
            raise UntrustedCertificateError(f"no path to a trusted CA: {detail}")
        return path

    def _extend(
        self, path: list[x509.Certificate], search: _Search
    ) -> list[x509.Certificate] | None:
        last = path[-1]
        anchors = self._trust.named(last.issuer)
        for anchor in anchors:
            if self._link(path, anchor, search):
                return [*path, anchor]
        candidates = [c for c in search.carried if c.subject == last.issuer]
        if not anchors and not candidates:
            search.reasons.append(f"issuer {last.issuer.rfc4514_string()} not found")
        if candidates and len(path) > MAX_INTERMEDIATES:
            search.reasons.append("path too long")
            return None
        for candidate in candidates:
            if candidate in search.explored or candidate in path:
                continue
            search.explored.add(candidate)
            if self._link(path, candidate, search):
                found = self._extend([*path, candidate], search)
                if found is not None:
                    return found
        return None

    def _link(
        self, path: list[x509.Certificate], issuer: x509.Certificate, search: _Search
    ) -> bool:
        """True if `issuer` is a CA valid at the reference time that signed the last one."""
        try:
            require_ca(issuer, below=len(path) - 1)
            require_valid_at(issuer, search.when, "CA")
        except UntrustedCertificateError as exc:
            search.reasons.append(exc.detail)
            return False
        if not self._issued_by(path[-1], issuer):
            search.reasons.append(
                f"signature of a certificate by {issuer.subject.rfc4514_string()} fails"
            )
            return False
        return True

    def _issued_by(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        key = (cert, issuer)
        cached = self._issued.get(key)
        if cached is None:
            try:
                cert.verify_directly_issued_by(issuer)
                cached = True
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                cached = False
            if len(self._issued) > _CACHE_LIMIT:
                self._issued.clear()
            self._issued[key] = cached
        return cached

    def revocation(
        self, signer: x509.Certificate, issuer: x509.Certificate, signed_at: datetime
    ) -> str:
        """`no-crl`, `crl:none-for-issuer`, `crl:not-revoked` or `crl:revoked-after-signing`.

        A CRL whose signature does not verify with the issuer's key is ignored (and logged):
        it may be forged, and a forged CRL must neither revoke nor clear anybody.
        """
        if not self._crls:
            return "no-crl"
        crls = [c for c in self._crls if c.issuer == issuer.subject and self._crl_ok(c, issuer)]
        if not crls:
            return "crl:none-for-issuer"
        status = "crl:not-revoked"
        for crl in crls:
            entry = crl.get_revoked_certificate_by_serial_number(signer.serial_number)
            if entry is None:
                continue
            if entry.revocation_date_utc <= signed_at:
                raise UntrustedCertificateError(
                    f"signer certificate revoked on {entry.revocation_date_utc.isoformat()}"
                )
            status = "crl:revoked-after-signing"
        return status

    def _crl_ok(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        key = (id(crl), issuer)
        if key not in self._crl_valid:
            try:
                valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError, UnsupportedAlgorithm):
                valid = False
            if not valid:
                log.warning("ignoring a CRL of %s: its signature does not verify", crl.issuer)
            self._crl_valid[key] = valid
        return self._crl_valid[key]
