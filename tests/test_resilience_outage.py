"""The store going away under load: every request fails cleanly and soon, and the service
comes back by itself.

PostgreSQL is shared with other tests here, so the outage is the service role's: its logins
are refused and its sessions ended (`pg_terminate_backend`), which is what the processes see
of a server restart, while the cluster keeps serving everyone else. `tests_soak/` restarts
the real server (`make soak`).

During the outage every answer is 503 problem+json whose type ends in `unavailable`, with
`Retry-After`; never a 500, and no request takes longer than `BOUND_S`. Once logins are
allowed again the API, the projection worker and the consumer carry on without a restart;
then the store verifies, the read models equal a rebuild, and every command answered
201/200 is in the store once.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support.court_feed import Court
from tests.support.history_checks import StoreHistory, read_model_tables, table_differences
from tests.support.journal import Attempt
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.people import People
from tests.support.postgres import DATABASE, SERVER
from tests.support.stack import Stack, started_stack
from tests.support.traffic import CaseBook, Load

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]
PARTITIONS = 3
OUTAGE_S = 8.0
BOUND_S = 12.0
"""No request may take longer than this, outage or not: `epoa.storage.STORE_ATTEMPTS` (3)
attempts, each of up to two 1 s waits for a pooled connection (one for the batch ahead, one
for its own; `POSTGRES_CONNECT_TIMEOUT`) and a 0.2 s pause, then the read-your-writes wait
of a command recorded just before the outage (`EPOA_READ_WAIT_SECONDS`)."""
RECOVERY_S = 8.0
"""Within this much of the store's return every kind of request succeeds again: the pools
give up a reconnection after `epoa.storage.RECONNECT_TIMEOUT` (2 s), and the next request
that needs a connection opens one."""


def refuse_logins(role: str) -> None:
    """As a server going away looks to the role: no new session, the present ones ended."""
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )


def allow_logins(role: str) -> None:
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))


@contextmanager
def role_outage(role: str) -> Iterator[None]:
    refuse_logins(role)
    try:
        yield
    finally:
        allow_logins(role)


def during(attempts: list[Attempt], start: float, end: float) -> list[Attempt]:
    """The attempts that were in flight at some moment of [start, end]."""
    return [a for a in attempts if a.started <= end and a.started + a.elapsed >= start]


def unclean(attempt: Attempt) -> bool:
    """Not a success, not a client error, and not a proper 503 problem."""
    if attempt.status is None:
        return True
    if attempt.status == 503:
        return not (
            attempt.content_type == "application/problem+json"
            and (attempt.problem or "").endswith("unavailable")
            and attempt.retry_after is not None
        )
    return attempt.status >= 500


def run_outage(
    stack: Stack,
    people: People,
    court_topic: str,
    bootstrap: str,
    outage: Callable[[], AbstractContextManager[object]],
    *,
    seconds: float = OUTAGE_S,
    felt: bool = True,
    clients: tuple[int, int, float] = (3, 2, 0.0),
    report: Callable[[str], None] = print,
) -> None:
    """Load, `outage()` held for `seconds`, then the checks; `felt`: some command must
    have been answered 503 (a short outage may be hidden by the library's retries);
    `clients`: issuers, checkers, and each one's pause between requests (s)."""
    cases = CaseBook(f"OU-{uuid.uuid4().hex[:6]}", rng=random.Random(7))
    issuers, checkers, pause = clients
    load = Load(
        stack.url,
        stack.keys,
        people,
        cases,
        issuers=issuers,
        checkers=checkers,
        pause=pause,
        retry_for=120.0,
    )
    court = Court(bootstrap, court_topic, people, cases, every=0.5, seed=8)
    with load, court:
        time.sleep(3.0)
        began = time.monotonic()
        with outage():
            time.sleep(seconds)
            ended = time.monotonic()
        bad = [a for a in load.journal.snapshot() if unclean(a)]
        assert not bad, f"{len(bad)} unclean answers, e.g. {bad[:3]}\n{stack.tails()}"
        back = _first_success_after(load, ended, RECOVERY_S)
        recovered = time.monotonic()
        time.sleep(3.0)
    attempts = load.journal.snapshot()
    load.journal.save(stack.workdir / "attempts.jsonl")
    report(f"outage from {began:.1f} to {ended:.1f}; attempts in {stack.workdir}")
    assert not load.failures and not court.errors, (load.failures, court.errors)
    hit = during(attempts, began, ended)
    statuses = Counter((a.kind, a.status) for a in hit)
    slowest = max((a.elapsed for a in attempts), default=0.0)
    report(f"in flight during the outage: {sorted(statuses.items(), key=str)}")
    report(f"slowest request {slowest:.1f} s; first command after the outage in {back:.1f} s")
    bad = [a for a in attempts if unclean(a)]
    assert not bad, f"{len(bad)} unclean answers, e.g. {bad[:3]}\n{stack.tails()}"
    assert slowest <= BOUND_S, [a for a in attempts if a.elapsed > BOUND_S][:3]
    assert statuses[("issue", 503)] > 0 or not felt, statuses
    assert back <= RECOVERY_S, f"commands failed for {back:.1f} s after the outage"
    late = [a for a in attempts if a.started > recovered + 0.5]
    assert late and all(a.status is not None and a.status < 500 for a in late), Counter(
        (a.kind, a.status) for a in late
    )
    for name in ("api", "projector", "consumer"):
        assert stack.alive(name), f"{name} exited\n{stack.tail(name)}"
    assert stack.starts == Counter({"api": 1, "projector": 1, "consumer": 1})

    stack.wait_caught_up(court, within=60.0)
    verified = stack.run("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    live = read_model_tables(stack.role.admin_url)
    assert stack.stop("projector") == 0, stack.tail("projector")
    rebuilt = stack.run("project", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert table_differences(live, read_model_tables(stack.role.admin_url)) == []
    problems = StoreHistory(stack.role.admin_url, stack.seal_key).check(
        load.journal, court.delivered
    )
    assert problems == [], "\n".join(problems[:20])


def _first_success_after(load: Load, moment: float, within: float) -> float:
    """Seconds from `moment` until a command sent after it succeeded."""
    deadline = moment + within
    while time.monotonic() < deadline:
        for attempt in load.journal.snapshot():
            if attempt.kind == "issue" and attempt.succeeded and attempt.started >= moment:
                return attempt.started + attempt.elapsed - moment
        time.sleep(0.2)
    return float("inf")


def test_the_store_refusing_the_service_under_load_gives_clean_503s_and_it_comes_back(
    kafka_broker: KafkaEndpoint, fresh_group_id: str, tmp_path: Path, people: People
) -> None:
    with started_stack(
        kafka_broker, fresh_group_id, tmp_path, people, "epoa-outage", PARTITIONS
    ) as (role, stack, topic):
        run_outage(stack, people, topic, kafka_broker.bootstrap, lambda: role_outage(role.name))
