"""`/v1/audit/checkpoints/latest` and the proofs, through the real app on PostgreSQL; what
they return is verified offline with the keys of `/v1/audit/keys` only."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epoa.audit_proofs import public_key_from_pem, verify_consistency_proof, verify_inclusion_proof
from epoa.settings import Settings
from epoa.storage import EVENTS_TABLE, psycopg_conninfo, schema_of
from epoa.wiring import build_registry
from projections.checkpoints import CheckpointLog
from tests.support.api import api_settings, auth, issue, running
from tests.support.people import People

pytestmark = pytest.mark.postgres
ORIGIN = "epoa/api-test"
LATEST, INCLUSION, CONSISTENCY = (
    "/v1/audit/checkpoints/latest",
    "/v1/audit/proofs/inclusion",
    "/v1/audit/proofs/consistency",
)


@pytest.fixture
def settings(postgres_url: str, tmp_path: Path, people: People) -> Settings:
    return api_settings(postgres_url, tmp_path, people)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings, run_checkpoints=False) as client:
        yield client


@pytest.fixture
def log(settings: Settings, client: TestClient) -> Iterator[CheckpointLog]:
    """The audit log over the app's store, signing a head each time it catches up."""
    registry = build_registry(settings)
    log = CheckpointLog(registry, settings.database_url, ORIGIN, every_records=1)
    yield log
    log.close()
    registry.close()


def seal_keys(client: TestClient) -> list[Any]:
    keys = client.get("/v1/audit/keys").json()["keys"]
    return [public_key_from_pem(key["public_key_pem"]) for key in keys]


def test_there_is_no_latest_checkpoint_before_the_log_signs_one(client: TestClient) -> None:
    response = client.get(LATEST)
    assert response.status_code == 404
    assert response.json()["type"] == "urn:epoa:problem:not-found"


def test_the_latest_checkpoint_is_public_and_signed_by_the_seal_key(
    client: TestClient, log: CheckpointLog, people: People
) -> None:
    issue(client, people, "API-1")
    log.catch_up()
    response = client.get(LATEST)
    assert response.status_code == 200, response.text
    head = response.json()
    assert head["tree_size"] == 4 and len(head["root_hash"]) == 64
    assert head["note"].startswith(f"{ORIGIN}\n4\n")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", head["signed_at"])
    # The signature on its own, by the key /v1/audit/keys names, over the note's text.
    (key,) = [
        k for k in client.get("/v1/audit/keys").json()["keys"] if k["key_id"] == head["key_id"]
    ]
    assert key["current"]
    text = head["note"].split("\n\n", 1)[0] + "\n"
    public_key_from_pem(key["public_key_pem"]).verify(
        base64.b64decode(head["signature"]), text.encode()
    )


def test_a_receipted_record_is_proven_included_for_a_court_offline(
    client: TestClient, log: CheckpointLog, people: People
) -> None:
    poa = issue(client, people, "API-2")
    log.catch_up()
    record = poa["receipt"]["records"][0]
    for role in ("court", "auditor"):
        response = client.get(
            INCLUSION, params={"position": record["position"]}, headers=auth(role)
        )
        assert response.status_code == 200, response.text
    proof = response.json()
    checkpoint = verify_inclusion_proof(
        proof, seal_keys(client), record_hash=bytes.fromhex(record["record_hash"]), origin=ORIGIN
    )
    assert checkpoint.size == proof["tree_size"] == 4


def test_a_newer_checkpoint_is_proven_to_extend_an_older_one(
    client: TestClient, log: CheckpointLog, people: People
) -> None:
    issue(client, people, "API-3")
    log.catch_up()
    older = client.get(LATEST).json()
    issue(client, people, "API-4")
    log.catch_up()
    response = client.get(CONSISTENCY, params={"first": older["tree_size"]}, headers=auth("court"))
    assert response.status_code == 200, response.text
    first, second = verify_consistency_proof(
        response.json(), seal_keys(client), first_note=older["note"]
    )
    assert (first.size, second.size) == (4, 8)


