"""Signer keys and algorithms outside the profile: each refusal names what it met.

The keys are real (Ed25519) or, where no library here makes one (GOST), a real certificate
of the test CA whose public key info is a GOST one; the CMS around them is built field by
field from one that `cryptography` made, so that only the signer's certificate, its
algorithm and its signature differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import cms, core, parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from domain.canonical import canonical_bytes
from domain.errors import InvalidSignatureError
from tests.support.pki import (
    b64,
    complete_id,
    edit_signer_info,
    hierarchy,
    person,
    sample_document,
    sign_cms,
    trusting,
)

PRINCIPAL = complete_id("85031240012")
STREEBOG_256 = "1.2.643.7.1.1.2.2"


def _sequence(*parts: bytes) -> bytes:
    return bytes(parser.emit(0, 1, 16, b"".join(parts)))


def _oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def cms_by(
    document: dict[str, Any], cert_der: bytes, signature_oid: str, sign: Callable[[bytes], bytes]
) -> bytes:
    """A CMS over `document` whose signer is `cert_der` (issued by the test intermediate),
    with `signature_oid` and `sign` over the signed attributes."""
    pki = hierarchy()
    template = sign_cms(canonical_bytes(document), pki.signer(person(PRINCIPAL)), pki.chain)
    info = cms.ContentInfo.load(template)
    signed = info["content"]
    signer_info = signed["signer_infos"][0]
    cert = asn1_x509.Certificate.load(cert_der)["tbs_certificate"]
    attributes = signer_info["signed_attrs"].dump()
    signer = _sequence(
        signer_info["version"].dump(),
        _sequence(cert["issuer"].dump(), cert["serial_number"].dump()),
        signer_info["digest_algorithm"].dump(),
        attributes,
        _sequence(_oid(signature_oid)),
        core.OctetString(sign(b"\x31" + attributes[1:])).dump(),
    )
    content = _sequence(
        signed["version"].dump(),
        signed["digest_algorithms"].dump(),
        signed["encap_content_info"].dump(),
        parser.emit(2, 1, 0, cert_der + pki.intermediate.der),
        parser.emit(0, 1, 17, signer),
    )
    return _sequence(info["content_type"].dump(), parser.emit(2, 1, 0, content))


def gost_keyed(key_oid: str) -> bytes:
    """A signing certificate of the test CA for PRINCIPAL with a GOST public key."""
    pki = hierarchy()
    model = asn1_x509.Certificate.load(pki.signer(person(PRINCIPAL, "GOST Holder")).der)
    tbs = model["tbs_certificate"]
    parameters = _sequence(_oid("1.2.643.7.1.2.1.1.1"), _oid(STREEBOG_256))
    key_info = _sequence(
        _sequence(_oid(key_oid), parameters),
        core.OctetBitString(core.OctetString(os.urandom(64)).dump()).dump(),
    )
    tbs_der = _sequence(tbs.contents.replace(tbs["subject_public_key_info"].dump(), key_info))
    issuer_key = pki.intermediate.key
    assert isinstance(issuer_key, rsa.RSAPrivateKey)
    signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    return _sequence(
        tbs_der, model["signature_algorithm"].dump(), core.OctetBitString(signature).dump()
    )


def refusal(document: dict[str, Any], signature: bytes) -> str:
    with pytest.raises(InvalidSignatureError) as refused:
        trusting(hierarchy()).verify(document, b64(signature))
    return refused.value.detail


@pytest.mark.parametrize(
    ("key_oid", "name"),
    [
        ("1.2.398.3.10.1.1.1.1", "GOST 34.310-2004 (KZ)"),
        ("1.2.643.7.1.1.1.1", "GOST R 34.10-2012 256"),
    ],
)
def test_a_gost_key_is_refused_naming_its_algorithm(key_oid: str, name: str) -> None:
    document = sample_document(PRINCIPAL)
    forged = cms_by(document, gost_keyed(key_oid), "1.2.643.7.1.1.3.2", lambda _: os.urandom(64))

    assert refusal(document, forged) == (
        f"unsupported public key algorithm of signer: {name} ({key_oid})"
    )


def test_a_streebog_digest_is_refused_by_its_name() -> None:
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    signer = pki.signer(person(PRINCIPAL), key_type="rsa")
    signature = sign_cms(canonical_bytes(document), signer, pki.chain)

    def to_streebog(signer_info: Any) -> None:
        signer_info["digest_algorithm"] = {"algorithm": STREEBOG_256}

    detail = refusal(document, edit_signer_info(signature, to_streebog))
    assert detail == f"unsupported algorithm GOST R 34.11-2012 256 ({STREEBOG_256})"


def test_an_ed25519_signature_is_refused_by_its_name() -> None:
    pki = hierarchy()
    document = sample_document(PRINCIPAL)
    key = ed25519.Ed25519PrivateKey.generate()
    model = pki.signer(person(PRINCIPAL, "Ed25519 Holder")).cert
    cert = (
        x509.CertificateBuilder()
        .subject_name(model.subject)
        .issuer_name(model.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(model.not_valid_before_utc)
        .not_valid_after(model.not_valid_after_utc)
        .add_extension(model.extensions.get_extension_for_class(x509.KeyUsage).value, True)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)

    assert "unsupported algorithm Ed25519 (1.3.101.112)" in refusal(
        document, cms_by(document, der, "1.3.101.112", key.sign)
    )
