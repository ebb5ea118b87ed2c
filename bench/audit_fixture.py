"""A store of many genuine sealed records, built in minutes, for `bench/audit.py`.

The store begins with the registry's own commands over two court cases, with real CMS
evidence: POAs issued, an attorney added and another renouncing, a POA revoked, and a
court's judgment and execution documents concluding one case, which ends its POAs (25
records). Every further record is a copy of one of those (`bench/audit_copies.py`). Each
copy gets new case numbers, POA ids, document ids and case event ids; each signed document
is written again with those names and signed again by the same signer, so its evidence
re-verifies and backs its event; and each event is sealed by the registry's own mapper into
its copy's own chains. So `epoa audit verify` checks a copy exactly as it checks the
records of a command.

Worker processes make the copies; the parent inserts them through the registry's recorder,
the cases of a chunk interleaved command by command as concurrent commands would be, and
the global audit log (`CheckpointLog`, a signed head every 1,000 records as in the
service) follows the store as it grows.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from audit_copies import Copier, Event
from cryptography.hazmat.primitives import serialization
from eventsourcing.persistence import Notification, StoredEvent

from domain.case_events import parse_case_event
from domain.registry import Registry
from domain.seal import RawRecord, SealKey
from epoa.audit_chain import stated_hash
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.audit_tree import Leaf
from projections.checkpoints import CheckpointLog
from tests.support.court_events import execution, judgment
from tests.support.people import People, make_people

ORIGIN = "epoa/bench"
CHECKPOINT_EVERY = 1000
COPIES_PER_TASK = 40
"""1,000 records a task: the cases of a task are interleaved with one another."""


def record_template(registry: Registry, people: People) -> list[list[Event]]:
    """Two cases' lives through the registry's commands: the events of each command."""
    steps: list[list[Event]] = []
    poas: list[UUID] = []

    def run(command: Callable[[], object]) -> None:
        before = registry.recorder.max_notification_id() or 0
        command()
        rows = registry.recorder.select_notifications(before, 100, inclusive_of_start=False)
        steps.append([registry.mapper.to_domain_event(row) for row in rows])

    def issue(case: str) -> None:
        poas.append(registry.issue(people.issue(case_number=case)).poa.id)

    def act(kind: str, poa: int, **fields: object) -> Any:
        signer = people.attorney if kind == "epoa.renounce" else people.principal
        return people.act(kind, poas[poa], signer, **fields)

    def case_event(signed: bytes) -> None:
        registry.record_case_event(parse_case_event(signed, people.verifier))

    run(lambda: issue("BENCH-A"))
    run(lambda: issue("BENCH-B"))
    run(lambda: issue("BENCH-A"))
    added = {"iin": people.second_attorney.iin}
    run(lambda: registry.add_attorney(poas[1], act("epoa.add-attorney", 1, attorney=added)))
    run(lambda: issue("BENCH-A"))
    run(lambda: registry.revoke(poas[0], act("epoa.revoke", 0, reason="changed my mind")))
    renounce = act("epoa.renounce", 1, attorney_iin=people.attorney.iin)
    run(lambda: registry.renounce(poas[1], renounce))
    run(lambda: case_event(judgment(people, "BENCH-A")))
    run(lambda: case_event(execution(people, "BENCH-A")))
    return steps


_COPIER: Copier | None = None
"""The template, inherited by the forked workers."""


def _task(first: int, count: int) -> list[StoredEvent]:
    """Copies `first`..`first + count - 1`, their commands interleaved."""
    assert _COPIER is not None
    copies = [_COPIER.copy(k) for k in range(first, first + count)]
    return [row for step in zip(*copies, strict=True) for rows in step for row in rows]


def _run_task(task: tuple[int, int]) -> list[StoredEvent]:
    return _task(*task)


def _made(pool: Any, tasks: list[tuple[int, int]], ahead: int) -> Iterator[list[StoredEvent]]:
    """The tasks' records in order, no more than `ahead` tasks made before they are used."""
    slots = threading.Semaphore(ahead)

    def submitted() -> Iterator[tuple[int, int]]:
        for task in tasks:
            slots.acquire()
            yield task

    try:
        for rows in pool.imap(_run_task, submitted()):
            slots.release()
            yield rows
    finally:
        for _ in tasks:  # a pool ended early must not wait for a slot
            slots.release()


def build_store(
    directory: Path, records: int, workers: int | None = None, say: Callable[[str], None] = print
) -> tuple[Settings, int]:
    """A SQLite store of at least `records` records (whole copies), its audit log and the
    trust store (`ca.pem`) in `directory`; return its settings and how many records."""
    global _COPIER
    settings = Settings(database_url=f"sqlite:///{directory}/epoa.sqlite", var_dir=directory)
    people = make_people()
    (directory / "seal-key.pem").write_bytes(SealKey.generate().to_pem())
    registry = build_registry(settings)
    try:
        steps = record_template(registry, people)
        mapper = registry.sealed_mapper
    finally:
        registry.close()
    size = sum(len(step) for step in steps)
    copies = max(0, -(-(records - size) // size))
    total = size * (copies + 1)
    tasks = [
        (k, min(COPIES_PER_TASK, copies + 1 - k)) for k in range(1, copies + 1, COPIES_PER_TASK)
    ]
    _COPIER = Copier(steps, mapper, people)
    workers = workers or os.cpu_count() or 1
    try:
        # Forked before the store is opened again: no worker holds a connection of it.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            _insert(settings, _made(pool, tasks, 4 * workers), _progress(total, say))
    finally:
        _COPIER = None
    ca = people.ca.root.cert.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.pem").write_bytes(ca)
    return settings, total


class _OwnRecordsLog(CheckpointLog):
    """The global audit log over records this builder sealed a moment ago.

    The service's log checks every record's seal before it signs a head over it, as the
    records reach it from elsewhere; here they come from the builder itself, so each
    record's hash is read from its seal and the signature is not checked a second time
    (the verifier checks it). The leaves, tiles and heads written are the service's."""

    def _leaves(self, batch: Sequence[Notification], first_index: int) -> list[Leaf]:
        return [
            Leaf(
                first_index + offset,
                n.id,
                str(n.originator_id),
                n.originator_version,
                stated_hash(
                    RawRecord(str(n.originator_id), n.originator_version, n.topic, n.state)
                ),
            )
            for offset, n in enumerate(batch)
        ]


def _progress(total: int, say: Callable[[str], None]) -> Callable[[int], None]:
    """A line every 100,000 records logged, before the last."""
    began, shown = time.perf_counter(), 0

    def logged(done: int) -> None:
        nonlocal shown
        if done - shown >= 100_000 and done < total:
            say(f"  {done:,} of {total:,} records ({time.perf_counter() - began:.0f}s)")
            shown = done

    return logged


def _insert(
    settings: Settings, chunks: Iterator[list[StoredEvent]], progress: Callable[[int], None]
) -> None:
    """Insert the chunks in order, the audit log following (and signing) as they land."""
    registry = build_registry(settings)
    try:
        with _OwnRecordsLog(
            registry, settings.database_url, ORIGIN, every_records=CHECKPOINT_EVERY
        ) as log:
            done = log.catch_up()
            for rows in chunks:
                registry.recorder.insert_events(rows)
                done += log.catch_up()
                progress(done)
            log.sign_now()
    finally:
        registry.close()
