"""One writer of the read models: the runner that holds PostgreSQL's lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.runner import ProjectionLockedError, ProjectionRunner
from tests.conftest import Clock
from tests.support.people import People


@pytest.mark.postgres
def test_of_two_runners_on_postgres_only_the_lock_holder_writes(
    postgres_url: str, people: People, tmp_path: Path, clock: Clock
) -> None:
    app = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path), clock=clock)
    first, second = ProjectionRunner(app, postgres_url), ProjectionRunner(app, postgres_url)
    try:
        app.issue(people.issue())
        assert first.run_once() > 0
        app.issue(people.issue())
        assert second.run_once() == 0
        assert second.position() < (app.recorder.max_notification_id() or 0)
        with pytest.raises(ProjectionLockedError):
            second.rebuild()
        assert first.run_once() > 0
        first.close()
        app.issue(people.issue())
        assert second.run_once() > 0
        assert second.position() == app.recorder.max_notification_id()
    finally:
        first.close()
        second.close()
        app.close()


@pytest.mark.postgres
def test_a_runner_that_is_not_the_writer_never_vouches_for_a_position(
    postgres_url: str, people: People, tmp_path: Path, clock: Clock
) -> None:
    """Read-your-writes asks the in-process runner first: one that lost the writer's lock
    (another may rebuild the tables meanwhile) must send it to the table instead."""

    app = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path), clock=clock)
    first, second = ProjectionRunner(app, postgres_url), ProjectionRunner(app, postgres_url)
    try:
        position = max(app.issue(people.issue()).positions)
        assert first.run_once() > 0
        assert first.reached(position, 0.0)
        first.close()  # its session, and the writer's lock with it, ended
        assert not first.reached(position, 0.05)
        assert not second.reached(position, 0.05)  # not the writer yet
        assert second.wait_for(position, 2.0)  # the table says so
        assert second.run_once() == 0  # the writer now, nothing new
        assert second.reached(position, 0.0)
    finally:
        first.close()
        second.close()
        app.close()


@pytest.mark.postgres
def test_epoa_project_rebuild_beside_a_running_writer_says_so_and_changes_nothing(
    postgres_url: str, tmp_path: Path, people: People, clock: Clock
) -> None:

    app = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path), clock=clock)
    writer = ProjectionRunner(app, postgres_url)
    try:
        app.issue(people.issue())
        assert writer.run_once() > 0
        before = writer.position()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
        env |= {"EPOA_DATABASE_URL": postgres_url, "EPOA_VAR_DIR": str(tmp_path)}
        epoa = str(Path(sys.executable).with_name("epoa"))
        done = subprocess.run(
            [epoa, "project", "--rebuild"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "another runner is writing the read models" in done.stderr.splitlines()[-1]
        assert "stop it (`epoa project`, or an `epoa serve` that runs" in done.stderr
        assert writer.position() == before
    finally:
        writer.close()
        app.close()
