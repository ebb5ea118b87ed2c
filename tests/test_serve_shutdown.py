"""`epoa serve` stopped by SIGTERM (`docker compose stop`, systemd) or SIGINT (Ctrl-C) shuts
down cleanly and exits 0, as `epoa project` and `epoa consume` do: a supervisor reads any
other status as a failure."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.embedded import EPOA, clean_env, free_port, wait_until_up


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopping_signal_ends_serve_with_status_0(tmp_path: Path, signum: int) -> None:
    """It exited 143 after a clean SIGTERM shutdown (130 after SIGINT): uvicorn raises the
    signal again once it has shut down."""
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [EPOA, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, log)
        server.send_signal(signum)
        assert server.wait(timeout=20) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    printed = log.read_text()
    assert "Application shutdown complete" in printed
    assert "Traceback" not in printed
