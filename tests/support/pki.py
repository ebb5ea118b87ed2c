"""Test certificates with arbitrary parameters, and real CMS signatures made two ways.

Signatures come from `cryptography` (as the demo signer makes them) and from the OpenSSL
command line (as an independent implementation would), so the verifier is never tested
only against its own notion of CMS.
"""

from __future__ import annotations

import base64
import functools
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.eds import TrustStore, Verifier
from domain.iin import is_valid_iin_bin

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
SIGNING = frozenset({"digital_signature", "content_commitment"})
AUTH_ONLY = frozenset({"digital_signature", "key_encipherment"})
CA_USAGE = frozenset({"key_cert_sign", "crl_sign"})
CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@functools.cache
def key(kind: str = "ec", label: str = "") -> PrivateKey:
    """A key per (kind, label), generated once per test session: RSA generation is slow.

    `rsa` is RSA-2048 and `ec` P-256; `rsa-1024` and `ec-p192` are too weak to be trusted.
    """
    if kind in ("rsa", "rsa-1024"):
        size = 1024 if kind == "rsa-1024" else 2048
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    return ec.generate_private_key(ec.SECP192R1() if kind == "ec-p192" else ec.SECP256R1())


def complete_id(first_eleven: str) -> str:
    """The IIN/BIN with these 11 digits and a valid check digit."""
    for digit in "0123456789":
        if is_valid_iin_bin(first_eleven + digit):
            return first_eleven + digit
    raise ValueError(f"no valid check digit for {first_eleven}")


def person(iin: str, name: str = "Test Person") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"IIN{iin}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        ]
    )


def organisation(bin_: str, name: str = "Test Court", iin: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"BIN{bin_}"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
    ]
    if iin is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, f"IIN{iin}"))
    return x509.Name(attributes)


def common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_cert(
    subject: x509.Name,
    *,
    issuer: Issued | None = None,
    key_type: str = "ec",
    key_label: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    ca: bool = False,
    path_length: int | None = None,
    key_usage: Iterable[str] | None = None,
    eku: Iterable[x509.ObjectIdentifier] | None = None,
    serial: int | None = None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """A certificate signed by `issuer` (self-signed if None).

    `key_usage` names KeyUsage flags; by default a CA gets keyCertSign + cRLSign and a leaf
    the signing pair. An empty `key_usage` leaves the extension out; `extensions` are added
    as they are, each with its criticality.
    """
    now = datetime.now(UTC)
    private = key(key_type, key_label if key_label is not None else subject.rfc4514_string())
    usage = frozenset(key_usage if key_usage is not None else (CA_USAGE if ca else SIGNING))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(private.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
        )
    )
    if usage:
        flags = {flag: flag in usage for flag in _KEY_USAGE_FLAGS}
        builder = builder.add_extension(
            x509.KeyUsage(**flags, encipher_only=False, decipher_only=False), critical=True
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    signing_key = issuer.key if issuer else private
    return Issued(builder.sign(signing_key, hashes.SHA256()), private)


def sign_cms(
    content: bytes,
    signer: Issued,
    extra: Iterable[x509.Certificate] = (),
    digest: hashes.HashAlgorithm | None = None,
) -> bytes:
    """Detached DER CMS with signed attributes, made with cryptography."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(signer.cert, signer.key, digest or hashes.SHA256())  # type: ignore[arg-type]
    for cert in extra:
        builder = builder.add_certificate(cert)
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    return builder.sign(serialization.Encoding.DER, options)


def sign_cms_openssl(
    content: bytes,
    signer: Issued,
    extra: Iterable[x509.Certificate],
    workdir: Path,
    *options: str,
) -> bytes:
    """DER CMS made by `openssl cms -sign`: detached, SHA-256, signed attributes.

    `options` go to the command line as they are (`-nodetach`, `-noattr`, ...).
    """
    (workdir / "content.bin").write_bytes(content)
    (workdir / "signer.pem").write_bytes(signer.pem)
    (workdir / "key.pem").write_bytes(
        signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    command = ["openssl", "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER", *options]
    command += ["-in", "content.bin", "-signer", "signer.pem", "-inkey", "key.pem"]
    chain = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in extra)
    if chain:
        (workdir / "chain.pem").write_bytes(chain)
        command += ["-certfile", "chain.pem"]
    command += ["-out", "signature.der"]
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return (workdir / "signature.der").read_bytes()


def edit_signer_info(signature: bytes, edit: Callable[[Any], None]) -> bytes:
    """Re-encode the CMS after `edit(signer_info)`, keeping the original signature value."""
    info = cms.ContentInfo.load(signature)
    edit(info["content"]["signer_infos"][0])
    return bytes(info.dump(force=True))


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


@dataclass(frozen=True)
class Hierarchy:
    """A trusted root, an intermediate that issues signers, and a way to make signers."""

    root: Issued
    intermediate: Issued

    def signer(self, subject: x509.Name, **options: object) -> Issued:
        return make_cert(subject, issuer=self.intermediate, **options)  # type: ignore[arg-type]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """What a signer's CMS carries besides its own certificate."""
        return (self.intermediate.cert,)


@functools.cache
def hierarchy() -> Hierarchy:
    root = make_cert(common_name("Test Root CA"), key_type="rsa", ca=True, key_label="root")
    intermediate = make_cert(
        common_name("Test Signing CA"),
        issuer=root,
        key_type="rsa",
        ca=True,
        path_length=0,
        key_label="intermediate",
    )
    return Hierarchy(root, intermediate)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sample_document(principal_iin: str, **overrides: object) -> dict[str, object]:
    """An `epoa.issue` document as the portal sends it, signed a minute ago."""
    document: dict[str, object] = {
        "type": "epoa.issue",
        "document_id": "6f1c1f4e-3c2b-4b55-9a43-1d2f0c6e8a11",
        "signed_at": rfc3339(datetime.now(UTC) - timedelta(minutes=1)),
        "case_number": "7594-26-00-2/1234",
        "principal": {"iin": principal_iin},
        "attorneys": [{"iin": complete_id("79052130045")}],
        "rights": ["represent_first_instance", "appeal_judicial_acts"],
        "valid_until": "2027-12-31",
    }
    document.update(overrides)
    return document


def trusting(pki: Hierarchy, crls: Iterable[bytes] = (), **options: object) -> Verifier:
    """A verifier whose trust store holds the hierarchy's root only."""
    return Verifier(TrustStore.from_pem(pki.root.pem), crls=list(crls), **options)  # type: ignore[arg-type]
