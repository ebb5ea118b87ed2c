"""The CMS SignedData (RFC 5652) of a signed document: parsing and the signer's signature.

`cryptography` verifies signatures but has no public API to verify CMS, so the structure is
read with `asn1crypto` and every cryptographic check is made with `cryptography`.
`asn1crypto` parses lazily, so everything needed is read here, inside one guarded block:
a malformed structure becomes an `InvalidSignatureError`, never a stray exception later.
Only one profile is accepted: exactly one signer, with signed attributes (so the signature
covers the content type and the content digest, not just raw bytes).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

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


@functools.lru_cache(maxsize=1024)
def load_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate once: the same CA and signer certificates arrive again and again."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise InvalidSignatureError(f"malformed certificate in CMS: {exc}") from None


@dataclass(frozen=True)
class SignedData:
    """What the verifier needs from a CMS SignedData with one signer."""

    content: bytes | None
    """The encapsulated content; None when the signature is detached."""
    certificates: tuple[bytes, ...]
    """Every certificate the CMS carries (DER), the signer's included."""
    signer_certificate: bytes
    """The certificate named by the SignerInfo (DER)."""
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
        digest = hashes.Hash(self._digest())
        digest.update(canonical)
        if not hmac.compare_digest(digest.finalize(), self.message_digest):
            raise InvalidSignatureError("message-digest does not match the document")

    def check_signature(self, signer: x509.Certificate) -> None:
        """Verify the signature over the signed attributes with the signer's public key."""
        try:
            key = signer.public_key()
        except (UnsupportedAlgorithm, ValueError):
            raise InvalidSignatureError("unsupported public key algorithm of signer") from None
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


def open_signed_data(der: bytes) -> SignedData:
    """Read a DER ContentInfo holding a SignedData with one signer and signed attributes."""
    if len(der) > MAX_CMS_BYTES:
        raise InvalidSignatureError(f"CMS larger than {MAX_CMS_BYTES} bytes")
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].dotted != _SIGNED_DATA:
            raise InvalidSignatureError("CMS content is not SignedData")
        return _read_signed_data(info["content"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise InvalidSignatureError(f"malformed CMS: {exc}") from None


def _read_signed_data(signed: cms.SignedData) -> SignedData:
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != _DATA:
        raise InvalidSignatureError("CMS encapsulated content type is not data")
    signers = signed["signer_infos"]
    if len(signers) != 1:
        raise InvalidSignatureError(f"exactly one signer expected, found {len(signers)}")
    signer = signers[0]
    signed_attrs, attributes = _signed_attributes(signer)
    certificates = _certificates(signed)
    content = encap["content"]
    return SignedData(
        content=None if isinstance(content, core.Void) else bytes(content.native),
        certificates=certificates,
        signer_certificate=_signer_certificate(signer["sid"], certificates),
        digest_oid=signer["digest_algorithm"]["algorithm"].dotted,
        signature_oid=signer["signature_algorithm"]["algorithm"].dotted,
        signature=bytes(signer["signature"].native),
        signed_attrs=signed_attrs,
        message_digest=bytes(attributes[_MESSAGE_DIGEST].native),
        signing_time=_signing_time(attributes.get(_SIGNING_TIME)),
    )


def _signed_attributes(signer: cms.SignerInfo) -> tuple[bytes, dict[str, core.Asn1Value]]:
    """The DER the signature covers, and the values of the attributes read (one pass)."""
    attributes = signer["signed_attrs"]
    if isinstance(attributes, core.Void) or len(attributes) == 0:
        raise InvalidSignatureError("the CMS has no signed attributes")
    values: dict[str, core.Asn1Value] = {}
    seen: set[str] = set()
    for attribute in attributes:
        oid = attribute["type"].dotted
        if oid in seen:
            raise InvalidSignatureError(f"the signed attribute {oid} appears twice")
        seen.add(oid)
        if oid in _SINGLE_VALUED:
            if len(attribute["values"]) != 1:
                raise InvalidSignatureError(f"the {_SINGLE_VALUED[oid]} attribute needs one value")
            values[oid] = attribute["values"][0]
    for oid in (_CONTENT_TYPE, _MESSAGE_DIGEST):
        if oid not in values:
            raise InvalidSignatureError(f"the {_SINGLE_VALUED[oid]} signed attribute is missing")
    if values[_CONTENT_TYPE].dotted != _DATA:
        raise InvalidSignatureError("signed content-type attribute is not data")
    return _der_set_of(attributes.contents), values


def _signing_time(value: core.Asn1Value | None) -> datetime | None:
    if value is None:
        return None
    when = value.native
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InvalidSignatureError("the signing-time attribute is not a UTC time")
    return when


def _certificates(signed: cms.SignedData) -> tuple[bytes, ...]:
    carried = signed["certificates"]
    if isinstance(carried, core.Void):
        return ()
    found = tuple(c.chosen.dump() for c in carried if c.name == "certificate")
    if len(found) > MAX_CERTIFICATES:
        raise InvalidSignatureError(f"more than {MAX_CERTIFICATES} certificates in the CMS")
    return found


def _signer_certificate(sid: cms.SignerIdentifier, carried: tuple[bytes, ...]) -> bytes:
    """The carried certificate the SignerInfo names, by issuer and serial or by key id."""
    if sid.name == "issuer_and_serial_number":
        issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
        for der in carried:
            if load_certificate(der).serial_number == serial and _issued_by(der, issuer):
                return der
    else:
        key_id = bytes(sid.chosen.native)
        for der in carried:
            if _key_identifier(load_certificate(der)) == key_id:
                return der
    raise InvalidSignatureError("the signer certificate is not in the CMS")


def _issued_by(der: bytes, issuer: asn1_x509.Name) -> bool:
    """Byte equality first; asn1crypto's normalising comparison is right but slow."""
    if load_certificate(der).issuer.public_bytes() == issuer.dump():
        return True
    return bool(asn1_x509.Certificate.load(der).issuer == issuer)


def _key_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _der_set_of(contents: bytes) -> bytes:
    """Re-tag the [0] IMPLICIT signed attributes as the universal SET OF they stand for."""
    size = len(contents)
    if size < 0x80:
        return bytes([0x31, size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x31, 0x80 | len(length)]) + length + contents
