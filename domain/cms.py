"""The CMS SignedData (RFC 5652) of a signed document, read from its bytes.

`cryptography` verifies signatures but has no public API to verify CMS, so the structure is
read here and every cryptographic check is made with `cryptography`
(`domain/signed_data.py`). Only one profile is accepted: exactly one signer, with signed
attributes (so the signature covers the content type and the content digest, not just raw
bytes).

Two readers, one answer. A DER CMS in the profile, as signers send it, is decoded by
`cryptography`'s ASN.1 reader (`domain/cms_der.py`), which answers only when it is sure.
Everything else, BER as streaming signers write it and every refusal, is read with
`asn1crypto`, which parses lazily: only the fields the verifier needs are decoded, all
inside one guarded block, so a malformed structure becomes an `InvalidSignatureError`,
never a stray exception later.
"""

from __future__ import annotations

from datetime import datetime

from asn1crypto import algos, cms, core, parser

from domain import cms_der
from domain.errors import InvalidSignatureError
from domain.signed_data import (
    ACCEPTED,
    CONTENT_TYPE,
    DATA,
    MAX_CERTIFICATES,
    MAX_CMS_BYTES,
    MESSAGE_DIGEST,
    SIGNED_DATA,
    SIGNING_TIME,
    SINGLE_VALUED,
    SignedData,
    SignerId,
)


def open_signed_data(data: bytes) -> SignedData:
    """Read a BER ContentInfo holding a SignedData with one signer and signed attributes."""
    if len(data) > MAX_CMS_BYTES:
        raise InvalidSignatureError(f"CMS larger than {MAX_CMS_BYTES} bytes")
    return cms_der.read(data) or read_ber(data)


def read_ber(data: bytes) -> SignedData:
    """`open_signed_data` by asn1crypto alone: any BER, and the refusal of what is not in
    the profile, worded."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].dotted != SIGNED_DATA:
            raise InvalidSignatureError("CMS content is not SignedData")
        return _read_signed_data(info["content"])
    except _MALFORMED as exc:
        raise InvalidSignatureError(f"malformed CMS: {exc}") from None


_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
"""What asn1crypto raises, on first access, for a structure that is not what it expects."""


def _read_signed_data(signed: cms.SignedData) -> SignedData:
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != DATA:
        raise InvalidSignatureError("CMS encapsulated content type is not data")
    signers = signed["signer_infos"]
    if len(signers) != 1:
        raise InvalidSignatureError(f"exactly one signer expected, found {len(signers)}")
    signer = signers[0]
    signed_attrs, values = _signed_attributes(signer["signed_attrs"])
    content = encap["content"]
    return SignedData(
        content=None if isinstance(content, core.Void) else bytes(content.native),
        certificate_set=signed["certificates"].dump(),  # b"" when absent
        signer=_signer_id(signer["sid"]),
        digest_oid=_algorithm(signer["digest_algorithm"]),
        signature_oid=_algorithm(signer["signature_algorithm"]),
        signature=bytes(signer["signature"].native),
        signed_attrs=signed_attrs,
        message_digest=bytes(values[MESSAGE_DIGEST].native),
        signing_time=_signing_time(values.get(SIGNING_TIME)),
    )


def _signed_attributes(
    attributes: cms.CMSAttributes | core.Void,
) -> tuple[bytes, dict[str, core.Asn1Value]]:
    """The DER the signature covers, and the values of the attributes read (one pass).

    Only the types of the attributes are decoded, and the values of the three the profile
    knows; the signed bytes are the attributes' own contents under a universal SET OF tag.
    """
    if isinstance(attributes, core.Void) or not attributes.contents:
        raise InvalidSignatureError("the CMS has no signed attributes")
    signed = parser.emit(0, 1, 17, attributes.contents)  # [0] IMPLICIT -> SET OF
    values: dict[str, core.Asn1Value] = {}
    seen: set[str] = set()
    for attribute in attributes:
        oid = attribute["type"].dotted
        if oid in seen:
            raise InvalidSignatureError(f"the signed attribute {oid} appears twice")
        seen.add(oid)
        if oid in SINGLE_VALUED:
            found = attribute["values"]
            if len(found) != 1:
                raise InvalidSignatureError(f"the {SINGLE_VALUED[oid]} attribute needs one value")
            values[oid] = found[0]
    for oid in (CONTENT_TYPE, MESSAGE_DIGEST):
        if oid not in values:
            raise InvalidSignatureError(f"the {SINGLE_VALUED[oid]} signed attribute is missing")
    if values[CONTENT_TYPE].dotted != DATA:
        raise InvalidSignatureError("signed content-type attribute is not data")
    return signed, values


def carried_certificates(certificate_set: bytes) -> tuple[bytes, ...]:
    """The DER of each certificate in a `SignedData.certificate_set`, the signer's included.

    Other kinds of CertificateChoices (attribute certificates...) are ignored.
    """
    if not certificate_set:
        return ()
    try:
        found = cms.CertificateSet.load(certificate_set, strict=True, implicit=0)
        certificates = tuple(c.chosen.dump() for c in found if c.name == "certificate")
    except _MALFORMED as exc:
        raise InvalidSignatureError(f"malformed CMS: {exc}") from None
    if len(certificates) > MAX_CERTIFICATES:
        raise InvalidSignatureError(f"more than {MAX_CERTIFICATES} certificates in the CMS")
    return certificates


def _algorithm(identifier: algos.DigestAlgorithm | algos.SignedDigestAlgorithm) -> str:
    """The algorithm's OID: looked up by its encoding when it is one the profile accepts,
    which saves decoding the identifier (and its parameters) field by field."""
    return ACCEPTED.get(identifier.dump()) or identifier["algorithm"].dotted


def _signer_id(sid: cms.SignerIdentifier) -> SignerId:
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen
        return SignerId(issuer=chosen["issuer"].dump(), serial=chosen["serial_number"].native)
    return SignerId(key_id=bytes(sid.chosen.native))


def _signing_time(value: core.Asn1Value | None) -> datetime | None:
    if value is None:
        return None
    when = value.native
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InvalidSignatureError("the signing-time attribute is not a UTC time")
    return when
