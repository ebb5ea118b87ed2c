"""`epoa audit export FILE`: the whole history as JSON Lines, verifiable with no database.

Lines, in order: a header (format, origin, the seal's public keys), the signed checkpoints
(smallest tree first), one line per record in global order, and an end line with counts.
A record line carries the raw row (position, originator id, version, topic, and the state
in base64: seal and body) which is all that the seals and trees are checked on; the decoded
`event`, `payload` and `evidence` beside it are for people, never believed: verification
decodes them again from the state and reports a copy that differs. Checkpoints are read
before the records, so every exported head covers only exported records.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from cryptography import x509
from eventsourcing.persistence import Mapper

from domain.registry import Registry
from domain.seal import RawRecord
from epoa.audit_decode import Decode, decoder
from epoa.audit_proofs import pem_of
from epoa.audit_rows import raw_page
from projections import audit_tree
from projections.db import Database

PAGE = 1000
EXPORT_FORMAT = "epoa-audit-export/1"
RAW_FIELDS = frozenset({"type", "position", "originator_id", "version", "topic", "state"})
"""What a record line carries of the row itself; the rest is decoded from `state`."""


def write_export(registry: Registry, db: Database, origin: str, out: TextIO) -> tuple[int, int]:
    """Write the export; return (records, checkpoints)."""
    mapper = registry.sealed_mapper
    _line(
        out,
        {
            "type": "header",
            "format": EXPORT_FORMAT,
            "exported_at": datetime.now(UTC).isoformat(),
            "origin": origin,
            "keys": [
                {
                    "key_id": key_id.hex(),
                    "algorithm": "Ed25519",
                    "public_key_pem": pem_of(key),
                    "current": key_id == registry.seal_key.key_id,
                }
                for key_id, key in mapper.public_keys.items()
            ],
        },
    )
    checkpoints = 0
    for row in audit_tree.checkpoint_rows(db):
        _line(out, {"type": "checkpoint", **_checkpoint_line(row)})
        checkpoints += 1
    decode = decoder(Mapper[UUID](mapper.transcoder))
    records = 0
    for record in raw_records(registry, registry.recorder.max_notification_id() or 0):
        _line(out, record_line(record, decode))
        records += 1
    _line(out, {"type": "end", "records": records, "checkpoints": checkpoints})
    return records, checkpoints


def _checkpoint_line(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored checkpoint as its line; a row that holds what no checkpoint can is written
    as it is, so that the export of a damaged store is still made, and its verifier names
    the line."""
    try:
        return audit_tree.checkpoint_of(row).as_public()
    except (TypeError, ValueError):
        return dict(zip(audit_tree.CHECKPOINT_COLUMNS, row, strict=True))


def raw_records(registry: Registry, stop: int, start: int = 1) -> Iterator[RawRecord]:
    """The rows of positions start..stop, a page at a time, exactly as stored."""
    while start <= stop:
        page = raw_page(registry.recorder, start, PAGE, stop)
        yield from page
        if len(page) < PAGE:
            return
        start = (page[-1].position or start) + 1


def record_line(record: RawRecord, decode: Decode) -> dict[str, Any]:
    """The line of one record: the raw row, and beside it the event decoded for readers (or
    why it cannot be: an export of a damaged store is still made, and says so)."""
    line: dict[str, Any] = {
        "type": "record",
        "position": record.position,
        "originator_id": record.originator_id,
        "version": record.version,
        "topic": record.topic,
        "state": base64.b64encode(record.state).decode(),
    }
    try:
        event = decode(record)
    except Exception as error:  # a forged body can fail in any decoder
        return {**line, "payload": None, "undecodable": f"{type(error).__name__}: {error}"}
    fields = {k: v for k, v in vars(event).items() if k not in ("originator_topic",)}
    evidence = fields.pop("evidence", None)
    line["event"] = type(event).__qualname__
    line["payload"] = fields
    line["evidence"] = _evidence(evidence) if evidence else None
    return line


def _evidence(record: dict[str, str]) -> dict[str, Any]:
    """The signed document as a reader wants it: who signed what, when; the CMS stays in
    the state."""
    readable: dict[str, Any] = {
        k: record.get(k) for k in ("signer_id", "signer_kind", "signed_at", "received_at")
    }
    try:
        readable["document"] = json.loads(base64.b64decode(record["canonical"]))
        certificate = x509.load_der_x509_certificate(base64.b64decode(record["certificate"]))
        readable["certificate_subject"] = certificate.subject.rfc4514_string()
    except (KeyError, TypeError, ValueError):
        readable["unreadable"] = True
    return readable


def _line(out: TextIO, data: dict[str, Any]) -> None:
    out.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def export_to(path: Path, registry: Registry, db: Database, origin: str) -> tuple[int, int]:
    """Write the export beside `path` and put it there once it is whole: an export that
    fails halfway (the store lost, an interrupt) leaves the file that was there as it was,
    never a truncated one in its place."""
    with replacing(path) as out:
        return write_export(registry, db, origin, out)


@contextmanager
def export_output(path: Path | None) -> Iterator[TextIO]:
    """Where `epoa audit export` writes: `path` as `replacing` makes it, or with no path the
    standard output, in UTF-8 whatever the locale, written as it goes."""
    if path is not None:
        with replacing(path) as out:
            yield out
        return
    sys.stdout.flush()
    with open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False) as out:
        yield out


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A new file in `path`'s directory, moved onto `path` if the block ends well and
    removed if it does not. Errors name `path`, never the temporary file."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.exists() and not path.is_file():  # /dev/stdout, a pipe: written as it is
        with path.open("w", encoding="utf-8") as out:
            yield out
        return
    target = Path(os.path.realpath(path))  # a link's file is replaced, not the link
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
