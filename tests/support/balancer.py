"""The compose file's balancer (`lb`, nginx) run here: its own configuration, as Docker
Compose renders it, with only the addresses changed (a local port for `listen 8080`, the
API's address for `api:8000`, no Docker resolver) and, where a test says, a shorter wait
for the API's answer."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.embedded import free_port
from tests.support.postgres import unavailable

ROOT = Path(__file__).resolve().parents[2]
MAIN_CONFIG = """daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  include {prefix}/lb.conf;
}}
"""


def nginx_binary() -> str:
    """nginx from PATH or Debian's package (`scripts/nginx.sh`); missing, the test fails in
    CI and is skipped elsewhere."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "nginx.sh")], capture_output=True, text=True
    )
    if done.returncode != 0:
        unavailable(f"nginx: {done.stderr.strip()}")
    return done.stdout.strip()


def local_config(lb: str, port: int, api: str, read_timeout: str | None) -> str:
    """The `lb` configuration pointed at `api` (host:port) and listening on `port`."""
    lines = []
    for line in lb.splitlines():
        if line.strip().startswith("resolver "):
            continue  # Docker's; `api` is an address here
        if line.strip() == "listen 8080;":
            line = line.replace("8080", str(port))
        if "http://api:8000" in line:
            line = line.replace("api:8000", api)
            if read_timeout is not None:
                line += f"\n          proxy_read_timeout {read_timeout};"
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def balancer(lb: str, api: str, tmp: Path, read_timeout: str | None = None) -> Iterator[str]:
    """nginx running the `lb` configuration in front of `api`: its base URL."""
    binary = nginx_binary()
    port = free_port()
    (tmp / "lb.conf").write_text(local_config(lb, port, api, read_timeout))
    main = MAIN_CONFIG.format(prefix=tmp)
    if os.geteuid() == 0:  # else workers run as nobody, who cannot write the test's files
        main = "user root;\n" + main
    (tmp / "nginx.conf").write_text(main)
    process = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                errors = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"nginx did not start: {errors}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
