"""The projection runner: one transaction per batch, idempotent, rebuildable, one writer."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.registry import Registry
from projections.db import Database
from projections.read_model import Positioned, ReadModel
from projections.rebuild import REBUILDS
from projections.runner import READ_MODELS, ProjectionRunner
from tests.conftest import Clock
from tests.support.people import People, case_event
from tests.support.sqlite_tamper import flip_poa_record

TABLES = [table for model in READ_MODELS for table in model.tables]


@pytest.fixture
def runner(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    with ProjectionRunner(registry, database_url) as projection:
        yield projection


def dump(db: Database, tables: list[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model table (and the positions), in a stable order; the
    count of rebuilds is no read model's."""
    found = {
        table: sorted(db.fetch(f"SELECT * FROM {table}"), key=repr)
        for table in [*(tables or TABLES), "projection_tracking"]
    }
    found["projection_tracking"] = [r for r in found["projection_tracking"] if r[0] != REBUILDS]
    return found


def busy_history(registry: Registry, people: People, clock: Clock, after: Any = None) -> None:
    """Every kind of event: issues in two cases, an addition, renunciations, a revocation,
    and a case concluding with a POA still active in it."""
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    step = after or (lambda: None)
    first = registry.issue(people.issue(attorneys=both)).poa
    step()
    clock.advance(minutes=1)
    second = registry.issue(people.issue()).poa
    registry.issue(people.issue(case_number="OTHER-1"))
    step()
    clock.advance(minutes=1)
    added = {"iin": people.third_attorney.iin}
    registry.add_attorney(
        second.id, people.act("epoa.add-attorney", second.id, people.principal, attorney=added)
    )
    registry.renounce(
        first.id,
        people.act("epoa.renounce", first.id, people.attorney, attorney_iin=people.attorney.iin),
    )
    step()
    clock.advance(minutes=1)
    revoked = registry.issue(people.issue()).poa
    registry.revoke(revoked.id, people.act("epoa.revoke", revoked.id, people.principal))
    step()
    clock.advance(minutes=1)
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE))
    step()
    registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED))
    step()


def test_running_once_more_after_catching_up_applies_nothing(
    registry: Registry, runner: ProjectionRunner, people: People, clock: Clock
) -> None:
    busy_history(registry, people, clock)
    applied = runner.catch_up()
    assert applied == registry.recorder.max_notification_id()
    before = dump(runner.db)
    assert runner.run_once() == 0
    assert dump(runner.db) == before


def test_a_batch_read_before_another_runner_committed_it_is_not_applied_twice(
    registry: Registry, database_url: str, runner: ProjectionRunner, people: People
) -> None:
    registry.issue(people.issue())
    late = ProjectionRunner(registry, database_url)
    try:
        batch = late.read_batch()
        assert runner.run_once() == len(batch.read)
        after_first = dump(runner.db)
        assert late.apply(batch) == 0
        assert dump(runner.db) == after_first
    finally:
        late.close()


class Crash(Exception):
    pass


def crashing_once() -> ReadModel:
    """A read model that fails on its first batch, after the others applied theirs."""
    batches = [0]

    def apply(db: Database, events: Sequence[Positioned]) -> None:
        batches[0] += 1
        if batches[0] == 1:
            raise Crash

    return ReadModel("crashing", (), (), apply)


def test_a_batch_that_fails_midway_leaves_no_rows_and_the_retry_applies_each_event_once(
    registry: Registry,
    database_url: str,
    runner: ProjectionRunner,
    people: People,
    clock: Clock,
) -> None:
    busy_history(registry, people, clock)
    flaky = ProjectionRunner(registry, database_url, read_models=(*READ_MODELS, crashing_once()))
    empty = dump(runner.db)
    try:
        with pytest.raises(Crash):
            flaky.run_once()
        assert dump(runner.db) == empty
        flaky.catch_up()
        recovered = dump(flaky.db)
    finally:
        flaky.close()
    runner.rebuild()
    assert dump(runner.db) == recovered


