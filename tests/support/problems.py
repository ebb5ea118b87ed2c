"""Problem+json answers over HTTP, as the contract defines them, and a store left as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient

from domain.iin import is_valid_iin_bin
from tests.support.api import auth

PORTAL, COURT = auth("portal"), auth("court")
POAS = "/v1/powers-of-attorney"
PROBLEM_BASE = "urn:epoa:problem:"
"""The `type` of every problem: this base and one of the contract's kinds."""


def assert_problem(response: httpx.Response, status: int, kind: str, *words: str) -> None:
    """A problem+json of this status and kind whose detail names what is wrong."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + kind
    assert problem["type"].endswith(kind)
    assert problem["status"] == status
    assert problem["title"]
    detail = problem["detail"]
    assert isinstance(detail, str) and len(detail) > 8
    for word in words:
        assert word.lower() in detail.lower(), detail


def position(client: TestClient) -> int:
    response = client.get("/readyz")
    assert response.status_code == 200
    return int(response.json()["position"])


def poa_count(client: TestClient) -> int:
    page = client.get(POAS, params={"limit": 200}, headers=COURT).json()
    return len(page["items"])


@contextmanager
def unchanged(client: TestClient) -> Iterator[None]:
    """The block records no event and no POA."""
    before = position(client), poa_count(client)
    yield
    assert (position(client), poa_count(client)) == before


def poa_id_of(poa: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(str(poa["poa_id"]))


def invalid_iin() -> str:
    """Twelve digits whose check digit is wrong."""
    for last in "0123456789":
        if not is_valid_iin_bin("85020240002" + last):
            return "85020240002" + last
    raise AssertionError("every check digit is valid")


def post_raw(client: TestClient, raw: bytes, path: str = POAS) -> httpx.Response:
    headers = {**PORTAL, "Content-Type": "application/json"}
    response: httpx.Response = client.post(path, content=raw, headers=headers)
    return response
