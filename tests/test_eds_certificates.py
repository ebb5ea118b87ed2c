"""Certificates the verifier refuses: trust path, validity, key usage, revocation, identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.canonical import canonical_bytes
from domain.errors import UntrustedCertificateError
from domain.evidence import SignedDocument
from domain.times import utc_text
from tests.support.pki import (
    AUTH_ONLY,
    CLIENT_AUTH,
    Hierarchy,
    Issued,
    b64,
    common_name,
    complete_id,
    hierarchy,
    make_cert,
    organisation,
    person,
    rfc3339,
    sample_document,
    sign_cms,
    trusting,
)

PRINCIPAL = complete_id("85031240012")
NOW = datetime.now(UTC)


def verify(
    signer: Issued,
    chain: list[x509.Certificate] | None = None,
    crls: list[bytes] | None = None,
    **document: Any,
) -> SignedDocument:
    pki = hierarchy()
    body = sample_document(PRINCIPAL, **document)
    signature = sign_cms(canonical_bytes(body), signer, pki.chain if chain is None else chain)
    return trusting(pki, crls or []).verify(body, b64(signature))


def refusal(signer: Issued, **options: Any) -> str:
    with pytest.raises(UntrustedCertificateError) as refused:
        verify(signer, **options)
    return refused.value.detail


def crl(
    issuer: Issued,
    revoked: dict[int, datetime],
    signed_by: Issued | None = None,
    next_update: datetime = NOW + timedelta(days=1),
    only: str | None = None,
    invalid_since: dict[int, datetime] | None = None,
) -> bytes:
    """`only`: "ca" or "user", the CRL's scope by its issuing distribution point;
    `invalid_since`: the invalidityDate of some of the entries, by serial."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(min(NOW, next_update) - timedelta(days=1))
        .next_update(next_update)
    )
    if only is not None:
        scope = x509.IssuingDistributionPoint(
            full_name=None,
            relative_name=None,
            only_contains_user_certs=only == "user",
            only_contains_ca_certs=only == "ca",
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        builder = builder.add_extension(scope, critical=True)
    for serial, when in revoked.items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if serial in (invalid_since or {}):
            invalidity = x509.InvalidityDate((invalid_since or {})[serial].replace(tzinfo=None))
            entry = entry.add_extension(invalidity, critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    signing = signed_by or issuer
    return builder.sign(signing.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_signer_from_a_rogue_ca_with_the_trusted_name_is_refused() -> None:
    pki = hierarchy()
    rogue = make_cert(pki.root.cert.subject, key_type="ec", ca=True, key_label="rogue")
    signer = make_cert(person(PRINCIPAL, "Rogue Signer"), issuer=rogue)

    assert "no path to a trusted CA" in refusal(signer, chain=[rogue.cert])


def test_a_rogue_intermediate_under_the_trusted_name_is_refused() -> None:
    pki = hierarchy()
    rogue = make_cert(pki.intermediate.cert.subject, ca=True, key_label="rogue-intermediate")
    signer = make_cert(person(PRINCIPAL, "Rogue Signer"), issuer=rogue)

    assert "no path to a trusted CA" in refusal(signer, chain=[rogue.cert])


def test_a_missing_intermediate_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL))

    assert "no path to a trusted CA" in refusal(signer, chain=[])


def test_an_expired_certificate_is_refused() -> None:
    signer = hierarchy().signer(
        person(PRINCIPAL, "Expired"),
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )

    assert "expired" in refusal(signer)


def test_a_certificate_not_yet_valid_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "Early"), not_before=NOW + timedelta(days=1))

    assert "not yet valid" in refusal(signer)


def test_a_signed_at_before_the_certificate_was_issued_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "Renewed Late"), not_before=NOW - timedelta(1))
    long_ago = (NOW - timedelta(days=30)).isoformat()

    assert "not yet valid" in refusal(signer, signed_at=long_ago)


def test_an_expired_intermediate_is_refused() -> None:
    pki = hierarchy()
    old = make_cert(
        common_name("Old Signing CA"),
        issuer=pki.root,
        ca=True,
        not_before=NOW - timedelta(days=800),
        not_after=NOW - timedelta(days=2),
    )
    signer = make_cert(person(PRINCIPAL, "Under Old CA"), issuer=old)

    assert "CA certificate expired" in refusal(signer, chain=[old.cert])


