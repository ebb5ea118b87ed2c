"""The two CMS readers answer alike: the DER one (`domain/cms_der.py`) wherever it answers,
and it answers for the DER that signers send.

The DER reader reads what signers send, the asn1crypto one (`cms.read_ber`) everything
else and every refusal. Both are given the same real CMSs, from `cryptography` and from
`openssl cms`, and the same CMSs changed one byte at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from domain import cms, cms_der
from domain.canonical import canonical_bytes
from domain.errors import InvalidSignatureError
from tests.support.pki import (
    complete_id,
    edit_signer_info,
    hierarchy,
    person,
    sample_document,
    sign_cms,
    sign_cms_openssl,
)

PRINCIPAL = complete_id("85031240012")
OPENSSL_DER = ["", "-nodetach", "-keyid", "-nodetach -keyid"]


def openssl(tmp_path: Path, options: str, key_type: str = "rsa") -> bytes:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type=key_type)
    content = canonical_bytes(sample_document(PRINCIPAL))
    return sign_cms_openssl(content, signer, pki.chain, tmp_path, *options.split())


def by_cryptography(key_type: str = "rsa") -> bytes:
    pki = hierarchy()
    signer = pki.signer(person(PRINCIPAL), key_type=key_type)
    return sign_cms(canonical_bytes(sample_document(PRINCIPAL)), signer, pki.chain)


def both(signature: bytes) -> tuple[cms.SignedData | None, cms.SignedData]:
    return cms_der.read(signature), cms.read_ber(signature)


@pytest.mark.parametrize("options", OPENSSL_DER)
@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_openssl_der_is_read_by_the_der_reader_as_asn1crypto_reads_it(
    options: str, key_type: str, tmp_path: Path
) -> None:
    fast, slow = both(openssl(tmp_path, options, key_type))

    assert fast is not None
    assert fast == slow


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_cryptography_der_is_read_by_the_der_reader_as_asn1crypto_reads_it(key_type: str) -> None:
    fast, slow = both(by_cryptography(key_type))

    assert fast is not None
    assert fast == slow


def test_a_signing_time_as_generalized_time_reads_the_same(tmp_path: Path) -> None:
    def generalized(signer_info: Any) -> None:
        for attribute in signer_info["signed_attrs"]:
            if attribute["type"].native == "signing_time":
                when = attribute["values"][0].native
                attribute["values"][0] = asn1_cms.Time({"generalized_time": when})

    fast, slow = both(edit_signer_info(openssl(tmp_path, ""), generalized))

    assert fast is not None and fast.signing_time is not None
    assert fast == slow


@pytest.mark.parametrize("options", ["-stream", "-nodetach -stream"])
def test_ber_is_left_to_asn1crypto(options: str, tmp_path: Path) -> None:
    signature = openssl(tmp_path, options)

    assert cms_der.read(signature) is None
    assert cms.open_signed_data(signature) == cms.read_ber(signature)


def _duplicate_attribute(signer_info: Any) -> None:
    signer_info["signed_attrs"] = [*signer_info["signed_attrs"], signer_info["signed_attrs"][0]]


def _without_message_digest(signer_info: Any) -> None:
    kept = [a for a in signer_info["signed_attrs"] if a["type"].native != "message_digest"]
    signer_info["signed_attrs"] = kept


def _content_type_signed_data(signer_info: Any) -> None:
    for attribute in signer_info["signed_attrs"]:
        if attribute["type"].native == "content_type":
            attribute["values"][0] = asn1_cms.ContentType("signed_data")


def _sha1(signer_info: Any) -> None:
    signer_info["digest_algorithm"] = {"algorithm": "sha1"}


def _gost(signer_info: Any) -> None:
    signer_info["signature_algorithm"] = {"algorithm": "1.2.643.2.2.19"}


EDITS = {
    "a repeated attribute": (_duplicate_attribute, "appears twice"),
    "no message-digest": (_without_message_digest, "message-digest signed attribute is missing"),
    "content-type not data": (_content_type_signed_data, "content-type attribute is not data"),
}


@pytest.mark.parametrize("name", EDITS)
def test_a_der_cms_outside_the_profile_is_refused_in_asn1crypto_s_words(name: str) -> None:
    edit, words = EDITS[name]
    signature = edit_signer_info(by_cryptography(), edit)

    assert cms_der.read(signature) is None
    with pytest.raises(InvalidSignatureError, match=words):
        cms.open_signed_data(signature)


@pytest.mark.parametrize("edit", [_sha1, _gost])
def test_an_algorithm_outside_the_profile_is_read_by_asn1crypto(edit: Any) -> None:
    signature = edit_signer_info(by_cryptography(), edit)

    assert cms_der.read(signature) is None
    assert cms.open_signed_data(signature) == cms.read_ber(signature)


def test_two_signers_and_no_signed_attributes_are_left_to_asn1crypto(tmp_path: Path) -> None:
    pki = hierarchy()
    content = canonical_bytes(sample_document(PRINCIPAL))
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    for iin in (PRINCIPAL, complete_id("79052130045")):
        signer = pki.signer(person(iin))
        builder = builder.add_signer(signer.cert, signer.key, hashes.SHA256())
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    two = builder.sign(serialization.Encoding.DER, options)

    bare = openssl(tmp_path, "-noattr")
    for signature, words in ((two, "exactly one signer"), (bare, "no signed attributes")):
        assert cms_der.read(signature) is None
        with pytest.raises(InvalidSignatureError, match=words):
            cms.open_signed_data(signature)


@pytest.mark.parametrize("options", ["", "-nodetach -keyid"])
def test_wherever_a_changed_byte_leaves_der_the_two_readers_agree(
    options: str, tmp_path: Path
) -> None:
    """Every byte changed in two ways: where the DER reader still answers, asn1crypto reads
    the same; where it does not, the answer is asn1crypto's."""
    signature = openssl(tmp_path, options)
    answered = 0
    for position in range(len(signature)):
        for flip in (0x01, 0x80):
            changed = bytearray(signature)
            changed[position] ^= flip
            fast = cms_der.read(bytes(changed))
            if fast is not None:
                answered += 1
                assert fast == cms.read_ber(bytes(changed)), (position, flip)
    # Bytes of the signature value, the digest and the certificates still make DER.
    assert answered > len(signature) // 2
