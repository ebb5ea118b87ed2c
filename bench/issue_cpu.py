"""CPU time per POA issued over HTTP, per process: the API, the projector, PostgreSQL.

Run: `.venv/bin/python bench/issue_cpu.py [count] [warm] [rounds]` with PostgreSQL at
`EPOA_TEST_POSTGRES`, on a machine nothing else loads. `bench/issue.py`'s production shape
(`epoa serve --no-projections` beside `epoa project`, 8 keep-alive clients, documents signed
beforehand) issues `warm` POAs, then `count` more, between two readings of each process's
user and system time (`/proc/PID/stat`) and of the server backends connected to the
benchmark's database. CPU per issuance is much steadier than a rate on a shared machine:
compare it between two versions of the code run one after the other.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from bench.issue import KEY, bodies, post_all, serve  # noqa: E402
from epoa.storage import psycopg_conninfo  # noqa: E402
from tests.support.people import make_people  # noqa: E402
from tests.support.postgres import fresh_schema  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system time of a process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def epoa_children() -> dict[str, int]:
    """The `epoa serve` and `epoa project` this process started, by role."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            args = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == os.getpid() and any(a.endswith(b"epoa") for a in args):
            found["api" if b"serve" in args else "projector"] = int(stat.parent.name)
    return found


def backends(conn: psycopg.Connection) -> list[int]:
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    return [row[0] for row in conn.execute(query)]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    warm = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    people = make_people()
    signed = bodies(people, (count + warm) * rounds)
    with fresh_schema() as url, tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        (var / "ca.pem").write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
        (var / "keys.json").write_text(json.dumps({KEY: "portal"}))
        apis, stop = serve(url, var, 1)
        try:
            processes = epoa_children()
            with psycopg.connect(psycopg_conninfo(url), autocommit=True) as admin:
                for _ in range(rounds):
                    post_all(apis, [signed.pop() for _ in range(warm)])
                    before = {role: cpu_seconds(pid) for role, pid in processes.items()}
                    server_before = {pid: cpu_seconds(pid) for pid in backends(admin)}
                    post_all(apis, [signed.pop() for _ in range(count)])
                    spent = {r: cpu_seconds(p) - before[r] for r, p in processes.items()}
                    spent["postgres"] = sum(
                        cpu_seconds(pid) - server_before.get(pid, 0.0) for pid in backends(admin)
                    )
                    per = {role: seconds / count * 1000 for role, seconds in spent.items()}
                    shown = "  ".join(f"{role} {ms:.2f}" for role, ms in sorted(per.items()))
                    print(f"ms of CPU per issuance: {shown}  total {sum(per.values()):.2f}")
        finally:
            stop()


if __name__ == "__main__":
    main()
