"""Group commit under control: commands queued into one batch behind a held table lock,
and what the events table says about the transactions that wrote them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.accepted_document import AcceptedDocument
from domain.group_commit import GroupCommitProcessRecorder
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from tests.support.people import People
from tests.support.postgres import connect

WAIT = 20.0


def grouped(registry: Registry) -> GroupCommitProcessRecorder:
    assert isinstance(registry.recorder, GroupCommitProcessRecorder)
    return registry.recorder


def new_poa(people: People, case_number: str = "GC-1") -> PowerOfAttorney:
    return PowerOfAttorney(
        case_number=case_number,
        principal={"iin": people.principal.iin, "name": None},
        attorneys=[{"iin": people.attorney.iin, "name": None}],
        rights=["represent_first_instance"],
        valid_until=None,
        at=datetime.now(UTC),
        evidence=people.issue(case_number=case_number).as_record(),
    )


def accepted(document_id: str) -> AcceptedDocument:
    return AcceptedDocument(
        document_id=document_id, document_type="test", digest="0" * 64, poa_id=None
    )


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def lock_waiters(url: str) -> list[int]:
    """Backends waiting for a lock on the events table (our committer, once it waits)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE relation = 'epoa_events'::regclass AND NOT granted"
        ).fetchall()
    return [int(str(row[0])) for row in rows]


@contextmanager
def table_locked(url: str) -> Iterator[None]:
    """Hold the events table's lock from outside, as another process's writer would."""
    with connect(url) as conn, conn.transaction():
        conn.execute("LOCK TABLE epoa_events IN EXCLUSIVE MODE")
        yield


def in_one_batch(
    registry: Registry,
    url: str,
    jobs: list[Callable[[], Any]],
    while_queued: Callable[[], object] = lambda: None,
) -> list[Any | BaseException]:
    """Run `jobs` so that they are written in one batch: first, as many commands as the
    recorder writes at once take the transactions, which wait for the table lock held
    here; meanwhile the jobs queue up, and once the lock is free they are taken together.
    Each job's result or error, in order."""
    results: list[Any | BaseException] = [None] * len(jobs)
    blocked: list[Any | BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = jobs[index]()
        except BaseException as error:
            results[index] = error

    def block() -> None:
        try:
            blocked.append(registry.save(accepted(str(uuid.uuid4()))))
        except BaseException as error:
            blocked.append(error)

    blockers = [threading.Thread(target=block) for _ in range(grouped(registry).max_in_flight)]
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    with table_locked(url):
        for count, blocker in enumerate(blockers, 1):
            blocker.start()
            until(lambda n=count: len(lock_waiters(url)) == n, "a transaction to wait")
        for thread in threads:
            thread.start()
        until(lambda: grouped(registry).queued == len(jobs), "the jobs to queue")
        while_queued()
    for thread in [*blockers, *threads]:
        thread.join(WAIT)
    assert all(isinstance(outcome, list) for outcome in blocked), blocked
    return results


def transactions_of(url: str, streams: list[UUID]) -> dict[UUID, str]:
    """The transaction that wrote each stream's first record."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT originator_id, xmin::text FROM epoa_events "
            "WHERE originator_id = ANY(%s) AND originator_version = 1",
            (streams,),
        ).fetchall()
    return {row[0]: str(row[1]) for row in rows}


def stored_versions(url: str, stream: UUID) -> list[int]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT originator_version FROM epoa_events WHERE originator_id = %s "
            "ORDER BY originator_version",
            (stream,),
        ).fetchall()
    return [int(str(row[0])) for row in rows]
