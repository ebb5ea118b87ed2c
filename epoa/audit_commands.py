"""The `epoa audit` commands: what they read, what they refuse, and how they report.

The checks themselves are `epoa.audit`'s; this is where settings become a store, keys and a
trust store, and findings become lines. An audit only reads: it makes no store, key or
file besides the export it is asked to write.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import psycopg_pool
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import PersistenceError

from domain.eds import Verifier
from domain.errors import StoreUnavailableError
from epoa.audit import audit_export, audit_store, stored_origin
from epoa.audit_core import AuditResult
from epoa.audit_export import export_output, write_export
from epoa.audit_export_file import export_header
from epoa.audit_inputs import AuditInputError
from epoa.audit_proofs import load_public_keys
from epoa.audit_report import Reporter
from epoa.settings import Settings, redacted
from projections.db import connect

STORE_ERRORS = (
    psycopg.Error,
    psycopg_pool.PoolTimeout,
    sqlite3.Error,
    PersistenceError,
    StoreUnavailableError,
)
"""What a store that cannot be read raises: down, a database that is not there, a role
without the privileges (a restore with `--no-privileges`), a file that is no SQLite."""


def _require_store(settings: Settings) -> None:
    """An audit reads the store the service wrote; it makes none, or it would verify (or
    export) an empty history it just made as intact."""
    from epoa.storage import store_exists
    from epoa.wiring import SettingsError

    if not store_exists(settings.database_url):
        raise SettingsError(
            f"no event store at {redacted(settings.database_url)}: set EPOA_DATABASE_URL to "
            "the store `epoa serve` writes (the default is relative to the working directory)"
        )


def _require_seal_key(settings: Settings) -> None:
    """The store is checked against the keys it was sealed with: a key made now would make
    every record's seal an unknown key's."""
    from epoa.wiring import SettingsError

    if settings.seal_key is None and not (settings.var_dir / "seal-key.pem").exists():
        raise SettingsError(
            f"no seal key: EPOA_SEAL_KEY is unset and {settings.var_dir / 'seal-key.pem'} is "
            "not there; an audit reads the keys the store was sealed with and makes none"
        )


def _verifier(settings: Settings, store: bool) -> Verifier | None:
    """The trust store for the signed documents, or None: they are then not checked, and
    the summary says so. Never a CA made here, against which every document would be a
    forgery. Verifying a development store trusts the demo CA its `epoa serve` made."""
    from epoa.demo_keys import load_demo
    from epoa.wiring import build_verifier

    demo = settings.var_dir / "demo"
    if settings.trusted_ca is not None:
        return build_verifier(settings)
    if store and settings.env != "production" and (demo / "people.json").exists():
        return build_verifier(settings.model_copy(update={"trusted_ca": load_demo(demo).ca_pem}))
    return None


@contextmanager
def _store_read(settings: Settings, outcome: str = "nothing was verified") -> Iterator[None]:
    """A store that cannot be read is no verdict on its history: exit 2, as for a missing
    store, never the 1 of a damaged one (a scheduled audit must not call an outage tampering)."""
    try:
        yield
    except STORE_ERRORS as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise AuditInputError(
            f"the store at {redacted(settings.database_url)} cannot be read ({reason}); {outcome}"
        ) from None


def verify_store(
    settings: Settings,
    as_json: bool = False,
    *,
    keys: Path | None = None,
    witness: Path | None = None,
    receipts: Path | None = None,
    start: int | None = None,
    stop: int | None = None,
) -> int:
    """Verify the store; with `keys`, its seals against those public keys alone, with no
    private seal key (an auditor's copy of `GET /v1/audit/keys`)."""
    for name, value in (("--from", start), ("--to", stop)):
        if value is not None and value < 1:
            raise AuditInputError(f"{name} {value}: positions start at 1")
    if start is not None and stop is not None and start > stop:
        raise AuditInputError(f"--from {start} is after --to {stop}: no position is in between")
    if witness is not None and (start, stop) != (None, None):
        raise AuditInputError(
            "--witness is compared with the whole log, never with a range: "
            "leave out --from and --to, or --witness"
        )
    pinned = _pinned_keys(keys) if keys is not None else None
    with _store_read(settings):
        return _verify_store(settings, as_json, pinned, witness, receipts, start, stop)


def _verify_store(
    settings: Settings,
    as_json: bool,
    pinned: list[Ed25519PublicKey] | None,
    witness: Path | None,
    receipts: Path | None,
    start: int | None,
    stop: int | None,
) -> int:
    from epoa.wiring import build_registry

    _require_store(settings)
    if pinned is None:
        _require_seal_key(settings)
    verifier = _verifier(settings, store=True)
    registry = build_registry(settings, verify_with=pinned)
    db = connect(settings.database_url)
    try:
        total = registry.recorder.max_notification_id() or 0
        if stop is not None and stop > total and (start or 1) <= total:
            raise AuditInputError(
                f"--to {stop} is past the store's last position, {total}: the records it "
                "asks for are not all in the store (a witness, --witness, tells whether "
                "records were lost); nothing was verified"
            )
        with Reporter(as_json, stop or total) as reporter:
            result = audit_store(
                registry,
                db,
                verifier,
                stored_origin(db, settings),
                witness=witness,
                receipts=receipts,
                start=start,
                stop=stop,
                on_finding=reporter.finding,
                on_progress=reporter.progress,
            )
        _require_records(result, start, stop, total)
        reporter.summary(result)
    finally:
        db.close()
        registry.close()
    return 0 if result.intact else 1


def _require_records(result: AuditResult, start: int | None, stop: int | None, last: int) -> None:
    """A range that held no record was not verified: no INTACT for it (damage found there,
    such as a receipted record missing, is still DAMAGED)."""
    if result.records == 0 and result.intact and (start, stop) != (None, None):
        span = f"from position {start or 1}" + (f" to {stop}" if stop is not None else " on")
        raise AuditInputError(
            f"no record {span}: the store's last position is {last}; nothing was verified"
        )


def verify_export(
    settings: Settings,
    path: Path,
    as_json: bool = False,
    *,
    keys: Path | None = None,
    witness: Path | None = None,
    receipts: Path | None = None,
) -> int:
    export_header(path)  # a file that is no export is refused before anything is said
    pinned = _pinned_keys(keys) if keys is not None else None
    verifier = _verifier(settings, store=False)
    with Reporter(as_json, None) as reporter:
        if pinned is None:
            reporter.note(
                "seal keys taken from the export's own header: this proves the export is "
                "consistent, not who made it; pin the keys with --keys"
            )
        result = audit_export(
            path,
            verifier,
            keys=pinned,
            witness=witness,
            receipts=receipts,
            on_finding=reporter.finding,
            on_progress=reporter.progress,
        )
    reporter.summary(result)
    return 0 if result.intact else 1


def _pinned_keys(path: Path) -> list[Ed25519PublicKey]:
    try:
        keys = load_public_keys(path)
    except (KeyError, TypeError, ValueError) as error:
        raise AuditInputError(f"{path}: no seal public keys can be read ({error})") from None
    return keys


def export_store(settings: Settings, path: Path | None) -> int:
    """The file is made beside `path` first (a folder that is not there is said before the
    store is read), and takes `path`'s place only once the export is whole; with no `path`
    the export goes to standard output. The count goes to standard error, so that an export
    written to standard output (or `/dev/stdout`) holds its lines alone."""
    from epoa.wiring import build_registry

    with export_output(path) as out, _store_read(settings, "nothing was exported"):
        _require_store(settings)
        _require_seal_key(settings)
        registry = build_registry(settings)
        db = connect(settings.database_url)
        try:
            records, checkpoints = write_export(registry, db, stored_origin(db, settings), out)
        finally:
            db.close()
            registry.close()
    where = "standard output" if path is None else path
    print(f"exported {records} records and {checkpoints} checkpoint(s) to {where}", file=sys.stderr)
    return 0
