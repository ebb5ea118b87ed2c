"""What a certificate must say to sign for a person or an organisation in the registry.

Kazakhstan's National Certification Authority (NCA) issues two certificates per key holder:
an AUTH certificate (keyUsage digitalSignature + keyEncipherment, EKU clientAuth) for
logging in, and a signing certificate (nonRepudiation + digitalSignature) for documents.
A power of attorney is a legal act, so it must be signed with the latter; a login key that
happens to be able to produce a CMS must not be taken for a signature.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.errors import UntrustedCertificateError
from domain.evidence import SignerKind
from domain.iin import is_valid_iin_bin
from domain.signed_data import key_weakness
from domain.times import utc_text

_IDENTIFIER = re.compile(r"(IIN|BIN)([0-9]{12})")
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


def require_valid_at(cert: x509.Certificate, when: datetime, role: str) -> None:
    """The certificate's validity window must contain `when` (both ends inclusive)."""
    require_within(cert.not_valid_before_utc, cert.not_valid_after_utc, when, role)


def require_within(not_before: datetime, not_after: datetime, when: datetime, role: str) -> None:
    """`require_valid_at` for a validity window read from the certificate beforehand."""
    if when < not_before:
        raise UntrustedCertificateError(
            f"{role} certificate not yet valid at {utc_text(when)} "
            f"(valid from {utc_text(not_before)})"
        )
    if when > not_after:
        raise UntrustedCertificateError(
            f"{role} certificate expired at {utc_text(when)} (valid until {utc_text(not_after)})"
        )


def require_signing_key_usage(cert: x509.Certificate) -> None:
    """Refuse keys that are not meant for signing documents.

    Rule: not a CA certificate, keyUsage must be present, and an extendedKeyUsage must not
    confine the key to other purposes (`_require_signing_purpose`). nonRepudiation
    (contentCommitment) is accepted as is. Without it, digitalSignature is accepted unless
    the extended key usage is clientAuth and nothing else: that is the NCA
    authentication-only certificate. Anything else (keyAgreement or keyEncipherment alone,
    for instance) is refused.
    """
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise UntrustedCertificateError(
            "signer certificate is a CA certificate (basicConstraints CA:TRUE): a document is "
            "signed with an end-entity certificate"
        )
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        raise UntrustedCertificateError("signer certificate has no keyUsage")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    if extended is not None:
        _require_signing_purpose(extended)
    if usage.content_commitment:
        return
    if not usage.digital_signature:
        raise UntrustedCertificateError(
            "signer certificate keyUsage allows neither nonRepudiation nor digitalSignature"
        )
    if extended is not None and set(extended) == {ExtendedKeyUsageOID.CLIENT_AUTH}:
        raise UntrustedCertificateError(
            "signer certificate is for authentication only (EKU clientAuth, no nonRepudiation)"
        )


_OTHER_PURPOSES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"): "ipsecEndSystem",
    x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"): "ipsecTunnel",
    x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"): "ipsecUser",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.IPSEC_IKE: "ipsecIKE",
}
"""Purposes that are known and are not the signing of documents: a key confined to these
alone is a TLS server's, a code signer's, a time-stamping or OCSP responder's, an IPsec
peer's. Every other purpose passes (anyExtendedKeyUsage, emailProtection and clientAuth,
which NCA signing certificates carry, documentSigning, the NCA's own under 1.2.398, and
any purpose not listed here)."""


def _require_signing_purpose(extended: x509.ExtendedKeyUsage) -> None:
    """RFC 5280 4.2.1.12: a certificate with an extendedKeyUsage is for the purposes listed
    only, so one that lists none but purposes of another kind may not sign a document."""
    purposes = list(extended)
    if purposes and all(purpose in _OTHER_PURPOSES for purpose in purposes):
        names = ", ".join(_OTHER_PURPOSES[purpose] for purpose in purposes)
        raise UntrustedCertificateError(
            f"signer certificate extendedKeyUsage is for {names} only, not for signing documents"
        )


