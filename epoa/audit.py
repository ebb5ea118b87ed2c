"""The checks of `epoa audit verify`: replay the whole history, from a store or an export.

From the store (`audit_store`) or from an export file with no database at all
(`audit_export`), one pass in global order checks every seal and chain, every actor's
evidence and that it backs its event, every concluded case's POAs, the Merkle tree of
every record against every signed checkpoint (stored, exported, or witnessed: `--witness`)
and every receipt given (`--receipts`). The findings name the record and the damage; the
command exits 0 only if there are none. See docs/decisions/0003-global-checkpoints.md.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.eds import Verifier
from domain.registry import Registry
from domain.seal import Finding, RawRecord, public_keys_of
from epoa import audit_inputs as inputs
from epoa.audit_chain import stated_hash
from epoa.audit_core import KEPT_FINDINGS, Audit, AuditResult, Sources
from epoa.audit_decode import decoder, transcoding_mapper
from epoa.audit_export import raw_records
from epoa.audit_export_file import ExportFile
from epoa.audit_log_tables import LogTables
from epoa.audit_merkle import Claim, ReceiptCheck
from epoa.audit_rows import rows_before_the_log
from epoa.audit_worker import checkpoint_origin
from epoa.settings import Settings
from projections.db import Database

Progress = Callable[[int, int], None]
SEAL_CHUNK = 512


def _pass(audit: Audit, records: Iterator[RawRecord], progress: Progress | None) -> None:
    """Check the records in chunks. Each chunk's seals are verified on other threads while
    the chunk before it is checked: libsodium releases the GIL, so they run side by side."""
    with ThreadPoolExecutor(1, thread_name_prefix="epoa-audit-seals") as seals:
        chunk = list(islice(records, SEAL_CHUNK))
        verdicts = seals.submit(audit.verdicts, chunk)
        while chunk:
            following = list(islice(records, SEAL_CHUNK))
            ahead = seals.submit(audit.verdicts, following)
            audit.check_many(chunk, verdicts.result())
            if progress is not None:
                progress(chunk[-1].position or 0, audit.result.records)
            chunk, verdicts = following, ahead


class _Relay:
    """Findings made while the sources are read, before the pass exists to report them."""

    def __init__(self) -> None:
        self.pending: list[Finding] = []
        self.audit: Audit | None = None

    def __call__(self, finding: Finding) -> None:
        if self.audit is None:
            self.pending.append(finding)
        else:
            self.audit.report(finding)

    def start(self, audit: Audit) -> Audit:
        self.audit = audit
        for finding in self.pending:
            audit.report(finding)
        self.pending.clear()
        return audit


def stored_origin(db: Database, settings: Settings) -> str:
    origin = LogTables(db, lambda _: None).origin()
    return origin if origin is not None else checkpoint_origin(settings)


def audit_store(
    registry: Registry,
    db: Database,
    verifier: Verifier | None,
    origin: str,
    *,
    witness: Path | None = None,
    receipts: Path | None = None,
    start: int | None = None,
    stop: int | None = None,
    on_finding: Callable[[Finding], None] = lambda _: None,
    on_progress: Progress | None = None,
) -> AuditResult:
    """Verify the store; positions `start`..`stop` if given (the global checks need the
    whole log from its first record, so a later `start` leaves them out)."""
    keys = list(registry.sealed_mapper.public_keys.values())
    whole = start is None or start <= 1
    relay = _Relay()
    # What names records (witness, receipts, the audit log's size) is read before the last
    # position is fixed, so a head signed during the pass cannot name a record it skips.
    witnessed = inputs.witness_claims(witness, keys, origin, relay) if witness and whole else []
    audit_sources = Sources()
    if receipts is not None:
        audit_sources.receipts = ReceiptCheck(inputs.receipts(receipts, keys, relay))
    tables = LogTables(db, relay)
    logged = tables.tree_size(relay)
    last = registry.recorder.max_notification_id() or 0
    bound = min(last, stop) if stop is not None else last
    if whole:
        stored = tables.checkpoints(logged, relay)
        claims = inputs.claims_of(stored, keys, origin, "stored", relay)
        audit_sources.claims = heapq.merge(claims, witnessed)
        audit_sources.leaves = tables.leaves(stop, logged, relay)
        audit_sources.nodes = tables.nodes(relay)
        own = tables.checkpoints(logged, None)
        audit_sources.leaf_claims = inputs.claims_of(own, keys, origin, "stored", None)
    audit = relay.start(
        Audit(
            registry.sealed_mapper.public_keys,
            decoder(transcoding_mapper(registry)),
            verifier,
            audit_sources,
            on_finding=on_finding,
            whole_log=whole,
            predecessor=None if whole else _predecessor(registry),
        )
    )
    _say_if_unwitnessed(audit, witness if whole else None, witnessed)
    if whole:
        _outside_the_log(audit, registry)
    _pass(audit, raw_records(registry, bound, start or 1), on_progress)
    return audit.finish(stop, start)


def _outside_the_log(audit: Audit, registry: Registry) -> None:
    for record in rows_before_the_log(registry.recorder, KEPT_FINDINGS):
        detail = (
            "at a position before the log's first position (1): no reader of the log, this "
            "audit included, checks it, while every read of its stream uses it; a row moved "
            "or inserted by hand"
        )
        where = (record.originator_id, record.version, record.position)
        audit.report(Finding("record-outside-log", *where, detail))


def _say_if_unwitnessed(audit: Audit, witness: Path | None, witnessed: list[Claim]) -> None:
    """A witness with no head that verifies (empty, a shipper that never ran, the wrong file)
    is compared with nothing: INTACT then means what it means without one."""
    if witness is not None and not witnessed:
        audit.result.skipped.append(
            f"--witness {witness}: it holds no checkpoint that verifies, so nothing was "
            "compared with it"
        )


def _predecessor(registry: Registry) -> Callable[[RawRecord], tuple[int, bytes] | None]:
    """The head of a stream before a range starts, read from its previous record."""

    def head(record: RawRecord) -> tuple[int, bytes] | None:
        rows = registry.recorder.select_events(
            UUID(record.originator_id), gt=record.version - 2, lte=record.version - 1
        )
        if not rows:
            return None
        row = rows[0]
        previous = RawRecord(str(row.originator_id), row.originator_version, row.topic, row.state)
        return row.originator_version, stated_hash(previous)

    return head


def audit_export(
    path: Path,
    verifier: Verifier | None,
    *,
    keys: list[Ed25519PublicKey] | None = None,
    witness: Path | None = None,
    receipts: Path | None = None,
    on_finding: Callable[[Finding], None] = lambda _: None,
    on_progress: Progress | None = None,
) -> AuditResult:
    """Verify an export file with no database; the keys default to the export's own."""
    decode = decoder(transcoding_mapper())
    relay = _Relay()
    export = ExportFile(path, decode, relay)
    keys = keys if keys is not None else export.keys()
    origin = export.header.get("origin")
    origin = origin if isinstance(origin, str) else None
    stored = inputs.claims_of(export.checkpoints(), keys, origin, "exported", relay)
    witnessed = inputs.witness_claims(witness, keys, origin, relay) if witness else []
    audit_sources = Sources(claims=heapq.merge(stored, witnessed))
    if receipts is not None:
        audit_sources.receipts = ReceiptCheck(inputs.receipts(receipts, keys, relay))
    audit = relay.start(
        Audit(public_keys_of(*keys), decode, verifier, audit_sources, on_finding=on_finding)
    )
    _say_if_unwitnessed(audit, witness, witnessed)
    _pass(audit, export.records(), on_progress)
    return audit.finish()
