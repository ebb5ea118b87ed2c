"""Problem details as RFC 9457 writes them, through the real app on SQLite (the wire format
of every other answer is in `test_api_wire_format.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.api import api_settings, body, running
from tests.support.people import People
from tests.support.problems import COURT, POAS, PORTAL, assert_problem, unchanged


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, people: People) -> Iterator[TestClient]:
    tmp_path = tmp_path_factory.mktemp("problems")
    settings = api_settings(f"sqlite:///{tmp_path}/epoa.sqlite", tmp_path, people)
    with running(settings) as client:
        yield client


@pytest.mark.parametrize(
    "path",
    ["/v1/cases/a%20b", "/v1/cases/%D0%90", "/v1/cases/A%2F..%2Fx", "/v1/cases/%22%3E%3C"],
)
def test_a_problem_names_the_request_path_as_sent_a_uri_reference(
    client: TestClient, path: str
) -> None:
    response = client.get(path, headers=COURT)
    assert response.status_code in (404, 422), response.text
    assert response.json()["instance"] == path


def test_a_body_in_utf_16_is_malformed_json_and_stores_nothing(
    client: TestClient, people: People
) -> None:
    evidence = people.issue()
    raw = json.dumps(body(evidence)).encode("utf-16")
    with unchanged(client):
        response = client.post(POAS, content=raw, headers=PORTAL)
    assert_problem(response, 400, "validation", "malformed JSON", "utf-8")
