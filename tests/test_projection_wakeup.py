"""A projection runner apart from the API applies a command's events as soon as they are
committed (the writer's NOTIFY tells it), not at its next poll; without its listening
session it polls."""

from __future__ import annotations

import threading
import time
from unittest.mock import patch

import pytest

from domain.registry import Registry
from projections.runner import LISTENING_POLL, ProjectionRunner
from tests.support.people import People
from tests.support.postgres import connect

pytestmark = pytest.mark.postgres

POLL = 30.0
"""Far longer than any wait below: only a notification can wake the runner in time."""


def seconds_until_applied(runner: ProjectionRunner, position: int, within: float) -> float:
    began = time.monotonic()
    while runner.position() < position:
        if time.monotonic() - began > within:
            return float("inf")
        time.sleep(0.005)
    return time.monotonic() - began


def running(runner: ProjectionRunner, poll: float) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop, poll), daemon=True)
    thread.start()
    time.sleep(0.5)  # it has caught up and sleeps
    return stop, thread


def test_a_commit_wakes_a_sleeping_runner_at_once(
    pg_registry: Registry, postgres_url: str, people: People
) -> None:
    with ProjectionRunner(pg_registry, postgres_url) as runner:
        stop, thread = running(runner, POLL)
        try:
            for _ in range(3):
                outcome = pg_registry.issue(people.issue())
                assert seconds_until_applied(runner, max(outcome.positions), 5.0) < 2.0
        finally:
            stop.set()
            thread.join(timeout=10)


def test_a_runner_that_lost_its_listening_session_polls_then_listens_again(
    pg_registry: Registry, postgres_url: str, people: People
) -> None:
    with ProjectionRunner(pg_registry, postgres_url) as runner:
        stop, thread = running(runner, 0.3)
        try:
            with connect(postgres_url) as conn:
                ended = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN %%' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
            assert ended
            outcome = pg_registry.issue(people.issue())
            assert seconds_until_applied(runner, max(outcome.positions), 5.0) < 2.0
        finally:
            stop.set()
            thread.join(timeout=10)


def test_a_listening_runner_polls_the_store_only_as_a_safety_net(
    pg_registry: Registry, postgres_url: str
) -> None:
    """Told of every append, it does not query the log every 50 ms as a poller must."""
    with (
        ProjectionRunner(pg_registry, postgres_url) as runner,
        patch.object(runner, "catch_up", wraps=runner.catch_up) as catch_up,
    ):
        stop, thread = running(runner, 0.05)
        try:
            before = catch_up.call_count
            time.sleep(2.0)
            polls = catch_up.call_count - before
        finally:
            stop.set()
            thread.join(timeout=10)
    # A poller would have made 40. Every schema of the database shares the library's
    # channel, so another registry appending in this database (a test running beside this
    # one) wakes the runner too: a few more than the 2 s / LISTENING_POLL are allowed.
    assert 1 <= polls <= 4 * (2 / LISTENING_POLL + 1)
