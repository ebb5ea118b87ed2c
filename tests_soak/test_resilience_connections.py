"""SOAK TEST: bursts of requests with quiet spells between them leave the API holding no
more database sessions than the first burst did.

The API answers on a pool of worker threads that retires a thread after 10 s without work
and starts new ones when requests come back. Whatever a thread opens must not outlive it:
four bursts of 8 s, each followed by 12 s of quiet, must end with the service role holding
at most `SLACK` sessions more than after the first. Run by `make soak` (`EPOA_SOAK=1`) only,
for its length.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from tests.support.people import People
from tests.support.roles import service_role
from tests.support.stack import Stack
from tests.support.traffic import CaseBook, Load

pytestmark = [
    pytest.mark.soak,
    pytest.mark.postgres,
    pytest.mark.skipif(os.environ.get("EPOA_SOAK") != "1", reason="a soak test: `make soak`"),
]
BURSTS = 4
BURST_S, QUIET_S = 8.0, 12.0
SLACK = 4


def test_bursts_of_requests_do_not_pile_up_database_sessions(
    tmp_path: Path, people: People
) -> None:
    with service_role() as role, Stack(role, tmp_path, people, pool_size=2) as stack:
        stack.init_database()
        stack.start_all(("api", "projector"))
        stack.wait_up("api")
        cases = CaseBook(f"BU-{uuid.uuid4().hex[:6]}")
        held = []
        for _ in range(BURSTS):
            load = Load(stack.url, stack.keys, people, cases, issuers=8, checkers=8, retry_for=0)
            with load:
                time.sleep(BURST_S)
            assert not load.failures, load.failures
            time.sleep(QUIET_S)
            held.append(stack.connections())
        print(f"sessions after each burst and quiet spell: {held}")
        assert held[-1] <= held[0] + SLACK, held
