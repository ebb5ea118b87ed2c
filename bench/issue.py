"""POAs issued/s over HTTP (CMS verified, sealed, projected) beside sealed appends/s.

Run: `.venv/bin/python bench/issue.py [seconds] [rounds]` with PostgreSQL at
`EPOA_TEST_POSTGRES`. In a fresh schema (dropped afterwards) it measures, in turn:
- the baseline: sealed appends/s with 8 writers and group commit (`bench/store.py`'s);
- `epoa serve` (projections in-process) taking `POST /v1/powers-of-attorney` from 8
  concurrent clients; each 201 means the principal's CMS was verified, the POA, its case
  and its idempotency key sealed and committed, and the read models show it.
Documents are signed before the clock starts: signing is the portal's work. The ratio of
the two rates is the number to compare across runs (target >= 0.5).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from bench.api import free_port, wait_up  # noqa: E402
from bench.store import rate, registry_for, sealed_append  # noqa: E402
from domain.registry import Registry  # noqa: E402
from tests.support.people import People, make_people  # noqa: E402
from tests.support.postgres import fresh_schema  # noqa: E402
from tests.support.traffic import signed  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "bench-portal-key-000000000000"
CLIENTS = 8
CASES = 50


def sealed_appends(registry: Registry, people: People, seconds: float) -> float:
    append = sealed_append(registry, people, people.issue().as_record())
    append()
    return rate(CLIENTS, seconds, append)


def bodies(people: People, count: int) -> list[dict[str, Any]]:
    return [
        signed(people, people.issue_document(f"ISSUE-{n % CASES}"), people.principal)
        for n in range(count)
    ]


def issue_over_http(url: str, queue: list[dict[str, Any]], seconds: float) -> float:
    """Every client posts its next document until the time is up; only 201s count."""
    lock, done, failed = threading.Lock(), [0] * CLIENTS, []
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while time.perf_counter() < stop:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                answer = http.post("/v1/powers-of-attorney", json=body)
                if answer.status_code != 201:
                    failed.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failed:
        raise SystemExit(f"{len(failed)} issues failed; first: {failed[0]}")
    if not queue:
        raise SystemExit("ran out of signed documents: sign more or shorten the run")
    return sum(done) / elapsed


def serve(url: str, var: Path) -> tuple[str, Callable[[], None]]:
    port = free_port()
    env = {
        **os.environ,
        "EPOA_DATABASE_URL": url,
        "EPOA_VAR_DIR": str(var),
        "EPOA_TRUSTED_CA": str(var / "ca.pem"),
        "EPOA_API_KEYS": str(var / "keys.json"),
        "EPOA_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(BIN / "epoa"), "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_up(f"http://127.0.0.1:{port}/readyz")

    def stop() -> None:
        server.terminate()
        server.wait()

    return f"http://127.0.0.1:{port}", stop


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    people = make_people()
    began = time.perf_counter()
    signed_bodies = bodies(people, int(seconds * rounds * 1500))
    print(f"signed {len(signed_bodies):,} documents in {time.perf_counter() - began:.1f}s")
    appends, issues = [], []
    # Two schemas: the server must not first project the baseline's appends.
    with (
        fresh_schema() as url,
        fresh_schema() as baseline_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        var = Path(tmp)
        (var / "ca.pem").write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
        (var / "keys.json").write_text(json.dumps({KEY: "portal"}))
        for _ in range(rounds):
            registry = registry_for(baseline_url, tmp, group_commit=True)
            try:
                appends.append(sealed_appends(registry, people, seconds))
            finally:
                registry.close()
            api, stop = serve(url, var)
            try:
                issues.append(issue_over_http(api, signed_bodies, seconds))
            finally:
                stop()
    baseline, figure = statistics.median(appends), statistics.median(issues)
    print(f"sealed appends/s, {CLIENTS} writers, group commit: {baseline:8.0f}")
    print(f"POAs issued/s over HTTP, {CLIENTS} clients:         {figure:8.0f}")
    print(f"ratio {figure / baseline:.2f} (target >= 0.5); medians of {rounds} rounds")


if __name__ == "__main__":
    main()