def test_an_intermediate_that_is_not_a_ca_is_refused() -> None:
    pki = hierarchy()
    not_ca = make_cert(common_name("Plain Leaf"), issuer=pki.root, key_usage=["key_cert_sign"])
    signer = make_cert(person(PRINCIPAL, "Under Leaf"), issuer=not_ca)

    assert "is not a CA" in refusal(signer, chain=[not_ca.cert])


def test_an_intermediate_whose_key_usage_lacks_key_cert_sign_is_refused() -> None:
    pki = hierarchy()
    no_cert_sign = make_cert(
        common_name("CRL Only CA"), issuer=pki.root, ca=True, key_usage=["crl_sign"]
    )
    signer = make_cert(person(PRINCIPAL, "Under CRL Only CA"), issuer=no_cert_sign)

    assert "keyUsage lacks keyCertSign" in refusal(signer, chain=[no_cert_sign.cert])


WEAK_KEYS = [
    ("rsa-1024", "RSA key of 1024 bits is too small"),
    ("ec-p192", "EC key on secp192r1 is too small"),
]


@pytest.mark.parametrize(("key_type", "words"), WEAK_KEYS, ids=["rsa-1024", "ecdsa-p192"])
def test_an_intermediate_with_a_key_weaker_than_112_bits_is_refused(
    key_type: str, words: str
) -> None:
    """Whoever breaks the CA's key issues certificates in its name: the CA key must be as
    strong as a signer's, however properly the root signed it."""
    weak = make_cert(
        common_name("Weak Signing CA"), issuer=hierarchy().root, key_type=key_type, ca=True
    )
    signer = make_cert(person(PRINCIPAL, "Under Weak CA"), issuer=weak)

    assert f"CN=Weak Signing CA: {words}" in refusal(signer, chain=[weak.cert])


@pytest.mark.parametrize(("key_type", "words"), WEAK_KEYS, ids=["rsa-1024", "ecdsa-p192"])
def test_a_trusted_root_with_a_key_weaker_than_112_bits_vouches_for_nobody(
    key_type: str, words: str
) -> None:
    root = make_cert(common_name("Weak Root CA"), key_type=key_type, ca=True)
    intermediate = make_cert(common_name("Signing CA"), issuer=root, ca=True)
    signer = make_cert(person(PRINCIPAL, "Under Weak Root"), issuer=intermediate)
    body = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(body), signer, [intermediate.cert])

    with pytest.raises(UntrustedCertificateError, match=f"CN=Weak Root CA: {words}"):
        trusting(Hierarchy(root, intermediate)).verify(body, b64(signature))


def test_a_signer_with_a_critical_extension_not_understood_is_refused() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    signer = hierarchy().signer(person(PRINCIPAL, "Odd Extension"), extensions=[(unknown, True)])

    assert "critical extension not supported: 1.2.3.4.5" in refusal(signer)


def test_a_signer_with_a_non_critical_extension_not_understood_is_accepted() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    signer = hierarchy().signer(person(PRINCIPAL, "Odd Note"), extensions=[(unknown, False)])

    assert verify(signer).signer_id == PRINCIPAL


def test_an_intermediate_with_a_critical_extension_not_understood_is_refused() -> None:
    pki = hierarchy()
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.6"), b"\x05\x00")
    odd = make_cert(
        common_name("Odd Signing CA"), issuer=pki.root, ca=True, extensions=[(unknown, True)]
    )
    signer = make_cert(person(PRINCIPAL, "Under Odd CA"), issuer=odd)

    assert "critical extension not supported: 1.2.3.4.6" in refusal(signer, chain=[odd.cert])


def test_a_signer_outside_its_intermediate_s_name_constraints_is_refused() -> None:
    pki = hierarchy()
    only = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Only This Org")])
    constraints = x509.NameConstraints([x509.DirectoryName(only)], None)
    confined = make_cert(
        common_name("Confined CA"), issuer=pki.root, ca=True, extensions=[(constraints, True)]
    )
    signer = make_cert(person(PRINCIPAL, "Outside"), issuer=confined)

    assert "nameConstraints" in refusal(signer, chain=[confined.cert])


def test_an_authentication_only_certificate_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "Auth Key"), key_usage=AUTH_ONLY, eku=CLIENT_AUTH)

    assert "authentication only" in refusal(signer)


