"""Trust in a signer certificate: a path to a trusted CA, and what the CRLs say of it.

Anchors are only ever the certificates of the trust store, compared by key, never by name:
a rogue CA may copy a trusted CA's name, and certificates carried in a CMS are whatever the
sender chose to put there. Each certificate link is checked once per exact certificate pair,
and each path found is kept with the window in which all its CAs are valid: a later message
from the same signer with the same carried certificates reuses it if its `signed_at` falls
inside that window, and searches afresh (with the precise refusal) if not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from domain.certificate_policy import (
    require_ca,
    require_processed_extensions,
    require_strong_key,
    require_valid_at,
)
from domain.certificates import CACHE_LIMIT, BoundedCache, CertificateFacts
from domain.errors import UntrustedCertificateError
from domain.times import utc_text

log = logging.getLogger(__name__)

MAX_INTERMEDIATES = 4
_LINK_LIMIT = 4096


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


_CRL_EXTENSIONS_READ = (
    x509.CRLNumber,
    x509.DeltaCRLIndicator,
    x509.IssuingDistributionPoint,
    x509.AuthorityKeyIdentifier,
    x509.IssuerAlternativeName,
    x509.AuthorityInformationAccess,
    x509.FreshestCRL,
)
"""CRL extensions that are read, or say nothing of what the CRL lists; RFC 5280 5.2: a CRL
with a critical extension of any other kind must not be used to decide revocation."""


def partial_crl(crl: x509.CertificateRevocationList) -> str | None:
    """What makes a CRL list only part of its issuer's revocations, or None if it lists all:
    a delta CRL holds the changes since a full one, and an issuing distribution point may
    confine it to attribute certificates, some reasons, or (indirect) to another issuer's.
    Read as complete, it would clear a certificate it says nothing of. One confined to CA
    or to end-entity certificates is read for those alone (`_covers`); one of a single
    distribution point (a partitioned CRL) is read as the issuer's whole list."""
    for extension in crl.extensions:
        if extension.critical and not isinstance(extension.value, _CRL_EXTENSIONS_READ):
            return f"a CRL with a critical extension not supported ({extension.oid.dotted_string})"
    if any(isinstance(e.value, x509.DeltaCRLIndicator) for e in crl.extensions):
        return "a delta CRL (it lists only the changes since a full CRL)"
    point = _scope(crl)
    if point is None:
        return None
    if point.only_contains_attribute_certs:
        return "a CRL of attribute certificates only"
    if point.only_some_reasons:
        return "a CRL of some revocation reasons only"
    if point.indirect_crl:
        return "an indirect CRL (of another issuer's certificates)"
    return None


def unverified_crl(crl: x509.CertificateRevocationList, trust: TrustStore) -> str | None:
    """Why a CRL of a trusted CA's name would never be used, or None: its signature verifies
    with the key of none of the trusted CAs so named. A CA that moved to a new key and signs
    its CRLs with that key is the usual case; its CRL then says nothing of the certificates
    it issued under the key in the trust store. A CRL of another name (an intermediate CA's,
    whose key only the documents' CMS carry) is checked when it is first used."""
    named = trust.named(crl.issuer)
    if not named or any(_signed_by(crl, ca) for ca in named):
        return None
    return (
        f"a CRL of {crl.issuer.rfc4514_string()} whose signature verifies with the key of "
        "none of the trusted CAs of that name"
    )


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False


def _covers(crl: x509.CertificateRevocationList, of_ca: bool) -> bool:
    """Whether the CRL's scope holds CA certificates (`of_ca`) or end-entity ones."""
    point = _scope(crl)
    if point is None:
        return True
    return not (point.only_contains_user_certs if of_ca else point.only_contains_ca_certs)


def _scope(crl: x509.CertificateRevocationList) -> x509.IssuingDistributionPoint | None:
    """The CRL's issuing distribution point, which may confine what it lists; None: all."""
    try:
        return crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True)
class Chain:
    """A checked path, signer first and trust anchor last, and when all its CAs are valid."""

    certificates: tuple[x509.Certificate, ...]
    not_before: datetime
    not_after: datetime

    @property
    def issuer(self) -> x509.Certificate:
        return self.certificates[1]


