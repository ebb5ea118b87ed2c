"""Every endpoint of the contract's table against every role and no key at all.

The allowed roles pass the auth layer (they may still be refused for what they sent: a
command gets an invalid body here, which must then be a `validation` problem, never a
401/403); every other role is `forbidden`; no key is `unauthenticated`. The contract gives
the `admin` role no endpoint, so it is forbidden everywhere that is not public.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import api_settings, auth, running
from tests.support.people import CASE, People
from tests.support.postgres import fresh_schema

pytestmark = pytest.mark.postgres
ROLES = ("portal", "court", "auditor", "admin", None)
PUBLIC = frozenset({"portal", "court", "auditor", "admin", None})
READERS = frozenset({"portal", "court", "auditor"})
AUDITORS = frozenset({"court", "auditor"})
POA = f"/v1/powers-of-attorney/{uuid.UUID(int=7)}"
ATTORNEY_IIN = "850202400020"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str | None]
    request: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path.split('?')[0]}"


ENDPOINTS = (
    Endpoint("POST", "/v1/powers-of-attorney", frozenset({"portal"}), {"json": {}}),
    Endpoint("GET", POA, READERS),
    Endpoint("GET", "/v1/powers-of-attorney?limit=5", READERS),
    Endpoint("POST", f"{POA}/attorneys", frozenset({"portal"}), {"json": {}}),
    Endpoint("POST", f"{POA}/revocation", frozenset({"portal"}), {"json": {}}),
    Endpoint("POST", f"{POA}/renunciation", frozenset({"portal"}), {"json": {}}),
    Endpoint("GET", f"{POA}/events", AUDITORS),
    Endpoint(
        "GET",
        f"/v1/authority?case_number={CASE}&attorney_iin={ATTORNEY_IIN}"
        "&right=represent_first_instance",
        READERS,
    ),
    Endpoint("POST", "/v1/case-events", frozenset({"court"}), {"json": {}}),
    Endpoint("GET", f"/v1/cases/{CASE}", READERS),
    Endpoint("GET", f"/v1/persons/{ATTORNEY_IIN}", frozenset({"portal", "court"})),
    Endpoint("GET", "/v1/rights", PUBLIC),
    Endpoint("GET", "/v1/audit/keys", PUBLIC),
    Endpoint("GET", "/v1/audit/checkpoints/latest", PUBLIC),
    Endpoint("GET", "/v1/audit/proofs/inclusion?position=1", AUDITORS),
    Endpoint("GET", "/v1/audit/proofs/consistency?first=0", AUDITORS),
    Endpoint("GET", "/healthz", PUBLIC),
    Endpoint("GET", "/readyz", PUBLIC),
    Endpoint("GET", "/metrics", PUBLIC),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, people: People) -> Iterator[TestClient]:
    with fresh_schema() as url:
        settings = api_settings(url, tmp_path_factory.mktemp("roles"), people)
        with running(settings) as client:
            yield client


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "no key")
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_each_role_reaches_exactly_the_endpoints_the_contract_gives_it(
    client: TestClient, endpoint: Endpoint, role: str | None
) -> None:
    headers = auth(role) if role else {}
    response = client.request(endpoint.method, endpoint.path, headers=headers, **endpoint.request)
    if role in endpoint.allowed:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
        if endpoint.method == "POST":
            assert response.json()["type"] == "urn:epoa:problem:validation"
        return
    expected = (401, "unauthenticated") if role is None else (403, "forbidden")
    assert (response.status_code, response.json()["type"]) == (
        expected[0],
        f"urn:epoa:problem:{expected[1]}",
    ), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert ("www-authenticate" in response.headers) == (role is None)


def test_the_table_covers_every_implemented_route_of_the_app(client: TestClient) -> None:
    """A new route must join the table above, or its roles go untested."""
    documented = {
        (method.upper(), path)
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    tested = {(e.method, _template(e.path)) for e in ENDPOINTS}
    assert documented == tested


def _template(path: str) -> str:
    path = path.split("?")[0].replace(str(uuid.UUID(int=7)), "{poa_id}")
    path = path.replace(CASE, "{case_number}").replace(ATTORNEY_IIN, "{iin}")
    return path


def test_the_openapi_names_the_roles_of_each_endpoint_as_the_table_does(
    client: TestClient,
) -> None:
    operations = client.get("/openapi.json").json()["paths"]
    for endpoint in ENDPOINTS:
        operation = operations[_template(endpoint.path)][endpoint.method.lower()]
        if endpoint.allowed == PUBLIC:
            assert "x-roles" not in operation and "security" not in operation, endpoint
            assert {"401", "403"}.isdisjoint(operation["responses"]), endpoint
        else:
            assert set(operation["x-roles"]) == endpoint.allowed, endpoint
            assert operation["security"] == [{"apiKey": []}], endpoint
            assert {"401", "403"} <= set(operation["responses"]), endpoint
