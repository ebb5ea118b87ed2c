"""The composition root: builds the registry, keys and trust store from `Settings`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.eds import TrustStore, Verifier, load_crl
from domain.registry import NameLookup, Registry, no_names
from domain.seal import SealKey
from domain.trust import partial_crl, unverified_crl
from epoa.audit_proofs import load_public_keys
from epoa.read_models import ReadModels
from epoa.settings import Settings
from epoa.storage import guard_append_only, persistence_env

log = logging.getLogger("epoa")


class SettingsError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


DEV_SEAL_KEY = "seal-key.pem"
"""The development seal key's file under `var_dir`, made on first start."""


def load_seal_key(settings: Settings) -> SealKey:
    if settings.seal_key is not None:
        try:
            return SealKey.from_pem(settings.seal_key.read_bytes())
        except (OSError, ValueError) as error:
            raise SettingsError(f"EPOA_SEAL_KEY={settings.seal_key}: {error}") from error
    if settings.env == "production":
        raise SettingsError("EPOA_SEAL_KEY is required in production (an Ed25519 PEM key)")
    path = settings.var_dir / DEV_SEAL_KEY
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SealKey.generate().to_pem())
        path.chmod(0o600)
        log.warning("created a development seal key at %s", path)
    return SealKey.from_pem(path.read_bytes())


def load_retired_keys(settings: Settings) -> tuple[Ed25519PublicKey, ...]:
    keys = []
    for path in settings.retired_seal_keys:
        try:
            keys += load_public_keys(path)
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise SettingsError(f"EPOA_RETIRED_SEAL_KEYS: {path}: {error}") from error
    return tuple(keys)


def build_registry(
    settings: Settings,
    names: NameLookup = no_names,
    clock: Callable[[], datetime] | None = None,
    verify_with: Sequence[Ed25519PublicKey] | None = None,
) -> Registry:
    """The registry of the store of `settings`. `verify_with`: for reading only, its seals
    checked against these public keys alone (an auditor's), with no private key read: the
    registry then seals with a key made in memory, which sealed nothing and is dropped."""
    try:
        env = persistence_env(settings.database_url)
        env["EPOA_GROUP_COMMIT"] = "y" if settings.group_commit else "n"
    except ValueError as error:
        raise SettingsError(str(error)) from error
    extra = {"clock": clock} if clock is not None else {}
    from epoa.db_admin import prepare_store

    managed = prepare_store(settings.database_url, env, settings.env == "production")
    if verify_with is None:
        seal, known = load_seal_key(settings), load_retired_keys(settings)
    else:
        seal, known = SealKey.generate(), tuple(verify_with)
    registry = Registry(env, seal, known, names=names, **extra)
    if not managed:  # a managed schema is guarded by its owner (`epoa db init`)
        guard_append_only(settings.database_url)
    return registry


def default_var(settings: Settings) -> Path:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings.var_dir


def build_verifier(settings: Settings) -> Verifier:
    """The EDS verifier: trusted CAs and CRL files from the settings, no network."""
    if settings.trusted_ca is None:
        raise SettingsError("EPOA_TRUSTED_CA is required: a PEM bundle of the trusted CAs")
    trust = load_trust_store(settings.trusted_ca)
    crls = [read_crl(path, trust) for path in settings.crl_files]
    skew = timedelta(seconds=settings.clock_skew_seconds)
    if settings.env == "production" and not settings.court_bins:
        log.warning(
            "EPOA_COURT_BINS is unset: any organisation's certificate from a trusted CA "
            "may record case events"
        )
    return Verifier(trust, crls, clock_skew=skew, court_bins=settings.court_bins)


def load_trust_store(path: Path) -> TrustStore:
    """The trust bundle; a fault names the setting and the file, since the parser's own
    words name neither."""
    data = _read_setting_file("EPOA_TRUSTED_CA", path)
    try:
        return TrustStore.from_pem(data)
    except ValueError:
        raise SettingsError(
            f"EPOA_TRUSTED_CA: {path} is not a PEM bundle of CA certificates"
        ) from None


def read_crl(path: Path, trust: TrustStore) -> bytes:
    """The bytes of one CRL file, once they are known to parse (among several files, the
    parser's error would not say which one is bad) and to be of use: a whole list, signed
    with the key of a trusted CA of its issuer's name if there is one."""
    data = _read_setting_file("EPOA_CRL_FILES", path)
    try:
        crl = load_crl(data)
    except ValueError:
        raise SettingsError(f"EPOA_CRL_FILES: {path} is not a CRL (PEM or DER)") from None
    partial = partial_crl(crl)
    if partial is not None:
        raise SettingsError(
            f"EPOA_CRL_FILES: {path} is {partial}, which cannot be read as the issuer's "
            "whole list of revocations: give its full CRL"
        )
    unverified = unverified_crl(crl, trust)
    if unverified is not None:
        raise SettingsError(
            f"EPOA_CRL_FILES: {path} is {unverified}, so it says nothing of the certificates "
            "they issued (a CA that moved to a new key signs its CRLs with that key): give the "
            "CRL signed with the key of that CA in EPOA_TRUSTED_CA, or add the CA certificate "
            "of the new key there"
        )
    return data


def _read_setting_file(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SettingsError(
            f"{variable}: {path} cannot be read: {error.strerror or error}"
        ) from None


def build_read_models(settings: Settings) -> ReadModels:
    try:
        persistence_env(settings.database_url)
    except ValueError as error:
        raise SettingsError(str(error)) from error
    return ReadModels(settings.database_url, pool_size=settings.read_pool_size)
