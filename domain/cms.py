"""The CMS SignedData (RFC 5652) of a signed document: parsing and the signer's signature.

`cryptography` verifies signatures but has no public API to verify CMS, so the structure is
read with `asn1crypto` and every cryptographic check is made with `cryptography`.
`asn1crypto` parses lazily, so only the fields the verifier needs are ever decoded, and
they are all read here, inside one guarded block: a malformed structure becomes an
`InvalidSignatureError`, never a stray exception later. Only one profile is accepted:
exactly one signer, with signed attributes (so the signature covers the content type and
the content digest, not just raw bytes).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, core, parser
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from domain.errors import InvalidSignatureError

MAX_CMS_BYTES = 256 * 1024
MAX_CERTIFICATES = 16
MIN_RSA_BITS = 2048

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_DATA = "1.2.840.113549.1.7.1"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_SINGLE_VALUED = {
    _CONTENT_TYPE: "content-type",
    _MESSAGE_DIGEST: "message-digest",
    _SIGNING_TIME: "signing-time",
}

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_RSA_PKCS1 = "1.2.840.113549.1.1.1"  # rsaEncryption: the hash is the digest algorithm's
_ECDSA_KEY = "1.2.840.10045.2.1"  # id-ecPublicKey, seen in place of ecdsa-with-SHAxxx
_RSA_WITH: dict[str, type[hashes.HashAlgorithm]] = {
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
_ECDSA_WITH: dict[str, type[hashes.HashAlgorithm]] = {
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
_KNOWN_NAMES = {  # algorithms met in Kazakhstan and Russia, named in refusals
    "1.2.398.3.10.1.1.1.1": "GOST 34.310-2004 (KZ)",
    "1.2.398.3.10.1.1.1.2": "GOST 34.310-2004 (KZ) with GOST 34.311-95",
    "1.2.398.3.10.1.1.2.3.1": "GOST R 34.10-2015 (KZ) 512",
    "1.2.398.3.10.1.3.1": "GOST 34.311-95 (KZ)",
    "1.2.643.2.2.3": "GOST R 34.11-94 with GOST R 34.10-2001",
    "1.2.643.2.2.19": "GOST R 34.10-2001",
    "1.2.643.7.1.1.1.1": "GOST R 34.10-2012 256",
    "1.2.643.7.1.1.1.2": "GOST R 34.10-2012 512",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
    "1.3.14.3.2.26": "SHA-1",
    "1.2.840.113549.1.1.5": "SHA-1 with RSA",
}


def _unsupported(oid: str) -> InvalidSignatureError:
    name = _KNOWN_NAMES.get(oid, "unknown")
    return InvalidSignatureError(f"unsupported algorithm {name} ({oid})")


@dataclass(frozen=True)
class SignerId:
    """How the SignerInfo names its certificate: issuer and serial number, or key id."""

    issuer: bytes | None = None
    """DER of the issuer's Name."""
    serial: int | None = None
    key_id: bytes | None = None


