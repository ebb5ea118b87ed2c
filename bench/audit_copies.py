"""Copies of a template of commands' events, for `bench/audit_fixture.py`: each copy with
new case numbers, POA ids, document and case event ids, each signed document signed again
by its signer with those names, and each event sealed into its copy's own chains."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.accepted_document import AcceptedDocument, digest_of
from domain.canonical import canonical_bytes
from domain.court_case import CourtCase
from domain.outcomes import case_event_key
from domain.power_of_attorney import PowerOfAttorney
from domain.seal import GENESIS
from domain.sealed_store import SealedMapper
from tests.support.people import People
from tests.support.pki import sign_cms

Event = Any
"""A domain event of the registry's aggregates (a frozen dataclass)."""


@dataclass(frozen=True)
class Names:
    """What a copy renames: case numbers, POA ids, document and case event ids (each a new
    value per copy), and the ids derived from them."""

    case_numbers: list[str]
    poas: list[UUID]
    documents: list[str]
    case_events: list[tuple[str, str]]
    """(source, id) of each case event: its store name (`case_event_key`) is renamed too."""
    evidence: list[dict[str, str]]
    pattern: re.Pattern[str]
    """Any of the names inside a longer string (a termination's source names its event)."""

    @classmethod
    def of(cls, steps: list[list[Event]]) -> Names:
        events = [event for step in steps for event in step]
        cases = [e.case_number for e in events if isinstance(e, CourtCase.Opened)]
        poas = list({e.originator_id: 0 for e in events if isinstance(e, PowerOfAttorney.Event)})
        evidence = [e.evidence for e in events if getattr(e, "evidence", None)]
        documents, case_events = [], []
        for record in evidence:
            document = json.loads(base64.b64decode(record["canonical"]))
            documents += [str(document[key]) for key in ("document_id", "id") if key in document]
            if "source" in document and "id" in document:
                case_events.append((str(document["source"]), str(document["id"])))
        names = [*cases, *map(str, poas), *documents]
        pattern = re.compile("|".join(re.escape(name) for name in names))
        return cls(cases, poas, documents, case_events, evidence, pattern)


class Copier:
    """Makes copy `k` of the template: its events renamed, re-signed and sealed."""

    def __init__(self, steps: list[list[Event]], mapper: SealedMapper, people: People) -> None:
        self.steps, self.mapper, self.people = steps, mapper, people
        self.names = Names.of(steps)
        self._renamed: list[list[tuple[str, ...]]] | None = None

    def copy(self, k: int) -> list[list[StoredEvent]]:
        """The sealed records of copy `k`, command by command."""
        rename = self._renamer(k)
        if self._renamed is None:
            self._renamed = self._fields_named(rename)
        heads: dict[UUID, bytes] = {}
        sealed = []
        for step, renamed in zip(self.steps, self._renamed, strict=True):
            rows = []
            for event, names in zip(step, renamed, strict=True):
                new = replace(event, **{name: rename(getattr(event, name)) for name in names})
                predecessor = GENESIS if new.originator_version == 1 else heads[new.originator_id]
                row, heads[new.originator_id] = self.mapper.to_sealed(new, predecessor)
                rows.append(row)
            sealed.append(rows)
        return sealed

    def _fields_named(self, rename: Callable[[Any], Any]) -> list[list[tuple[str, ...]]]:
        """The fields of each template event that name something a copy renames. Every
        stream must be renamed: one that is not belongs to an aggregate unknown here."""
        events = [event for step in self.steps for event in step]
        kept = {e.originator_id for e in events if rename(e.originator_id) == e.originator_id}
        if kept:
            raise ValueError(f"streams of the template a copy would not rename: {kept}")
        return [[_fields_renamed(event, rename) for event in step] for step in self.steps]

    def _renamer(self, k: int) -> Callable[[Any], Any]:
        """Copy `k`'s names for the template's, and its documents signed again."""
        strings: dict[str, str] = {}
        for case in self.names.case_numbers:
            strings[case] = f"{case}-{k}"
        for poa in self.names.poas:
            strings[str(poa)] = str(uuid.uuid4())
        for document in self.names.documents:
            strings[document] = str(uuid.uuid4())
        ids = {poa: UUID(strings[str(poa)]) for poa in self.names.poas}
        for case in self.names.case_numbers:
            ids[CourtCase.create_id(case)] = CourtCase.create_id(strings[case])
        for document in self.names.documents:
            ids[AcceptedDocument.create_id(document)] = AcceptedDocument.create_id(
                strings[document]
            )
        for source, event_id in self.names.case_events:  # named by (source, id)
            ids[AcceptedDocument.create_id(case_event_key(source, event_id))] = (
                AcceptedDocument.create_id(case_event_key(source, strings[event_id]))
            )
        rename = _renamer(strings, ids, self.names.pattern)
        for record in self.names.evidence:
            self._sign_again(record, rename, strings)
        return rename

    def _sign_again(
        self, record: dict[str, str], rename: Callable[[Any], Any], strings: dict[str, str]
    ) -> None:
        """The document of `record` with this copy's names, signed now by the same signer."""
        old = base64.b64decode(record["canonical"])
        canonical = canonical_bytes(rename(json.loads(old)))
        signer = next(
            actor
            for actor in (self.people.principal, self.people.attorney, self.people.court)
            if actor.iin == record["signer_id"]
        )
        cms = sign_cms(canonical, signer.issued, self.people.ca.chain)
        strings[record["canonical"]] = base64.b64encode(canonical).decode()
        strings[record["cms"]] = base64.b64encode(cms).decode()
        strings[record["received_at"]] = datetime.now(UTC).isoformat()
        strings[digest_of(old)] = digest_of(canonical)


def _fields_renamed(event: Event, rename: Callable[[Any], Any]) -> tuple[str, ...]:
    return tuple(
        f.name for f in fields(event) if rename(getattr(event, f.name)) != getattr(event, f.name)
    )


def _renamer(
    strings: dict[str, str], ids: dict[UUID, UUID], pattern: re.Pattern[str]
) -> Callable[[Any], Any]:
    def rename(value: Any) -> Any:
        if isinstance(value, str):
            exact = strings.get(value)
            return exact if exact is not None else pattern.sub(lambda m: strings[m[0]], value)
        if isinstance(value, UUID):
            return ids.get(value, value)
        if isinstance(value, dict):
            return {key: rename(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rename(item) for item in value]
        return value

    return rename
