"""What `epoa audit verify` reads besides the store: signed heads (stored, witnessed,
exported), receipts, and export files.

Every head and receipt is checked against the seal's public keys before it is believed;
one that fails is itself a finding, never a reason to stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.checkpoint import SIGNATURE_PREFIX
from domain.receipt import verify_receipt
from domain.seal import Finding, public_keys_of
from epoa.audit_merkle import Claim, Receipted
from epoa.audit_proofs import ProofError, verify_note
from projections.audit_tree import StoredCheckpoint

Report = Callable[[Finding], None]


class AuditInputError(Exception):
    """What an audit was asked to verify cannot be verified at all: a file that is no export,
    a range of positions that holds no record. Exit 2, as for a store that is not there."""


def _log_finding(kind: str, position: int | None, detail: str) -> Finding:
    """A finding about the log as a whole, not one record (no aggregate to name)."""
    return Finding(kind, "", 0, position, detail)


def claims_of(
    checkpoints: Iterable[StoredCheckpoint],
    keys: list[Ed25519PublicKey],
    origin: str | None,
    source: str,
    report: Report | None,
) -> Iterator[Claim]:
    """The heads whose notes verify; with `report`, a finding for each that does not."""
    for stored in checkpoints:
        try:
            checkpoint = verify_note(stored.note, keys, origin)
        except ProofError as error:
            if report is not None:
                report(_log_finding("bad-checkpoint", stored.position, f"{source}: {error}"))
            continue
        edited = (checkpoint.size, checkpoint.root) != (stored.tree_size, stored.root_hash)
        if edited and report is not None:
            detail = f"{source} of tree size {stored.tree_size}: the row differs from its note"
            report(_log_finding("bad-checkpoint", stored.position, detail))
        yield Claim(checkpoint.size, checkpoint.root, source)


def split_notes(text: str) -> list[str]:
    """Signed notes as the witness file holds them: one after another, blank lines between."""
    notes: list[str] = []
    lines: list[str] = []
    in_signatures = False
    for line in text.split("\n"):
        if in_signatures and not line.startswith(SIGNATURE_PREFIX):
            notes.append("\n".join(lines) + "\n")
            lines, in_signatures = [], False
        if not line:
            if lines and not in_signatures:
                lines.append("")
                in_signatures = True
            continue
        lines.append(line)
    if lines:
        notes.append("\n".join(lines) + "\n")
    return notes


def witness_claims(
    path: Path, keys: list[Ed25519PublicKey], origin: str | None, report: Report
) -> list[Claim]:
    """The heads of a witness file (signed notes, or JSON lines with a `note`), sorted.

    Memory holds the witness's heads, which an auditor chose to keep, not the store."""
    text = path.read_text(encoding="utf-8", errors="replace")  # a damaged note is a finding
    if text.lstrip().startswith("{"):
        notes = [_note_of(line) for line in text.splitlines() if line.strip()]
    else:
        notes = [(note, {}) for note in split_notes(text)]
    claims = []
    for number, (note, beside) in enumerate(notes, 1):
        try:
            checkpoint = verify_note(note, keys, origin)
            _require_as_signed(beside, checkpoint.size, checkpoint.root)
        except ProofError as error:
            report(_log_finding("bad-witness", None, f"{path} note {number}: {error}"))
            continue
        claims.append(Claim(checkpoint.size, checkpoint.root, f"witnessed ({path.name})"))
    return sorted(claims)


def _note_of(line: str) -> tuple[str, dict[str, Any]]:
    """The note of a JSON line and the line's other members; a line that has no note is
    taken as is, and fails as a note."""
    try:
        data = json.loads(line)
        note = data.get("note")
    except (ValueError, AttributeError):
        return line, {}
    return (note, data) if isinstance(note, str) else (line, {})


def _require_as_signed(beside: dict[str, Any], size: int, root: bytes) -> None:
    """A saved `GET /v1/audit/checkpoints/latest` says its tree size and root beside the
    note: what it says there must be what the note signs, or the line is no witness."""
    if "tree_size" in beside and (
        type(beside["tree_size"]) is not int or beside["tree_size"] != size
    ):
        raise ProofError(f"tree_size {beside['tree_size']!r} is not the signed size {size}")
    if "root_hash" in beside and str(beside["root_hash"]).lower() != root.hex():
        raise ProofError(f"root_hash {beside['root_hash']!r} is not the signed root")


def receipts(path: Path, keys: list[Ed25519PublicKey], report: Report) -> dict[int, Receipted]:
    """Records named by the receipts of a JSON lines file (receipts, or command responses
    carrying one), by position. A line that is no receipt signed by a seal key is a
    finding; its records are not believed."""
    by_id = public_keys_of(*keys)
    expected: dict[int, Receipted] = {}
    for number, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        if not line.strip():
            continue
        label = f"{path.name} line {number}"
        try:
            data = json.loads(line)
            receipt = data.get("receipt", data)
            named = {
                int(item["position"]): Receipted(
                    str(item["originator_id"]),
                    int(item["version"]),
                    bytes.fromhex(item["record_hash"]),
                    label,
                )
                for item in receipt["records"]
            }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            report(_log_finding("bad-receipt", None, f"{label}: not a receipt ({error})"))
            continue
        if not verify_receipt(receipt, by_id):
            position, first = next(iter(named.items()), (None, None))
            where = (first.originator_id, first.version) if first else ("", 0)
            detail = f"{label}: the receipt's signature does not verify"
            report(Finding("bad-receipt", *where, position, detail))
            continue
        expected.update(named)
    return expected
