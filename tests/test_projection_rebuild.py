"""A rebuild of the read models beside the live ones: readers never see tables half refilled,
what is recorded meanwhile is kept, and a rebuild that fails changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from domain.registry import Registry
from projections.authority import authority_at
from projections.db import Database, connect
from projections.read_model import Positioned, ReadModel
from projections.rebuild import REBUILDS
from projections.runner import READ_MODELS, ProjectionRunner
from tests.conftest import Clock
from tests.support.people import People
from tests.test_projections import dump

LATE = "7594-26-00-2/7001"
RIGHT = "represent_first_instance"


def many_poas(registry: Registry, people: People, count: int) -> None:
    for n in range(count):
        registry.issue(people.issue(f"7594-26-00-2/{8000 + n}"))


def rebuilds(db: Database) -> int:
    row = db.fetch_one("SELECT position FROM projection_tracking WHERE name = ?", (REBUILDS,))
    return 0 if row is None else int(row[0])


def rebuild_while(runner: ProjectionRunner, work: Callable[[threading.Event], None]) -> float:
    """`runner.rebuild()`, with `work(done)` running beside it until the rebuild is over;
    when it was over (`time.monotonic()`). The runner then follows the log, as it does in
    service, until `work` has stopped: a record `work` made as the rebuild ended is
    applied after it."""
    done = threading.Event()
    beside = threading.Thread(target=work, args=(done,))
    beside.start()
    try:
        runner.rebuild()
        ended = time.monotonic()
    finally:
        done.set()
        while beside.is_alive():
            runner.catch_up()
            beside.join(0.02)
    return ended


def test_readers_see_every_active_poa_all_through_a_rebuild(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    poa = registry.issue(people.issue(LATE)).poa
    many_poas(registry, people, 40)
    reader = connect(database_url)
    answers: list[list[str]] = []
    listed: list[int] = []

    def ask(done: threading.Event) -> None:
        while not done.is_set():
            answers.append(authority_at(reader, LATE, people.attorney.iin, RIGHT, clock.now))
            listed.append(len(reader.fetch("SELECT poa_id FROM poa_status")))

    with ProjectionRunner(registry, database_url, batch_size=2) as runner:
        runner.catch_up()
        rebuild_while(runner, ask)
        assert rebuilds(runner.db) == 1
    reader.close()
    assert len(answers) > 10
    assert all(answer == [str(poa.id)] for answer in answers)
    assert set(listed) == {41}


def test_what_is_recorded_during_a_rebuild_is_in_the_tables_it_leaves(
    registry: Registry, database_url: str, people: People
) -> None:
    many_poas(registry, people, 30)
    recorded: list[str] = []
    shown_in_time: list[bool] = []
    shown_at: list[float] = []

    def record(done: threading.Event) -> None:
        while not done.is_set() and len(recorded) < 20:
            outcome = registry.issue(people.issue(LATE))
            recorded.append(str(outcome.poa.id))
            # read-your-writes: the live tables follow the log during the rebuild
            shown_in_time.append(runner.wait_for(max(outcome.positions), 2.0))
            shown_at.append(time.monotonic())

    with ProjectionRunner(registry, database_url, batch_size=2) as runner:
        runner.catch_up()
        ended = rebuild_while(runner, record)
        # One at a time: only the last can have waited past the rebuild's end.
        assert any(at < ended for at in shown_at), "nothing was shown during the rebuild"
        runner.catch_up()
        after = dump(runner.db)
        runner.rebuild()  # a quiet log: the same tables again
        assert dump(runner.db) == after
        assert rebuilds(runner.db) == 2
    assert recorded and all(shown_in_time), shown_in_time
    shown = {row[0] for row in after["poa_status"]}
    assert set(recorded) <= shown


def failing_on(batch: int) -> ReadModel:
    """A read model whose `batch`-th batch (counted over every runner) fails."""
    seen = [0]

    def apply(db: Database, events: Sequence[Positioned]) -> None:
        seen[0] += 1
        if seen[0] == batch:
            raise RuntimeError("a read model's bug")

    return ReadModel("failing", (), (), apply)


def test_a_rebuild_that_fails_leaves_the_live_tables_as_they_were(
    registry: Registry, database_url: str, people: People
) -> None:
    many_poas(registry, people, 5)
    models = (*READ_MODELS, failing_on(batch=2))
    with ProjectionRunner(registry, database_url, read_models=models) as runner:
        runner.catch_up()  # batch 1
        before = dump(runner.db)
        with pytest.raises(RuntimeError, match="a read model's bug"):
            runner.rebuild()  # batch 2: the new tables' first
        assert dump(runner.db) == before
        assert rebuilds(runner.db) == 0
        assert runner.rebuild() == registry.recorder.max_notification_id()
        assert dump(runner.db) == before
