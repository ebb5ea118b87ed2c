"""Group commit on a real PostgreSQL: concurrent commands share a transaction, each one
still all or nothing and conflict-checked, positions still in commit order."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder

from consumers.positions import resume_offset, tracking_for
from domain.accepted_document import AcceptedDocument
from domain.court_case import JUDGMENT_IN_FORCE, CourtCase
from domain.group_commit import GroupCommitProcessRecorder
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.group_commit import (
    WAIT,
    accepted,
    grouped,
    in_one_batch,
    lock_waiters,
    new_poa,
    stored_versions,
    transactions_of,
)
from tests.support.people import People, case_event
from tests.support.postgres import connect

pytestmark = pytest.mark.postgres


def test_postgres_groups_and_sqlite_does_not(pg_registry: Registry, tmp_path: Path) -> None:
    assert isinstance(pg_registry.recorder, GroupCommitProcessRecorder)
    lite = build_registry(
        Settings(database_url=f"sqlite:///{tmp_path}/lite.sqlite", var_dir=tmp_path)
    )
    try:
        assert not isinstance(lite.recorder, GroupCommitProcessRecorder)
    finally:
        lite.close()


def test_group_commit_can_be_switched_off(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPOA_GROUP_COMMIT", "n")
    app = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    try:
        assert isinstance(app.recorder, PostgresProcessRecorder)
        assert not isinstance(app.recorder, GroupCommitProcessRecorder)
    finally:
        app.close()


def test_concurrent_commands_share_a_transaction_and_each_is_whole(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    """8 commands of two aggregates each, queued together: one transaction, every record
    stored, each command's records contiguous and in order."""
    pairs = [(new_poa(people), new_poa(people)) for _ in range(8)]
    results = in_one_batch(
        pg_registry, postgres_url, [lambda a=a, b=b: pg_registry.save(a, b) for a, b in pairs]
    )
    for result in results:
        assert isinstance(result, list), result
        ids = [recording.notification.id for recording in result]
        assert len(ids) == 2 and ids[1] == ids[0] + 1
    transactions = transactions_of(postgres_url, [poa.id for pair in pairs for poa in pair])
    assert len(transactions) == 16
    assert len(set(transactions.values())) == 1
    for a, b in pairs:
        assert pg_registry.get_poa(a.id).id == a.id
        assert pg_registry.get_poa(b.id).id == b.id


def test_a_conflicting_command_fails_alone_and_leaves_nothing(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    """Queued together: a command whose case version was taken meanwhile, two commands
    that accept the same document, and five plain commands. The conflicting ones get the
    library's `IntegrityError` and store nothing; the others commit."""
    case = CourtCase("GC-CONFLICT")
    pg_registry.save(case)
    winner, loser = pg_registry.get_case("GC-CONFLICT"), pg_registry.get_case("GC-CONFLICT")
    winner.attach(uuid.uuid4(), datetime.now(UTC))
    loser.attach(uuid.uuid4(), datetime.now(UTC))
    pg_registry.save(winner)
    passenger = new_poa(people)  # saved with the loser: must not be stored either
    document = str(uuid.uuid4())
    plain = [new_poa(people) for _ in range(5)]
    jobs: list[Callable[[], Any]] = [
        lambda: pg_registry.save(loser, passenger),
        lambda: pg_registry.save(accepted(document)),
        lambda: pg_registry.save(accepted(document)),
        *[lambda poa=poa: pg_registry.save(poa) for poa in plain],
    ]
    results = in_one_batch(pg_registry, postgres_url, jobs)
    assert isinstance(results[0], IntegrityError)
    assert stored_versions(postgres_url, passenger.id) == []
    assert sum(isinstance(r, IntegrityError) for r in results[1:3]) == 1
    assert stored_versions(postgres_url, AcceptedDocument.create_id(document)) == [1]
    for result in results[3:]:
        assert isinstance(result, list), result
    for poa in plain:
        assert stored_versions(postgres_url, poa.id) == [1]
    # The failed command's record hash was not taken as the stream's head: the next
    # record links to the winner's, and the whole chain verifies on reading.
    again = pg_registry.get_case("GC-CONFLICT")
    assert again.version == 2
    again.attach(uuid.uuid4(), datetime.now(UTC))
    pg_registry.save(again)
    assert len(pg_registry.get_case("GC-CONFLICT").poa_ids) == 2


def test_a_reader_tailing_the_log_misses_nothing(
    pg_registry: Registry, people: People, postgres_url: str, tmp_path: Path
) -> None:
    """8 writers in two registries (two committers, as two processes) for a few seconds,
    while a reader follows the log: it sees every record once, in increasing order."""
    other = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []
    evidence = people.issue().as_record()

    def write(registry: Registry) -> None:
        try:
            while not stop.is_set():
                poa = PowerOfAttorney(
                    case_number="GC-TAIL",
                    principal={"iin": people.principal.iin, "name": None},
                    attorneys=[{"iin": people.attorney.iin, "name": None}],
                    rights=["represent_first_instance"],
                    valid_until=None,
                    at=datetime.now(UTC),
                    evidence=evidence,
                )
                registry.save(poa, accepted(str(uuid.uuid4())))
        except BaseException as error:
            errors.append(error)

    def tail() -> int:
        last = seen[-1] if seen else 0
        page = pg_registry.recorder.select_notifications(last + 1, 500)
        for notification in page:
            assert notification.id > last
            last = notification.id
            seen.append(notification.id)
        return len(page)

    def read() -> None:
        try:
            while not stop.is_set():
                tail()
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(app,)) for app in [pg_registry, other] * 4]
    reader = threading.Thread(target=read)
    try:
        for thread in [reader, *writers]:
            thread.start()
        time.sleep(3)
    finally:
        stop.set()
        for thread in [*writers, reader]:
            thread.join(WAIT)
        other.close()
    assert errors == []
    while tail():
        pass
    everything = [n.id for n in pg_registry.recorder.select_notifications(1, 10**9)]
    assert len(everything) > 100
    assert seen == everything


