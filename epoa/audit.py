"""`epoa audit verify`: replay the whole store in global order and check every record.

Checks each seal and each per-aggregate chain with the public keys only, and re-verifies
each actor's signed evidence against the trust store as of the time the service recorded
it. Memory holds one page of records and one chain head per aggregate.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from domain.eds import Verifier
from domain.errors import DomainError
from domain.registry import Registry
from domain.seal import ChainVerifier, Finding, RawRecord, SealError
from epoa.settings import Settings

PAGE = 1000


def rows(registry: Registry) -> Iterator[RawRecord]:
    start = 1
    while True:
        page = registry.recorder.select_notifications(start, PAGE)
        for n in page:
            yield RawRecord(str(n.originator_id), n.originator_version, n.topic, n.state, n.id)
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


def evidence_findings(registry: Registry, verifier: Verifier, record: RawRecord) -> list[Finding]:
    """Re-verify the actor's signature carried by one (already seal-checked) record."""
    try:
        plain, _, _ = registry.sealed_mapper.open(_stored(record))
        event: Any = Mapper.to_domain_event(registry.sealed_mapper, plain)
    except SealError:
        return []
    evidence = getattr(event, "evidence", None)
    if not evidence:
        return []
    try:
        verifier.verify_record(evidence)
    except DomainError as error:
        return [
            Finding(
                "bad-evidence",
                record.originator_id,
                record.version,
                record.position,
                f"{error.kind}: {error.detail}",
            )
        ]
    return []


def _stored(record: RawRecord) -> StoredEvent:
    return StoredEvent(UUID(record.originator_id), record.version, record.topic, record.state)


def verify_store(settings: Settings, as_json: bool = False) -> int:
    from epoa.dev import ensure_dev_material
    from epoa.wiring import build_registry, build_verifier

    settings, _ = ensure_dev_material(settings)
    registry = build_registry(settings)
    verifier = build_verifier(settings)
    chain = ChainVerifier(registry.sealed_mapper.public_keys)
    count = damage = 0
    try:
        for record in rows(registry):
            count += 1
            found = chain.check(record)
            if not found:
                found = evidence_findings(registry, verifier, record)
            for finding in found:
                damage += 1
                _report(finding, as_json)
    finally:
        registry.close()
    intact = damage == 0
    if as_json:
        print(json.dumps({"records": count, "findings": damage, "intact": intact}))
    else:
        verdict = "INTACT" if intact else "DAMAGED"
        print(f"{count} records verified; {damage} finding(s); {verdict}")
    return 0 if intact else 1


def _report(finding: Finding, as_json: bool) -> None:
    if as_json:
        line = {
            "kind": finding.kind,
            "originator_id": finding.originator_id,
            "version": finding.version,
            "position": finding.position,
            "detail": finding.detail,
        }
        print(json.dumps(line))
    else:
        print(str(finding), file=sys.stdout)
