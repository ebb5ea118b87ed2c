"""POAs issued/s over HTTP (CMS verified, sealed, projected) beside sealed appends/s.

Run: `.venv/bin/python bench/issue.py [seconds] [rounds] [replicas]` with PostgreSQL at
`EPOA_TEST_POSTGRES`. In a fresh schema (dropped afterwards) it measures, in turn:
- the baseline: sealed appends/s with 8 writers and group commit (`bench/store.py`'s);
- the store's share of an issuance, as a ceiling: `Registry.issue` called by 8 threads in
  this process, no HTTP and no CMS check (the API verifies; the registry trusts what it is
  given), each call sealing and committing the POA, its case's `PowerOfAttorneyAttached`
  and its idempotency key: three records where the baseline writes one, so over HTTP the
  ratio cannot exceed this one's;
- the service in its production shape (docker-compose.yml): `replicas` API processes
  (`epoa serve --no-projections`, default 1) beside one `epoa project`, all with the same
  settings, taking `POST /v1/powers-of-attorney` from 8 concurrent clients; each 201 means
  the principal's CMS was verified, the POA, its case and its idempotency key sealed and
  committed, and the read models (applied by `epoa project`) show it. `replicas` 0 runs
  one `epoa serve` with its projections in-process instead: there the API's requests, the
  projections and the checkpoints share one interpreter, and on 2 cores it issues about
  a third fewer.
Documents are signed and encoded before the clock starts (the portal's work), and each
client is a plain keep-alive connection, so the load itself takes little of the CPU the
service is measured with. The ratio of the two rates is the number to compare across runs
(target >= 0.5).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from bench.api import free_port, wait_up  # noqa: E402
from bench.projection_catchup import signed as resigned  # noqa: E402
from bench.store import rate, registry_for, sealed_append  # noqa: E402
from domain.registry import Registry  # noqa: E402
from tests.support.people import People, make_people  # noqa: E402
from tests.support.postgres import fresh_schema  # noqa: E402
from tests.support.traffic import signed  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "bench-portal-key-000000000000"
CLIENTS = 8
CASES = 50
REPLICAS = 1


def sealed_appends(registry: Registry, people: People, seconds: float) -> float:
    append = sealed_append(registry, people, people.issue().as_record())
    append()
    return rate(CLIENTS, seconds, append)


def registry_issues(registry: Registry, people: People, seconds: float) -> float:
    """`Registry.issue` by `CLIENTS` threads: the store's part of an issuance alone. The
    documents are made before the clock starts, each with its own id."""
    template = people.issue()
    documents = [
        resigned(template, people.issue_document(f"STORE-{n % CASES}"))
        for n in range(int(seconds * 4000))
    ]
    queue = iter(documents)
    registry.issue(next(queue))
    return rate(CLIENTS, seconds, lambda: registry.issue(next(queue)))


def bodies(people: People, count: int) -> list[bytes]:
    """`count` signed issue requests, as the JSON bytes a portal sends."""
    return [
        json.dumps(
            signed(people, people.issue_document(f"ISSUE-{n % CASES}"), people.principal)
        ).encode()
        for n in range(count)
    ]


def issue_over_http(urls: list[str], queue: list[bytes], seconds: float) -> float:
    """POAs issued/s: every client posts its next document until the time is up."""
    began = time.perf_counter()
    done = post_all(urls, queue, began + seconds)
    elapsed = time.perf_counter() - began
    if not queue:
        raise SystemExit("ran out of signed documents: sign more or shorten the run")
    return done / elapsed


def post_all(urls: list[str], queue: list[bytes], stop: float = math.inf) -> int:
    """Post the documents of `queue` until it is empty or the clock passes `stop`; return
    how many were issued (each must be a 201). The clients are spread over the API
    processes, as a load balancer spreads them. Each keeps one connection (keep-alive) and
    sends bodies encoded before the clock started: the portal's own work stays out of the
    machine's CPU the server is measured with."""
    lock, done, failed = threading.Lock(), [0] * CLIENTS, []
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def client(index: int) -> None:
        address = urlsplit(urls[index % len(urls)])
        http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
        try:
            while time.perf_counter() < stop and not failed:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                http.request("POST", "/v1/powers-of-attorney", body, headers)
                answer = http.getresponse()
                text = answer.read()
                if answer.status != 201:
                    failed.append(f"{answer.status} {text[:200]!r}")
                    return
                done[index] += 1
        finally:
            http.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise SystemExit(f"{len(failed)} issues failed; first: {failed[0]}")
    return sum(done)


def serve(url: str, var: Path, replicas: int = REPLICAS) -> tuple[list[str], Callable[[], None]]:
    """The production shape: `replicas` API processes (`epoa serve --no-projections`) and
    one `epoa project`; with `replicas` 0, one `epoa serve` with its projections in-process.
    Returns the APIs' base URLs and a function that stops every process."""
    env = {
        **os.environ,
        "EPOA_DATABASE_URL": url,
        "EPOA_VAR_DIR": str(var),
        "EPOA_TRUSTED_CA": str(var / "ca.pem"),
        "EPOA_API_KEYS": str(var / "keys.json"),
        "EPOA_LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> None:
        processes.append(
            subprocess.Popen(
                [str(BIN / "epoa"), *command],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop() -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()

    urls = []
    try:
        for _ in range(max(replicas, 1)):
            port = free_port()
            start("serve", "--port", str(port), *(("--no-projections",) if replicas else ()))
            wait_up(f"http://127.0.0.1:{port}/readyz")  # the first one creates the tables
            urls.append(f"http://127.0.0.1:{port}")
        if replicas:
            start("project")
    except BaseException:
        stop()
        raise
    return urls, stop


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    replicas = int(sys.argv[3]) if len(sys.argv) > 3 else REPLICAS
    people = make_people()
    began = time.perf_counter()
    signed_bodies = bodies(people, int(seconds * rounds * 1500))
    print(f"signed {len(signed_bodies):,} documents in {time.perf_counter() - began:.1f}s")
    appends, ceilings, issues = [], [], []
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
                ceilings.append(registry_issues(registry, people, seconds))
            finally:
                registry.close()
            apis, stop = serve(url, var, replicas)
            try:
                issues.append(issue_over_http(apis, signed_bodies, seconds))
            finally:
                stop()
    baseline, figure = statistics.median(appends), statistics.median(issues)
    ceiling = statistics.median(ceilings)
    print(f"sealed appends/s, {CLIENTS} writers, group commit: {baseline:8.0f}")
    print(
        f"Registry.issue/s, {CLIENTS} threads, no HTTP or CMS:  {ceiling:8.0f}   "
        f"ratio {ceiling / baseline:.2f} (the ceiling of the ratio below)"
    )
    print(f"POAs issued/s over HTTP, {CLIENTS} clients:         {figure:8.0f}")
    print(f"ratio {figure / baseline:.2f} (target >= 0.5); medians of {rounds} rounds")


if __name__ == "__main__":
    main()
