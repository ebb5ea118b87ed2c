"""Logs are one JSON object per line in production (text in development), and every line
about an HTTP request carries its request id, taken from `X-Request-Id` or made."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from epoa.logging_setup import configure
from epoa.settings import Settings
from tests.support.api import api_settings, running
from tests.support.people import People

EPOA = str(Path(sys.executable).with_name("epoa"))


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writes JSON lines here during the test, and is put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure("json", "INFO", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_log_line_is_one_json_object_with_the_extra_fields(captured: io.StringIO) -> None:
    logging.getLogger("epoa.test").warning("two\nlines", extra={"route": "/x", "ms": 1.5})
    (line,) = lines(captured)
    assert line["level"] == "WARNING" and line["logger"] == "epoa.test"
    assert line["message"] == "two\nlines"
    assert line["route"] == "/x" and line["ms"] == 1.5
    assert line["time"].endswith("+00:00")


def test_an_exception_is_logged_inside_its_json_line(captured: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("epoa.test").exception("failed")
    (line,) = lines(captured)
    assert "ValueError: boom" in line["exception"]


def test_the_format_is_json_in_production_and_text_in_development() -> None:
    assert Settings(env="production").effective_log_format == "json"
    assert Settings().effective_log_format == "text"
    assert Settings(log_format="json").effective_log_format == "json"


def test_each_request_is_logged_as_json_with_the_callers_request_id(
    captured: io.StringIO, tmp_path: Path, people: People
) -> None:
    settings = api_settings(f"sqlite:///{tmp_path}/e.sqlite", tmp_path, people)
    with running(settings, run_projections=False) as client:
        response = client.get("/v1/rights", headers={"X-Request-Id": "portal-42.a"})
        made = client.get("/healthz", headers={"X-Request-Id": "no spaces allowed\n"})
    assert response.headers["X-Request-Id"] == "portal-42.a"
    generated = made.headers["X-Request-Id"]
    assert len(generated) == 32 and generated != "no spaces allowed\n"
    requests = [line for line in lines(captured) if line["message"] == "request"]
    by_id = {line["request_id"]: line for line in requests}
    assert by_id["portal-42.a"]["route"] == "/v1/rights"
    assert by_id["portal-42.a"]["status"] == 200
    assert isinstance(by_id["portal-42.a"]["ms"], float)
    assert by_id[generated]["route"] == "/healthz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_epoa_serve_writes_only_json_lines_to_standard_error(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env["EPOA_LOG_FORMAT"] = "json"
    errors = tmp_path / "stderr.log"
    with errors.open("wb") as err:
        server = subprocess.Popen(
            [EPOA, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"X-Request-Id": "e2e-1"}
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=1) as response:
                    assert response.headers["X-Request-Id"] == "e2e-1"
                    break
            except OSError:
                assert time.monotonic() < deadline, errors.read_text()
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
    logged = [json.loads(line) for line in errors.read_text().splitlines()]
    assert any(line["logger"].startswith("uvicorn") for line in logged)
    assert any(line.get("request_id") == "e2e-1" and line["status"] == 200 for line in logged)