@dataclass(frozen=True)
class _Revoked:
    """A CRL entry of a certificate: when it was revoked, and from when it is invalid."""

    on: datetime
    invalid_from: datetime
    """The entry's invalidityDate (RFC 5280 5.3.2: when the key is known or suspected to
    have been compromised, or the certificate otherwise became invalid) if it is earlier
    than the revocation, else the revocation date."""

    @classmethod
    def of(cls, entry: x509.RevokedCertificate) -> _Revoked:
        try:
            stated = entry.extensions.get_extension_for_class(x509.InvalidityDate)
            invalid_from = min(entry.revocation_date_utc, stated.value.invalidity_date_utc)
        except (x509.ExtensionNotFound, ValueError):  # none, or one that does not decode
            invalid_from = entry.revocation_date_utc
        return cls(entry.revocation_date_utc, invalid_from)

    def __str__(self) -> str:
        if self.invalid_from == self.on:
            return f"revoked on {utc_text(self.on)}"
        return (
            f"revoked on {utc_text(self.on)}, invalid since {utc_text(self.invalid_from)} "
            "(the CRL's invalidityDate)"
        )


_Revocations: TypeAlias = tuple[bool, tuple[_Revoked, ...]]
"""Whether a valid CRL of the issuer is known, and the entries it gives a serial."""


@dataclass
class _Search:
    """The state of one path search: candidates, reference time, what was tried and why not."""

    carried: list[x509.Certificate]
    when: datetime
    explored: set[x509.Certificate] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)