def test_a_ca_certificate_carrying_the_iin_is_refused_as_a_signer() -> None:
    usage = ["digital_signature", "content_commitment", "key_cert_sign", "crl_sign"]
    signer = hierarchy().signer(person(PRINCIPAL, "CA Holder"), ca=True, key_usage=usage)

    assert "CA certificate" in refusal(signer)


def test_a_certificate_without_key_usage_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "No Usage"), key_usage=[])

    assert "no keyUsage" in refusal(signer)


def test_a_key_agreement_only_certificate_is_refused() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "Agreement"), key_usage=["key_agreement"])

    assert "neither nonRepudiation nor digitalSignature" in refusal(signer)


def test_digital_signature_without_a_client_auth_only_eku_is_accepted() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "Plain DS"), key_usage=["digital_signature"])

    assert verify(signer).signer_id == PRINCIPAL


def test_non_repudiation_with_a_client_auth_eku_is_accepted() -> None:
    signer = hierarchy().signer(person(PRINCIPAL, "NR"), eku=CLIENT_AUTH)

    assert verify(signer).signer_id == PRINCIPAL


IPSEC_END_SYSTEM = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5")
IPSEC_TUNNEL = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6")
IPSEC_USER = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
NCA_INDIVIDUAL = x509.ObjectIdentifier("1.2.398.3.3.4.1.1")
NCA_LEGAL_ENTITY = x509.ObjectIdentifier("1.2.398.3.3.4.1.2")


@pytest.mark.parametrize(
    ("purposes", "named"),
    [
        ([ExtendedKeyUsageOID.SERVER_AUTH], "serverAuth"),
        ([ExtendedKeyUsageOID.CODE_SIGNING], "codeSigning"),
        ([ExtendedKeyUsageOID.TIME_STAMPING], "timeStamping"),
        ([ExtendedKeyUsageOID.OCSP_SIGNING], "OCSPSigning"),
        ([ExtendedKeyUsageOID.IPSEC_IKE], "ipsecIKE"),
        ([IPSEC_END_SYSTEM, IPSEC_TUNNEL, IPSEC_USER], "ipsecEndSystem, ipsecTunnel, ipsecUser"),
        (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.OCSP_SIGNING],
            "serverAuth, OCSPSigning",
        ),
    ],
)
def test_a_certificate_whose_extended_key_usage_lists_only_other_purposes_is_refused(
    purposes: list[x509.ObjectIdentifier], named: str
) -> None:
    """RFC 5280 4.2.1.12: with an extendedKeyUsage, the key is for the purposes listed
    only; nonRepudiation in its keyUsage does not make a TLS server's key a signer's."""
    signer = hierarchy().signer(person(PRINCIPAL, f"Not A Signer {named}"), eku=purposes)

    assert f"extendedKeyUsage is for {named} only" in refusal(signer)


@pytest.mark.parametrize(
    "purposes",
    [
        [ExtendedKeyUsageOID.EMAIL_PROTECTION, NCA_INDIVIDUAL],  # an NCA person's signing key
        [ExtendedKeyUsageOID.EMAIL_PROTECTION, NCA_LEGAL_ENTITY],
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
        [NCA_INDIVIDUAL],
        [DOCUMENT_SIGNING],
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, ExtendedKeyUsageOID.SERVER_AUTH],
        [ExtendedKeyUsageOID.SMARTCARD_LOGON],
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
        [ExtendedKeyUsageOID.TIME_STAMPING, x509.ObjectIdentifier("1.3.6.1.4.1.99999.7")],
    ],
)
def test_a_certificate_whose_extended_key_usage_allows_signing_or_a_purpose_not_known_signs(
    purposes: list[x509.ObjectIdentifier],
) -> None:
    label = ",".join(purpose.dotted_string for purpose in purposes)
    signer = hierarchy().signer(person(PRINCIPAL, f"Signer {label}"), eku=purposes)

    assert verify(signer).signer_id == PRINCIPAL


def revoked_signer(pki: Hierarchy, name: str) -> Issued:
    return pki.signer(person(PRINCIPAL, name))


def test_a_certificate_revoked_before_signed_at_is_refused() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Revoked")
    revocations = [crl(pki.intermediate, {signer.cert.serial_number: NOW - timedelta(hours=1)})]

    assert "revoked" in refusal(signer, crls=revocations)