_PROCESSED = (
    x509.BasicConstraints,
    x509.KeyUsage,
    x509.ExtendedKeyUsage,
    x509.SubjectKeyIdentifier,
    x509.AuthorityKeyIdentifier,
    x509.SubjectAlternativeName,
    x509.IssuerAlternativeName,
    x509.CertificatePolicies,  # no policy is required, so any set of them passes
)
"""The extensions the verifier acts on (or may pass over, as RFC 5280 section 6.1 does
when no policy is required); a critical one of any other kind refuses the certificate."""


def require_processed_extensions(cert: x509.Certificate, role: str) -> None:
    """RFC 5280 4.2: a critical extension the verifier does not process refuses the
    certificate. nameConstraints are not processed either, critical or not: a CA that its
    issuer confined to some names is refused rather than trusted for every name. A trust
    anchor's own extensions are not checked here (RFC 5280 6.1.1 leaves them optional)."""
    for extension in cert.extensions:
        if isinstance(extension.value, x509.NameConstraints):
            raise UntrustedCertificateError(
                f"{_name(cert)} carries nameConstraints, which are not supported"
            )
        if extension.critical and not isinstance(extension.value, _PROCESSED):
            raise UntrustedCertificateError(
                f"{role} certificate has a critical extension not supported: "
                f"{extension.oid.dotted_string}"
            )


def require_ca(cert: x509.Certificate, below: int) -> None:
    """A certificate that issues others must be a CA allowed to sign certificates.

    `below` counts the intermediate CA certificates between it and the signer, to honour
    the pathLenConstraint.
    """
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise UntrustedCertificateError(f"{_name(cert)} is not a CA (basicConstraints)")
    if constraints.path_length is not None and below > constraints.path_length:
        raise UntrustedCertificateError(f"{_name(cert)} path length constraint exceeded")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise UntrustedCertificateError(f"{_name(cert)} keyUsage lacks keyCertSign")


def require_strong_key(cert: x509.Certificate) -> None:
    """A CA's key must be as strong as a signer's (`domain/signed_data.py`): whoever breaks
    an RSA-1024 or P-192 CA key issues certificates in the CA's name to anyone."""
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return  # no link it signed can be checked: the path search says so
    weakness = key_weakness(key)
    if weakness is not None:
        raise UntrustedCertificateError(f"{_name(cert)}: {weakness}")


def signer_identity(cert: x509.Certificate) -> tuple[str, SignerKind]:
    """The IIN (person) or BIN (organisation) the certificate subject names.

    Persons: serialNumber `IIN` + 12 digits. Organisations: `BIN` + 12 digits in
    organizationalUnitName or serialNumber. NCA certificates of an organisation's employee
    carry both the employee's IIN and the organisation's BIN: such a signer acts for the
    organisation, so the result is the BIN. Every identifier found must pass the check
    digit, and a subject naming two different IINs or BINs is refused as ambiguous.
    """
    iins: set[str] = set()
    bins: set[str] = set()
    for attribute in cert.subject:
        if attribute.oid not in (NameOID.SERIAL_NUMBER, NameOID.ORGANIZATIONAL_UNIT_NAME):
            continue
        value = attribute.value if isinstance(attribute.value, str) else ""
        match = _IDENTIFIER.fullmatch(value)
        if match is None:
            if value.startswith(("IIN", "BIN")):
                raise UntrustedCertificateError(f"malformed identifier in certificate: {value!r}")
            continue
        prefix, number = match.groups()
        if not is_valid_iin_bin(number):
            raise UntrustedCertificateError(f"bad check digit in certificate {prefix} {number}")
        if prefix == "BIN":
            bins.add(number)
        elif attribute.oid == NameOID.SERIAL_NUMBER:
            iins.add(number)
    if len(iins) > 1 or len(bins) > 1:
        raise UntrustedCertificateError("certificate subject names more than one IIN or BIN")
    if bins:
        return bins.pop(), "organisation"
    if iins:
        return iins.pop(), "person"
    raise UntrustedCertificateError("certificate subject carries no IIN or BIN")


def _extension(cert: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # duplicate or malformed extensions
        raise UntrustedCertificateError(f"{_name(cert)} has malformed extensions: {exc}") from None


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "certificate with empty subject"
