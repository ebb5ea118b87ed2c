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


def readme_by_hand() -> str:
    """The README's walk-through by hand: the shell block after "By hand"."""
    text = (ROOT / "README.md").read_text().split("By hand, from the same directory:", 1)[1]
    return text.split("```sh\n", 1)[1].split("\n```", 1)[0]


def walkthrough(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "walkthrough.sh")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
        walk = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert walk.returncode == 0, walk.stdout + walk.stderr
        assert walk.stdout.strip().endswith("terminated case_concluded")
        assert '"authorized":true' in walk.stdout
        # Pasted again, it walks a case of its own: the first one has concluded.
        again = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.strip().endswith("terminated case_concluded")
        # A step the registry refuses stops the walk with the problem it answered.
        concluded = walk.stdout.split("in case ", 1)[1].split()[0]
        refused = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA, "CASE": concluded})
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "urn:epoa:problem:case-concluded" in refused.stderr
        assert "Traceback" not in refused.stderr
        by_hand = subprocess.run(
            ["bash", "-c", readme_by_hand().replace("http://127.0.0.1:8000", api)],
            cwd=tmp_path,
            env={**env, "PATH": f"{Path(EPOA).parent}:{env['PATH']}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
        assert '"status":"active"' in by_hand.stdout and '"authorized":true' in by_hand.stdout
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
