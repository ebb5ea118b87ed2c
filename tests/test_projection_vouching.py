"""Read models rebuilt over signed tree heads: no seal checks where a head vouches for the
records, the seals wherever it does not, and a changed record stops them either way."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import domain.seal_runs
from domain.registry import Registry
from domain.seal import SealError, SealKey, public_keys_of
from domain.seal_runs import open_all
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.checkpoints import CheckpointLog
from projections.runner import ProjectionRunner
from projections.vouching import Vouching
from tests.conftest import Clock
from tests.support.people import People
from tests.support.sqlite_tamper import flip_poa_record
from tests.test_projections import busy_history, dump

ORIGIN = "epoa/vouching-test"
OTHER_HASH = (
    "CASE WHEN substr(record_hash, 1, 1) = 'f' THEN 'e' ELSE 'f' END || substr(record_hash, 2)"
)
"""SQL: a leaf's record hash with its first hex digit changed."""


@pytest.fixture
def seal_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many seals each call of the projections' seal check was given."""
    calls: list[int] = []
    check = domain.seal_runs.check_seals

    def counted(keys: object, records: list[object]) -> None:
        calls.append(len(records))
        check(keys, records)  # type: ignore[arg-type]

    monkeypatch.setattr(domain.seal_runs, "check_seals", counted)
    return calls


def sign_heads(registry: Registry, url: str) -> int:
    """The audit log over the whole log, one head at its end; its size."""
    with CheckpointLog(registry, url, ORIGIN, every_records=10**6, batch_size=7) as log:
        log.catch_up()
        log.sign_now()
    return registry.recorder.max_notification_id() or 0


def test_a_rebuild_under_a_signed_head_checks_no_seal_and_builds_the_same_read_models(
    registry: Registry, settings: Settings, people: People, clock: Clock, seal_checks: list[int]
) -> None:
    busy_history(registry, people, clock)
    with ProjectionRunner(registry, settings.database_url, batch_size=4) as runner:
        runner.catch_up()
        expected = dump(runner.db)
        assert sum(seal_checks) > 0
        sign_heads(registry, settings.database_url)
        seal_checks.clear()
        runner.rebuild()
        assert dump(runner.db) == expected
    assert seal_checks == []  # every batch vouched for by the head (with a proof: 4 < size)


def test_records_beyond_the_newest_head_are_checked_by_their_seals(
    registry: Registry, settings: Settings, people: People, seal_checks: list[int]
) -> None:
    for _ in range(3):
        registry.issue(people.issue())
    sign_heads(registry, settings.database_url)
    registry.issue(people.issue())
    with ProjectionRunner(registry, settings.database_url, batch_size=3) as runner:
        runner.catch_up()
        seal_checks.clear()
        runner.rebuild()
        assert runner.position() == registry.recorder.max_notification_id()
    assert 0 < sum(seal_checks) <= 3  # only the batches past the head: its last records


@pytest.fixture
def signed_sqlite(tmp_path: Path, people: People, clock: Clock) -> Iterator[tuple[str, Registry]]:
    """A SQLite store of three POAs, all under a signed head; edit it with `sqlite3`."""
    url = f"sqlite:///{tmp_path}/epoa.sqlite"
    app = build_registry(Settings(database_url=url, var_dir=tmp_path / "var"), clock=clock)
    for _ in range(3):
        app.issue(people.issue())
    sign_heads(app, url)
    yield url, app
    app.close()


def test_a_record_changed_under_a_signed_head_stops_the_rebuild(
    tmp_path: Path, signed_sqlite: tuple[str, Registry]
) -> None:
    url, app = signed_sqlite
    flip_poa_record(tmp_path / "epoa.sqlite", newest=False)
    with ProjectionRunner(app, url, batch_size=2) as runner, pytest.raises(SealError):
        runner.rebuild()