class PathValidator:
    """Builds and checks certificate paths to a `TrustStore`; checks configured CRLs."""

    def __init__(
        self, trust_store: TrustStore, crls: Sequence[bytes] = (), cache_size: int = CACHE_LIMIT
    ) -> None:
        self._trust = trust_store
        self._crls = tuple(load_crl(data) for data in crls)
        self._issued: BoundedCache[tuple[bytes, bytes], bool] = BoundedCache(_LINK_LIMIT)
        self._crl_valid: dict[tuple[int, x509.Certificate], bool] = {}
        self._chains: BoundedCache[tuple[bytes, tuple[bytes, ...]], Chain] = BoundedCache(
            cache_size
        )
        self._revocations: BoundedCache[tuple[int, x509.Certificate, bool], _Revocations]
        self._revocations = BoundedCache(cache_size)
        self._current_until: dict[x509.Certificate, datetime | None] = {}
        _warn_of_stale(self._crls, datetime.now(UTC))

    @property
    def cached_chains(self) -> int:
        return len(self._chains)

    def path(
        self, signer: CertificateFacts, carried: Sequence[CertificateFacts], when: datetime
    ) -> Chain:
        """A path signer -> carried intermediates -> trust anchor, each link checked at `when`.

        Only certificates of the trust store end a path; certificates carried in the CMS
        serve as intermediates only, however they are named. Each carried certificate is
        explored once, so a CMS stuffed with look-alike CAs costs at most a few checks.
        """
        key = (signer.digest, tuple(facts.digest for facts in carried))
        chain = self._chains.get(key)
        if chain is not None and chain.not_before <= when <= chain.not_after:
            return chain
        search = _Search([facts.certificate for facts in carried], when)
        path = self._extend([signer.certificate], search)
        if path is None:
            detail = "; ".join(dict.fromkeys(search.reasons))
            raise UntrustedCertificateError(f"no path to a trusted CA: {detail}")
        authorities = path[1:]
        chain = Chain(
            tuple(path),
            max(ca.not_valid_before_utc for ca in authorities),
            min(ca.not_valid_after_utc for ca in authorities),
        )
        self._chains.put(key, chain)
        return chain

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
            if self._link(path, candidate, search, carried=True):
                found = self._extend([*path, candidate], search)
                if found is not None:
                    return found
        return None

    def _link(
        self,
        path: list[x509.Certificate],
        issuer: x509.Certificate,
        search: _Search,
        carried: bool = False,
    ) -> bool:
        """True if `issuer` is a CA valid at the reference time, with a key of the strength
        a signer's must have, that signed the last one (and, if `carried` rather than an
        anchor, with no extension it is not checked for)."""
        try:
            if carried:
                require_processed_extensions(issuer, "CA")
            require_ca(issuer, below=len(path) - 1)
            require_valid_at(issuer, search.when, "CA")
            require_strong_key(issuer)
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
        """Whether `issuer`'s key signed `cert`, remembered by the pair's fingerprints."""
        key = (cert.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256()))
        cached = self._issued.get(key)
        if cached is None:
            try:
                cert.verify_directly_issued_by(issuer)
                cached = True
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                cached = False
            self._issued.put(key, cached)
        return cached

    def revocation(
        self,
        signer: CertificateFacts,
        chain: Chain,
        signed_at: datetime,
        received_at: datetime | None = None,
    ) -> str:
        """`no-crl`, `crl:none-for-issuer`, `crl:not-revoked`, `crl:stale` or
        `crl:revoked-after-signing` (of the signer's certificate, by its issuer's CRLs).

        `crl:stale`: the issuer's CRLs list no revocation of it, but every one of them was
        past its nextUpdate at `received_at`: the issuer may have revoked it since, so the
        evidence does not claim that it is not revoked.

        A certificate is taken as invalid from its revocation date, or from the entry's
        invalidityDate if that is earlier: a key reported compromised since a day signs
        nothing dated after it, though the CA revoked it later. Every CA certificate of the
        path below the trust anchor is looked up in its own issuer's CRLs too: a CA invalid
        on or before `signed_at` takes every certificate it issued with it. A CRL whose
        signature does not verify with the issuer's key is ignored (and logged): it may be
        forged, and a forged CRL must neither revoke nor clear anybody. The CRLs are fixed
        for the life of the validator, so what they say of a certificate is read once; the
        comparison with `signed_at` is made every time.
        """
        if not self._crls:
            return "no-crl"
        certificates = chain.certificates
        for at in range(1, len(certificates) - 1):
            ca, issuer = certificates[at], certificates[at + 1]
            for revoked in self._revoked_on(ca.serial_number, issuer, of_ca=True)[1]:
                if revoked.invalid_from <= signed_at:
                    raise UntrustedCertificateError(
                        f"CA certificate {ca.subject.rfc4514_string()} {revoked}"
                    )
        known, entries = self._revoked_on(signer.serial, chain.issuer, of_ca=False)
        if not known:
            return "crl:none-for-issuer"
        status = "crl:not-revoked"
        for revoked in entries:
            if revoked.invalid_from <= signed_at:
                raise UntrustedCertificateError(f"signer certificate {revoked}")
            status = "crl:revoked-after-signing"
        if status == "crl:not-revoked" and received_at is not None:
            until = self._current_until_of(chain.issuer)
            if until is not None and until < received_at:
                status = "crl:stale"
        return status

    def _current_until_of(self, issuer: x509.Certificate) -> datetime | None:
        """The latest nextUpdate of the issuer's valid CRLs (None if one of them has none:
        it never goes out of date)."""
        if issuer not in self._current_until:
            crls = self._crls_of(issuer, of_ca=False)
            updates = [crl.next_update_utc for crl in crls]
            latest = None if None in updates else max(u for u in updates if u is not None)
            self._current_until[issuer] = latest
        return self._current_until[issuer]

    def _revoked_on(self, serial: int, issuer: x509.Certificate, of_ca: bool) -> _Revocations:
        key = (serial, issuer, of_ca)
        found = self._revocations.get(key)
        if found is None:
            crls = self._crls_of(issuer, of_ca)
            entries = (crl.get_revoked_certificate_by_serial_number(serial) for crl in crls)
            found = bool(crls), tuple(_Revoked.of(e) for e in entries if e is not None)
            self._revocations.put(key, found)
        return found

    def _crls_of(
        self, issuer: x509.Certificate, of_ca: bool
    ) -> list[x509.CertificateRevocationList]:
        """The issuer's valid CRLs that cover its CA certificates (`of_ca`) or its end
        entities: one confined to the other kind (an ARL of CA certificates only, say)
        says nothing of these."""
        return [
            c
            for c in self._crls
            if c.issuer == issuer.subject and _covers(c, of_ca) and self._crl_ok(c, issuer)
        ]

    def _crl_ok(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        key = (id(crl), issuer)
        if key not in self._crl_valid:
            valid = _signed_by(crl, issuer)
            if not valid:
                log.warning("ignoring a CRL of %s: its signature does not verify", crl.issuer)
            self._crl_valid[key] = valid
        return self._crl_valid[key]


def _warn_of_stale(crls: Iterable[x509.CertificateRevocationList], now: datetime) -> None:
    """Say at start which CRLs are already out of date: until they are replaced (and the
    service restarted), the documents of the signers they cover are recorded `crl:stale`."""
    for crl in crls:
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            log.warning(
                "the CRL of %s is out of date since %s (its nextUpdate): replace it in "
                "EPOA_CRL_FILES and restart; meanwhile its signers' evidence says crl:stale",
                crl.issuer.rfc4514_string(),
                utc_text(crl.next_update_utc),
            )
