"""A stream's sealed records as an auditor reads them: payload, evidence and seal (times in
UTC with `Z`, as every response writes them; the export keeps the records as stored), and
the stored state itself, from which an auditor recomputes the record hash the seal signs."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper

from domain.seal import SealError, open_state
from domain.sealed_store import SealedMapper
from domain.times import utc_text, utc_text_of


def sealed_events(recorder: Any, mapper: SealedMapper, originator_id: UUID) -> list[dict[str, Any]]:
    """Every record of the stream, oldest first; each seal verified on the way."""
    out = []
    for stored in recorder.select_events(originator_id):
        plain, predecessor, digest = mapper.open(stored)
        event: Any = Mapper.to_domain_event(mapper, plain)
        fields = {
            k: v
            for k, v in vars(event).items()
            if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")
        }
        evidence = fields.pop("evidence", None)
        opened = open_state(stored.state)
        out.append(
            {
                "version": stored.originator_version,
                "type": type(event).__qualname__,
                "topic": stored.topic,
                "recorded_at": utc_text(event.timestamp),
                "payload": _plain(fields),
                "evidence": _evidence(evidence),
                "state": base64.b64encode(stored.state).decode(),
                "seal": {
                    "key_id": opened.key_id.hex(),
                    "predecessor": predecessor.hex(),
                    "record_hash": digest.hex(),
                    "signature": base64.b64encode(opened.signature).decode(),
                },
            }
        )
    return out


def sealed_record(recorder: Any, mapper: SealedMapper, originator_id: UUID, version: int) -> Any:
    """One record as stored, its seal checked on the way (a record that fails it is never
    served); one the store no longer holds is damage too."""
    found = recorder.select_events(originator_id, gt=version - 1, lte=version, limit=1)
    if not found:
        raise SealError(f"{originator_id} v{version} is in the audit log but not in the store")
    mapper.open(found[0])
    return found[0]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return utc_text(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _evidence(evidence: Any) -> Any:
    """The stored evidence, its two times (the service's, beside the signed bytes) written
    in UTC with `Z` like every other time of a response."""
    if not isinstance(evidence, dict):
        return evidence
    times = {}
    for name in ("signed_at", "received_at"):
        if isinstance(value := evidence.get(name), str):
            times[name] = utc_text_of(value)
    return {**evidence, **times}
