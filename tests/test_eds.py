"""Signed documents the verifier accepts, and what it reads from them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from domain.canonical import canonical_bytes
from domain.eds import TrustStore, Verifier, require_signer
from domain.errors import SignerMismatchError
from tests.support.pki import (
    b64,
    complete_id,
    hierarchy,
    make_cert,
    organisation,
    person,
    sample_document,
    sign_cms,
    sign_cms_openssl,
    trusting,
)

PRINCIPAL = complete_id("85031240012")
COURT_BIN = complete_id("01034000321")


def test_an_rsa_signature_made_with_cryptography_is_accepted() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type="rsa")
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)

    evidence = trusting(pki).verify(document, b64(signature))

    assert evidence.signer_id == PRINCIPAL
    assert evidence.document == document
    assert evidence.canonical == canonical_bytes(document)


def test_a_signature_made_by_the_openssl_cli_is_accepted(tmp_path: Path) -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type="rsa")
    document = sample_document(PRINCIPAL)
    signature = sign_cms_openssl(canonical_bytes(document), signer, pki.chain, tmp_path)

    assert trusting(pki).verify(document, b64(signature)).signer_id == PRINCIPAL


@pytest.mark.parametrize("digest", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_an_ecdsa_signature_is_accepted(digest: hashes.HashAlgorithm) -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type="ec")
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain, digest)

    assert trusting(pki).verify(document, b64(signature)).signer_id == PRINCIPAL


def test_an_ecdsa_signature_made_by_the_openssl_cli_is_accepted(tmp_path: Path) -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type="ec")
    document = sample_document(PRINCIPAL)
    signature = sign_cms_openssl(canonical_bytes(document), signer, pki.chain, tmp_path)

    assert trusting(pki).verify(document, b64(signature)).signer_id == PRINCIPAL


def test_an_intermediate_carried_in_the_cms_completes_the_path() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, [pki.intermediate.cert])
    only_root = Verifier(TrustStore.from_pem(pki.root.pem))

    assert only_root.verify(document, b64(signature)).signer_id == PRINCIPAL


def test_a_signer_issued_by_the_root_itself_is_accepted() -> None:
    pki = hierarchy()
    signer = make_cert(person(PRINCIPAL, "Direct Signer"), issuer=pki.root)
    document = sample_document(PRINCIPAL)

    evidence = trusting(pki).verify(document, b64(sign_cms(canonical_bytes(document), signer)))

    assert evidence.signer_id == PRINCIPAL


def test_attached_content_equal_to_the_canonical_bytes_is_accepted(tmp_path: Path) -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    canonical = canonical_bytes(document)
    signature = sign_cms_openssl(canonical, signer, pki.chain, tmp_path, "-nodetach")

    assert trusting(pki).verify(document, b64(signature)).signer_id == PRINCIPAL


def test_a_person_certificate_gives_the_iin_and_kind_person() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)

    evidence = trusting(pki).verify(
        document, b64(sign_cms(canonical_bytes(document), signer, pki.chain))
    )

    assert (evidence.signer_id, evidence.signer_kind) == (PRINCIPAL, "person")


def test_an_organisation_certificate_gives_the_bin() -> None:
    pki = hierarchy()
    signer = pki.signer(organisation(COURT_BIN, "Court System"))
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)

    evidence = trusting(pki).verify(document, b64(signature))

    assert (evidence.signer_id, evidence.signer_kind) == (COURT_BIN, "organisation")


def test_an_organisation_certificate_with_the_bin_in_its_serial_number_gives_the_bin() -> None:
    """The contract's other form of an organisation's certificate: `serialNumber` `BIN...`
    and no organizationalUnitName."""
    pki = hierarchy()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Court System"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"BIN{COURT_BIN}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        ]
    )
    signer = pki.signer(subject)
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)

    evidence = trusting(pki).verify(document, b64(signature))

    assert (evidence.signer_id, evidence.signer_kind) == (COURT_BIN, "organisation")


def test_an_employee_certificate_with_iin_and_bin_signs_for_the_organisation() -> None:
    pki = hierarchy()
    signer = pki.signer(organisation(COURT_BIN, "Court Clerk", iin=PRINCIPAL))
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)

    evidence = trusting(pki).verify(document, b64(signature))

    assert (evidence.signer_id, evidence.signer_kind) == (COURT_BIN, "organisation")


def test_the_evidence_keeps_the_cms_the_certificate_and_the_times() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)
    received = datetime.now(UTC)

    evidence = trusting(pki).verify(document, b64(signature), at=received)

    assert evidence.cms == signature
    assert evidence.certificate == signer.der
    assert evidence.received_at == received
    assert evidence.signed_at.isoformat().startswith(str(document["signed_at"])[:19])
    assert evidence.revocation == "no-crl"


def test_a_signature_in_wrapped_base64_lines_is_accepted() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    wrapped = base64.encodebytes(sign_cms(canonical_bytes(document), signer, pki.chain)).decode()

    assert trusting(pki).verify(document, wrapped).signer_id == PRINCIPAL


def test_stored_evidence_reverifies_after_the_certificate_has_expired() -> None:
    pki = hierarchy()
    now = datetime.now(UTC)
    signer = pki.signer(person(PRINCIPAL, "Short Lived"), not_after=now + timedelta(hours=1))
    document = sample_document(PRINCIPAL)
    evidence = trusting(pki).verify(
        document, b64(sign_cms(canonical_bytes(document), signer, pki.chain))
    )
    years_later = trusting(pki, clock=lambda: now + timedelta(days=3 * 365))

    again = years_later.verify_record(evidence.as_record())

    assert again == evidence


def test_require_signer_refuses_a_signature_by_someone_else() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    evidence = trusting(pki).verify(
        document, b64(sign_cms(canonical_bytes(document), signer, pki.chain))
    )

    require_signer(evidence, PRINCIPAL)
    with pytest.raises(SignerMismatchError):
        require_signer(evidence, complete_id("79052130045"))
    with pytest.raises(SignerMismatchError):
        require_signer(evidence, PRINCIPAL, "organisation")


def test_a_court_event_is_verified_at_its_time_member_and_reverifies() -> None:
    pki = hierarchy()
    court = pki.signer(organisation(COURT_BIN, "Court System"))
    event = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:kz:court:ecase",
        "type": "kz.court.case.judgment-entered-into-force",
        "subject": "7594-26-00-2/1234",
        "time": str(sample_document(PRINCIPAL)["signed_at"]),
        "data": {"case_number": "7594-26-00-2/1234", "judicial_act_id": "A-1"},
    }
    signature = b64(sign_cms(canonical_bytes(event), court, pki.chain))

    evidence = trusting(pki).verify(event, signature, signed_at_field="time")

    assert evidence.signer_id == COURT_BIN
    assert trusting(pki).verify_record(evidence.as_record()) == evidence


def test_a_key_id_naming_an_expired_and_a_renewed_certificate_gives_the_valid_one(
    tmp_path: Path,
) -> None:
    pki = hierarchy()
    now = datetime.now(UTC)
    subject = person(PRINCIPAL, "Renewed In Place")
    old, new = (
        pki.signer(subject, key_label="renewed", serial=serial, not_before=start, not_after=end)
        for serial, start, end in (
            (1, now - timedelta(days=400), now - timedelta(days=10)),
            (2, now - timedelta(days=10), now + timedelta(days=300)),
        )
    )
    document = sample_document(PRINCIPAL)
    signature = sign_cms_openssl(
        canonical_bytes(document), new, [old.cert, *pki.chain], tmp_path, "-keyid"
    )
    assert signature.index(old.der) < signature.index(new.der)  # the expired one comes first

    verified = trusting(pki).verify(document, b64(signature))

    assert verified.certificate == new.der
