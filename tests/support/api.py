"""The real app over a real PostgreSQL, with an API key per role and the tests' trust store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from api.app import create_app
from domain.canonical import canonical_bytes
from domain.evidence import SignedDocument
from epoa.settings import Settings
from tests.support.people import CASE, Actor, People
from tests.support.pki import b64, sign_cms

KEYS = {f"test-key-{role}": role for role in ("portal", "court", "auditor", "admin")}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer test-key-{role}"}


def issue(
    client: TestClient, people: People, case_number: str = CASE, **fields: Any
) -> dict[str, Any]:
    """The portal issues a POA the principal signed (`People.issue`'s fields): its 201 answer."""
    evidence = people.issue(case_number, **fields)
    response = client.post("/v1/powers-of-attorney", json=body(evidence), headers=auth("portal"))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def api_settings(database_url: str, tmp_path: Path, people: People) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    keys = tmp_path / "api-keys.json"
    keys.write_text(json.dumps(KEYS))
    return Settings(
        database_url=database_url, var_dir=tmp_path / "var", trusted_ca=ca, api_keys=keys
    )


@contextmanager
def running(
    settings: Settings, run_projections: bool = True, run_checkpoints: bool = True
) -> Iterator[TestClient]:
    app = create_app(settings, run_projections=run_projections, run_checkpoints=run_checkpoints)
    with TestClient(app) as client:
        yield client


def body(evidence: SignedDocument) -> dict[str, Any]:
    """The request body a portal sends: the document and the signature it was verified with."""
    return {"document": evidence.document, "signature": b64(evidence.cms)}


def signed(people: People, document: dict[str, Any], actor: Actor) -> dict[str, Any]:
    signature = sign_cms(canonical_bytes(document), actor.issued, people.ca.chain)
    return {"document": document, "signature": b64(signature)}


def cloud_event(
    people: People, kind: str, case_number: str, event_id: str, actor: Actor | None = None
) -> dict[str, Any]:
    """A court's signed case event as the JSON object `POST /v1/case-events` takes."""
    from tests.support.court_events import signed_case_event

    event: dict[str, Any] = json.loads(
        signed_case_event(people, kind, case_number, "urn:kz:court:ecourt", event_id, signer=actor)
    )
    return event
