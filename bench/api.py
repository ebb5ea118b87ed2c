"""Authority checks/s and p50/p99 over HTTP beside a bare FastAPI endpoint, same server
settings, same client (wrk, 16 connections). Run: `.venv/bin/python bench/api.py [seconds]
[rounds]` (needs `wrk`). Each server runs alone while it is measured: the bare endpoint,
`epoa serve`, and `epoa serve --no-projections` (the API replicas of docker-compose.yml), in
turn, `rounds` times (default 1); with more than one round the medians are printed, which
steadies the figures on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from epoa.settings import Settings  # noqa: E402
from epoa.wiring import build_registry  # noqa: E402
from tests.support.people import make_people  # noqa: E402
from tests.support.postgres import fresh_schema  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "bench-court-key-000000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def wrk(url: str, seconds: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c16",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {KEY}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests:\n{out}")
    return rate, _ms(out, "50%"), _ms(out, "99%")


def _ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(
    command: list[str], env: Mapping[str, str], path: str, seconds: int
) -> tuple[float, float, float]:
    """Start the server alone (`command` ends with `--port`), load it, stop it."""
    port = free_port()
    server = subprocess.Popen(
        [*command, str(port)],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}{path}")
        time.sleep(1)
        return wrk(f"http://127.0.0.1:{port}{path}", seconds)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    people = make_people()
    with fresh_schema() as url, tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        (var / "ca.pem").write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
        (var / "keys.json").write_text(json.dumps({KEY: "court"}))
        settings = Settings(database_url=url, var_dir=var)
        registry = build_registry(settings)
        for n in range(200):
            registry.issue(people.issue(case_number=f"BENCH-{n % 20}"))
        registry.close()
        env = {
            **os.environ,
            "EPOA_DATABASE_URL": url,
            "EPOA_VAR_DIR": str(var),
            "EPOA_TRUSTED_CA": str(var / "ca.pem"),
            "EPOA_API_KEYS": str(var / "keys.json"),
            "EPOA_LOG_LEVEL": "WARNING",
        }
        query = (
            f"/v1/authority?case_number=BENCH-3&attorney_iin={people.attorney.iin}"
            "&right=represent_first_instance"
        )
        epoa = [str(BIN / "epoa"), "serve", "--port"]
        # The same server settings for all: one worker, uvicorn's defaults otherwise (the
        # asyncio loop and h11 here: neither uvloop nor httptools is installed), no access log.
        servers = {
            "bare FastAPI endpoint:": (
                [str(BIN / "uvicorn"), "bench.bare_app:app", "--no-access-log", "--port"],
                os.environ,
                "/v1/authority",
            ),
            "authority checks:": (epoa, env, query),
            "  --no-projections:": ([*epoa[:2], "--no-projections", "--port"], env, query),
        }
        runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label in servers}
        for _ in range(rounds):
            for label, (command, environment, path) in servers.items():
                runs[label].append(measure(command, environment, path, seconds))
        medians = {
            label: tuple(statistics.median(run[i] for run in found) for i in range(3))
            for label, found in runs.items()
        }
        for label, (rate, p50, p99) in medians.items():
            print(f"{label:25}{rate:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        bare, inline = medians["bare FastAPI endpoint:"], medians["authority checks:"]
        print(
            f"ratio throughput {inline[0] / bare[0]:.2f}x (target >= 0.7); "
            f"p99 {inline[2] / bare[2]:.2f}x the bare p99 (target <= 2)"
            + (f"; medians of {rounds} rounds" if rounds > 1 else "")
        )


if __name__ == "__main__":
    main()
