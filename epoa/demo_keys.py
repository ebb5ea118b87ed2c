"""A demo PKI and an EDS client, so the registry can be tried without NCA certificates.

`make_demo` writes a root CA (the trust bundle `ca.pem`), an intermediate CA, and PKCS#12
key files for a principal, two attorneys and a court system, laid out as NCA issues them
(subject serialNumber `IIN...`; organisations `BIN...` in organizationalUnitName and
serialNumber; keyUsage nonRepudiation + digitalSignature). Every PKCS#12 file is protected
with the password "demo" (`DEMO_PASSWORD`): these keys sign nothing real and must never be
trusted outside a demo. The CA private keys are not written anywhere.

`sign_document` does what an EDS client (NCALayer, eGov mobile) does for the portal: a
detached CMS over the document's canonical bytes, with signed attributes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from domain.canonical import canonical_bytes
from domain.evidence import SignerKind

DEMO_PASSWORD = "demo"
CA_FILE = "ca.pem"
PEOPLE_FILE = "people.json"
INTERMEDIATE_FILE = "intermediate.pem"

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class DemoIdentity:
    role: str
    """`principal`, `attorney` or `court`."""
    name: str
    kind: SignerKind
    id: str
    """The IIN (person) or BIN (organisation) the certificate carries."""
    p12: Path
    birth_date: str | None = None


@dataclass(frozen=True)
class DemoKeys:
    directory: Path
    ca_pem: Path
    identities: tuple[DemoIdentity, ...]

    def of_role(self, role: str) -> list[DemoIdentity]:
        return [identity for identity in self.identities if identity.role == role]

    @property
    def principal(self) -> DemoIdentity:
        return self.of_role("principal")[0]

    @property
    def attorneys(self) -> list[DemoIdentity]:
        return self.of_role("attorney")

    @property
    def court(self) -> DemoIdentity:
        return self.of_role("court")[0]


# IINs: birth date YYMMDD, century-and-sex digit, serial, check digit (all valid).
_PEOPLE = (
    ("principal", "SADYKOVA AIGERIM", "850312400128", "1985-03-12"),
    ("attorney", "ZHUMABEKOV YERLAN", "790521300451", "1979-05-21"),
    ("attorney", "ABDRAKHMANOVA DANA", "881107400786", "1988-11-07"),
)
_COURT = ("court", "COURT CASE MANAGEMENT SYSTEM", "010340003214")


def make_demo(directory: Path) -> DemoKeys:
    """Create the demo CA, certificates and key files in `directory` (overwriting)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_certificate(_plain_name("EPOA DEMO ROOT CA"), root_key, None, now)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = _ca_certificate(
        _plain_name("EPOA DEMO SIGNING CA"), ca_key, (root, root_key), now
    )
    (directory / CA_FILE).write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / INTERMEDIATE_FILE).write_bytes(
        intermediate.public_bytes(serialization.Encoding.PEM)
    )
    identities: list[DemoIdentity] = []
    for index, (role, name, iin, birth_date) in enumerate(_PEOPLE):
        p12 = directory / f"{role}{index if role == 'attorney' else ''}.p12"
        key: _PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_p12(p12, name, key, _person_name(name, iin), (intermediate, ca_key), now)
        identities.append(DemoIdentity(role, name, "person", iin, p12, birth_date))
    role, name, bin_ = _COURT
    p12 = directory / "court.p12"
    key = ec.generate_private_key(ec.SECP256R1())
    _write_p12(p12, name, key, _court_name(name, bin_), (intermediate, ca_key), now)
    identities.append(DemoIdentity(role, name, "organisation", bin_, p12))
    demo = DemoKeys(directory, directory / CA_FILE, tuple(identities))
    _write_people(demo)
    return demo


def holds_demo(directory: Path) -> bool:
    """Whether `make_demo` would replace anything in `directory`: any one of its files, for
    a CA kept without the rest (or keys without their CA) still backs signatures."""
    made = (CA_FILE, INTERMEDIATE_FILE, PEOPLE_FILE)
    return any((directory / name).exists() for name in made) or any(directory.glob("*.p12"))


