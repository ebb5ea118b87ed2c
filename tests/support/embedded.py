"""`epoa serve` on the embedded default (SQLite, development values under `./var`), run as
a newcomer runs it: a process of its own in a directory of the test's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

EPOA = str(Path(sys.executable).with_name("epoa"))


def clean_env() -> dict[str, str]:
    """The environment without any `EPOA_` setting: every default applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}


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


@contextmanager
def embedded_serve(cwd: Path, log: Path, env: dict[str, str]) -> Iterator[str]:
    """`epoa serve` in `cwd`, what it prints in `log`: its URL once it answers; stopped
    (SIGTERM) at the end."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [EPOA, "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        api = f"http://127.0.0.1:{port}"
        wait_until_up(api, server, log)
        yield api
    finally:
        server.terminate()
        server.wait(timeout=20)
