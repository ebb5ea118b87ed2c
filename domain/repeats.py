"""What a repeat is answered with: a receipt over the records its first answer made.

A portal that sends a document again after a timeout never saw the first answer, nor its
receipt. The repeat records nothing; the service signs a receipt again (issued now) over
the records that the document's first acceptance recorded, found in the store: the POA's
record that carries the document (and, for an issue, the case's record of the POA; for a
renunciation by the last attorney, the POA's termination), and the document's own record.
For a court's case event: the case's record of it, the terminations it made, its record.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from domain.accepted_document import AcceptedDocument
from domain.court_case import CourtCase
from domain.evidence import SignedDocument
from domain.postgres_recorder import RetryingProcessRecorder, event_rows, readable
from domain.seal import SealError

Place = tuple[UUID, int]
"""A record's stream and version."""


def document_places(
    events: Any, accepted: AcceptedDocument, evidence: SignedDocument
) -> list[Place]:
    """Where the first acceptance of `evidence` recorded, in the order it recorded them.
    `events` is the application's event store."""
    assert accepted.poa_id is not None
    poa_id, canonical = accepted.poa_id, base64.b64encode(evidence.canonical).decode()
    stream = list(events.get(poa_id))
    at = _first(stream, lambda e: _canonical(e) == canonical)
    if at is None:
        raise SealError(f"document {accepted.document_id} was accepted, but no record of it")
    places = [(poa_id, stream[at].originator_version)]
    following = stream[at + 1] if at + 1 < len(stream) else None
    if following is not None and getattr(following, "source", None) == "attorneys":
        places.append((poa_id, following.originator_version))  # the last attorney renounced
    if evidence.type == "epoa.issue":
        case_id = CourtCase.create_id(str(evidence.document["case_number"]))
        case = list(events.get(case_id))
        attached = _first(case, lambda e: getattr(e, "poa_id", None) == poa_id)
        if attached is None:
            raise SealError(f"POA {poa_id} was issued, but its case has no record of it")
        places += _case_places(case_id, case, attached)
    return [*places, (accepted.id, 1)]


def case_event_places(
    events: Any, case: CourtCase, source: str, event_id: str, key: str
) -> list[Place]:
    """Where a court's case event recorded, in order: the case's records of it (its
    opening, if the event opened the case; the event; the conclusion it made), the
    terminations it made, and its (source, id)'s record (`mark_of`)."""
    stream = list(events.get(case.id))
    at = _first(
        stream,
        lambda e: (getattr(e, "source", None), getattr(e, "event_id", None)) == (source, event_id),
    )
    if at is None:
        raise SealError(f"case event {source} {event_id} was recorded, but no record of it")
    places = _case_places(case.id, stream, at)
    following = stream[at + 1] if at + 1 < len(stream) else None
    if isinstance(following, CourtCase.Concluded):
        places.append((case.id, following.originator_version))
        ended_by = f"case-event:{source}#{event_id}"
        for poa_id in case.poa_ids:
            places += [
                (poa_id, e.originator_version)
                for e in events.get(poa_id)
                if getattr(e, "source", None) == ended_by
            ]
    return [*places, mark_of(key)]


def mark_of(key: str) -> Place:
    """Where a case event's (source, id) is recorded: a record made with every case event
    recorded since (source, id) pairs were held apart across cases, and not before."""
    return (AcceptedDocument.create_id(key), 1)


def _case_places(case_id: UUID, stream: Sequence[Any], at: int) -> list[Place]:
    """The case's record at index `at`, after the case's opening if the same command opened
    the case: a case is opened with the first thing recorded in it, so its second record
    was made with its first."""
    version = stream[at].originator_version
    return [(case_id, 1), (case_id, 2)] if version == 2 else [(case_id, version)]


def _first(stream: Sequence[Any], test: Callable[[Any], bool]) -> int | None:
    return next((i for i, event in enumerate(stream) if test(event)), None)


def stored_at(
    recorder: Any, places: Sequence[Place], optional: Collection[Place] = ()
) -> list[Notification]:
    """The stored records at these places, with their positions, in the order given. One
    missing is damage, unless it is `optional` (a record earlier versions did not make)."""
    found = {(n.originator_id, n.originator_version): n for n in _select(recorder, places)}
    missing = [place for place in places if place not in found and place not in optional]
    if missing:
        stream, version = missing[0]
        raise SealError(f"record {stream} version {version} is not in the store")
    return [found[place] for place in places if place in found]


def _select(recorder: Any, places: Sequence[Place]) -> Iterable[Notification]:
    """The rows at `places`, read in one statement by (stream, version)."""
    columns = "originator_id, originator_version, topic, state"
    if isinstance(recorder, RetryingProcessRecorder):
        template = (
            f"SELECT notification_id AS position, {columns} FROM {{schema}}.{{table}}"
            " WHERE (originator_id, originator_version) IN"
            " (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
        )
        params = ([str(s) for s, _ in places], [v for _, v in places])
        rows = recorder.retried(lambda: readable(lambda: event_rows(recorder, template, params)))
    else:
        wanted = " OR ".join(["(originator_id = ? AND originator_version = ?)"] * len(places))
        statement = (
            f"SELECT rowid AS position, {columns} FROM {recorder.events_table_name} WHERE {wanted}"
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, [x for s, v in places for x in (s.hex, v)])
            rows = cursor.fetchall()
    for row in rows:
        state: Any = row["state"]
        yield Notification(
            id=int(row["position"]),
            originator_id=UUID(str(row["originator_id"])),
            originator_version=int(row["originator_version"]),
            topic=row["topic"],
            state=bytes(state) if isinstance(state, memoryview) else state,
        )


def _canonical(event: object) -> object:
    evidence = getattr(event, "evidence", None)
    return evidence.get("canonical") if isinstance(evidence, dict) else None
