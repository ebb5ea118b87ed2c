"""`epoa audit verify`'s core: records verified per second beside raw Ed25519 verifications
per second in the same run, and its peak memory at two store sizes.

Run: `.venv/bin/python bench/audit.py [large N, default 80000]` (about a minute). It
builds SQLite stores of 10,000 and N records in a temporary directory (half of them POAs
carrying a real CMS signature, half the case records attaching them), logs every record
into the global
audit log with a head every 1,000 records, then verifies each store in a fresh process
(so its peak RSS is the verifier's alone) both with the evidence check and without it,
and once more under `tracemalloc` for the peak of the Python heap.

Every record costs at least one Ed25519 verification (its seal), so the ratio to raw
verifications/s says how much the rest (chains, Merkle tree, decoding, facts) adds; with
evidence, the CMS re-verification of every second record dominates.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization

from domain.court_case import CourtCase
from domain.power_of_attorney import PowerOfAttorney
from domain.seal import SealKey
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.checkpoints import CheckpointLog
from tests.support.people import make_people

CASES = 64
ORIGIN = "epoa/bench"


def build(directory: Path, records: int) -> Settings:
    settings = Settings(database_url=f"sqlite:///{directory}/epoa.sqlite", var_dir=directory)
    registry = build_registry(settings)
    people = make_people()
    signed = [people.issue(case_number=f"BENCH-{k}") for k in range(CASES)]
    cases = {k: CourtCase(f"BENCH-{k}") for k in range(CASES)}
    registry.save(*cases.values())
    at = datetime.now(UTC)
    for start in range(0, (records - CASES) // 2, 500):
        batch: list[object] = []
        for i in range(start, min(start + 500, (records - CASES) // 2)):
            evidence = signed[i % CASES]
            poa = PowerOfAttorney(
                case_number=f"BENCH-{i % CASES}",
                principal={"iin": people.principal.iin, "name": None},
                attorneys=[{"iin": people.attorney.iin, "name": None}],
                rights=list(evidence.document["rights"]),
                valid_until=None,
                at=at,
                evidence=evidence.as_record(),
            )
            cases[i % CASES].attach(poa.id, at)
            batch.append(poa)
        registry.save(*batch, *cases.values())
    with CheckpointLog(registry, settings.database_url, ORIGIN, every_records=1000) as log:
        log.catch_up()
        log.sign_now()
    registry.close()
    ca = directory / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    return settings


def ed25519_rate(seconds: float = 2.0) -> float:
    key = SealKey.generate()
    message = os.urandom(32)
    signature = key.private_key.sign(message)
    public = key.public_key
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        for _ in range(200):
            public.verify(signature, message)
        count += 200
    return count / (time.perf_counter() - began)


def peak_rss_mib() -> float:
    """VmHWM: this process's own peak RSS (`ru_maxrss` would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(directory: str, mode: str) -> None:
    """One verification in this process (`seals`, `evidence` or `heap`): print its figures."""
    from epoa.audit import audit_store
    from projections.db import connect

    settings = Settings(database_url=f"sqlite:///{directory}/epoa.sqlite", var_dir=Path(directory))
    registry = build_registry(settings)
    verifier = None
    if mode == "evidence":
        from domain.eds import TrustStore, Verifier

        verifier = Verifier(TrustStore.from_path(Path(directory) / "ca.pem"))
    db = connect(settings.database_url)
    if mode == "heap":
        tracemalloc.start()
    began = time.perf_counter()
    result = audit_store(registry, db, verifier, ORIGIN)
    elapsed = time.perf_counter() - began
    heap = tracemalloc.get_traced_memory()[1] if mode == "heap" else 0
    assert result.intact, result.first_findings[:5]
    figures = {
        "records": result.records,
        "rate": result.records / elapsed,
        "checkpoints": result.checkpoints_checked,
        "rss_mib": peak_rss_mib(),
        "heap_mib": heap / 2**20,
    }
    print(json.dumps(figures))


def measure(directory: Path, mode: str) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main(large: int) -> None:
    raw = ed25519_rate()
    print(f"raw Ed25519 verifications/s: {raw:,.0f}")
    for size in (10_000, large):
        with tempfile.TemporaryDirectory() as directory:
            began = time.perf_counter()
            build(Path(directory), size)
            print(f"\n{size:,} records built and logged in {time.perf_counter() - began:.1f}s")
            for mode, label in (("seals", "seals, chains, trees"), ("evidence", "and evidence")):
                m = measure(Path(directory), mode)
                print(
                    f"  {label:22} {m['rate']:>7,.0f} records/s  ratio to raw Ed25519 "
                    f"{m['rate'] / raw:.2f}  checkpoints {m['checkpoints']:.0f}  "
                    f"peak RSS {m['rss_mib']:.0f} MiB"
                )
            heap = measure(Path(directory), "heap")["heap_mib"]
            print(f"  peak Python heap of the verification (tracemalloc): {heap:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 80_000)