def test_a_certificate_revoked_after_signed_at_is_accepted_and_says_so() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Revoked Later")
    revocations = [crl(pki.intermediate, {signer.cert.serial_number: NOW + timedelta(hours=1)})]

    assert verify(signer, crls=revocations).revocation == "crl:revoked-after-signing"


def test_a_certificate_invalid_since_before_signed_at_but_revoked_after_is_refused() -> None:
    """The holder reported a key compromised since a day, the CA revoked it later: a
    document dated between the two was signed with a key the CA says was no longer valid."""
    pki = hierarchy()
    signer = revoked_signer(pki, "Compromised")
    serial = signer.cert.serial_number
    revoked, compromised = NOW - timedelta(hours=1), NOW - timedelta(hours=3)
    revocations = [crl(pki.intermediate, {serial: revoked}, invalid_since={serial: compromised})]

    detail = refusal(signer, crls=revocations, signed_at=rfc3339(NOW - timedelta(hours=2)))
    assert f"invalid since {utc_text(compromised.replace(microsecond=0))}" in detail


def test_a_certificate_invalid_since_after_signed_at_is_accepted_as_revoked_after() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Compromised Later")
    serial = signer.cert.serial_number
    invalid = {serial: NOW - timedelta(minutes=90)}
    revocations = [crl(pki.intermediate, {serial: NOW - timedelta(hours=1)}, invalid_since=invalid)]

    evidence = verify(signer, crls=revocations, signed_at=rfc3339(NOW - timedelta(hours=2)))
    assert evidence.revocation == "crl:revoked-after-signing"


def test_a_crl_that_does_not_list_the_signer_gives_not_revoked() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Fine")
    revocations = [crl(pki.intermediate, {12345: NOW - timedelta(days=3)})]

    assert verify(signer, crls=revocations).revocation == "crl:not-revoked"