@pytest.mark.parametrize(
    "edit",
    [
        f"UPDATE audit_leaves SET record_hash = {OTHER_HASH} "
        "WHERE leaf_index = (SELECT max(leaf_index) FROM audit_leaves)",
        "UPDATE audit_checkpoints SET note = replace(note, 'epoa/', 'epoa-')",
    ],
)
def test_an_edited_audit_log_only_sends_the_batches_back_to_their_seals(
    tmp_path: Path, signed_sqlite: tuple[str, Registry], seal_checks: list[int], edit: str
) -> None:
    url, app = signed_sqlite
    with sqlite3.connect(tmp_path / "epoa.sqlite") as conn:
        conn.execute(edit)
    with ProjectionRunner(app, url, batch_size=3) as runner:
        seal_checks.clear()
        runner.rebuild()
        assert runner.position() == app.recorder.max_notification_id()
    assert sum(seal_checks) > 0


@pytest.fixture
def signed_log(registry: Registry, settings: Settings, people: People) -> Iterator[list[bytes]]:
    for _ in range(2):
        registry.issue(people.issue())
    sign_heads(registry, settings.database_url)
    notifications = registry.recorder.select_notifications(1, 100)
    yield [digest for _, digest in open_all(notifications)]


def test_a_head_vouches_only_for_the_records_it_covers_read_in_order(
    registry: Registry, settings: Settings, signed_log: list[bytes]
) -> None:
    keys = registry.sealed_mapper.public_keys
    size = len(signed_log)
    vouching = Vouching(settings.database_url, keys)
    try:
        assert vouching.covers(0, 3, signed_log[:3])  # a prefix: by a consistency proof
        assert vouching.covers(3, size, signed_log[3:])  # up to the head itself
        resumed, misplaced = (
            Vouching(settings.database_url, keys),
            Vouching(settings.database_url, keys),
        )
        try:
            assert resumed.covers(3, size, signed_log[3:])  # the tree to 3 from the tiles
            assert not misplaced.covers(2, size, signed_log[3:])  # record 3 left out
        finally:
            resumed.close()
            misplaced.close()
        changed = [*signed_log[:2], bytes(32), *signed_log[3:]]
        assert not vouching.covers(0, size, changed)
        assert not vouching.covers(0, size + 1, [*signed_log, bytes(32)])  # past the head
    finally:
        vouching.close()


def test_a_head_signed_by_no_seal_key_of_the_registry_vouches_for_nothing(
    settings: Settings, signed_log: list[bytes]
) -> None:
    stranger = public_keys_of(SealKey.generate().public_key)
    vouching = Vouching(settings.database_url, stranger)
    try:
        assert not vouching.covers(0, len(signed_log), signed_log)
    finally:
        vouching.close()


def test_a_runner_started_again_part_way_goes_on_vouched_from_the_stored_tiles(
    registry: Registry, settings: Settings, people: People, clock: Clock, seal_checks: list[int]
) -> None:
    busy_history(registry, people, clock)
    sign_heads(registry, settings.database_url)
    with ProjectionRunner(registry, settings.database_url, batch_size=4) as first:
        first.run_once()
        first.run_once()
        part_way = first.position()
    seal_checks.clear()
    with ProjectionRunner(registry, settings.database_url, batch_size=4) as again:
        again.catch_up()
        assert part_way < again.position() == registry.recorder.max_notification_id()
        resumed = dump(again.db)
        again.rebuild()
        assert dump(again.db) == resumed
    assert seal_checks == []


def test_a_tile_edited_before_the_restart_point_sends_the_rest_back_to_their_seals(
    tmp_path: Path, signed_sqlite: tuple[str, Registry], seal_checks: list[int]
) -> None:
    url, app = signed_sqlite
    with ProjectionRunner(app, url, batch_size=4) as first:
        first.run_once()
    with sqlite3.connect(tmp_path / "epoa.sqlite") as conn:
        conn.execute(f"UPDATE audit_leaves SET record_hash = {OTHER_HASH}")
    seal_checks.clear()
    with ProjectionRunner(app, url, batch_size=4) as again:
        again.catch_up()
        assert again.position() == app.recorder.max_notification_id()
    assert sum(seal_checks) > 0
