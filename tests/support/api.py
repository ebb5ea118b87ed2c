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
from tests.support.people import Actor, People, now_text
from tests.support.pki import b64, sign_cms

KEYS = {f"test-key-{role}": role for role in ("portal", "court", "auditor", "admin")}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer test-key-{role}"}


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
    from domain.court_case import JUDGMENT_IN_FORCE

    data: dict[str, Any] = (
        {
            "case_number": case_number,
            "judicial_act_id": "JA-7",
            "entered_into_force_on": "2026-11-20",
        }
        if kind == JUDGMENT_IN_FORCE
        else {"case_number": case_number, "issued_on": "2026-11-24", "documents": ["EL-77"]}
    )
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:kz:court:ecourt",
        "type": kind,
        "subject": case_number,
        "time": now_text(),
        "datacontenttype": "application/json",
        "data": data,
    }
    signer = actor or people.court
    event["signature"] = b64(sign_cms(canonical_bytes(event), signer.issued, people.ca.chain))
    return event
