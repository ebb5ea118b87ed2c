"""Reading an export for `epoa audit verify --export`, a file that anyone may have edited.

A file whose first line is no export header is not an export: `AuditInputError`, nothing to
verify. Within an export, a line that cannot be read (cut short, not JSON, a record without
its state, a state that is not base64), or an export without its end line, is a finding
naming the line (`bad-export-line`), and the audit goes on. A record line whose position
is not after the one before it is such a finding too: the tree is grown in the file's
order, and leaf i is the i-th record by position. A record's decoded copies for
readers (`event`, `payload`, `evidence`) are decoded again from its sealed `state`; a copy
that differs is `readable-copy-changed`, naming the field, since a reader trusts them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.seal import Finding, RawRecord
from epoa.audit_decode import Decode
from epoa.audit_export import EXPORT_FORMAT, RAW_FIELDS, record_line
from epoa.audit_inputs import AuditInputError, Report
from epoa.audit_proofs import public_key_from_pem
from projections.audit_tree import StoredCheckpoint

_ABSENT: Any = object()


def export_header(path: Path) -> dict[str, Any]:
    """The header line of an export. Raises `AuditInputError` if there is none."""
    with path.open("rb") as lines:
        try:
            header = json.loads(lines.readline())
        except ValueError:
            header = None
    if not isinstance(header, dict) or (header.get("type"), header.get("format")) != (
        "header",
        EXPORT_FORMAT,
    ):
        raise AuditInputError(
            f"{path}: not an epoa audit export (its first line is no {EXPORT_FORMAT} header)"
        )
    return header


class ExportFile:
    def __init__(self, path: Path, decode: Decode, report: Report) -> None:
        self.path, self._decode, self._report = path, decode, report
        self.header = export_header(path)

    def keys(self) -> list[Ed25519PublicKey]:
        """The seal keys the export's own header names."""
        try:
            return [public_key_from_pem(key["public_key_pem"]) for key in self.header["keys"]]
        except (KeyError, TypeError, ValueError) as error:
            raise AuditInputError(
                f"{self.path}: the export's header names no seal keys that can be read ({error})"
            ) from None

    def _lines(self) -> Iterator[tuple[int, dict[str, Any] | str]]:
        """Each line after the header: its JSON object, or why it is none."""
        with self.path.open("rb") as lines:
            next(lines, None)
            for number, line in enumerate(lines, 2):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError as error:
                    yield number, f"not JSON, or cut short ({error})"
                    continue
                yield number, data if isinstance(data, dict) else "not a JSON object"

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        for number, data in self._lines():
            if isinstance(data, dict) and data.get("type") == "checkpoint":
                try:
                    yield _checkpoint(data)
                except (KeyError, TypeError, ValueError) as error:
                    self._bad(number, data, f"a checkpoint that cannot be read ({error!r})")

    def records(self) -> Iterator[RawRecord]:
        """The records, in file order; findings for the lines that are no record, checkpoint
        or end line, and for an end line missing or not counting what the file holds."""
        counted = {"record": 0, "checkpoint": 0}
        end: dict[str, Any] | None = None
        previous = 0
        for number, data in self._lines():
            if isinstance(data, str):
                self._bad(number, {}, data)
                continue
            kind = data.get("type")
            if end is not None:
                self._bad(number, data, "a line after the end line")
            elif kind in counted:
                counted[kind] += 1
            elif kind == "end":
                end = data
            else:
                self._bad(number, data, f"a line of no known type ({kind!r})")
            if kind == "record":
                record = self._record(number, data)
                if record is not None:
                    self._in_order(number, record, previous)
                    previous = max(previous, record.position or 0)
                    yield record
        self._check_end(end, counted)

    def _record(self, number: int, data: dict[str, Any]) -> RawRecord | None:
        try:
            record = _raw(data)
        except KeyError as error:
            self._bad(number, data, f"a record without {error}")
            return None
        except (TypeError, ValueError) as error:
            self._bad(number, data, f"a record that cannot be read: {error}")
            return None
        changed = self._copies(data, record)
        if changed is not None:
            where = (record.originator_id, record.version, record.position)
            detail = f"{self.path.name} line {number}: {changed}"
            self._report(Finding("readable-copy-changed", *where, detail))
        return record

    def _in_order(self, number: int, record: RawRecord, previous: int) -> None:
        """Leaf i is the i-th record by position, and the tree is grown in the file's order:
        a record that does not come after the one before it makes the two orders differ."""
        if (record.position or 0) > previous:
            return
        detail = (
            f"{self.path.name} line {number}: position {record.position} comes after position "
            f"{previous}: the records are not in log order"
        )
        where = (record.originator_id, record.version, record.position)
        self._report(Finding("bad-export-line", *where, detail))

    def _copies(self, data: dict[str, Any], record: RawRecord) -> str | None:
        """How the line's decoded copies differ from what its state decodes to, if they do."""
        again = json.loads(json.dumps(record_line(record, self._decode), default=str))
        for name in sorted((again.keys() | data.keys()) - RAW_FIELDS):
            found = _difference(name, data.get(name, _ABSENT), again.get(name, _ABSENT))
            if found is not None:
                return found
        return None

    def _check_end(self, end: dict[str, Any] | None, counted: dict[str, int]) -> None:
        if end is None:
            self._bad(None, {}, "the export has no end line: it was cut short")
            return
        said = {"record": end.get("records"), "checkpoint": end.get("checkpoints")}
        if said != counted:
            detail = (
                f"the end line counts {said['record']} records and {said['checkpoint']} "
                f"checkpoint(s); the file holds {counted['record']} and {counted['checkpoint']}"
            )
            self._bad(None, {}, detail)

    def _bad(self, number: int | None, data: dict[str, Any], detail: str) -> None:
        """A `bad-export-line` finding, naming the record if the line says which."""
        originator_id = data.get("originator_id")
        version, position = data.get("version"), data.get("position")
        where = (
            originator_id if isinstance(originator_id, str) else "",
            version if isinstance(version, int) else 0,
            position if isinstance(position, int) else None,
        )
        line = f"line {number}" if number is not None else "end"
        self._report(Finding("bad-export-line", *where, f"{self.path.name} {line}: {detail}"))


def _raw(data: dict[str, Any]) -> RawRecord:
    """The raw row a record line carries. Raises KeyError, TypeError or ValueError."""
    state = _typed(data, "state", str)
    return RawRecord(
        _typed(data, "originator_id", str),
        _typed(data, "version", int),
        _typed(data, "topic", str),
        base64.b64decode(state, validate=True),
        _typed(data, "position", int),
    )


def _typed(data: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"its {name} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _checkpoint(data: dict[str, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        _typed(data, "tree_size", int),
        bytes.fromhex(_typed(data, "root_hash", str)),
        _typed(data, "position", int),
        str(data.get("signed_at")),
        _typed(data, "note", str),
    )


def _difference(name: str, shown: Any, sealed: Any) -> str | None:
    """The first field where the readable copy differs from the sealed state's."""
    if isinstance(shown, dict) and isinstance(sealed, dict):
        for key in sorted(shown.keys() | sealed.keys()):
            found = _difference(f"{name}.{key}", shown.get(key, _ABSENT), sealed.get(key, _ABSENT))
            if found is not None:
                return found
        return None
    if shown == sealed:
        return None
    return f"the readable {name} is {_shown(shown)}; the sealed state says {_shown(sealed)}"


def _shown(value: Any) -> str:
    return "absent" if value is _ABSENT else json.dumps(value, ensure_ascii=False)[:80]