def test_a_rebuild_from_zero_yields_tables_identical_to_the_live_ones(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    live = ProjectionRunner(registry, database_url, batch_size=2)
    try:
        busy_history(registry, people, clock, after=live.catch_up)
        live_tables = dump(live.db)
        assert live.rebuild() == registry.recorder.max_notification_id()
        assert dump(live.db) == live_tables
    finally:
        live.close()


def test_a_batch_read_ahead_of_tables_rebuilt_meanwhile_is_not_applied(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    """A batch read after position P, applied when another writer has taken the tables
    back below P, would leave out the records between: it is not applied, and the next
    catch-up reads from where the tables are."""
    busy_history(registry, people, clock)
    with ProjectionRunner(registry, database_url, batch_size=4) as runner:
        runner.catch_up()
        caught_up = dump(runner.db)
        ahead = runner.read_batch(after=4)
        for model in runner.read_models:
            for table in model.tables:
                runner.db.execute(f"DELETE FROM {table}")
        runner.db.execute("UPDATE projection_tracking SET position = 0")
        assert runner.apply(ahead) == 0
        assert runner.position() == 0
        runner.catch_up()
        assert dump(runner.db) == caught_up


def test_a_rebuild_keeps_the_person_directory(
    runner: ProjectionRunner, tmp_path: Path, people: People
) -> None:
    from projections import persons

    directory = tmp_path / "persons.csv"
    directory.write_text(f"iin,full_name,birth_date\n{people.attorney.iin},Асқар Бек,1985-02-02\n")
    persons.import_csv(runner.db, directory)
    runner.rebuild()
    assert persons.find_person(runner.db, people.attorney.iin) is not None


def test_a_tampered_record_stops_the_projection_and_nothing_of_its_batch_is_shown(
    tmp_path: Path, people: People, clock: Clock
) -> None:
    import sqlite3

    from domain.seal import SealError
    from epoa.settings import Settings
    from epoa.wiring import build_registry

    url = f"sqlite:///{tmp_path}/epoa.sqlite"
    app = build_registry(Settings(database_url=url, var_dir=tmp_path / "var"), clock=clock)
    with ProjectionRunner(app, url) as projection:
        app.issue(people.issue())
        empty = dump(projection.db)
        with sqlite3.connect(tmp_path / "epoa.sqlite") as conn:
            (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 1").fetchone()
            forged = state[:-1] + bytes([state[-1] ^ 1])
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 1", (forged,))
        with pytest.raises(SealError):
            projection.run_once()
        assert dump(projection.db) == empty
    app.close()


def test_a_tampered_record_met_while_reading_ahead_stops_the_catch_up_before_its_batch(
    tmp_path: Path, people: People, clock: Clock
) -> None:
    from domain.seal import SealError
    from epoa.settings import Settings
    from epoa.wiring import build_registry

    url = f"sqlite:///{tmp_path}/epoa.sqlite"
    app = build_registry(Settings(database_url=url, var_dir=tmp_path / "var"), clock=clock)
    for _ in range(4):
        app.issue(people.issue())
    rowid = flip_poa_record(tmp_path / "epoa.sqlite", newest=True)
    with ProjectionRunner(app, url, batch_size=2) as projection:
        with pytest.raises(SealError):
            projection.catch_up()
        assert projection.position() == (rowid - 1) // 2 * 2
    app.close()


def test_waiting_for_a_commands_position_sees_its_effects(
    registry: Registry, runner: ProjectionRunner, people: People
) -> None:
    from projections.poa_status import find_poa

    stop = threading.Event()
    worker = threading.Thread(target=runner.run_forever, args=(stop, 5.0))
    worker.start()
    try:
        outcome = registry.issue(people.issue())
        assert runner.wait_for(max(outcome.positions), timeout=5)
        assert find_poa(runner.db, str(outcome.poa.id), registry.clock()) is not None
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def test_waiting_for_a_position_not_yet_recorded_times_out(runner: ProjectionRunner) -> None:
    assert not runner.wait_for(1_000, timeout=0.2)


@pytest.mark.postgres
def test_a_poa_attached_to_a_known_case_leaves_the_case_row_unwritten(
    pg_registry: Registry, postgres_url: str, people: People
) -> None:
    """The case's row says nothing of its POAs: a POA attached to it adds its `case_poas`
    row and leaves the case's row as it was, not written again with the same values."""
    with ProjectionRunner(pg_registry, postgres_url) as runner:
        first = pg_registry.issue(people.issue()).poa
        runner.catch_up()
        row = "SELECT xmin::text, case_number FROM cases WHERE case_number = ?"
        before = runner.db.fetch(row, (first.case_number,))
        second = pg_registry.issue(people.issue()).poa
        runner.catch_up()
        assert runner.db.fetch(row, (first.case_number,)) == before
        attached = runner.db.fetch(
            "SELECT poa_id FROM case_poas WHERE case_number = ?", (first.case_number,)
        )
        assert sorted(str(poa_id) for (poa_id,) in attached) == sorted(
            [str(first.id), str(second.id)]
        )


def test_a_runner_whose_tables_were_taken_back_meanwhile_goes_on_from_where_they_are(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    """A runner reads each batch after the positions its last batch left; when another
    writer has taken the tables back below them since, the next catch-up finds out and
    applies everything from where the tables are, none of it twice."""
    busy_history(registry, people, clock)
    with ProjectionRunner(registry, database_url) as runner:
        runner.catch_up()
        for model in runner.read_models:
            for table in model.tables:
                runner.db.execute(f"DELETE FROM {table}")
        runner.db.execute("UPDATE projection_tracking SET position = 0")
        registry.issue(people.issue(case_number="OTHER-2"))
        assert runner.catch_up() == registry.recorder.max_notification_id()
        live = dump(runner.db)
        runner.rebuild()
        assert dump(runner.db) == live
