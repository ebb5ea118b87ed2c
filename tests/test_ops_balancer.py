"""The compose file's balancer, nginx itself with the `lb` configuration, in front of a real
`epoa serve`: what passes through is the API's; what nginx answers on its own (a body over
the API's limit, no replica reachable, a replica silent too long) is problem+json too, never
its HTML pages, and carries the request's id."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from api.commands import MAX_BODY_BYTES
from api.problems import MEDIA_TYPE, PROBLEM_BASE, TITLES
from tests.support.balancer import balancer
from tests.support.compose import balancer_config, needs_linux_x86
from tests.support.embedded import clean_env, embedded_serve, free_port

pytestmark = needs_linux_x86


def call(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    request_id: str | None = None,
    key: str | None = None,
) -> tuple[int, Message, bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def lb() -> str:
    return balancer_config()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def api(home: Path) -> Iterator[str]:
    with embedded_serve(home, home / "serve.log", clean_env()) as url:
        yield url


def portal_key(home: Path) -> str:
    keys = json.loads((home / "var" / "api-keys.json").read_text())
    return next(key for key, role in keys.items() if role == "portal")


def test_the_apis_answers_and_problems_pass_through_with_the_callers_request_id(
    lb: str, api: str, tmp_path: Path
) -> None:
    with balancer(lb, api.removeprefix("http://"), tmp_path) as url:
        status, headers, body = call(url + "/v1/rights", request_id="portal-trace-1")
        assert status == 200 and headers["X-Request-Id"] == "portal-trace-1"
        assert json.loads(body) == json.loads(call(api + "/v1/rights")[2])
        status, headers, body = call(url + "/v1/persons/900101300123")
        direct = call(api + "/v1/persons/900101300123")
        assert status == direct[0] == 401
        assert headers["Content-Type"] == MEDIA_TYPE
        assert json.loads(body)["type"] == json.loads(direct[2])["type"]
        assert len(headers["X-Request-Id"]) == 32  # made by the balancer, kept by the API


def test_a_body_over_the_apis_limit_gets_the_problem_the_api_gives_it(
    lb: str, api: str, home: Path, tmp_path: Path
) -> None:
    body = b'{"document": "' + b"x" * MAX_BODY_BYTES + b'"}'
    path, key = "/v1/powers-of-attorney", portal_key(home)
    direct_status, _, direct = call(api + path, "POST", body, key=key)
    with balancer(lb, api.removeprefix("http://"), tmp_path) as url:
        status, headers, answer = call(url + path, "POST", body, "big-1", key)
    assert status == direct_status == 413
    assert headers["Content-Type"] == MEDIA_TYPE and headers["X-Request-Id"] == "big-1"
    problem, expected = json.loads(answer), json.loads(direct)
    for member in ("type", "title", "status", "detail"):
        assert problem[member] == expected[member]


def no_answer(status: int, detail: str) -> dict[str, object]:
    return {
        "type": PROBLEM_BASE + "no-answer",
        "title": TITLES["no-answer"],
        "status": status,
        "detail": detail,
    }


def test_no_replica_reachable_is_a_502_problem(lb: str, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    with balancer(lb, closed, tmp_path) as url:
        status, headers, body = call(url + "/v1/rights", request_id="lost-1")
    assert status == 502
    assert headers["Content-Type"] == MEDIA_TYPE and headers["X-Request-Id"] == "lost-1"
    assert json.loads(body) == no_answer(502, "no replica of the API could be reached")


def test_a_replica_silent_past_the_read_timeout_is_a_504_problem(lb: str, tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    taker = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    taker.start()
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        with balancer(lb, address, tmp_path, read_timeout="1s") as url:
            status, headers, body = call(url + "/v1/authority", request_id="slow-1")
    finally:
        for connection in accepted:
            connection.close()
        silent.close()
    assert status == 504
    assert headers["Content-Type"] == MEDIA_TYPE and headers["X-Request-Id"] == "slow-1"
    assert json.loads(body) == no_answer(504, "the API did not answer in time")
