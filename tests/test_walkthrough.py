"""The README's walk-through, pasted by a newcomer: `epoa serve` on the embedded default,
`epoa sign` with the demo keys, curl; then `epoa audit verify` finds the store intact."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EPOA = str(Path(sys.executable).with_name("epoa"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"epoa serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"epoa serve did not start: {log.read_text()}")


def test_the_readme_walkthrough_works_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [EPOA, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        api = f"http://127.0.0.1:{port}"
        wait_until_up(api, server, log)
        assert "DEMO CA" in log.read_text()
        walk = subprocess.run(
            ["bash", str(ROOT / "scripts" / "walkthrough.sh")],
            cwd=tmp_path,
            env={**env, "API": api, "EPOA": EPOA},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert walk.returncode == 0, walk.stdout + walk.stderr
        assert walk.stdout.strip().endswith("terminated case_concluded")
        assert '"authorized":true' in walk.stdout
    finally:
        server.terminate()
        server.wait(timeout=20)
    audit = subprocess.run(
        [EPOA, "audit", "verify"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "INTACT" in audit.stdout
