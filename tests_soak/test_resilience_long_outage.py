"""SOAK TEST: the store away for a minute, then back, under a light load.

The same outage as `tests/test_resilience_outage.py` (the service role refused and its
sessions ended), held for `LONG_OUTAGE_S` instead of a few seconds: the service must come
back within `RECOVERY_S` of the store's return however long it was away. The load is light
(one portal client, one court, a request every half second each), as at night: few
requests means few failed connections handed back to the pool, so the pool's own
reconnection schedule decides when the service is back: psycopg_pool's pauses between
attempts double without end (1, 2, 4, ... s) unless, as here, it gives up a reconnection
after `epoa.storage.RECONNECT_TIMEOUT` and connects again when a request needs it. Run by
`make soak` (`EPOA_SOAK=1`) only, for its length.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.broker import KafkaEndpoint
from tests.support.people import People
from tests.support.stack import started_stack
from tests.test_resilience_outage import PARTITIONS, role_outage, run_outage

LONG_OUTAGE_S = 60.0

pytestmark = [
    pytest.mark.soak,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.skipif(os.environ.get("EPOA_SOAK") != "1", reason="a soak test: `make soak`"),
]


def test_after_a_minute_without_the_store_the_service_is_back_within_the_recovery_bound(
    kafka_broker: KafkaEndpoint, fresh_group_id: str, tmp_path: Path, people: People
) -> None:
    with started_stack(
        kafka_broker, fresh_group_id, tmp_path, people, "epoa-long-outage", PARTITIONS
    ) as (role, stack, topic):
        run_outage(
            stack,
            people,
            topic,
            kafka_broker.bootstrap,
            lambda: role_outage(role.name),
            seconds=LONG_OUTAGE_S,
            clients=(1, 1, 0.5),
        )