def load_demo(directory: Path) -> DemoKeys:
    """The demo written earlier by `make_demo`, read back from its `people.json`."""
    listing = json.loads((directory / PEOPLE_FILE).read_text())
    identities = tuple(
        DemoIdentity(
            role=entry["role"],
            name=entry["name"],
            kind=entry["kind"],
            id=entry["iin"] if entry["kind"] == "person" else entry["bin"],
            p12=directory / entry["file"],
            birth_date=entry.get("birth_date"),
        )
        for entry in listing["people"]
    )
    return DemoKeys(directory, directory / listing["ca"], identities)


def sign_document(
    document: dict[str, Any], p12_path: Path | str, password: str | bytes
) -> dict[str, Any]:
    """The request body `{"document", "signature"}` for `document`, signed with a PKCS#12 key.

    The signature is a detached DER CMS over the RFC 8785 bytes, with the signed attributes
    content-type, message-digest and signing-time, carrying the signer certificate and the
    CA certificates of the PKCS#12 file (the intermediate), base64-encoded.
    """
    secret = password.encode() if isinstance(password, str) else password
    key, cert, extra = pkcs12.load_key_and_certificates(Path(p12_path).read_bytes(), secret)
    if cert is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{p12_path}: no RSA or EC key with its certificate")
    builder = pkcs7.PKCS7SignatureBuilder().set_data(canonical_bytes(document))
    builder = builder.add_signer(cert, key, hashes.SHA256())
    for ca in extra:
        builder = builder.add_certificate(ca)
    options = [
        pkcs7.PKCS7Options.DetachedSignature,
        pkcs7.PKCS7Options.Binary,
        pkcs7.PKCS7Options.NoCapabilities,
    ]
    der = builder.sign(serialization.Encoding.DER, options)
    return {"document": document, "signature": base64.b64encode(der).decode()}


def _plain_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EPOA DEMO (NOT FOR PRODUCTION)"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        ]
    )


def _person_name(name: str, iin: str) -> x509.Name:
    surname, given = name.split(" ", 1)
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.SURNAME, surname),
            x509.NameAttribute(NameOID.GIVEN_NAME, given),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"IIN{iin}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        ]
    )


def _court_name(name: str, bin_: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"BIN{bin_}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SUPREME COURT OF KAZAKHSTAN (DEMO)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"BIN{bin_}"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        ]
    )


def _builder(
    subject: x509.Name, key: _PrivateKey, issuer: x509.Name, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=signing,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(
    subject: x509.Name,
    key: _PrivateKey,
    issuer: tuple[x509.Certificate, _PrivateKey] | None,
    now: datetime,
) -> x509.Certificate:
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    return (
        _builder(subject, key, issuer_name, now, days=3650)
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True
        )
        .add_extension(_key_usage(signing=False), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _write_p12(
    path: Path,
    name: str,
    key: _PrivateKey,
    subject: x509.Name,
    issuer: tuple[x509.Certificate, _PrivateKey],
    now: datetime,
) -> None:
    ca_cert, ca_key = issuer
    cert = (
        _builder(subject, key, ca_cert.subject, now, days=730)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    encryption = serialization.BestAvailableEncryption(DEMO_PASSWORD.encode())
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(name.encode(), key, cert, [ca_cert], encryption)
    )


def _write_people(demo: DemoKeys) -> None:
    people = []
    for identity in demo.identities:
        entry: dict[str, str] = {
            "role": identity.role,
            "name": identity.name,
            "kind": identity.kind,
        }
        entry["iin" if identity.kind == "person" else "bin"] = identity.id
        if identity.birth_date:
            entry["birth_date"] = identity.birth_date
        entry["file"] = identity.p12.name
        people.append(entry)
    listing = {"password": DEMO_PASSWORD, "ca": CA_FILE, "people": people}
    (demo.directory / PEOPLE_FILE).write_text(json.dumps(listing, indent=2) + "\n")
