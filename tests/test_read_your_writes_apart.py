"""`epoa serve --no-projections` beside `epoa project`, on PostgreSQL: a command waiting
until its records are readable is released as soon as the other process's runner commits
them (the runner tells the position it reached), not at the API's next read of the
positions, which is then only a safety net. Without that session (lost), it reads them
every few milliseconds as before, and listens again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from domain.registry import Registry
from epoa import read_models as read_models_module
from epoa.read_models import ReadModels
from projections.runner import ProjectionRunner
from tests.support.people import People
from tests.support.postgres import connect

pytestmark = pytest.mark.postgres

SAFETY_NET = 60.0
"""The reads' interval while positions are heard: far longer than any wait below."""


def until(condition: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def apart(
    pg_registry: Registry, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ReadModels, ProjectionRunner]]:
    """The API's read models without a runner, and the other process's runner."""
    monkeypatch.setattr(read_models_module, "TOLD_POSITION_POLL", SAFETY_NET)
    models = ReadModels(postgres_url)
    models.attach(pg_registry, run=False)
    runner = ProjectionRunner(pg_registry, postgres_url)
    try:
        runner.catch_up()
        assert until(lambda: models.hears_positions, 10.0)
        yield models, runner
    finally:
        runner.close()
        models.close()


def released_when_applied(
    models: ReadModels, runner: ProjectionRunner, registry: Registry, people: People
) -> bool:
    """Whether a wait for a new POA's records ends once the runner applies them."""
    position = max(registry.issue(people.issue()).positions)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(models.wait_for, position, 20.0)
        time.sleep(0.3)  # it has read the positions once: not there yet
        assert not waiting.done()
        runner.catch_up()
        return waiting.result(timeout=5.0)


def test_a_wait_ends_when_the_other_runner_commits_its_position(
    apart: tuple[ReadModels, ProjectionRunner], pg_registry: Registry, people: People
) -> None:
    models, runner = apart
    for _ in range(3):
        assert released_when_applied(models, runner, pg_registry, people)
    assert models.hears_positions


def test_without_its_listening_session_a_wait_reads_the_positions_then_listens_again(
    apart: tuple[ReadModels, ProjectionRunner],
    pg_registry: Registry,
    postgres_url: str,
    people: People,
) -> None:
    models, runner = apart
    with connect(postgres_url) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN \"epoa_projected_%%' AND datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    assert ended
    assert until(lambda: not models.hears_positions, 5.0)
    assert released_when_applied(models, runner, pg_registry, people)
    assert until(lambda: models.hears_positions, 15.0)
    assert released_when_applied(models, runner, pg_registry, people)
