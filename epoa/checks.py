"""Production settings, checked before a process starts.

In development the service makes what is missing (a seal key, API keys, the demo CA). In
production each of those would be a silent hole: a key anyone can read in the repository,
a CA anyone can sign with, a store that one copy of the file can rewrite. So a production
process refuses to start until every setting it needs is present and fit, and says all
that is wrong at once, each with what to do, rather than failing on the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.auth import ROLES, RepeatedKeyError, parse_keys
from epoa.settings import Settings
from epoa.wiring import SettingsError

Need = Literal["database", "seal_key", "api_keys", "trusted_ca", "kafka"]
MIN_API_KEY_LENGTH = 24
DEMO_CA_MARK = "EPOA DEMO"
NEW_KEY_HINT = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"

#: What each process role needs. Verifying an export reads a file and public keys only:
#: an auditor needs neither the database nor the service's private seal key for it; nor
#: the private key to verify the store against public keys (`--keys`).
NEEDS: dict[str, frozenset[Need]] = {
    "serve": frozenset({"database", "seal_key", "api_keys", "trusted_ca"}),
    "project": frozenset({"database", "seal_key"}),
    "consume": frozenset({"database", "seal_key", "trusted_ca", "kafka"}),
    "audit": frozenset({"database", "seal_key", "trusted_ca"}),
    "audit-export": frozenset({"trusted_ca"}),
    "audit-keys": frozenset({"database", "trusted_ca"}),
    "database": frozenset({"database"}),
}


def check_production(settings: Settings, needs: Iterable[Need]) -> None:
    """Raise `SettingsError` listing every problem; nothing is checked in development."""
    if settings.env != "production":
        return
    found = production_problems(settings, frozenset(needs))
    if found:
        lines = "\n".join(f"  - {problem}" for problem in found)
        raise SettingsError(f"EPOA_ENV=production refuses to start:\n{lines}")


def production_problems(settings: Settings, needs: frozenset[Need]) -> list[str]:
    found = database_problems(settings.database_url) if "database" in needs else []
    if "seal_key" in needs:
        found += seal_key_problems(settings.seal_key)
        found += retired_key_problems(settings.retired_seal_keys)
    if "api_keys" in needs:
        found += api_key_problems(settings.api_keys)
    if "trusted_ca" in needs:
        found += trust_problems(settings.trusted_ca)
        found += [
            f"EPOA_CRL_FILES: {p} cannot be read" for p in settings.crl_files if not readable(p)
        ]
    if "kafka" in needs and not settings.kafka_bootstrap:
        found.append("EPOA_KAFKA_BOOTSTRAP is required: host:port[,host:port] of the brokers")
    return found


def database_problems(database_url: str) -> list[str]:
    scheme = urlsplit(database_url).scheme
    if scheme in ("postgresql", "postgres"):
        return []
    if scheme == "sqlite":
        return [
            "EPOA_DATABASE_URL is SQLite, which is refused in production: the database "
            "cannot refuse UPDATE and DELETE of event rows there, and API replicas, the "
            "projector and the consumer cannot share it; use postgresql://user@host:5432/db"
        ]
    return [f"EPOA_DATABASE_URL: unsupported scheme {scheme!r}; use postgresql://..."]


def seal_key_problems(path: Path | None) -> list[str]:
    if path is None:
        return ["EPOA_SEAL_KEY is required: the path of the service's Ed25519 private key (PEM)"]
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        return [f"EPOA_SEAL_KEY={path}: not a readable unencrypted PEM private key ({error})"]
    if not isinstance(key, Ed25519PrivateKey):
        return [f"EPOA_SEAL_KEY={path}: an Ed25519 key is required, not {type(key).__name__}"]
    return []


def retired_key_problems(paths: list[Path]) -> list[str]:
    from epoa.audit_proofs import load_public_keys

    found = []
    for path in paths:
        try:
            load_public_keys(path)
        except (OSError, KeyError, TypeError, ValueError) as error:
            found.append(f"EPOA_RETIRED_SEAL_KEYS: {path}: not a readable PEM public key ({error})")
    return found


def api_key_problems(path: Path | None) -> list[str]:
    """Keys are never echoed: a problem names the key by its role and position."""
    if path is None:
        return ["EPOA_API_KEYS is required: a JSON file mapping each API key to its role"]
    try:
        keys = parse_keys(path.read_text())
    except RepeatedKeyError as error:
        return [f"EPOA_API_KEYS={path}: {error}"]
    except (OSError, ValueError) as error:
        return [f"EPOA_API_KEYS={path}: not a readable JSON file ({error})"]
    if not isinstance(keys, dict) or not keys:
        return [f"EPOA_API_KEYS={path}: a non-empty JSON object mapping key to role is expected"]
    found = []
    for number, (key, role) in enumerate(keys.items(), start=1):
        which = f"EPOA_API_KEYS={path}: key #{number} (role {role!r})"
        if role not in ROLES:
            found.append(f"{which}: unknown role; roles are {', '.join(ROLES)}")
        if not isinstance(key, str) or key.startswith("dev-"):
            found.append(f"{which} is a development key (it starts with 'dev-'); {NEW_KEY_HINT}")
        elif len(key) < MIN_API_KEY_LENGTH:
            found.append(
                f"{which} is {len(key)} characters long, fewer than {MIN_API_KEY_LENGTH}; "
                f"{NEW_KEY_HINT}"
            )
    return found


def trust_problems(path: Path | None) -> list[str]:
    if path is None:
        return ["EPOA_TRUSTED_CA is required: a PEM bundle of the CAs whose certificates sign"]
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as error:
        return [f"EPOA_TRUSTED_CA={path}: not a readable PEM bundle of certificates ({error})"]
    return [
        f"EPOA_TRUSTED_CA={path} holds the demo CA {cert.subject.rfc4514_string()!r}: anyone "
        "can sign as anyone with its keys; trust only the national CAs"
        for cert in certificates
        if DEMO_CA_MARK in cert.subject.rfc4514_string().upper()
    ]


def readable(path: Path) -> bool:
    """A file that can be opened for reading (opened, not read: it may be a large export)."""
    try:
        with path.open("rb"):
            return path.is_file()
    except OSError:
        return False
