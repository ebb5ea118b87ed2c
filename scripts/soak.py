"""Soak: a steady load on the three epoa processes for N minutes, their memory and the
latency sampled as it goes; a summary at the end. Run by `make soak`, or alone:

    .venv/bin/python scripts/soak.py [--minutes 10] [--every 5] [--rss-growth-mib 32]

The processes run as docker-compose.yml runs them (`epoa serve --no-projections`,
`epoa project`, `epoa consume`; production mode, the least-privilege role of `epoa db init`)
over a fresh schema of the local PostgreSQL (`EPOA_TEST_POSTGRES`) and a tansu broker
started here (or `EPOA_TEST_KAFKA_BOOTSTRAP`). Portal clients issue POAs and revoke some,
courts check authority and read POAs, a court publishes signed case events that conclude
cases (some twice, as a redelivery would).

Every `--every` seconds: the resident set size (RSS) of each process and the sessions the
service role holds. At the end: RSS (min/median/max) of the first minute after a minute of
warm-up beside the last minute's, p50/p99 latency per minute and kind of request, the error
count, then the checks of the resilience tests (`epoa audit verify`, read models equal to a
rebuild, nothing lost, nothing twice).

Exit status 1 if there was any error (no answer, a 5xx, a 4xx other than the 409 a case
concluded meanwhile gives, a failed check) or if a process's median RSS of the last minute
exceeds that of the first measured minute by more than `--rss-growth-mib`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.broker import Broker  # noqa: E402
from tests.support.court_feed import Court  # noqa: E402
from tests.support.history_checks import (  # noqa: E402
    StoreHistory,
    read_model_tables,
    table_differences,
)
from tests.support.journal import Attempt  # noqa: E402
from tests.support.kafka_endpoint import KafkaEndpoint  # noqa: E402
from tests.support.measures import median, percentile, rss_kib  # noqa: E402
from tests.support.people import People, make_people  # noqa: E402
from tests.support.roles import service_role  # noqa: E402
from tests.support.stack import NAMES, Stack  # noqa: E402
from tests.support.traffic import CaseBook, Load  # noqa: E402

PARTITIONS = 3
KINDS = ("issue", "revoke", "authority", "read")


@dataclass
class Sample:
    at: float
    """Seconds since the load began."""
    rss_kib: dict[str, int]
    connections: int
    lag: int
    """Records not yet in the read models."""


@dataclass
class Samples:
    items: list[Sample] = field(default_factory=list)


def sample_forever(
    stack: Stack, began: float, every: float, stop: threading.Event, into: Samples
) -> None:
    while not stop.wait(every):
        rss = {name: rss_kib(stack.pid(name)) or 0 for name in NAMES}
        try:
            at = stack.positions()
            lag, connections = at["last"] - at["read_models"], stack.connections()
        except Exception:
            lag, connections = -1, -1
        into.items.append(Sample(time.monotonic() - began, rss, connections, lag))


def is_error(attempt: Attempt) -> bool:
    """No answer, a 5xx, or a 4xx other than a conflict with a case concluded meanwhile."""
    if attempt.status is None or attempt.status >= 500:
        return True
    return attempt.status >= 400 and attempt.status != 409


def mib(kib: float) -> float:
    return kib / 1024


def rss_table(samples: list[Sample], minutes: int) -> tuple[list[str], dict[str, float]]:
    """Lines of the RSS summary, and each process's growth in MiB (end median - start)."""
    warm = 60.0 if minutes >= 3 else 0.0
    first = [s for s in samples if warm <= s.at < warm + 60.0]
    last = [s for s in samples if s.at >= samples[-1].at - 60.0] if samples else []
    lines = [
        f"RSS MiB          start (minute {int(warm // 60) + 1}) min/median/max"
        "      end (last minute) min/median/max    growth"
    ]
    growth = {}
    for name in NAMES:
        start = [mib(s.rss_kib[name]) for s in first]
        end = [mib(s.rss_kib[name]) for s in last]
        if not start or not end:
            continue
        growth[name] = median(end) - median(start)
        lines.append(
            f"  {name:10} {min(start):8.1f} {median(start):8.1f} {max(start):8.1f}"
            f"        {min(end):8.1f} {median(end):8.1f} {max(end):8.1f}"
            f"        {growth[name]:+7.1f}"
        )
    return lines, growth


