"""Sealed appends/s on PostgreSQL (1 and 8 writers) beside the raw INSERT ceiling.

Run: `.venv/bin/python bench/store.py [seconds]`. Uses database `epoa_test` on the local
server (EPOA_TEST_POSTGRES), a fresh schema, dropped afterwards. Both figures come from the
same run on the same machine; the ratio is what to compare between runs.
"""

from __future__ import annotations

import os
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

from domain.power_of_attorney import PowerOfAttorney
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.people import make_people
from tests.support.postgres import DATABASE, SERVER, ensure_database, fresh_schema


def rate(writers: int, seconds: float, job: Callable[[], None]) -> float:
    done = [0] * writers
    stop = time.perf_counter() + seconds

    def run(index: int) -> None:
        while time.perf_counter() < stop:
            job()
            done[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - began)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    ensure_database()
    people = make_people()
    evidence = people.issue().as_record()
    with fresh_schema() as url, tempfile.TemporaryDirectory() as var:
        registry = build_registry(Settings(database_url=url + "&pool_size=16", var_dir=Path(var)))

        def sealed_append() -> None:
            poa = PowerOfAttorney(
                case_number="BENCH-1",
                principal={"iin": people.principal.iin, "name": None},
                attorneys=[{"iin": people.attorney.iin}],
                rights=["represent_first_instance"],
                valid_until=None,
                at=datetime.now(UTC),
                evidence=evidence,
            )
            registry.save(poa)

        sealed_append()
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
        local = threading.local()

        def raw_insert() -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = psycopg.connect(conninfo, autocommit=True)
            conn.execute(
                f'INSERT INTO "{schema}".raw_events VALUES (%s, 1, %s, %s)',
                (uuid.uuid4(), "bench", payload),
            )

        print(f"record size: {size} bytes; {seconds:.0f} s per figure")
        for writers in (1, 8):
            raw = rate(writers, seconds, raw_insert)
            sealed = rate(writers, seconds, sealed_append)
            print(
                f"{writers} writer(s): sealed appends/s {sealed:8.0f}   raw INSERT/s {raw:8.0f}"
                f"   ratio {sealed / raw:.2f}"
            )
        registry.close()


if __name__ == "__main__":
    main()