def test_a_crl_past_its_next_update_never_vouches_that_the_signer_is_not_revoked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issuer may have revoked the certificate since its CRL went out of date: the
    evidence says so, and the service says at start which CRL to replace."""
    pki = hierarchy()
    signer = revoked_signer(pki, "Stale CRL")
    expired = crl(
        pki.intermediate, {12345: NOW - timedelta(days=3)}, next_update=NOW - timedelta(days=2)
    )
    with caplog.at_level("WARNING", logger="domain.trust"):
        assert verify(signer, crls=[expired]).revocation == "crl:stale"
    assert "is out of date since" in caplog.text
    current = crl(pki.intermediate, {12345: NOW - timedelta(days=3)})
    assert verify(signer, crls=[expired, current]).revocation == "crl:not-revoked"
    revoked = {signer.cert.serial_number: NOW - timedelta(days=3)}
    stale_but_revoking = crl(pki.intermediate, revoked, next_update=NOW - timedelta(days=2))
    assert "signer certificate revoked" in refusal(signer, crls=[stale_but_revoking])


def test_a_crl_of_another_issuer_gives_none_for_issuer() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Other Issuer")
    revocations = [crl(pki.root, {signer.cert.serial_number: NOW - timedelta(days=3)})]

    assert verify(signer, crls=revocations).revocation == "crl:none-for-issuer"


def test_a_crl_with_a_forged_signature_is_ignored() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Forged CRL")
    forger = make_cert(pki.intermediate.cert.subject, ca=True, key_label="crl-forger")
    forged = crl(pki.intermediate, {signer.cert.serial_number: NOW - timedelta(1)}, forger)

    assert verify(signer, crls=[forged]).revocation == "crl:none-for-issuer"


def test_a_signer_under_an_intermediate_ca_its_root_revoked_is_refused() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Under A Revoked CA")
    ca = pki.intermediate.cert
    revocations = [crl(pki.root, {ca.serial_number: NOW - timedelta(hours=1)})]

    detail = refusal(signer, crls=revocations)
    assert f"CA certificate {ca.subject.rfc4514_string()} revoked" in detail


def test_an_intermediate_ca_invalid_since_before_signed_at_vouches_for_nobody() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Under A Compromised CA")
    ca = pki.intermediate.cert
    compromised = {ca.serial_number: NOW - timedelta(hours=1)}
    revocations = [
        crl(pki.root, {ca.serial_number: NOW + timedelta(hours=1)}, invalid_since=compromised)
    ]

    detail = refusal(signer, crls=revocations)
    assert f"CA certificate {ca.subject.rfc4514_string()} revoked on" in detail
    assert "invalid since" in detail


def test_an_intermediate_ca_revoked_after_signed_at_still_vouches_for_that_signature() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Signed Before The CA Fell")
    ca = pki.intermediate.cert
    revocations = [
        crl(pki.root, {ca.serial_number: NOW + timedelta(hours=1)}),
        crl(pki.intermediate, {12345: NOW - timedelta(days=3)}),
    ]

    assert verify(signer, crls=revocations).revocation == "crl:not-revoked"


def test_a_crl_of_ca_certificates_only_revokes_cas_and_says_nothing_of_signers() -> None:
    """An authority revocation list (a root's CRL of the CAs under it) is read for CA
    certificates alone; a CRL of end entities only, for them alone."""
    pki = hierarchy()
    signer = revoked_signer(pki, "Scoped Lists")
    ca = pki.intermediate.cert
    authority = crl(pki.root, {ca.serial_number: NOW - timedelta(hours=1)}, only="ca")
    assert f"CA certificate {ca.subject.rfc4514_string()} revoked" in refusal(
        signer, crls=[authority]
    )
    users_only = crl(pki.root, {ca.serial_number: NOW - timedelta(hours=1)}, only="user")
    assert verify(signer, crls=[users_only]).revocation == "crl:none-for-issuer"
    listed = {signer.cert.serial_number: NOW - timedelta(hours=1)}
    cas_only = crl(pki.intermediate, listed, only="ca")
    assert verify(signer, crls=[cas_only]).revocation == "crl:none-for-issuer"
    assert "revoked" in refusal(signer, crls=[crl(pki.intermediate, listed, only="user")])


def test_a_forged_crl_cannot_revoke_an_intermediate_ca() -> None:
    pki = hierarchy()
    signer = revoked_signer(pki, "Forged Root CRL")
    forger = make_cert(pki.root.cert.subject, ca=True, key_label="root-crl-forger")
    ca = pki.intermediate.cert
    forged = crl(pki.root, {ca.serial_number: NOW - timedelta(days=1)}, forger)

    assert verify(signer, crls=[forged]).revocation == "crl:none-for-issuer"


def test_a_certificate_iin_with_a_bad_check_digit_is_refused() -> None:
    wrong = PRINCIPAL[:11] + str((int(PRINCIPAL[11]) + 1) % 10)
    signer = hierarchy().signer(person(wrong, "Bad Digit"))

    assert "bad check digit" in refusal(signer)


@pytest.mark.parametrize(
    ("serial_numbers", "words"),
    [
        ([f"iin{PRINCIPAL}"], "no IIN or BIN"),
        ([PRINCIPAL], "no IIN or BIN"),
        ([f"IIN {PRINCIPAL}"], "malformed identifier"),
        ([f"IIN{PRINCIPAL[:11]}"], "malformed identifier"),
        ([f"IIN{PRINCIPAL}0"], "malformed identifier"),
        ([f"IIN{PRINCIPAL} "], "malformed identifier"),
        ([f"IIN{PRINCIPAL}", f"IIN{complete_id('79052130045')}"], "more than one IIN"),
    ],
    ids=["lower-case", "no-prefix", "space", "11-digits", "13-digits", "trailing-space", "two"],
)
def test_a_certificate_iin_in_another_form_is_refused(
    serial_numbers: list[str], words: str
) -> None:
    """Only `IIN` + 12 digits, once (contract, section 3): any other form, or two persons
    in one subject, names nobody for certain."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Odd Form")]
        + [x509.NameAttribute(NameOID.SERIAL_NUMBER, value) for value in serial_numbers]
    )

    assert words in refusal(hierarchy().signer(subject))


def test_a_certificate_without_iin_or_bin_is_refused() -> None:
    signer = hierarchy().signer(common_name("Anonymous"))

    assert "no IIN or BIN" in refusal(signer)


def test_a_certificate_naming_two_organisations_is_refused() -> None:
    subject = x509.Name(
        [
            *organisation(complete_id("01034000321")),
            x509.NameAttribute(x509.NameOID.SERIAL_NUMBER, f"BIN{complete_id('92020530017')}"),
        ]
    )
    signer = hierarchy().signer(subject)

    assert "more than one" in refusal(signer)