def test_tracking_positions_are_written_in_a_batch(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    """Consumer commands of four partitions, queued together, each move their own
    position; one whose position does not increase fails alone, with its events."""
    recorder = grouped(pg_registry)
    recorder.insert_tracking(Tracking("gc:stale", 5))
    stale = new_poa(people)
    events = [
        lambda i=i: pg_registry.record_case_event(
            case_event(people, JUDGMENT_IN_FORCE, case_number=f"GC-T{i}"),
            tracking_for("gc", i, 10 + i),
        )
        for i in range(4)
    ]
    jobs: list[Callable[[], Any]] = [
        *events,
        lambda: pg_registry.events.put(stale.collect_events(), tracking=Tracking("gc:stale", 5)),
    ]
    results = in_one_batch(pg_registry, postgres_url, jobs)
    for i in range(4):
        outcome = results[i]
        assert not isinstance(outcome, BaseException), outcome
        assert outcome.applied
        assert resume_offset(recorder, "gc", i) == 11 + i
        assert pg_registry.get_case(f"GC-T{i}").version == 2
    assert isinstance(results[-1], IntegrityError)
    assert stored_versions(postgres_url, stale.id) == []
    assert recorder.max_tracking_id("gc:stale") == 5


def test_a_batch_whose_connection_is_lost_is_written_again(
    pg_registry: Registry, people: People, postgres_url: str
) -> None:
    """A committer's connection dies while its transaction waits for the lock: its
    command gets the library's `OperationalError` inside the recorder, which writes it
    again, as the library retries its own inserts (`in_one_batch` checks that it was
    written); the commands queued behind it are written too."""
    poas = [new_poa(people) for _ in range(4)]

    def kill_a_committer() -> None:
        with connect(postgres_url) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (lock_waiters(postgres_url)[0],))

    results = in_one_batch(
        pg_registry,
        postgres_url,
        [lambda poa=poa: pg_registry.save(poa) for poa in poas],
        while_queued=kill_a_committer,
    )
    for result in results:
        assert isinstance(result, list), result
    for poa in poas:
        assert stored_versions(postgres_url, poa.id) == [1]
    assert len(lock_waiters(postgres_url)) == 0


def test_a_command_writing_one_version_twice_is_refused(
    pg_registry: Registry, postgres_url: str
) -> None:
    stream = uuid.uuid4()
    record = StoredEvent(stream, 1, "test", b"x")
    with pytest.raises(IntegrityError):
        grouped(pg_registry).insert_events([record, record])
    assert stored_versions(postgres_url, stream) == []


def test_conflicts_leave_the_connection_sound(
    postgres_url: str, people: People, tmp_path: Path
) -> None:
    """On one connection: conflicts roll back (psycopg then forgets its prepared
    statements), and the library's reads and the recorder's writes go on working."""
    app = build_registry(Settings(database_url=postgres_url + "&pool_size=1", var_dir=tmp_path))
    try:
        app.save(CourtCase("GC-ONE"))
        for position in range(1, 6):
            fresh, stale, tracked = (app.get_case("GC-ONE") for _ in range(3))
            for case in (fresh, stale, tracked):
                case.attach(uuid.uuid4(), datetime.now(UTC))
            app.save(fresh)
            with pytest.raises(IntegrityError):
                app.save(stale)
            with pytest.raises(IntegrityError):
                app.events.put(tracked.collect_events(), tracking=Tracking("gc:one", position))
            app.events.put(new_poa(people).collect_events(), tracking=Tracking("gc:one", position))
            assert app.process_recorder.max_tracking_id("gc:one") == position
            assert len(app.get_case("GC-ONE").poa_ids) == position
            assert app.recorder.select_notifications(1, 1000)
    finally:
        app.close()


def test_stream_ids_given_as_text_are_written_and_answered(
    pg_registry: Registry, postgres_url: str
) -> None:
    stream = uuid.uuid4()
    ids = grouped(pg_registry).insert_events(
        [StoredEvent(str(stream).upper(), 1, "test", b"x"), StoredEvent(stream, 2, "test", b"y")]
    )
    assert ids is not None and len(ids) == 2 and ids[1] == ids[0] + 1
    assert stored_versions(postgres_url, stream) == [1, 2]
