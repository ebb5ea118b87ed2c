"""The OpenAPI document says what the contract and the service's answers say: the bounds a
query parameter is held to, in the JSON Schema words a client's tooling reads, and the
contract's values of each closed set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import api_settings, auth, body, running
from tests.support.people import People

COURT = auth("court")
PORTAL = auth("portal")
BOUNDS = {
    ("/v1/powers-of-attorney", "limit"): (1, 200),
    ("/v1/audit/proofs/inclusion", "position"): (1, 2**63 - 1),
    ("/v1/audit/proofs/inclusion", "tree_size"): (1, 2**63 - 1),
    ("/v1/audit/proofs/consistency", "first"): (0, 2**63 - 1),
    ("/v1/audit/proofs/consistency", "second"): (0, 2**63 - 1),
}
OTHERS = {
    "/v1/powers-of-attorney": {},
    "/v1/audit/proofs/inclusion": {"position": "1"},
    "/v1/audit/proofs/consistency": {"first": "0"},
}
"""The parameters each route needs beside the one tried."""
NOT_JSON_SCHEMA = {"ge", "gt", "le", "lt"}
"""pydantic's names of bounds, which JSON Schema (and so every validator and client
generator) ignores: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, people: People) -> Iterator[TestClient]:
    tmp_path = tmp_path_factory.mktemp("openapi")
    settings = api_settings(f"sqlite:///{tmp_path}/epoa.sqlite", tmp_path, people)
    with running(settings) as client:
        yield client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def schemas_in(node: object, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of the document, with the path to it."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from schemas_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schemas_in(value, f"{where}/{index}")


def parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    (found,) = (p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name)
    return found  # type: ignore[no-any-return]


def test_no_schema_of_the_document_writes_a_bound_in_words_json_schema_ignores(
    document: dict[str, Any],
) -> None:
    """`limit`, `position`, `tree_size`, `first` and `second` were documented with `ge` and
    `le`: their bounds were invisible to a client, which learnt of them from a 422."""
    misnamed = [where for where, node in schemas_in(document) if NOT_JSON_SCHEMA & set(node)]
    assert misnamed == []


@pytest.mark.parametrize(("path", "name"), list(BOUNDS), ids=lambda part: str(part))
def test_each_bounded_query_number_documents_the_bounds_it_is_held_to(
    client: TestClient, document: dict[str, Any], path: str, name: str
) -> None:
    low, high = BOUNDS[(path, name)]
    schema = parameter(document, path, name)["schema"]
    (integer,) = (s for s in schema.get("anyOf", [schema]) if s.get("type") == "integer")
    assert (integer["minimum"], integer["maximum"]) == (low, high)
    query = OTHERS[path]
    below = client.get(path, params={**query, name: str(low - 1)}, headers=COURT)
    assert below.status_code == 422, below.text
    assert below.json()["type"] == "urn:epoa:problem:validation"
    above = client.get(path, params={**query, name: str(high + 1)}, headers=COURT)
    assert above.status_code == 422, above.text


def test_the_termination_reasons_are_the_contracts_four(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("TerminationPublic", "TerminationListed"):
        assert schemas[name]["properties"]["reason"]["enum"] == [
            "revoked_by_principal",
            "renounced_by_all_attorneys",
            "case_concluded",
            "expired",
        ]
    assert schemas["PowerOfAttorneyPublic"]["properties"]["status"]["enum"] == [
        "active",
        "revoked",
        "terminated",
        "expired",
    ]
    assert schemas["AttorneyPublic"]["properties"]["status"]["enum"] == ["active", "renounced"]


def test_the_list_documents_its_status_filter_as_the_contracts_four_values(
    client: TestClient, document: dict[str, Any]
) -> None:
    """It was a pattern over them: a client's tooling offered a free text field."""
    schema = parameter(document, "/v1/powers-of-attorney", "status")["schema"]
    (values,) = (s["enum"] for s in schema["anyOf"] if "enum" in s)
    assert values == ["active", "revoked", "terminated", "expired"]
    for status in values:
        listed = client.get("/v1/powers-of-attorney", params={"status": status}, headers=COURT)
        assert listed.status_code == 200, listed.text
    for status in ("Active", "ended", "active "):
        refused = client.get("/v1/powers-of-attorney", params={"status": status}, headers=COURT)
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "urn:epoa:problem:validation"


def test_a_commands_receipt_documents_its_fields_and_answers_match_them(
    client: TestClient, document: dict[str, Any], people: People
) -> None:
    """The receipt was a free-form object: a client generated from the document saw none of
    the fields it must check the signature with."""
    schemas = document["components"]["schemas"]
    receipt = schemas["Receipt"]
    assert sorted(receipt["required"]) == ["issued_at", "key_id", "records", "signature"]
    assert sorted(schemas["ReceiptRecord"]["required"]) == [
        "originator_id",
        "position",
        "record_hash",
        "version",
    ]
    for name in ("PowerOfAttorneyPublic", "CaseEventAccepted"):
        refs = json.dumps(schemas[name]["properties"]["receipt"])
        assert "#/components/schemas/Receipt" in refs, name
    issued = client.post(
        "/v1/powers-of-attorney", json=body(people.issue()), headers=PORTAL
    ).json()["receipt"]
    assert sorted(issued) == sorted(receipt["properties"])
    assert all(
        sorted(r) == sorted(schemas["ReceiptRecord"]["properties"]) for r in issued["records"]
    )
