"""SOAK TEST: PostgreSQL itself restarted under load (`pg_ctlcluster ... restart`).

This restarts the whole local server, ending every session of everyone using it, so it runs
only under `make soak` (`EPOA_SOAK=1`), never in the default test run; there,
`tests/test_resilience_outage.py` makes the same outage for the service's role alone.
`EPOA_PG_RESTART` replaces the restart command (e.g. for a server managed another way).

The expectations are those of the role outage: requests in flight answer 503 problem+json
with `Retry-After` or succeed, never a 500, none takes longer than `BOUND_S`; the API, the
projection worker and the consumer carry on without a restart; afterwards the store
verifies, the read models equal a rebuild and every command answered 201/200 is in the
store once. A restart is short, so the library's retries may hide it from every client:
here a 503 is allowed, not required.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.broker import KafkaEndpoint
from tests.support.people import People
from tests.support.roles import service_role
from tests.support.stack import Stack
from tests.test_resilience_outage import PARTITIONS, run_outage

pytestmark = [
    pytest.mark.soak,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.skipif(
        os.environ.get("EPOA_SOAK") != "1",
        reason="restarts the PostgreSQL server: run by `make soak` (EPOA_SOAK=1) only",
    ),
]


def restart_command() -> list[str]:
    configured = os.environ.get("EPOA_PG_RESTART")
    if configured:
        return shlex.split(configured)
    versions = sorted(os.listdir("/etc/postgresql"), key=float)  # as scripts/services.sh
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


@contextmanager
def server_restart() -> Iterator[None]:
    done = subprocess.run(restart_command(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    yield


def test_a_postgresql_restart_under_load_gives_clean_answers_and_everything_carries_on(
    kafka_broker: KafkaEndpoint, fresh_group_id: str, tmp_path: Path, people: People
) -> None:
    topic = f"epoa-restart.{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(topic, PARTITIONS)
    kafka_broker.create_topic(f"{topic}.dlq", 1)
    with (
        service_role() as role,
        Stack(
            role, tmp_path, people, kafka=kafka_broker.bootstrap, topic=topic, group=fresh_group_id
        ) as stack,
    ):
        stack.init_database()
        stack.start_all()
        stack.wait_up("api")
        stack.wait_up("consumer", PARTITIONS)
        run_outage(stack, people, topic, kafka_broker.bootstrap, server_restart, felt=False)
