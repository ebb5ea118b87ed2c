"""The CMS as the verifier reads it, on DER and on BER as streaming signers write it.

Each field read is compared with what the signer was given (its certificate, the chain,
the content), not with another parse of the same bytes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from domain.canonical import canonical_bytes
from domain.cms import carried_certificates, open_signed_data
from domain.errors import InvalidSignatureError
from tests.support.pki import (
    Issued,
    b64,
    complete_id,
    hierarchy,
    person,
    sample_document,
    sign_cms,
    sign_cms_openssl,
    trusting,
)

PRINCIPAL = complete_id("85031240012")
SIGNING_TIME_OID = core.ObjectIdentifier("1.2.840.113549.1.9.5").dump()
MAKERS = [
    "cryptography",
    "openssl",
    "openssl -nodetach",
    "openssl -stream",
    "openssl -nodetach -stream",
]


def made_by(maker: str, workdir: Path) -> tuple[dict[str, Any], Issued, bytes]:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type="rsa")
    document = sample_document(PRINCIPAL)
    content = canonical_bytes(document)
    if maker == "cryptography":
        return document, signer, sign_cms(content, signer, pki.chain)
    options = maker.split()[1:]
    return document, signer, sign_cms_openssl(content, signer, pki.chain, workdir, *options)


@pytest.mark.parametrize("maker", MAKERS)
def test_the_fields_read_are_those_the_signer_was_given(maker: str, tmp_path: Path) -> None:
    document, signer, signature = made_by(maker, tmp_path)
    content = canonical_bytes(document)

    read = open_signed_data(signature)

    assert read.content == (None if maker in ("cryptography", "openssl") else content)
    carried = carried_certificates(read.certificate_set)
    assert sorted(carried) == sorted([signer.der, hierarchy().intermediate.der])
    assert read.signer.serial == signer.cert.serial_number
    assert read.signer.issuer == signer.cert.issuer.public_bytes()
    assert read.digest_oid == "2.16.840.1.101.3.4.2.1"
    assert read.message_digest == hashlib.sha256(content).digest()
    assert isinstance(read.signing_time, datetime)
    assert read.signed_attrs[:1] == b"\x31"  # the universal SET OF the signature covers
    key = signer.cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(read.signature, read.signed_attrs, padding.PKCS1v15(), hashes.SHA256())
    assert trusting(hierarchy()).verify(document, b64(signature)).signer_id == PRINCIPAL


@pytest.mark.parametrize("maker", ["openssl -stream", "openssl -nodetach -stream"])
def test_a_ber_cms_with_indefinite_lengths_is_accepted(maker: str, tmp_path: Path) -> None:
    document, _, signature = made_by(maker, tmp_path)

    assert signature.startswith(b"\x30\x80")
    assert trusting(hierarchy()).verify(document, b64(signature)).signer_id == PRINCIPAL


def test_a_signer_named_by_an_issuer_spelt_differently_is_found() -> None:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL))
    document = sample_document(PRINCIPAL)
    info = cms.ContentInfo.load(sign_cms(canonical_bytes(document), signer, pki.chain))
    respelt = asn1_x509.Name.build({"common_name": "test  SIGNING ca"}, use_printable=True)
    info["content"]["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        {
            "issuer_and_serial_number": {
                "issuer": respelt,
                "serial_number": signer.cert.serial_number,
            }
        }
    )
    signature = info.dump(force=True)

    assert respelt.dump() != signer.cert.issuer.public_bytes()
    assert trusting(pki).verify(document, b64(signature)).certificate == signer.der


def refusal(signature: bytes) -> str:
    with pytest.raises(InvalidSignatureError) as refused:
        trusting(hierarchy()).verify(sample_document(PRINCIPAL), b64(signature))
    return refused.value.detail


def test_bytes_after_the_cms_are_refused(tmp_path: Path) -> None:
    _, _, signature = made_by("cryptography", tmp_path)

    assert "malformed CMS" in refusal(signature + b"\x00")


def test_deeply_nested_indefinite_lengths_are_refused_as_malformed() -> None:
    nested = b"\x30\x80" * 5000 + b"\x00\x00" * 5000

    assert "malformed CMS" in refusal(nested)


def streamed_with_content(segments: bytes, workdir: Path) -> bytes:
    """A streamed CMS whose attached content (an indefinite OCTET STRING) is `segments`.

    The lengths around it are indefinite too, so the content can be swapped in place.
    """
    _, _, signature = made_by("openssl -nodetach -stream", workdir)
    start = signature.index(b"\x24\x80") + 2
    end = signature.index(b"\x00\x00", start)
    return signature[:start] + segments + signature[end:]


def test_content_in_deeply_nested_indefinite_segments_is_refused(tmp_path: Path) -> None:
    nested = b"\x24\x80" * 3000 + b"\x04\x00" + b"\x00\x00" * 3000

    assert "malformed CMS" in refusal(streamed_with_content(nested, tmp_path))


def test_content_in_definite_length_constructed_segments_is_refused(tmp_path: Path) -> None:
    """BER allows a constructed OCTET STRING of definite length; asn1crypto reads one only
    with an indefinite length, as streaming signers write it, so this form is refused."""
    nested = b"\x04\x00"
    for _ in range(3000):
        nested = b"\x24\x82" + len(nested).to_bytes(2, "big") + nested

    assert "malformed CMS" in refusal(streamed_with_content(nested, tmp_path))


def test_an_indefinite_length_without_its_end_is_refused(tmp_path: Path) -> None:
    _, _, signature = made_by("openssl -stream", tmp_path)

    assert "malformed CMS" in refusal(signature[:-2])


def test_a_malformed_certificate_set_is_refused(tmp_path: Path) -> None:
    _, _, signature = made_by("cryptography", tmp_path)
    certificate_set = open_signed_data(signature).certificate_set

    with pytest.raises(InvalidSignatureError, match="malformed CMS"):
        carried_certificates(certificate_set[:-1])


def test_a_signing_time_without_a_zone_is_refused(tmp_path: Path) -> None:
    _, _, signature = made_by("cryptography", tmp_path)
    utc_time = signature.index(b"\x17\x0d", signature.index(SIGNING_TIME_OID))
    local = b"\x18\x0d2026030112.50"  # a GeneralizedTime of the same length, zoneless
    edited = signature[:utc_time] + local + signature[utc_time + len(local) :]

    with pytest.raises(InvalidSignatureError, match="not a UTC time"):
        open_signed_data(edited)


def with_certificate_edited(ca: bool, old: bytes, new: bytes, tmp_path: Path) -> str:
    """Verify a CMS with `old` replaced by `new` (as long) at its first place in the carried
    CA certificate, or in the signer's (the CMS holds both as they are); the refusal."""
    document, signer, signature = made_by("cryptography", tmp_path)
    carried = hierarchy().intermediate.der if ca else signer.der
    start = signature.index(carried)
    at = signature.index(old, start, start + len(carried))
    edited = signature[:at] + new + signature[at + len(old) :]
    with pytest.raises(InvalidSignatureError) as refused:
        trusting(hierarchy()).verify(document, b64(edited))
    return refused.value.detail


def test_a_carried_certificate_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    version_3 = b"\xa0\x03\x02\x01\x02"
    detail = with_certificate_edited(False, version_3, version_3[:-1] + b"\x09", tmp_path)

    assert "malformed certificate" in detail


def test_a_carried_ca_certificate_with_a_malformed_subject_is_refused(tmp_path: Path) -> None:
    name = b"\x0c\x0fTest Signing CA"  # the UTF8String of the CA's common name
    not_utf8 = name.replace(b"Signing", b"Sign\x8dng")

    assert "malformed certificate" in with_certificate_edited(True, name, not_utf8, tmp_path)


def test_a_carried_ca_certificate_with_a_bit_string_in_its_subject_is_refused(
    tmp_path: Path,
) -> None:
    name = b"\x0c\x0fTest Signing CA"  # the UTF8String of the CA's common name
    bit_string = b"\x03\x0f\x00est Signing CA"  # as long, a BIT STRING: no name's type

    assert "malformed certificate" in with_certificate_edited(True, name, bit_string, tmp_path)
