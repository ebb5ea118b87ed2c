"""The authority cache answers exactly what the SQL answers; it never answers stale after a
command of this replica, nor after another process's write once the staleness bound has
passed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from domain.power_of_attorney import expires_at
from domain.registry import Registry
from epoa.async_queries import AsyncPostgres
from epoa.authority_cache import AUTHORITY_STALENESS, AuthorityCache
from epoa.read_models import ReadModels
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.authority import authority_at, held_at, intervals
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.api import api_settings, running
from tests.support.authority import RIGHT, authorised, issue, revoke
from tests.support.people import CASE, People

TICK = timedelta(microseconds=1)


@contextmanager
def projector(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    """Another process's projection worker, as `epoa project` runs beside `--no-projections`."""
    stop = threading.Event()
    with ProjectionRunner(registry, database_url) as runner:
        worker = threading.Thread(target=runner.run_forever, args=(stop, 0.01), daemon=True)
        worker.start()
        try:
            yield runner
        finally:
            stop.set()
            worker.join(timeout=10)


# -- the cache itself ---------------------------------------------------------------------------

ROWS = (("p1", "2026-01-01T00:00:00.000000+00:00", None, None),)
KEY = (CASE, "850202400020", RIGHT)


def test_rows_are_kept_while_the_position_stays_and_dropped_when_it_moves() -> None:
    cache = AuthorityCache()
    cache.observe(5, since=1.0)
    found, generation = cache.get(KEY)
    assert found is None
    cache.put(KEY, ROWS, generation)
    cache.observe(5, since=2.0)
    assert cache.get(KEY)[0] == ROWS
    assert cache.confirmed_at == 2.0
    cache.observe(6, since=3.0)
    assert cache.get(KEY)[0] is None


def test_rows_read_while_the_position_moved_are_not_kept() -> None:
    cache = AuthorityCache()
    cache.observe(5, since=1.0)
    _, generation = cache.get(KEY)
    cache.observe(6, since=2.0)  # a commit seen while the rows were being read
    cache.put(KEY, ROWS, generation)
    assert cache.get(KEY)[0] is None


def test_nothing_is_kept_before_a_position_is_known_and_a_late_reading_does_not_rewind() -> None:
    cache = AuthorityCache()
    _, generation = cache.get(KEY)
    cache.put(KEY, ROWS, generation)
    assert cache.get(KEY)[0] is None
    cache.observe(7, since=5.0)
    cache.observe(7, since=4.0)
    assert cache.confirmed_at == 5.0


def test_a_rebuild_that_resets_the_position_empties_the_cache() -> None:
    cache = AuthorityCache()
    cache.observe(9, since=1.0)
    _, generation = cache.get(KEY)
    cache.put(KEY, ROWS, generation)
    cache.observe(0, since=2.0)
    assert cache.get(KEY)[0] is None


def test_new_tables_put_in_place_at_the_same_position_empty_the_cache() -> None:
    """A rebuild that met no new event ends at the old tables' position: the count of
    rebuilds in the tracking rows says the rows were replaced."""
    cache = AuthorityCache()
    cache.observe_rows([("attorney_authority", 9)], since=1.0)
    cache.put(KEY, ROWS, cache.get(KEY)[1])
    cache.observe(9, since=1.5)  # a batch's commit says nothing of rebuilds
    assert cache.get(KEY)[0] == ROWS
    cache.observe_rows([("attorney_authority", 9), ("rebuilds", 1)], since=2.0)
    assert cache.get(KEY)[0] is None
    cache.put(KEY, ROWS, cache.get(KEY)[1])
    cache.observe_rows([("attorney_authority", 9), ("rebuilds", 1)], since=3.0)
    assert cache.get(KEY)[0] == ROWS


def test_the_oldest_key_goes_first_when_the_cache_is_full() -> None:
    cache = AuthorityCache(max_keys=2)
    cache.observe(1, since=1.0)
    keys = [(CASE, str(n), RIGHT) for n in range(3)]
    for key in keys:
        cache.put(key, ROWS, cache.get(key)[1])
    assert [cache.get(key)[0] for key in keys] == [None, ROWS, ROWS]


# -- the same answer as the SQL ---------------------------------------------------------------