@pytest.mark.parametrize(
    ("path", "params", "status", "kind"),
    [
        (INCLUSION, {"position": 999}, 404, "not-found"),
        (INCLUSION, {"position": 1, "tree_size": 99}, 422, "validation"),
        (INCLUSION, {"position": 3, "tree_size": 1}, 422, "validation"),
        (INCLUSION, {"position": 0}, 422, "validation"),
        (INCLUSION, {"position": 2**63 - 1}, 404, "not-found"),
        (INCLUSION, {"position": 2**63}, 422, "validation"),
        (INCLUSION, {"position": 1, "tree_size": 2**63}, 422, "validation"),
        (CONSISTENCY, {"first": 2**63}, 422, "validation"),
        (CONSISTENCY, {"first": 1, "second": 2**64}, 422, "validation"),
        (CONSISTENCY, {"first": 4, "second": 2}, 422, "validation"),
    ],
)
def test_a_proof_the_log_cannot_give_is_a_problem(
    client: TestClient,
    log: CheckpointLog,
    people: People,
    path: str,
    params: dict[str, int],
    status: int,
    kind: str,
) -> None:
    issue(client, people, "API-5")
    log.catch_up()
    response = client.get(path, params=params, headers=auth("auditor"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:epoa:problem:{kind}"


@pytest.mark.parametrize(("role", "status"), [("portal", 403), ("admin", 403), (None, 401)])
def test_only_courts_and_auditors_may_ask_for_proofs(
    client: TestClient, role: str | None, status: int
) -> None:
    headers = auth(role) if role else {}
    for path, params in ((INCLUSION, {"position": 1}), (CONSISTENCY, {"first": 0})):
        assert client.get(path, params=params, headers=headers).status_code == status


def test_a_position_the_log_skipped_is_a_404_saying_no_record_will_come_there(
    client: TestClient, log: CheckpointLog, people: People, settings: Settings
) -> None:
    """On PostgreSQL a write that fails still takes a number from the sequence."""
    issue(client, people, "API-GAP-1")
    events = f"{schema_of(settings.database_url)}.{EVENTS_TABLE}"
    with psycopg.connect(psycopg_conninfo(settings.database_url), autocommit=True) as conn:
        (skipped,) = conn.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'notification_id'))", (events,)
        ).fetchone() or (None,)
    issue(client, people, "API-GAP-2")
    log.catch_up()
    gap = client.get(INCLUSION, params={"position": skipped}, headers=auth("court"))
    assert gap.status_code == 404 and "holds no record at position" in gap.json()["detail"]
    later = client.get(INCLUSION, params={"position": 999}, headers=auth("court"))
    assert later.status_code == 404 and later.json()["detail"].endswith("audit log yet")
    assert client.get(INCLUSION, params={"position": skipped + 1}, headers=auth("court")).is_success


@pytest.mark.parametrize(
    ("edit", "paths"),
    [
        ("UPDATE audit_checkpoints SET root_hash = 'not hex'", (LATEST, INCLUSION, CONSISTENCY)),
        ("UPDATE audit_leaves SET record_hash = 'not hex' WHERE leaf_index = 1", (INCLUSION,)),
        ("DELETE FROM audit_leaves WHERE leaf_index = 1", (INCLUSION, CONSISTENCY)),
        ("UPDATE audit_checkpoints SET tree_size = tree_size + 1", (LATEST,)),
        ("UPDATE audit_checkpoints SET note = replace(note, E'\\n4\\n', E'\\n3\\n')", (LATEST,)),
    ],
)
def test_an_audit_log_row_edited_is_an_integrity_problem_naming_it_not_an_internal_error(
    client: TestClient,
    log: CheckpointLog,
    people: People,
    settings: Settings,
    edit: str,
    paths: tuple[str, ...],
) -> None:
    issue(client, people, "API-EDITED")
    log.catch_up()
    with psycopg.connect(psycopg_conninfo(settings.database_url), autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema_of(settings.database_url)}")
        conn.execute(edit)  # type: ignore[arg-type]
    params = {LATEST: {}, INCLUSION: {"position": 3}, CONSISTENCY: {"first": 1}}
    for path in paths:
        response = client.get(path, params=params[path], headers=auth("auditor"))
        assert response.status_code == 500, response.text
        problem = response.json()
        assert problem["type"] == "urn:epoa:problem:integrity"
        assert problem["detail"].startswith("integrity check failed: the audit log's tables")
