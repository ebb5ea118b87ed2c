"""Sealed appends/s on PostgreSQL (1 and 8 writers) beside the raw INSERT ceiling.

Run: `.venv/bin/python bench/store.py [seconds] [rounds]`. Uses database `epoa_test` on
the local server (EPOA_TEST_POSTGRES), a fresh schema, dropped afterwards. Each figure is
`registry.save` of one new POA per command, through the group-commit recorder (the
default on PostgreSQL) and, for comparison, through the library's recorder
(`EPOA_GROUP_COMMIT=n`); the baseline is a plain psycopg INSERT of a row of the same size,
one autocommit transaction each. The three are measured in turn, `rounds` times (`seconds`
each), and the medians printed: the machine is shared, so the ratio is what to compare.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.group_commit import GroupCommitProcessRecorder
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.people import People, make_people
from tests.support.postgres import DATABASE, SERVER, ensure_database, fresh_schema


def rate(writers: int, seconds: float, job: Callable[[], None]) -> float:
    done = [0] * writers
    stop = time.perf_counter() + seconds

    def run(index: int) -> None:
        while time.perf_counter() < stop:
            job()
            done[index] += 1

    threads = [threading.Thread(target=run, args=(i,), name=f"writer-{i}") for i in range(writers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - began)


def registry_for(url: str, var: str, group_commit: bool) -> Registry:
    previous = os.environ.get("EPOA_GROUP_COMMIT")
    os.environ["EPOA_GROUP_COMMIT"] = "y" if group_commit else "n"
    try:
        return build_registry(Settings(database_url=url + "&pool_size=9", var_dir=Path(var)))
    finally:
        if previous is None:
            del os.environ["EPOA_GROUP_COMMIT"]
        else:
            os.environ["EPOA_GROUP_COMMIT"] = previous


def sealed_append(app: Registry, people: People, evidence: dict[str, str]) -> Callable[[], None]:
    """One new POA saved, sealed, in a transaction of its own: the unit of the baseline."""

    def append() -> None:
        poa = PowerOfAttorney(
            case_number="BENCH-1",
            principal={"iin": people.principal.iin, "name": None},
            attorneys=[{"iin": people.attorney.iin}],
            rights=["represent_first_instance"],
            valid_until=None,
            at=datetime.now(UTC),
            evidence=evidence,
        )
        app.save(poa)

    return append


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ensure_database()
    people = make_people()
    evidence = people.issue().as_record()
    with fresh_schema() as url, tempfile.TemporaryDirectory() as var:
        registry = registry_for(url, var, group_commit=True)
        library = registry_for(url, var, group_commit=False)
        assert isinstance(registry.recorder, GroupCommitProcessRecorder)
        assert not isinstance(library.recorder, GroupCommitProcessRecorder)

        sealed_append(registry, people, evidence)()
        size = len(next(iter(registry.recorder.select_notifications(1, 1))).state)
        schema = url.rsplit("schema=", 1)[1]
        conninfo = f"{SERVER}/{DATABASE}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                f'CREATE TABLE "{schema}".raw_events (originator_id uuid, originator_version '
                "bigint, topic text, state bytea, notification_id bigserial, "
                "PRIMARY KEY (originator_id, originator_version))"
            )
        payload = os.urandom(size)
        raw_connections = {
            f"writer-{i}": psycopg.connect(conninfo, autocommit=True) for i in range(8)
        }

        def raw_insert() -> None:
            conn = raw_connections[threading.current_thread().name]
            conn.execute(
                f'INSERT INTO "{schema}".raw_events VALUES (%s, 1, %s, %s)',
                (uuid.uuid4(), "bench", payload),
            )

        print(f"record size: {size} bytes; medians of {rounds} rounds of {seconds:g} s")
        jobs = {
            "raw": raw_insert,
            "grouped": sealed_append(registry, people, evidence),
            "library": sealed_append(library, people, evidence),
        }
        for writers in (1, 8):
            runs: dict[str, list[float]] = {name: [] for name in jobs}
            for _ in range(rounds):
                for name, job in jobs.items():
                    runs[name].append(rate(writers, seconds, job))
            raw, grouped, single = (statistics.median(runs[name]) for name in jobs)
            print(
                f"{writers} writer(s): sealed appends/s {grouped:6.0f} "
                f"(library recorder {single:6.0f})   raw INSERT/s {raw:6.0f}   "
                f"ratio {grouped / raw:.2f} (library {single / raw:.2f})"
            )
        for conn in raw_connections.values():
            conn.close()
        registry.close()
        library.close()


if __name__ == "__main__":
    main()