def test_the_intervals_answer_as_the_sql_at_every_boundary(
    registry: Registry, database_url: str, people: People, clock: Clock
) -> None:
    until = (datetime.now(UTC) + timedelta(days=3)).date()
    both = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
    moments = [clock.now]
    first = registry.issue(people.issue(attorneys=both)).poa
    registry.issue(people.issue(valid_until=until.isoformat()))
    moments.append(clock.advance(hours=1))
    registry.renounce(
        first.id,
        people.act("epoa.renounce", first.id, people.attorney, attorney_iin=people.attorney.iin),
    )
    moments.append(clock.advance(hours=1))
    addition = {"iin": people.third_attorney.iin}
    registry.add_attorney(
        first.id, people.act("epoa.add-attorney", first.id, people.principal, attorney=addition)
    )
    moments.append(clock.advance(hours=1))
    registry.revoke(first.id, people.act("epoa.revoke", first.id, people.principal))
    moments.append(expires_at(until))
    with ProjectionRunner(registry, database_url) as runner:
        runner.catch_up()
        checked = 0
        for iin in (people.attorney.iin, people.second_attorney.iin, people.third_attorney.iin):
            for right in (RIGHT, "appeal_judicial_acts", "represent_cassation"):
                found = intervals(runner.db, CASE, iin, right)
                for moment in moments:
                    for at in (moment - TICK, moment, moment + TICK, moment + timedelta(days=9)):
                        expected = authority_at(runner.db, CASE, iin, right, at)
                        assert held_at(found, at) == expected, (iin, right, at)
                        checked += bool(expected)
        assert checked > 10


# -- read-your-writes and the staleness bound -------------------------------------------------


def test_a_revocation_is_in_the_very_next_check(
    database_url: str, tmp_path: Path, people: People
) -> None:
    with running(api_settings(database_url, tmp_path, people)) as client:
        for _ in range(3):
            poa_id = issue(client, people)
            assert authorised(client, people.attorney.iin)
            assert authorised(client, people.attorney.iin)  # from the cache
            revoke(client, people, poa_id)
            assert not authorised(client, people.attorney.iin)


def test_read_your_writes_holds_when_another_process_projects(
    database_url: str, tmp_path: Path, people: People
) -> None:
    settings = api_settings(database_url, tmp_path, people)
    with running(settings, run_projections=False, run_checkpoints=False) as client:
        worker = build_registry(settings)
        try:
            with projector(worker, database_url):
                for _ in range(3):
                    poa_id = issue(client, people)
                    assert authorised(client, people.attorney.iin)
                    revoke(client, people, poa_id)
                    assert not authorised(client, people.attorney.iin)
        finally:
            worker.close()


def test_another_replicas_revocation_is_seen_once_the_bound_has_passed(
    database_url: str, tmp_path: Path, people: People
) -> None:
    settings = api_settings(database_url, tmp_path, people)
    with running(settings, run_projections=False, run_checkpoints=False) as client:
        other = build_registry(settings)  # another API replica, writing to the same store
        try:
            with projector(other, database_url) as runner:
                poa = other.issue(people.issue()).poa
                assert runner.wait_for(runner.registry.recorder.max_notification_id() or 0, 10)
                time.sleep(AUTHORITY_STALENESS * 2)
                assert authorised(client, people.attorney.iin)
                other.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
                assert runner.wait_for(runner.registry.recorder.max_notification_id() or 0, 10)
                time.sleep(AUTHORITY_STALENESS * 2)
                assert not authorised(client, people.attorney.iin)
        finally:
            other.close()


def test_the_bound_is_kept_by_the_read_models_without_any_request_in_between(
    database_url: str, people: People, tmp_path: Path
) -> None:
    """Straight on `ReadModels`: a check right after another writer's commit may still be
    answered from the cache only within the bound."""
    registry = build_registry(Settings(database_url=database_url, var_dir=tmp_path))
    read_models = ReadModels(database_url, authority_staleness=0.05)
    read_models.attach(registry, run=False)

    async def check() -> list[str]:
        return await read_models.authority_now(CASE, people.attorney.iin, RIGHT, datetime.now(UTC))

    async def scenario(runner: ProjectionRunner) -> None:
        poa = registry.issue(people.issue()).poa
        runner.catch_up()
        assert await check() == [str(poa.id)]
        registry.revoke(poa.id, people.act("epoa.revoke", poa.id, people.principal))
        runner.catch_up()
        committed = time.monotonic()  # the projection's commit is before this
        assert await check() in ([str(poa.id)], [])  # within the bound: either
        await asyncio.sleep(max(0.0, committed + 0.05 - time.monotonic()) + 0.005)
        assert await check() == []
        await read_models.aclose()

    try:
        with ProjectionRunner(registry, database_url) as runner:
            asyncio.run(scenario(runner))
    finally:
        read_models.close()
        registry.close()


@pytest.mark.postgres
def test_a_connection_that_failed_is_replaced(postgres_url: str) -> None:
    queries = AsyncPostgres(postgres_url, size=1)

    async def scenario() -> None:
        assert await queries.fetch("SELECT ?::int", (7,)) == [(7,)]
        with pytest.raises(psycopg.OperationalError):  # the server ends the session
            await queries.fetch("SELECT pg_terminate_backend(pg_backend_pid())")
        assert await queries.fetch("SELECT ?::int", (8,)) == [(8,)]
        await queries.aclose()

    asyncio.run(scenario())
    queries.close()
