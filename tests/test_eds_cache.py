"""What the verifier keeps between messages: bounded, keyed by exact bytes, never a verdict
that depends on time.

Most tests verify a first document so that the signer, its certificate set and its path
are cached, then present a second one that must be judged on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from domain.canonical import canonical_bytes
from domain.certificates import MAX_CACHED_BYTES, BoundedCache, CertificateCache
from domain.errors import UntrustedCertificateError
from tests.support.pki import (
    AUTH_ONLY,
    CLIENT_AUTH,
    Issued,
    b64,
    common_name,
    complete_id,
    hierarchy,
    make_cert,
    person,
    rfc3339,
    sample_document,
    sign_cms,
    trusting,
)

PRINCIPAL = complete_id("85031240012")
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_when_the_test_starts() -> None:
    """The CMS signing-time is the real clock's, so "now" is taken per test, not at import
    (a long run would otherwise sign later than the verifier's frozen clock allows)."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def signed_by(
    signer: Issued, chain: tuple[x509.Certificate, ...] | list[x509.Certificate], at: datetime
) -> tuple[dict[str, Any], str]:
    document = sample_document(PRINCIPAL, signed_at=rfc3339(at))
    return document, b64(sign_cms(canonical_bytes(document), signer, chain))


def test_a_cached_signer_is_refused_once_its_certificate_has_expired() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL, "Expiring"), not_after=NOW + timedelta(hours=1))
    clock = Clock(NOW)
    verifier = trusting(pki, clock=clock)
    verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(minutes=1)))

    clock.now = NOW + timedelta(days=1)
    with pytest.raises(UntrustedCertificateError, match="signer certificate expired"):
        verifier.verify(*signed_by(signer, pki.chain, NOW + timedelta(hours=2)))


def test_a_cached_signer_is_refused_for_a_time_before_its_certificate() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL, "Recent"), not_before=NOW - timedelta(hours=1))
    verifier = trusting(pki)
    verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(minutes=1)))

    with pytest.raises(UntrustedCertificateError, match="signer certificate not yet valid"):
        verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(hours=2)))


def test_a_cached_path_is_refused_once_its_intermediate_has_expired() -> None:
    pki = hierarchy()
    short = make_cert(
        common_name("Short Lived CA"), issuer=pki.root, ca=True, not_after=NOW + timedelta(hours=1)
    )
    signer = make_cert(person(PRINCIPAL, "Under Short CA"), issuer=short)
    clock = Clock(NOW)
    verifier = trusting(pki, clock=clock)
    verifier.verify(*signed_by(signer, [short.cert], NOW - timedelta(minutes=1)))

    clock.now = NOW + timedelta(days=1)
    with pytest.raises(UntrustedCertificateError, match="CA certificate expired"):
        verifier.verify(*signed_by(signer, [short.cert], NOW + timedelta(hours=2)))


def test_a_look_alike_of_a_cached_signer_under_an_untrusted_ca_is_refused() -> None:
    pki = hierarchy()
    genuine = pki.signer(person(PRINCIPAL, "Look Alike"), key_label="look-alike", serial=4242)
    verifier = trusting(pki)
    at = NOW - timedelta(minutes=1)
    assert verifier.verify(*signed_by(genuine, pki.chain, at)).signer_id == PRINCIPAL
    rogue_ca = make_cert(pki.intermediate.cert.subject, ca=True, key_label="look-alike-ca")
    copy = make_cert(genuine.cert.subject, issuer=rogue_ca, key_label="look-alike", serial=4242)
    assert (copy.cert.subject, copy.cert.issuer) == (genuine.cert.subject, genuine.cert.issuer)
    assert copy.cert.public_key() == genuine.cert.public_key()

    for chain in ([rogue_ca.cert], list(pki.chain), [rogue_ca.cert, *pki.chain]):
        with pytest.raises(UntrustedCertificateError, match="no path to a trusted CA"):
            verifier.verify(*signed_by(copy, chain, at))
    assert verifier.verify(*signed_by(genuine, pki.chain, at)).certificate == genuine.der


def test_a_cached_signer_revoked_since_is_refused_for_documents_signed_after() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL, "Revoked Meanwhile"))
    revoked_on = NOW - timedelta(minutes=30)
    verifier = trusting(pki, [crl_revoking(pki.intermediate, signer, revoked_on)])

    before = verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(hours=1)))
    assert before.revocation == "crl:revoked-after-signing"
    with pytest.raises(UntrustedCertificateError, match="revoked"):
        verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(minutes=1)))


def test_a_cached_refusal_of_key_usage_is_given_every_time() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL, "Login Key"), key_usage=AUTH_ONLY, eku=CLIENT_AUTH)
    verifier = trusting(pki)

    for _ in range(2):
        with pytest.raises(UntrustedCertificateError, match="authentication only"):
            verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(minutes=1)))


def test_a_verifier_holds_at_most_its_cache_size_and_stays_correct() -> None:
    pki = hierarchy()
    verifier = trusting(pki, cache_size=2)
    signers = [pki.signer(person(PRINCIPAL, f"Rotating {number}")) for number in range(4)]

    for _ in range(2):
        for signer in signers:
            evidence = verifier.verify(*signed_by(signer, pki.chain, NOW - timedelta(minutes=1)))
            assert evidence.certificate == signer.der

    assert verifier.cache_entries == {"certificates": 2, "sets": 1, "paths": 2}


def test_an_oversized_certificate_is_verified_but_not_kept() -> None:
    pki = hierarchy()
    plain = pki.signer(person(PRINCIPAL, "Padded"), key_label="padded")
    padding = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04\x82\x24\x00" + bytes(0x2400)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(plain.cert.subject)
        .issuer_name(plain.cert.issuer)
        .public_key(plain.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(plain.cert.not_valid_before_utc)
        .not_valid_after(plain.cert.not_valid_after_utc)
        .add_extension(padding, critical=False)
    )
    for extension in plain.cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    padded = Issued(builder.sign(pki.intermediate.key, hashes.SHA256()), plain.key)
    assert len(padded.der) > MAX_CACHED_BYTES
    verifier = trusting(pki)

    for _ in range(2):
        evidence = verifier.verify(*signed_by(padded, pki.chain, NOW - timedelta(minutes=1)))
        assert evidence.certificate == padded.der

    assert verifier.cache_entries["certificates"] == 1  # the intermediate CA's


def test_the_certificate_cache_forgets_the_least_recently_used() -> None:
    pki = hierarchy()
    cache = CertificateCache(limit=2)
    first, second, third = (pki.signer(person(PRINCIPAL, f"Kept {n}")).der for n in range(3))
    kept = cache.load(first)
    evicted = cache.load(second)
    assert cache.load(first) is kept  # now the most recently used: `second` goes next

    cache.load(third)

    assert cache.entries == (2, 0)
    assert cache.load(first) is kept
    assert cache.load(second) is not evicted


def test_a_bounded_cache_refuses_a_limit_below_one() -> None:
    assert len(BoundedCache[str, int](1)) == 0
    with pytest.raises(ValueError):
        BoundedCache[str, int](0)


def crl_revoking(issuer: Issued, signer: Issued, when: datetime) -> bytes:
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(signer.cert.serial_number)
        .revocation_date(when)
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=1))
        .add_revoked_certificate(entry)
        .sign(issuer.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)
