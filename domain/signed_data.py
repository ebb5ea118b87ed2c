"""What the verifier needs of a CMS SignedData (RFC 5652) with one signer, and the checks
of its content digest and its signature; `domain/cms.py` reads it from the bytes.

The profile's algorithms are listed here once, with the DER of their identifiers: both
readers look an identifier up by its encoding before decoding it field by field.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import core, parser
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from domain.errors import InvalidSignatureError

MAX_CMS_BYTES = 256 * 1024
MAX_CERTIFICATES = 16
MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
"""Both about 112 bits of security (NIST SP 800-57): P-192 is as weak as RSA-1024. They
hold for the signer's key and for the key of every CA of its path alike: a certificate
signed with a weak key is as easily forged as a document."""

SIGNED_DATA = "1.2.840.113549.1.7.2"
DATA = "1.2.840.113549.1.7.1"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
SINGLE_VALUED = {
    CONTENT_TYPE: "content-type",
    MESSAGE_DIGEST: "message-digest",
    SIGNING_TIME: "signing-time",
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
    "1.2.643.7.1.1.2.2": "GOST R 34.11-2012 256",
    "1.2.643.7.1.1.2.3": "GOST R 34.11-2012 512",
    "1.2.643.7.1.1.3.2": "GOST R 34.10-2012 256 with GOST R 34.11-2012",
    "1.2.643.7.1.1.3.3": "GOST R 34.10-2012 512 with GOST R 34.11-2012",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
    "1.3.14.3.2.26": "SHA-1",
    "1.2.840.113549.1.1.5": "SHA-1 with RSA",
    "1.2.840.113549.2.5": "MD5",
    "2.16.840.1.101.3.4.2.4": "SHA-224",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
    "1.2.840.10040.4.1": "DSA",
    "2.16.840.1.101.3.4.3.2": "DSA with SHA-256",
}


def key_weakness(key: CertificatePublicKeyTypes) -> str | None:
    """Why `key` is under the 112-bit strength every signature must have, or None."""
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        return f"{kind} key of {key.key_size} bits is too small"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"EC key on {key.curve.name} is too small"
    return None


def algorithm_name(oid: str) -> str:
    """`GOST R 34.10-2012 256 (1.2.643.7.1.1.1.1)`: the name, if known, and the OID."""
    return f"{_KNOWN_NAMES.get(oid, 'unknown')} ({oid})"


def unsupported(oid: str) -> InvalidSignatureError:
    return InvalidSignatureError(f"unsupported algorithm {algorithm_name(oid)}")


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

    def check_signature(self, key: CertificatePublicKeyTypes | None, key_oid: str = "") -> None:
        """Verify the signature over the signed attributes with the signer's public key.

        `key` is None when the certificate's key algorithm (`key_oid`) is not supported at
        all (a GOST key, say).
        """
        if key is None:
            raise InvalidSignatureError(
                f"unsupported public key algorithm of signer: {algorithm_name(key_oid)}"
            )
        oid = self.signature_oid
        weakness = key_weakness(key)
        try:
            if isinstance(key, rsa.RSAPublicKey) and (oid == _RSA_PKCS1 or oid in _RSA_WITH):
                if weakness is not None:
                    raise InvalidSignatureError(weakness)
                algorithm = _RSA_WITH.get(oid, type(self._digest()))()
                key.verify(self.signature, self.signed_attrs, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey) and (
                oid == _ECDSA_KEY or oid in _ECDSA_WITH
            ):
                if weakness is not None:
                    raise InvalidSignatureError(weakness)
                algorithm = _ECDSA_WITH.get(oid, type(self._digest()))()
                key.verify(self.signature, self.signed_attrs, ec.ECDSA(algorithm))
            elif oid in (_RSA_PKCS1, _ECDSA_KEY, *_RSA_WITH, *_ECDSA_WITH):
                raise InvalidSignatureError("signature algorithm does not match the signer key")
            else:
                raise unsupported(oid)
        except InvalidSignature:
            raise InvalidSignatureError("signature does not verify") from None

    def _digest(self) -> hashes.HashAlgorithm:
        algorithm = _DIGESTS.get(self.digest_oid)
        if algorithm is None:
            raise unsupported(self.digest_oid)
        return algorithm()


def _identifier_encodings(*oids: str) -> dict[bytes, str]:
    """The DER AlgorithmIdentifiers of `oids`, without parameters and with NULL ones."""
    found = {}
    for oid in oids:
        encoded = core.ObjectIdentifier(oid).dump()
        for parameters in (b"", core.Null().dump()):
            found[parser.emit(0, 1, 16, encoded + parameters)] = oid
    return found


ACCEPTED = _identifier_encodings(*_DIGESTS, _RSA_PKCS1, _ECDSA_KEY, *_RSA_WITH, *_ECDSA_WITH)
