"""Authority checks over HTTP, and the commands that change their answer."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.support import api
from tests.support.api import auth, body
from tests.support.people import CASE, People

RIGHT = "represent_first_instance"
PORTAL, COURT = auth("portal"), auth("court")


def query(iin: str, **extra: str) -> dict[str, str]:
    return {"case_number": CASE, "attorney_iin": iin, "right": RIGHT, **extra}


def authorised(client: TestClient, iin: str) -> bool:
    response = client.get("/v1/authority", params=query(iin), headers=COURT)
    assert response.status_code == 200, response.text
    return bool(response.json()["authorized"])


def issue(client: TestClient, people: People) -> uuid.UUID:
    """A POA issued in the default case: its id."""
    return uuid.UUID(api.issue(client, people)["poa_id"])


def revoke(client: TestClient, people: People, poa_id: uuid.UUID) -> None:
    revocation = people.act("epoa.revoke", poa_id, people.principal)
    path = f"/v1/powers-of-attorney/{poa_id}/revocation"
    response = client.post(path, json=body(revocation), headers=PORTAL)
    assert response.status_code == 200, response.text
