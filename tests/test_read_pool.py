"""The read models' connections on PostgreSQL: a bounded pool shared by every thread.

Threads that come and go (as the API's workers do under bursty load) hold no sessions of
their own; connections the server ended are replaced without the reader seeing an error;
while the server refuses, a read fails promptly with `StoreUnavailableError` (HTTP 503),
and reads succeed again soon after it is back. Run as a least-privilege service role, so
its sessions can be counted, and refused, apart from everyone else's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from domain.errors import StoreUnavailableError
from epoa.db_admin import init_database
from epoa.read_models import ReadModels
from epoa.settings import Settings
from epoa.storage import RECONNECT_TIMEOUT
from tests.support.postgres import DATABASE, SERVER
from tests.support.roles import ServiceRole, service_role
from tests.test_resilience_outage import role_outage

pytestmark = pytest.mark.postgres

IIN = "850202400020"


@pytest.fixture
def role() -> Iterator[ServiceRole]:
    with service_role() as made:
        init_database(Settings(database_url=made.url, admin_database_url=made.admin_url))
        yield made


def sessions(role: ServiceRole) -> int:
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role.name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def end_sessions(role: ServiceRole) -> None:
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (role.name,),
        )


def read_in_threads(read_models: ReadModels, threads: int, reads: int) -> list[BaseException]:
    """`threads` new threads, each reading `reads` times and ending; their errors."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(reads):
                read_models.find_person(IIN)
        except BaseException as error:
            errors.append(error)

    started = [threading.Thread(target=work) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(30)
    return errors


def test_threads_that_come_and_go_hold_no_more_sessions_than_the_pool(
    role: ServiceRole,
) -> None:
    read_models = ReadModels(role.url, pool_size=3)
    try:
        held = []
        for _ in range(4):
            assert read_in_threads(read_models, threads=12, reads=20) == []
            held.append(sessions(role))
        assert max(held) <= 3, held
    finally:
        read_models.close()
    assert sessions_after_closing(role) == 0


def sessions_after_closing(role: ServiceRole, within: float = 5.0) -> int:
    """The role's sessions once the server has ended those whose clients closed them (it
    does so a moment after the close, later on a loaded machine)."""
    deadline = time.monotonic() + within
    while (found := sessions(role)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_reads_go_on_after_the_server_ended_every_connection(role: ServiceRole) -> None:
    read_models = ReadModels(role.url, pool_size=4)
    try:
        assert read_in_threads(read_models, threads=8, reads=10) == []
        end_sessions(role)
        assert read_models.find_person(IIN) is None
        assert read_in_threads(read_models, threads=8, reads=10) == []
    finally:
        read_models.close()


def test_reads_fail_promptly_while_the_server_refuses_and_work_once_it_is_back(
    role: ServiceRole,
) -> None:
    read_models = ReadModels(role.url, pool_size=4)
    try:
        assert read_in_threads(read_models, threads=4, reads=5) == []
        with role_outage(role.name):
            for _ in range(3):
                began = time.monotonic()
                with pytest.raises(StoreUnavailableError):
                    read_models.find_person(IIN)
                assert time.monotonic() - began < 4.0
            time.sleep(RECONNECT_TIMEOUT + 1)  # every reconnection series has given up
        back = time.monotonic()
        assert read_models.find_person(IIN) is None
        assert time.monotonic() - back < RECONNECT_TIMEOUT + 1
    finally:
        read_models.close()
