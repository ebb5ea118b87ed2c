"""SIGKILL of `epoa serve`, `epoa project` or `epoa consume`, at random moments under load,
loses nothing and repeats nothing.

The processes run as docker-compose.yml runs them (production mode, the least-privilege
role, a real broker). While portal clients issue and revoke POAs over HTTP, courts check
authority and a court publishes signed case events to Kafka (some twice), a chaos loop kills
one of the three with SIGKILL (each in turn, in a random order) at a random moment, leaves
it down a random while, and starts it again. Once the load stops and all has caught up:

- `epoa audit verify` exits 0: every seal, chain, signature and checkpoint verifies;
- the read models equal a rebuild from zero (`epoa project --rebuild`), row for row;
- every case event delivered to Kafka is in the store exactly once, every concluded case
  concluded once, and each of its POAs ended exactly once;
- every command a client saw succeed (201/200) is in the store; a command retried after a
  connection error is in it at most once.

`EPOA_CHAOS_ROUNDS` sets the number of kills (3 here by default; `make chaos` and `make soak`
run 20); `EPOA_CHAOS_SEED` replays a run's random choices (each run prints its seed).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.support.chaos import chaos
from tests.support.court_feed import Court
from tests.support.history_checks import StoreHistory, read_model_tables, table_differences
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.people import People
from tests.support.stack import NAMES, started_stack
from tests.support.traffic import CaseBook, Load

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]
PARTITIONS = 3


def rounds() -> int:
    return int(os.environ.get("EPOA_CHAOS_ROUNDS", "3"))


def test_kill_9_of_any_process_under_load_loses_nothing_and_repeats_nothing(
    kafka_broker: KafkaEndpoint, fresh_group_id: str, tmp_path: Path, people: People
) -> None:
    seed = int(os.environ.get("EPOA_CHAOS_SEED") or random.randrange(1 << 32))
    print(f"chaos seed {seed} (EPOA_CHAOS_SEED={seed} replays the same choices)")
    rng = random.Random(seed)
    with started_stack(
        kafka_broker, fresh_group_id, tmp_path, people, "epoa-chaos", PARTITIONS
    ) as (role, stack, topic):
        cases = CaseBook(f"CH-{uuid.uuid4().hex[:6]}", rng=random.Random(seed + 1))
        load = Load(stack.url, stack.keys, people, cases, seed=seed)
        court = Court(kafka_broker.bootstrap, topic, people, cases, every=0.5, seed=seed + 2)
        with load, court:
            kills = chaos(stack, rounds(), rng, partitions=PARTITIONS)
            time.sleep(1.0)
        assert not load.failures, load.failures
        assert not court.errors, court.errors
        stack.wait_caught_up(court)

        verified = stack.run("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr

        live = read_model_tables(role.admin_url)
        assert stack.stop("projector") == 0, stack.tail("projector")
        rebuilt_run = stack.run("project", "--rebuild")
        assert rebuilt_run.returncode == 0, rebuilt_run.stdout + rebuilt_run.stderr
        assert table_differences(live, read_model_tables(role.admin_url)) == []

        history = StoreHistory(role.admin_url, stack.seal_key)
        problems = history.check(load.journal, court.delivered)
        assert problems == [], "\n".join(problems[:20])

    attempts = load.journal.snapshot()
    outcomes = Counter((a.kind, a.status) for a in attempts)
    print(f"kills: {Counter(k.name for k in kills)}; requests: {sorted(outcomes.items(), key=str)}")
    print(f"case events delivered: {len(court.delivered)}; records: {len(history.events)}")
    assert len(kills) == rounds()
    assert {k.name for k in kills} == set(NAMES) or rounds() < len(NAMES)
    assert any(a.kind == "issue" and a.succeeded for a in attempts)
    assert court.delivered
    assert not [a for a in attempts if a.status is not None and a.status >= 500 and a.status != 503]
