"""How fast the read models catch up from zero, next to reading the raw notification log.

Run: `.venv/bin/python bench/projection_catchup.py [events] [rounds]` (default 20,000 and
5) with PostgreSQL at `EPOA_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432),
database `epoa_test`. It records the events through the registry in a fresh schema
(dropped afterwards), then, `rounds` times in turn, reads the log in batches without
decoding, reads and decodes it, and rebuilds the read models from zero; the medians are
printed. This is done twice: before the audit log has run (every batch's seals checked,
one per stream and batch), then after it has logged and signed every record, as it does
beside a running service, so that a signed head vouches for the batches
(`projections/vouching.py`). The ratio of catch-up to the bare read is the number to
compare across runs: decoding and writing the rows should cost at most four times the
bare read (ratio >= 0.25). Each round measures the three one after another, so a moment
of load on the shared machine falls on all three of a round or on none.

Documents are built from one real signature: the registry does not verify signatures
(the API does, on receipt), and signing is not what this measures.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

# The project root goes before bench/, whose projections.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.canonical import canonical_bytes
from domain.evidence import SignedDocument
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.checkpoints import CheckpointLog
from projections.runner import ProjectionRunner
from tests.support.people import People, make_people, now_text
from tests.support.postgres import fresh_schema

BATCH = 500
POAS_PER_CASE = 10
REVOKE_EVERY = 5


def signed(template: SignedDocument, document: dict[str, Any]) -> SignedDocument:
    return replace(template, document=document, canonical=canonical_bytes(document))


def populate(registry: Registry, people: People, events: int) -> int:
    """Issue POAs (a few revoked) in cases of ten until the log holds `events` records."""
    template = people.issue()
    number = 0
    while (registry.recorder.max_notification_id() or 0) < events:
        case = f"BENCH-{number // POAS_PER_CASE}"
        poa = registry.issue(signed(template, people.issue_document(case))).poa
        if number % REVOKE_EVERY == 0:
            revocation = {
                "type": "epoa.revoke",
                "document_id": str(uuid.uuid4()),
                "signed_at": now_text(),
                "poa_id": str(poa.id),
            }
            registry.revoke(poa.id, signed(template, revocation))
        number += 1
    return registry.recorder.max_notification_id() or 0


def raw_read(registry: Registry) -> tuple[int, float]:
    count, start, began = 0, 0, time.perf_counter()
    while batch := registry.recorder.select_notifications(start, BATCH, inclusive_of_start=False):
        count += len(batch)
        start = batch[-1].id
    return count, time.perf_counter() - began


def read_and_decode(runner: ProjectionRunner) -> tuple[int, float]:
    """The catch-up without its writes: reading, hashing, the seal checks or the signed
    heads that vouch for the records, and decoding what the read models use."""
    count, start, began = 0, 0, time.perf_counter()
    while (batch := runner.read_batch(start)).read:
        count += len(batch.read)
        start = batch.read[-1]
    return count, time.perf_counter() - began


def catch_up(runner: ProjectionRunner) -> tuple[int, float]:
    began = time.perf_counter()
    count = runner.rebuild()
    return count, time.perf_counter() - began


def measure(registry: Registry, runner: ProjectionRunner, rounds: int) -> list[list[float]]:
    """`rounds` rounds of (raw read, read + decode, catch-up) rates."""
    return [
        [rate(*raw_read(registry)), rate(*read_and_decode(runner)), rate(*catch_up(runner))]
        for _ in range(rounds)
    ]


def report(title: str, runs: list[list[float]]) -> None:
    rates = [statistics.median(run[kind] for run in runs) for kind in range(3)]
    ratios = [run[2] / run[0] for run in runs]
    print(f"{title}, medians of {len(runs)} rounds")
    names = ("raw notification log read", "read + decode", "projection catch-up")
    for name, value in zip(names, rates, strict=True):
        print(f"  {name:<28} {value:>10,.0f} events/s {value / rates[0]:>6.2f}x raw")
    print(
        f"  ratio projection / raw: {rates[2] / rates[0]:.2f} "
        f"(per round: {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main(events: int = 20_000, rounds: int = 5) -> None:
    people = make_people()
    with fresh_schema() as url, tempfile.TemporaryDirectory() as var:
        registry = build_registry(Settings(database_url=url, var_dir=Path(var)))
        try:
            began = time.perf_counter()
            recorded = populate(registry, people, events)
            print(f"recorded {recorded:,} events in {time.perf_counter() - began:.1f}s")
            with ProjectionRunner(registry, url, batch_size=BATCH) as runner:
                report("seal checks (no signed head yet)", measure(registry, runner, rounds))
                began = time.perf_counter()
                with CheckpointLog(registry, url, "epoa/bench") as audit_log:
                    audit_log.catch_up()
                    audit_log.sign_now()
                print(f"audit log over the records, signed: {time.perf_counter() - began:.1f}s")
                report("under a signed head (the audit log ran)", measure(registry, runner, rounds))
        finally:
            registry.close()


def rate(count: int, seconds: float) -> float:
    return count / seconds


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 5,
    )
