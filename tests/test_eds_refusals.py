"""Signatures the verifier refuses: each test breaks one thing in a real signature."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from domain.canonical import canonical_bytes
from domain.errors import InvalidInputError, InvalidSignatureError
from tests.support.pki import (
    Issued,
    b64,
    complete_id,
    edit_signer_info,
    hierarchy,
    person,
    rfc3339,
    sample_document,
    sign_cms,
    sign_cms_openssl,
    trusting,
)

PRINCIPAL = complete_id("85031240012")


def signed(document: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes]:
    pki = hierarchy()
    document = document or sample_document(PRINCIPAL)
    signer = pki.signer(person(PRINCIPAL), key_type="rsa")
    return document, sign_cms(canonical_bytes(document), signer, pki.chain)


def refusal(document: dict[str, Any], signature: str) -> str:
    with pytest.raises(InvalidSignatureError) as refused:
        trusting(hierarchy()).verify(document, signature)
    return refused.value.detail


def test_a_signature_over_changed_content_is_refused() -> None:
    document, signature = signed()
    changed = {**document, "rights": ["represent_first_instance", "conclude_settlement"]}

    assert "message-digest" in refusal(changed, b64(signature))


def test_a_bit_flipped_signature_is_refused() -> None:
    document, signature = signed()
    flipped = bytearray(signature)
    flipped[-10] ^= 0x01  # inside the signature value, the last field of the SignerInfo

    assert "does not verify" in refusal(document, b64(bytes(flipped)))


def test_an_edited_signing_time_attribute_is_refused() -> None:
    document, signature = signed()
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def backdate(signer_info: Any) -> None:
        for attribute in signer_info["signed_attrs"]:
            if attribute["type"].native == "signing_time":
                attribute["values"][0] = cms.Time({"utc_time": earlier})

    edited = edit_signer_info(signature, backdate)

    assert edited != signature
    assert "does not verify" in refusal(document, b64(edited))


@pytest.mark.parametrize("oid", ["1.2.398.3.10.1.1.1.1", "1.2.643.2.2.19"])
def test_a_gost_signature_algorithm_is_refused_as_unsupported(oid: str) -> None:
    document, signature = signed()

    def to_gost(signer_info: Any) -> None:
        signer_info["signature_algorithm"] = {"algorithm": oid}

    detail = refusal(document, b64(edit_signer_info(signature, to_gost)))

    assert detail.startswith("unsupported algorithm GOST")
    assert oid in detail


def test_an_unsupported_digest_algorithm_is_refused() -> None:
    document, signature = signed()

    def to_sha1(signer_info: Any) -> None:
        signer_info["digest_algorithm"] = {"algorithm": "sha1"}

    assert "unsupported algorithm SHA-1" in refusal(
        document, b64(edit_signer_info(signature, to_sha1))
    )


def test_garbage_bytes_are_refused() -> None:
    document, _ = signed()

    assert "malformed CMS" in refusal(document, b64(os.urandom(300)))


def test_a_signature_that_is_not_base64_is_refused() -> None:
    document, _ = signed()

    assert "base64" in refusal(document, "not*base64!")


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_an_empty_signature_is_refused(empty: str) -> None:
    document, _ = signed()

    assert "empty" in refusal(document, empty)


def test_a_truncated_cms_is_refused() -> None:
    document, signature = signed()

    assert "malformed CMS" in refusal(document, b64(signature[:-40]))


def test_a_cms_without_signed_attributes_is_refused(tmp_path: Path) -> None:
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    signer = pki.signer(person(PRINCIPAL))
    bare = sign_cms_openssl(canonical_bytes(document), signer, pki.chain, tmp_path, "-noattr")

    assert "no signed attributes" in refusal(document, b64(bare))


def test_attached_content_other_than_the_document_is_refused(tmp_path: Path) -> None:
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    signer = pki.signer(person(PRINCIPAL))
    other = canonical_bytes({**document, "case_number": "1-1"})
    attached = sign_cms_openssl(other, signer, pki.chain, tmp_path, "-nodetach")

    assert "content differs" in refusal(document, b64(attached))


def test_a_signer_identifier_matching_no_carried_certificate_is_refused() -> None:
    document, signature = signed()

    def unknown_key_id(signer_info: Any) -> None:
        signer_info["sid"] = cms.SignerIdentifier({"subject_key_identifier": b"\x00" * 20})

    detail = refusal(document, b64(edit_signer_info(signature, unknown_key_id)))

    assert "signer certificate is not in the CMS" in detail


def test_a_signed_at_in_the_future_is_refused() -> None:
    future = rfc3339(datetime.now(UTC) + timedelta(hours=1))
    document, signature = signed(sample_document(PRINCIPAL, signed_at=future))

    with pytest.raises(InvalidInputError, match="future"):
        trusting(hierarchy()).verify(document, b64(signature))


def test_a_signed_at_after_the_receipt_time_is_refused() -> None:
    document, signature = signed()
    received = datetime.now(UTC) - timedelta(hours=1)

    with pytest.raises(InvalidInputError, match="receipt"):
        trusting(hierarchy()).verify(document, b64(signature), at=received)


@pytest.mark.parametrize("signed_at", [None, "2026-11-25", "2026-11-25T10:00:00", "yesterday", 5])
def test_a_missing_or_zoneless_signed_at_is_refused(signed_at: object) -> None:
    document = sample_document(PRINCIPAL, signed_at=signed_at)
    if signed_at is None:
        del document["signed_at"]
    document, signature = signed(document)

    with pytest.raises(InvalidInputError, match="signed_at"):
        trusting(hierarchy()).verify(document, b64(signature))


def test_a_cms_signing_time_after_the_receipt_is_refused() -> None:
    document, signature = signed(
        sample_document(PRINCIPAL, signed_at=rfc3339(datetime.now(UTC) - timedelta(hours=2)))
    )
    received = datetime.now(UTC) - timedelta(hours=1)

    with pytest.raises(InvalidSignatureError, match="signing-time"):
        trusting(hierarchy()).verify(document, b64(signature), at=received)


def test_a_tampered_evidence_record_fails_reverification() -> None:
    document, signature = signed()
    record = trusting(hierarchy()).verify(document, b64(signature)).as_record()
    changed = canonical_bytes({**document, "valid_until": "2099-12-31"})
    record["canonical"] = base64.b64encode(changed).decode()

    with pytest.raises(InvalidSignatureError, match="message-digest"):
        trusting(hierarchy()).verify_record(record)


def test_an_evidence_record_naming_another_signer_fails_reverification() -> None:
    document, signature = signed()
    record = trusting(hierarchy()).verify(document, b64(signature)).as_record()
    record["signer_id"] = complete_id("79052130045")

    with pytest.raises(InvalidSignatureError, match="signer_id"):
        trusting(hierarchy()).verify_record(record)


def test_a_cms_with_two_signers_is_refused() -> None:
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    first = pki.signer(person(PRINCIPAL))
    second = pki.signer(person(complete_id("79052130045"), "Second"))
    builder = pkcs7.PKCS7SignatureBuilder().set_data(canonical_bytes(document))
    for signer in (first, second):
        builder = builder.add_signer(signer.cert, signer.key, hashes.SHA256())
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    both = builder.sign(serialization.Encoding.DER, options)

    assert "exactly one signer" in refusal(document, b64(both))


@pytest.mark.parametrize(
    ("weak", "words"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "too small"),
        (lambda: ec.generate_private_key(ec.SECP192R1()), "secp192r1 is too small"),
    ],
    ids=["rsa-1024", "ecdsa-p192"],
)
def test_a_signer_key_weaker_than_112_bits_is_refused(
    weak: Callable[[], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey], words: str
) -> None:
    """RSA under 2048 bits and ECDSA on a curve under 224 bits (NIST SP 800-57)."""
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    key = weak()
    cert = pki.signer(person(PRINCIPAL, "Weak Key")).cert
    weak_cert = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(cert.extensions.get_extension_for_class(x509.KeyUsage).value, True)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    signature = sign_cms(canonical_bytes(document), Issued(weak_cert, key), pki.chain)

    assert words in refusal(document, b64(signature))


def test_a_signed_at_within_the_clock_skew_is_accepted() -> None:
    soon = rfc3339(datetime.now(UTC) + timedelta(minutes=2))
    document, signature = signed(sample_document(PRINCIPAL, signed_at=soon))

    assert trusting(hierarchy()).verify(document, b64(signature)).signer_id == PRINCIPAL
