"""The `GET /v1/authority` shortcut answers byte for byte as the route does, and leaves to
the route whatever it is not sure of, problems included."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_services
from api.routes.authority import Shortcut
from epoa.async_queries import AsyncPostgres
from epoa.authority_cache import AUTHORITY_STALENESS
from epoa.logging_setup import configure
from tests.support.api import api_settings, auth, body, running
from tests.support.authority import COURT, PORTAL, authorised, issue, query
from tests.support.people import People

# -- the shortcut answers as the route does -----------------------------------------------------


@pytest.fixture
def fixed_client(database_url: str, tmp_path: Path, people: People) -> Iterator[TestClient]:
    """The app with a clock that stands still, so two answers for "now" are the same."""
    fixed = datetime.now(UTC)
    app = create_app(api_settings(database_url, tmp_path, people), clock=lambda: fixed)
    with TestClient(app) as client:
        yield client


def comparable(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, response.content, headers


@contextmanager
def past_the_shortcut(client: TestClient) -> Iterator[None]:
    """Requests go straight to the route while this lasts."""
    router = client.app.router  # type: ignore[attr-defined]
    shortcut = router.middleware_stack
    assert isinstance(shortcut, Shortcut)
    router.middleware_stack = shortcut.app
    try:
        yield
    finally:
        router.middleware_stack = shortcut


@pytest.mark.parametrize("iin_of", ["attorney", "second_attorney"])
def test_the_shortcut_answers_byte_for_byte_as_the_route(
    fixed_client: TestClient, people: People, iin_of: str
) -> None:
    for _ in range(2):
        fixed_client.post("/v1/powers-of-attorney", json=body(people.issue()), headers=PORTAL)
    iin = getattr(people, iin_of).iin
    shortcut = fixed_client.get("/v1/authority", params=query(iin), headers=COURT)
    with past_the_shortcut(fixed_client):
        route = fixed_client.get("/v1/authority", params=query(iin), headers=COURT)
    assert comparable(shortcut) == comparable(route)
    assert shortcut.status_code == 200
    metrics = fixed_client.get("/metrics").text
    line = 'epoa_http_requests_total{method="GET",route="/v1/authority",status="200"} 2.0'
    assert line in metrics


def test_the_plain_request_is_answered_without_the_routes_dependencies(
    fixed_client: TestClient, people: People
) -> None:
    async def unavailable() -> None:
        raise RuntimeError("the route's dependencies were resolved")

    fixed_client.app.dependency_overrides[get_services] = unavailable  # type: ignore[attr-defined]
    plain = fixed_client.get("/v1/authority", params=query(people.attorney.iin), headers=COURT)
    assert plain.status_code == 200
    with pytest.raises(RuntimeError, match="dependencies were resolved"):
        fixed_client.get("/v1/authority", params=query(people.attorney.iin, p="1"), headers=COURT)


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        (query("850202400020"), auth("admin"), 403),
        (query("850202400020"), {}, 401),
        (query("850202400020"), {"Authorization": "Basic dGVzdC1rZXktY291cnQ="}, 401),
        (query("850202400021"), COURT, 422),
        (query("850202400020", right="fly"), COURT, 422),
        (query("850202400020", case_number="no spaces"), COURT, 422),
        ([*query("850202400020").items(), ("right", "represent_appeal")], COURT, 422),
        (query("850202400020", page="1"), COURT, 422),
        (query("850202400020", at="2026-11-25T10:00:00Z"), COURT, 200),
        (query("850202400020", at="2026-11-25T10:00:00"), COURT, 422),
    ],
)
def test_what_the_shortcut_does_not_answer_the_route_does(
    fixed_client: TestClient, params: Any, headers: dict[str, str], status: int
) -> None:
    response = fixed_client.get("/v1/authority", params=params, headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["at"] == "2026-11-25T10:00:00Z"
    else:
        assert response.headers["content-type"] == "application/problem+json"


def test_an_unhandled_error_is_a_problem_with_the_request_id_and_is_counted(
    database_url: str, tmp_path: Path, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(api_settings(database_url, tmp_path, people), run_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as client:

        async def broken(*_: object) -> list[str]:
            raise RuntimeError("boom")

        read_models = client.app.state.services.read_models  # type: ignore[attr-defined]
        monkeypatch.setattr(read_models, "authority_now", broken)
        response = client.get(
            "/v1/authority", params=query("850202400020"), headers={**COURT, "X-Request-Id": "r-1"}
        )
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "r-1"
        assert response.json()["type"] == "urn:epoa:problem:internal"
        line = 'epoa_http_requests_total{method="GET",route="/v1/authority",status="500"} 1.0'
        assert line in client.get("/metrics").text


@pytest.mark.postgres
def test_an_unreachable_store_is_a_503_not_a_stale_answer(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    with running(api_settings(postgres_url, tmp_path, people), run_checkpoints=False) as client:
        issue(client, people)
        assert authorised(client, people.attorney.iin)
        read_models = client.app.state.services.read_models  # type: ignore[attr-defined]
        read_models.authority.queries = AsyncPostgres("postgresql://epoa@127.0.0.1:1/nowhere")
        time.sleep(AUTHORITY_STALENESS * 2)  # the position must be confirmed again
        response = client.get("/v1/authority", params=query(people.attorney.iin), headers=COURT)
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "urn:epoa:problem:unavailable"
        assert response.headers["retry-after"] == "1"


def test_a_successful_check_is_logged_at_debug_and_a_refused_one_at_info(
    database_url: str, tmp_path: Path, people: People
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure("json", "DEBUG", stream=stream)
    try:
        settings = api_settings(database_url, tmp_path, people)
        with running(settings, run_projections=False, run_checkpoints=False) as client:
            params = query(people.attorney.iin)
            client.get("/v1/authority", params=params, headers={**COURT, "X-Request-Id": "ok"})
            client.get("/v1/authority", params=params, headers={"X-Request-Id": "no-key"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    levels = {
        line["request_id"]: (line["level"], line["status"], line["route"])
        for line in lines
        if line["message"] == "request"
    }
    assert levels == {
        "ok": ("DEBUG", 200, "/v1/authority"),
        "no-key": ("INFO", 401, "/v1/authority"),
    }