def latency_table(attempts: list[Attempt], began: float, ended: float) -> list[str]:
    """Per minute of the load, each kind's count, p50 and p99 (ms), and the errors."""
    by_minute: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[int, int] = defaultdict(int)
    for attempt in attempts:
        if attempt.started >= ended:  # sent while the load was stopping
            continue
        minute = int((attempt.started - began) // 60)
        by_minute[minute][attempt.kind].append(attempt.elapsed * 1000)
        errors[minute] += is_error(attempt)
    header = "minute " + "".join(f"{kind + ' n/p50/p99 ms':>28}" for kind in KINDS) + "  errors"
    lines = [header]
    for minute in sorted(by_minute):
        cells = []
        for kind in KINDS:
            values = by_minute[minute][kind]
            cells.append(
                f"{len(values):>10} {percentile(values, 0.5):7.1f} {percentile(values, 0.99):8.1f}"
            )
        lines.append(
            f"{minute + 1:>6} " + "".join(f"{c:>28}" for c in cells) + f"  {errors[minute]:>6}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--rss-growth-mib", type=float, default=32.0)
    parser.add_argument("--issuers", type=int, default=2)
    parser.add_argument("--checkers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.02, help="each client's pause, s")
    parser.add_argument("--out", type=Path, help="write samples and summary here (JSON)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="epoa-soak-"))
    print(f"soak: {args.minutes:g} min; logs in {workdir}", flush=True)
    people = make_people()
    external = os.environ.get("EPOA_TEST_KAFKA_BOOTSTRAP")
    broker: KafkaEndpoint = (
        KafkaEndpoint(external) if external else Broker(log_path=workdir / "tansu.log").start()
    )
    topic = f"epoa-soak.{uuid.uuid4().hex[:12]}"
    try:
        broker.wait_ready()
        broker.create_topic(topic, PARTITIONS)
        broker.create_topic(f"{topic}.dlq", 1)
        with (
            service_role() as role,
            Stack(
                role,
                workdir,
                people,
                kafka=broker.bootstrap,
                topic=topic,
                group=f"epoa-soak.{uuid.uuid4().hex[:12]}",
            ) as stack,
        ):
            stack.init_database()
            stack.start_all()
            stack.wait_up("api")
            stack.wait_up("consumer", PARTITIONS)
            return soak(stack, people, broker.bootstrap, topic, args)
    finally:
        if isinstance(broker, Broker):
            broker.stop()
        else:
            broker.close()


def soak(stack: Stack, people: People, bootstrap: str, topic: str, args: argparse.Namespace) -> int:
    cases = CaseBook(f"SK-{uuid.uuid4().hex[:6]}", open_cases=12, rng=random.Random(1))
    load = Load(
        stack.url,
        stack.keys,
        people,
        cases,
        issuers=args.issuers,
        checkers=args.checkers,
        pause=args.pause,
        timeout=30.0,
        retry_for=0.0,
        seed=1,
    )
    court = Court(bootstrap, topic, people, cases, every=1.0, seed=2)
    samples = Samples()
    began = time.monotonic()
    deadline = began + args.minutes * 60
    with load, court:
        run_for(load, court, stack, samples, began, deadline, args.every)
    attempts = load.journal.snapshot()
    problems = checks_after(stack, load, court)
    rss_lines, growth = rss_table(samples.items, round(args.minutes))
    errors = sum(map(is_error, attempts))
    summary = [
        f"requests {len(attempts)}, errors {errors}; case events delivered {len(court.delivered)}",
        gauges_line(samples.items),
        *rss_lines,
        *latency_table(attempts, began, deadline),
        f"checks: {'all passed' if not problems else f'{len(problems)} problems'}",
        *problems[:20],
    ]
    print("\n".join(summary), flush=True)
    grown = {name: g for name, g in growth.items() if g > args.rss_growth_mib}
    if grown:
        print(f"RSS grew by more than {args.rss_growth_mib} MiB: {grown}")
    if args.out is not None:
        report = {"summary": summary, "errors": errors, "rss_growth_mib": growth}
        samples_out = [s.__dict__ for s in samples.items]
        args.out.write_text(json.dumps({"samples": samples_out, **report}, indent=1))
    return 1 if errors or problems or grown else 0


def run_for(
    load: Load,
    court: Court,
    stack: Stack,
    samples: Samples,
    began: float,
    deadline: float,
    every: float,
) -> None:
    """Keep the load on until `deadline`, sampling every `every` s; a progress line a minute."""
    stop = threading.Event()
    sampler = threading.Thread(
        target=sample_forever, args=(stack, began, every, stop, samples), daemon=True
    )
    sampler.start()
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 60.0))
        done = load.journal.snapshot()
        print(
            f"  {(time.monotonic() - began) / 60:4.1f} min: {len(done)} requests, "
            f"{sum(map(is_error, done))} errors, {len(court.delivered)} case events",
            flush=True,
        )
    stop.set()
    sampler.join()


def checks_after(stack: Stack, load: Load, court: Court) -> list[str]:
    """The resilience tests' checks once the load is off: the store verifies, the read
    models equal a rebuild, and every request and case event left its mark exactly once."""
    problems = [*load.failures, *court.errors]
    stack.wait_caught_up(court)
    verified = stack.run("audit", "verify")
    if verified.returncode != 0:
        problems.append(f"epoa audit verify: {verified.stdout[-2000:]}{verified.stderr[-2000:]}")
    live = read_model_tables(stack.role.admin_url)
    stack.stop("projector")
    rebuilt = stack.run("project", "--rebuild")
    if rebuilt.returncode != 0:
        problems.append(f"epoa project --rebuild: {rebuilt.stdout}{rebuilt.stderr}")
    problems += table_differences(live, read_model_tables(stack.role.admin_url))
    problems += StoreHistory(stack.role.admin_url, stack.seal_key).check(
        load.journal, court.delivered
    )
    return problems


def gauges_line(samples: list[Sample]) -> str:
    lag = [s.lag for s in samples if s.lag >= 0]
    connections = [s.connections for s in samples if s.connections >= 0]
    return (
        f"read-model lag (records) median {median(lag):.0f}, max {max(lag, default=0)}; "
        f"service role sessions min {min(connections, default=0)}, "
        f"max {max(connections, default=0)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