@dataclass(frozen=True)
class SignedData:
    """What the verifier needs from a CMS SignedData with one signer."""

    content: bytes | None
    """The encapsulated content; None when the signature is detached."""
    certificate_set: bytes
    """The encoded [0] CertificateSet, or empty: whole, as a signer sends the same one each
    time; `carried_certificates` splits it."""
    signer: SignerId
    digest_oid: str
    signature_oid: str
    signature: bytes
    signed_attrs: bytes
    """DER of the signed attributes as a SET OF: the bytes the signature covers."""
    message_digest: bytes
    signing_time: datetime | None

    def check_content(self, canonical: bytes) -> None:
        """The CMS must sign exactly `canonical`: detached, or carrying the same bytes."""
        if self.content is not None and self.content != canonical:
            raise InvalidSignatureError("the CMS content differs from the document")
        digest = hashlib.new(self._digest().name, canonical).digest()
        if not hmac.compare_digest(digest, self.message_digest):
            raise InvalidSignatureError("message-digest does not match the document")

    def check_signature(self, key: CertificatePublicKeyTypes | None) -> None:
        """Verify the signature over the signed attributes with the signer's public key.

        `key` is None when the certificate's key algorithm is not supported at all.
        """
        if key is None:
            raise InvalidSignatureError("unsupported public key algorithm of signer")
        oid = self.signature_oid
        try:
            if isinstance(key, rsa.RSAPublicKey) and (oid == _RSA_PKCS1 or oid in _RSA_WITH):
                if key.key_size < MIN_RSA_BITS:
                    raise InvalidSignatureError(f"RSA key of {key.key_size} bits is too small")
                algorithm = _RSA_WITH.get(oid, type(self._digest()))()
                key.verify(self.signature, self.signed_attrs, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey) and (
                oid == _ECDSA_KEY or oid in _ECDSA_WITH
            ):
                algorithm = _ECDSA_WITH.get(oid, type(self._digest()))()
                key.verify(self.signature, self.signed_attrs, ec.ECDSA(algorithm))
            elif oid in (_RSA_PKCS1, _ECDSA_KEY, *_RSA_WITH, *_ECDSA_WITH):
                raise InvalidSignatureError("signature algorithm does not match the signer key")
            else:
                raise _unsupported(oid)
        except InvalidSignature:
            raise InvalidSignatureError("signature does not verify") from None

    def _digest(self) -> hashes.HashAlgorithm:
        algorithm = _DIGESTS.get(self.digest_oid)
        if algorithm is None:
            raise _unsupported(self.digest_oid)
        return algorithm()


def open_signed_data(data: bytes) -> SignedData:
    """Read a BER ContentInfo holding a SignedData with one signer and signed attributes."""
    if len(data) > MAX_CMS_BYTES:
        raise InvalidSignatureError(f"CMS larger than {MAX_CMS_BYTES} bytes")
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].dotted != _SIGNED_DATA:
            raise InvalidSignatureError("CMS content is not SignedData")
        return _read_signed_data(info["content"])
    except _MALFORMED as exc:
        raise InvalidSignatureError(f"malformed CMS: {exc}") from None


_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)
"""What asn1crypto raises, on first access, for a structure that is not what it expects."""


def _read_signed_data(signed: cms.SignedData) -> SignedData:
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != _DATA:
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
        message_digest=bytes(values[_MESSAGE_DIGEST].native),
        signing_time=_signing_time(values.get(_SIGNING_TIME)),
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
        if oid in _SINGLE_VALUED:
            found = attribute["values"]
            if len(found) != 1:
                raise InvalidSignatureError(f"the {_SINGLE_VALUED[oid]} attribute needs one value")
            values[oid] = found[0]
    for oid in (_CONTENT_TYPE, _MESSAGE_DIGEST):
        if oid not in values:
            raise InvalidSignatureError(f"the {_SINGLE_VALUED[oid]} signed attribute is missing")
    if values[_CONTENT_TYPE].dotted != _DATA:
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


def _identifier_encodings(*oids: str) -> dict[bytes, str]:
    """The DER AlgorithmIdentifiers of `oids`, without parameters and with NULL ones."""
    found = {}
    for oid in oids:
        encoded = core.ObjectIdentifier(oid).dump()
        for parameters in (b"", core.Null().dump()):
            found[parser.emit(0, 1, 16, encoded + parameters)] = oid
    return found


_ACCEPTED = _identifier_encodings(*_DIGESTS, _RSA_PKCS1, _ECDSA_KEY, *_RSA_WITH, *_ECDSA_WITH)


def _algorithm(identifier: algos.DigestAlgorithm | algos.SignedDigestAlgorithm) -> str:
    """The algorithm's OID: looked up by its encoding when it is one the profile accepts,
    which saves decoding the identifier (and its parameters) field by field."""
    return _ACCEPTED.get(identifier.dump()) or identifier["algorithm"].dotted


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
