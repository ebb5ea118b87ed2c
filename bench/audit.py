"""`epoa audit verify`: records verified per second beside raw Ed25519 verifications per
second in the same run, and its peak memory as the store grows.

Run: `.venv/bin/python bench/audit.py [--sizes 10000,100000] [--workers N]` (a few
minutes). `--sizes 10000,100000,1000000` shows memory up to a million records: about an
hour on a busy 2-core machine (the million-record store alone takes 3 to 10 minutes to
build and 2.5 GB of temporary disk). For each size it builds a SQLite store in a temporary
directory (`bench/audit_fixture.py`: the registry's own commands with real CMS evidence,
then copies of them, re-signed and re-sealed, under the global audit log with a signed head
every 1,000 records), then verifies it three times, each in a fresh process, so each peak
RSS (VmHWM) is the verifier's alone:
- seals, chains, Merkle trees and cross-record facts, without the evidence (`audit_store`
  with no trust store);
- the whole `epoa audit verify` (`verify_store`: every signed document re-verified too);
- the first again under `tracemalloc`, for the peak of the Python heap.
Raw Ed25519 verifications/s (libsodium's, the library that checks seals, with OpenSSL's
beside it) are measured just before each store is verified; the ratio is
also given per CPU second, which other work on a shared machine disturbs less. The end is
a table of the peaks at each size and the ratio of the largest store's to the smallest's:
flat means under 1.5x.

Every record costs at least one Ed25519 verification (its seal), so the ratio to raw
verifications/s says how much the rest (chains, Merkle tree, decoding, facts) adds; with
evidence, the CMS re-verification of a third of the records dominates.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit_fixture import ORIGIN, build_store
from nacl.signing import VerifyKey

from domain.seal import SealKey
from epoa.settings import Settings

FLAT = 1.5
MODES = (
    ("seals", "seals, chains, trees"),
    ("command", "epoa audit verify"),
    ("heap", "Python heap, seals"),
)


def ed25519_rates(seconds: float = 2.0) -> dict[str, tuple[float, float]]:
    """Raw verifications per second of wall time and of this process's CPU, by library:
    libsodium (what seals are checked with: the baseline) and OpenSSL (for comparison)."""
    key = SealKey.generate()
    message = os.urandom(32)
    signature = key.private_key.sign(message)
    sodium = VerifyKey(key.public_key.public_bytes_raw())
    openssl = key.public_key
    checks: dict[str, Callable[[], object]] = {
        "libsodium": lambda: sodium.verify(message, signature),
        "OpenSSL": lambda: openssl.verify(signature, message),
    }
    rates = {}
    for name, check in checks.items():
        count, began, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - began < seconds:
            for _ in range(200):
                check()
            count += 200
        rates[name] = count / (time.perf_counter() - began), count / (time.process_time() - cpu)
    return rates


def peak_rss_mib() -> float:
    """VmHWM: this process's own peak RSS (`ru_maxrss` would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_settings(directory: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{directory}/epoa.sqlite",
        var_dir=directory,
        trusted_ca=directory / "ca.pem",
    )


def seals_only(settings: Settings) -> Callable[[], dict[str, Any]]:
    """`audit_store` with no trust store: everything but the evidence."""
    from epoa.audit import audit_store
    from epoa.wiring import build_registry
    from projections.db import connect

    registry = build_registry(settings)
    db = connect(settings.database_url)

    def run() -> dict[str, Any]:
        try:
            result = audit_store(registry, db, None, ORIGIN)
        finally:
            db.close()
            registry.close()
        assert result.intact, result.first_findings[:5]
        return {"records": result.records, "checkpoints": result.checkpoints_checked}

    return run


def whole_command(settings: Settings) -> Callable[[], dict[str, Any]]:
    """The body of `epoa audit verify --json`; its summary line gives the figures."""
    from epoa.audit_commands import verify_store

    def run() -> dict[str, Any]:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = verify_store(settings, as_json=True)
        summary: dict[str, Any] = json.loads(out.getvalue().splitlines()[-1])
        assert status == 0 and summary["intact"], summary
        return {"records": summary["records"], "checkpoints": summary["checkpoints_checked"]}

    return run


def child(directory: str, mode: str) -> None:
    """One verification in this process (a mode of `MODES`): print its figures."""
    settings = store_settings(Path(directory))
    run = whole_command(settings) if mode == "command" else seals_only(settings)
    if mode == "heap":
        tracemalloc.start()
    began, cpu = time.perf_counter(), time.process_time()
    figures = run()
    figures["rate"] = figures["records"] / (time.perf_counter() - began)
    figures["cpu_rate"] = figures["records"] / (time.process_time() - cpu)
    figures["rss_mib"] = peak_rss_mib()
    figures["heap_mib"] = tracemalloc.get_traced_memory()[1] / 2**20 if mode == "heap" else 0
    print(json.dumps(figures))


def measure(directory: Path, mode: str) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(directory), mode],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise SystemExit(f"the {mode} verification failed:\n{run.stderr[-4000:]}")
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def one_size(size: int, workers: int | None) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="epoa-audit-bench-") as name:
        directory = Path(name)
        began = time.perf_counter()
        _, records = build_store(directory, size, workers)
        print(f"\n{records:,} records built and logged in {time.perf_counter() - began:.1f}s")
        rates = ed25519_rates()
        raw, raw_cpu = rates["libsodium"]
        for library, (rate, _) in rates.items():
            print(f"  {'raw Ed25519, ' + library:22} {rate:>7,.0f} verifications/s")
        found = {}
        for mode, label in MODES:
            m = found[mode] = measure(directory, mode)
            if mode == "heap":
                print(f"  {label:22} peak {m['heap_mib']:.1f} MiB (tracemalloc)")
                continue
            print(
                f"  {label:22} {m['rate']:>7,.0f} records/s  ratio to raw Ed25519 (libsodium) "
                f"{m['rate'] / raw:.2f} (per CPU second {m['cpu_rate'] / raw_cpu:.2f})  "
                f"checkpoints {m['checkpoints']:.0f}  "
                f"peak RSS {m['rss_mib']:.0f} MiB"
            )
        return found


def main(sizes: list[int], workers: int | None) -> None:
    table = {size: one_size(size, workers) for size in sizes}
    print("\npeak memory of the verifier, a fresh process per store:")
    print(f"{'records':>11}  {'seals RSS':>10}  {'command RSS':>12}  {'Python heap':>12}")
    for found in table.values():
        print(
            f"{found['seals']['records']:>11,.0f}  {found['seals']['rss_mib']:>6.0f} MiB  "
            f"{found['command']['rss_mib']:>8.0f} MiB  {found['heap']['heap_mib']:>8.1f} MiB"
        )
    if len(sizes) > 1:
        small, large = table[min(sizes)], table[max(sizes)]
        ratio = max(large[m]["rss_mib"] / small[m]["rss_mib"] for m in ("seals", "command"))
        verdict = "flat" if ratio < FLAT else "NOT flat"
        print(
            f"peak RSS at {large['seals']['records']:,.0f} against "
            f"{small['seals']['records']:,.0f} records: {ratio:.2f}x ({verdict}: under {FLAT}x)"
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        type=lambda text: sorted(int(size) for size in text.split(",")),
        help="store sizes in records, comma-separated (default 10000,100000)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes making the store (default: cores)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        options = arguments()
        main(options.sizes, options.workers)
