"""The HTTP API fuzzed from its own OpenAPI, for each role and no key at all.

Every operation in the app's OpenAPI gets requests generated from its schema (the documented
examples, the boundary cases, then random valid and invalid ones), sent to the real app on
PostgreSQL holding a few POAs issued with real signatures; half of the valid cases take their
ids, case numbers, IINs, rights and log positions from that data, so reads also hit existing
resources. Each response must not be a server error and must be what the OpenAPI documents:
status code, content type, headers and body; invalid input must be refused, and a method
the path does not have must be a 405 naming those it has.

The run is deterministic (a fixed seed), so CI sees the same cases every time.
`EPOA_FUZZ_EXAMPLES` sets how many random cases each operation gets per role (default 50;
e.g. 300 for a longer search) and `EPOA_FUZZ_SEED` another seed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import strategies as st

from api.app import create_app
from epoa.settings import Settings
from tests.support.api import api_settings, auth, body, running
from tests.support.people import CASE, People
from tests.support.postgres import fresh_schema

pytestmark = pytest.mark.postgres
ROLES = ("portal", "court", "auditor", "admin", None)
EXAMPLES = int(os.environ.get("EPOA_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("EPOA_FUZZ_SEED", "20261125"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)
CASES = (CASE, "7594-26-00-2/1235", "7594-26-00-2/1236")
KNOWN = {
    "poa_id": "poa_ids",
    "case_number": "cases",
    "iin": "iins",
    "principal_iin": "iins",
    "attorney_iin": "iins",
    "right": "rights",
    "position": "positions",
    "tree_size": "positions",
    "first": "positions",
    "second": "positions",
}
"""Which parameter may take its value from which list of the seeded data."""
SEEDED: dict[str, list[Any]] = {}
"""The live app's data, filled by the `live` fixture before the first case is drawn."""
LIVE: list[Any] = []
"""The started app, set by the `live` fixture."""


async def _live(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Where schemathesis sends every request: the app the `live` fixture started (its
    lifespan ran there, once; here it is skipped)."""
    if scope["type"] != "lifespan":
        await LIVE[0](scope, receive, send)


# The app's own OpenAPI (that instance is never started); `_live` answers the cases.
schema = schemathesis.openapi.from_dict(
    create_app(Settings.model_construct()).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    ),
)
schema.app = _live


@schema.hook
def flatmap_case(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> st.SearchStrategy[schemathesis.Case]:
    """A valid case as it is, or with every known parameter taken from the seeded data.
    Invalid cases stay as they are: they must stay invalid."""
    meta = case.meta
    if not SEEDED or meta is None or meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return st.just(case)
    path = [name for name in case.path_parameters or {} if name in KNOWN]
    query = [name for name in case.query or {} if name in KNOWN]
    if not path and not query:
        return st.just(case)

    def drawn(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({name: st.sampled_from(SEEDED[KNOWN[name]]) for name in names})

    def seeded(values: tuple[dict[str, Any], dict[str, Any]]) -> schemathesis.Case:
        known = case.derive(query={**(case.query or {}), **values[1]})
        known.path_parameters.update(values[0])
        return known

    return st.one_of(st.just(case), st.tuples(drawn(path), drawn(query)).map(seeded))


def _seed(client: TestClient, people: People) -> dict[str, list[Any]]:
    """Three POAs in three cases: one active, one revoked, one with a second attorney."""
    portal = auth("portal")
    ids = []
    for case_number in CASES:
        issued = client.post(
            "/v1/powers-of-attorney", json=body(people.issue(case_number)), headers=portal
        )
        assert issued.status_code == 201, issued.text
        ids.append(issued.json()["poa_id"])
    revoke = people.act("epoa.revoke", uuid.UUID(ids[1]), people.principal)
    revoked = client.post(
        f"/v1/powers-of-attorney/{ids[1]}/revocation", json=body(revoke), headers=portal
    )
    assert revoked.status_code == 200, revoked.text
    add = people.act(
        "epoa.add-attorney",
        uuid.UUID(ids[2]),
        people.principal,
        attorney={"iin": people.second_attorney.iin},
    )
    added = client.post(
        f"/v1/powers-of-attorney/{ids[2]}/attorneys", json=body(add), headers=portal
    )
    assert added.status_code == 200, added.text
    return {
        "poa_ids": ids,
        "cases": list(CASES),
        "iins": [people.principal.iin, people.attorney.iin, people.second_attorney.iin],
        "rights": ["represent_first_instance", "appeal_judicial_acts", "represent_appeal"],
        "positions": [1, 2, 3, 5, 8],
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, people: People) -> Iterator[None]:
    """The real app on a fresh PostgreSQL schema, started once for the module, with data."""
    with fresh_schema() as url:
        settings = api_settings(url, tmp_path_factory.mktemp("fuzz"), people)
        with running(settings) as client:
            SEEDED.update(_seed(client, people))
            LIVE.append(client.app)
            try:
                yield
            finally:
                LIVE.clear()
                SEEDED.clear()


@pytest.mark.usefixtures("live")
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "no key")
@schema.parametrize()
def test_the_api_answers_as_its_openapi_documents_and_never_with_a_server_error(
    case: schemathesis.Case, role: str | None
) -> None:
    case.call_and_validate(headers=auth(role) if role else None)
