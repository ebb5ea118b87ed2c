"""A DER CMS in the profile, read by `cryptography`'s declarative ASN.1 reader.

Signers send DER, and reading it with `cryptography.hazmat.asn1` (its Rust DER parser)
takes a few percent of the time asn1crypto takes for the same fields. This reader decides
nothing alone: it answers a `SignedData` only for strict DER that is inside the profile in
every field it reads, and None for anything else (BER, a set out of DER order, an
algorithm outside the profile, a second signer, a missing or repeated attribute, a value
of another type). Then `domain/cms.py` reads the same bytes with asn1crypto, which accepts
BER and words every refusal. DER has one encoding per value, so where this reader answers,
the two readers answer alike (`tests/test_eds_readers.py` compares them).

`cryptography` documents the module as usable but not yet under its compatibility policy;
it is pinned to one release in `pyproject.toml`, and the comparison tests run on every
upgrade.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from asn1crypto import parser
from cryptography.hazmat import asn1
from cryptography.x509 import ObjectIdentifier

from domain.signed_data import (
    ACCEPTED,
    CONTENT_TYPE,
    DATA,
    MESSAGE_DIGEST,
    SIGNED_DATA,
    SIGNING_TIME,
    SignedData,
    SignerId,
)


@asn1.sequence
class _Attribute:
    type: ObjectIdentifier
    values: asn1.SetOf[asn1.TLV]


@asn1.sequence
class _IssuerAndSerialNumber:
    issuer: asn1.TLV
    serial: int


@asn1.sequence
class _SignerInfo:
    version: int
    sid: _IssuerAndSerialNumber | Annotated[bytes, asn1.Implicit(0)]
    digest_algorithm: asn1.TLV
    # SEQUENCE OF under the implicit tag: the order is the signer's, as asn1crypto reads it.
    signed_attrs: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]
    signature_algorithm: asn1.TLV
    signature: bytes
    unsigned_attrs: Annotated[list[asn1.TLV] | None, asn1.Implicit(1)]


@asn1.sequence
class _EncapsulatedContentInfo:
    content_type: ObjectIdentifier
    content: Annotated[bytes | None, asn1.Explicit(0)]


@asn1.sequence
class _SignedData:
    version: int
    digest_algorithms: asn1.SetOf[asn1.TLV]
    encap_content_info: _EncapsulatedContentInfo
    certificates: Annotated[list[asn1.TLV] | None, asn1.Implicit(0)]
    crls: Annotated[list[asn1.TLV] | None, asn1.Implicit(1)]
    signer_infos: asn1.SetOf[_SignerInfo]


@asn1.sequence
class _ContentInfo:
    content_type: ObjectIdentifier
    content: Annotated[_SignedData, asn1.Explicit(0)]


_SIGNED_DATA, _DATA = ObjectIdentifier(SIGNED_DATA), ObjectIdentifier(DATA)
_UTC_TIME, _GENERALIZED_TIME, _OCTET_STRING, _OID = b"\x17", b"\x18", b"\x04", b"\x06"
_SEQUENCE = b"\x30"
_TIMES = {_UTC_TIME: asn1.UTCTime, _GENERALIZED_TIME: asn1.GeneralizedTime}


def read(data: bytes) -> SignedData | None:
    """The SignedData of `data` if it is a DER CMS in the profile, else None."""
    try:
        info = asn1.decode_der(_ContentInfo, data)
        if info.content_type != _SIGNED_DATA:
            return None
        return _signed_data(info.content)
    except (ValueError, TypeError, OverflowError):  # not DER, or not of these types
        return None


def _signed_data(signed: _SignedData) -> SignedData | None:
    encap = signed.encap_content_info
    signers = signed.signer_infos.as_list()
    if encap.content_type != _DATA or len(signers) != 1:
        return None
    signer = signers[0]
    digest_oid = ACCEPTED.get(asn1.encode_der(signer.digest_algorithm))
    signature_oid = ACCEPTED.get(asn1.encode_der(signer.signature_algorithm))
    attributes = _signed_attributes(signer.signed_attrs or [])
    signer_id = _signer_id(signer.sid)
    if digest_oid is None or signature_oid is None or attributes is None or signer_id is None:
        return None
    signed_attrs, message_digest, signing_time = attributes
    certificates = signed.certificates
    return SignedData(
        content=encap.content,
        certificate_set=b""
        if certificates is None
        else parser.emit(2, 1, 0, b"".join(asn1.encode_der(c) for c in certificates)),
        signer=signer_id,
        digest_oid=digest_oid,
        signature_oid=signature_oid,
        signature=signer.signature,
        signed_attrs=signed_attrs,
        message_digest=message_digest,
        signing_time=signing_time,
    )


def _signed_attributes(
    attributes: list[asn1.TLV],
) -> tuple[bytes, bytes, datetime | None] | None:
    """The DER the signature covers (the attributes in the signer's order under a universal
    SET OF tag), the message digest and the signing time; None unless content-type (data)
    and message-digest are there, no attribute twice, the three known ones with one value."""
    values: dict[str, list[asn1.TLV]] = {}
    for attribute in (tlv.parse(_Attribute) for tlv in attributes):
        oid = attribute.type.dotted_string
        if oid in values:
            return None
        values[oid] = attribute.values.as_list()
    content_type = values.get(CONTENT_TYPE, [])
    digest = values.get(MESSAGE_DIGEST, [])
    times = values.get(SIGNING_TIME)
    if len(content_type) != 1 or len(digest) != 1 or (times is not None and len(times) != 1):
        return None
    if content_type[0].tag_bytes != _OID or content_type[0].parse(ObjectIdentifier) != _DATA:
        return None
    signing_time = None if times is None else _time(times[0])
    if digest[0].tag_bytes != _OCTET_STRING or (times is not None and signing_time is None):
        return None
    signed = parser.emit(0, 1, 17, b"".join(asn1.encode_der(a) for a in attributes))
    return signed, digest[0].parse(bytes), signing_time


def _time(value: asn1.TLV) -> datetime | None:
    """A signing time: UTCTime or GeneralizedTime, in UTC (DER allows no other zone)."""
    kind = _TIMES.get(value.tag_bytes)
    if kind is None:
        return None
    time: asn1.UTCTime | asn1.GeneralizedTime = value.parse(kind)
    return time.as_datetime()


def _signer_id(sid: _IssuerAndSerialNumber | bytes) -> SignerId | None:
    if isinstance(sid, bytes):
        return SignerId(key_id=sid)
    if sid.issuer.tag_bytes != _SEQUENCE:  # a Name is a SEQUENCE (of RDNs)
        return None
    return SignerId(issuer=asn1.encode_der(sid.issuer), serial=sid.serial)
