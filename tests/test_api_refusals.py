"""Refusals of a well-formed request over HTTP: signatures, certificates, signers, the POA's
state, duplicates, keys and roles; each a problem+json with a useful `detail`, and a store
left exactly as it was."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from domain.canonical import canonical_bytes
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.seal import SealKey
from epoa.audit_proofs import pem_of
from tests.support.api import api_settings, body, cloud_event, issue, running, signed
from tests.support.court_events import in_binary_mode, tls_server_of_the_court
from tests.support.people import CASE, People
from tests.support.pki import b64, common_name, complete_id, make_cert, person, sign_cms
from tests.support.problems import (
    COURT,
    POAS,
    PORTAL,
    assert_problem,
    poa_id_of,
    unchanged,
)
from tests.test_audit_odd_rows import edit

pytestmark = pytest.mark.postgres


# -- invalid-signature -----------------------------------------------------------------------


def test_a_signature_with_one_bit_flipped_is_an_invalid_signature(
    client: TestClient, people: People
) -> None:
    request = signed(people, people.issue_document(), people.principal)
    der = bytearray(base64.b64decode(request["signature"]))
    der[-1] ^= 0x01
    request["signature"] = b64(bytes(der))
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 422, "invalid-signature", "signature")


def test_a_signature_that_is_not_base64_is_an_invalid_signature(
    client: TestClient, people: People
) -> None:
    request = {"document": people.issue_document(), "signature": "%%% not base64 %%%"}
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 422, "invalid-signature", "base64")


def test_a_document_changed_after_signing_is_an_invalid_signature(
    client: TestClient, people: People
) -> None:
    request = signed(people, people.issue_document(), people.principal)
    request["document"]["rights"] = ["represent_first_instance", "conclude_settlement"]
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 422, "invalid-signature", "document")


# -- untrusted-certificate -------------------------------------------------------------------


def test_a_signer_certified_by_a_rogue_ca_is_untrusted(client: TestClient, people: People) -> None:
    rogue_root = make_cert(common_name("Test Root CA"), ca=True, key_label="rogue-root")
    impostor = make_cert(
        person(people.principal.iin), issuer=rogue_root, key_label="rogue-principal"
    )
    document = people.issue_document()
    cms = sign_cms(canonical_bytes(document), impostor, [rogue_root.cert])
    with unchanged(client):
        response = client.post(
            POAS, json={"document": document, "signature": b64(cms)}, headers=PORTAL
        )
    assert_problem(response, 422, "untrusted-certificate", "trusted CA")


def test_an_expired_certificate_is_untrusted(client: TestClient, people: People) -> None:
    now = datetime.now(UTC)
    expired = people.ca.signer(
        person(people.principal.iin),
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
        key_label="expired-principal",
    )
    document = people.issue_document()
    cms = sign_cms(canonical_bytes(document), expired, people.ca.chain)
    with unchanged(client):
        response = client.post(
            POAS, json={"document": document, "signature": b64(cms)}, headers=PORTAL
        )
    assert_problem(response, 422, "untrusted-certificate", "expired")


def test_a_case_event_signed_with_the_court_s_tls_server_key_is_untrusted(
    client: TestClient, people: People
) -> None:
    server = tls_server_of_the_court(people)
    event = cloud_event(people, JUDGMENT_IN_FORCE, CASE, str(uuid.uuid4()), server)
    with unchanged(client):
        response = client.post("/v1/case-events", json=event, headers=COURT)
    assert_problem(response, 422, "untrusted-certificate", "serverAuth only")


# -- signer-mismatch -------------------------------------------------------------------------


def test_an_issue_signed_by_the_attorney_is_a_signer_mismatch(
    client: TestClient, people: People
) -> None:
    request = signed(people, people.issue_document(), people.attorney)
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 403, "signer-mismatch", people.principal.iin)


def test_an_issue_by_an_organisation_as_principal_says_a_principal_is_a_person(
    client: TestClient, people: People
) -> None:
    document = people.issue_document(principal={"iin": people.court.iin})
    request = signed(people, document, people.court)
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 403, "signer-mismatch", "must be a person", people.court.iin)


def test_an_accepted_document_signed_again_by_someone_else_is_a_signer_mismatch(
    client: TestClient, people: People
) -> None:
    """Only the acting person's signature is ever answered, a repeat's included."""
    poa_id = issue(client, people)["poa_id"]
    add = {"type": "epoa.add-attorney", "attorney": {"iin": people.third_attorney.iin}}
    renounce = {"type": "epoa.renounce", "attorney_iin": people.attorney.iin}
    revoke = {"type": "epoa.revoke"}
    for fields, path, actor, other in (
        (add, "attorneys", people.principal, people.attorney),
        (renounce, "renunciation", people.attorney, people.principal),
        (revoke, "revocation", people.principal, people.second_attorney),
    ):
        document = {
            **fields,
            "document_id": str(uuid.uuid4()),
            "signed_at": datetime.now(UTC).isoformat(),
            "poa_id": poa_id,
        }
        url = f"{POAS}/{poa_id}/{path}"
        assert client.post(url, json=signed(people, document, actor), headers=PORTAL).is_success
        assert client.post(url, json=signed(people, document, actor), headers=PORTAL).is_success
        with unchanged(client):
            again = client.post(url, json=signed(people, document, other), headers=PORTAL)
        assert_problem(again, 403, "signer-mismatch", actor.iin)


def test_a_case_event_in_binary_content_mode_is_refused_saying_so(
    client: TestClient, people: People
) -> None:
    """The HTTP binding's binary mode (`ce-*` headers, `data` as the body) is named as such,
    as on Kafka, not only by the attributes the body lacks."""
    value, kafka_headers = in_binary_mode(CASE)
    headers = {key.replace("_", "-"): raw.decode() for key, raw in kafka_headers}
    with unchanged(client):
        response = client.post("/v1/case-events", content=value, headers={**COURT, **headers})
    assert_problem(response, 422, "validation", "binary content mode", "structured", "missing")


def test_a_case_event_signed_by_a_person_is_a_signer_mismatch(
    client: TestClient, people: People
) -> None:
    event = cloud_event(people, JUDGMENT_IN_FORCE, CASE, str(uuid.uuid4()), people.principal)
    with unchanged(client):
        response = client.post("/v1/case-events", json=event, headers=COURT)
    assert_problem(response, 403, "signer-mismatch", "court")


def test_a_case_event_signed_by_an_organisation_not_named_a_court_is_a_signer_mismatch(
    database_url: str, tmp_path: Path, people: People
) -> None:
    """With `EPOA_COURT_BINS`, a company's certificate from the national CA concludes nothing."""
    settings = api_settings(database_url, tmp_path, people)
    elsewhere = settings.model_copy(update={"court_bins": [complete_id("98014000001")]})
    with running(elsewhere, run_checkpoints=False) as client:
        event = cloud_event(people, JUDGMENT_IN_FORCE, CASE, str(uuid.uuid4()))
        with unchanged(client):
            response = client.post("/v1/case-events", json=event, headers=COURT)
        assert_problem(response, 403, "signer-mismatch", people.court.iin, "EPOA_COURT_BINS")
    named = settings.model_copy(update={"court_bins": [people.court.iin]})
    with running(named, run_checkpoints=False) as client:
        response = client.post("/v1/case-events", json=event, headers=COURT)
        assert response.status_code == 202, response.text


# -- conflict, case-concluded, poa-not-active, duplicate-document ----------------------------


def test_adding_an_attorney_already_named_is_a_conflict(client: TestClient, people: People) -> None:
    poa_id = poa_id_of(issue(client, people))
    add = people.act(
        "epoa.add-attorney", poa_id, people.principal, attorney={"iin": people.attorney.iin}
    )
    with unchanged(client):
        response = client.post(f"{POAS}/{poa_id}/attorneys", json=body(add), headers=PORTAL)
    assert_problem(response, 409, "conflict", people.attorney.iin)


def test_issuing_into_a_concluded_case_is_refused_as_case_concluded(
    client: TestClient, people: People
) -> None:
    case = "CONCLUDED-1"
    for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED):
        event = cloud_event(people, kind, case, str(uuid.uuid4()))
        assert client.post("/v1/case-events", json=event, headers=COURT).status_code == 202
    with unchanged(client):
        response = client.post(POAS, json=body(people.issue(case)), headers=PORTAL)
    assert_problem(response, 409, "case-concluded", case)
    concluded_at = client.get(f"/v1/cases/{case}", headers=COURT).json()["concluded_at"]
    assert (
        concluded_at.endswith("Z") and f"concluded at {concluded_at}:" in response.json()["detail"]
    )


def test_a_case_event_id_reused_with_other_content_is_a_duplicate_document(
    client: TestClient, people: People
) -> None:
    event_id = str(uuid.uuid4())
    first = cloud_event(people, JUDGMENT_IN_FORCE, "REUSED-1", event_id)
    assert client.post("/v1/case-events", json=first, headers=COURT).status_code == 202
    reused = cloud_event(people, EXECUTION_DOCUMENTS_ISSUED, "REUSED-1", event_id)
    with unchanged(client):
        response = client.post("/v1/case-events", json=reused, headers=COURT)
        again = client.post("/v1/case-events", json=first, headers=COURT)
    assert_problem(response, 409, "duplicate-document", event_id)
    assert "case event" in response.json()["title"]  # which has no document_id
    assert again.status_code == 200 and again.json()["applied"] is False
    elsewhere = cloud_event(people, JUDGMENT_IN_FORCE, "REUSED-2", event_id)
    with unchanged(client):
        response = client.post("/v1/case-events", json=elsewhere, headers=COURT)
    assert_problem(response, 409, "duplicate-document", event_id)


def test_revoking_twice_is_refused_as_poa_not_active(client: TestClient, people: People) -> None:
    poa_id = poa_id_of(issue(client, people))
    first = people.act("epoa.revoke", poa_id, people.principal)
    assert client.post(f"{POAS}/{poa_id}/revocation", json=body(first), headers=PORTAL).is_success
    second = people.act("epoa.revoke", poa_id, people.principal)
    with unchanged(client):
        response = client.post(f"{POAS}/{poa_id}/revocation", json=body(second), headers=PORTAL)
    assert_problem(response, 409, "poa-not-active", "revoked")


def test_a_document_id_again_with_other_content_is_a_duplicate_document(
    client: TestClient, people: People
) -> None:
    original = people.issue_document()
    assert client.post(
        POAS, json=signed(people, original, people.principal), headers=PORTAL
    ).is_success
    other = {**original, "rights": ["represent_appeal"]}
    with unchanged(client):
        response = client.post(POAS, json=signed(people, other, people.principal), headers=PORTAL)
    assert_problem(response, 409, "duplicate-document", original["document_id"])


# -- unauthenticated, forbidden --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic dGVzdC1rZXktcG9ydGFs"}],
    ids=["no key", "wrong key", "not a bearer"],
)
def test_a_request_without_a_valid_key_is_unauthenticated_with_a_challenge(
    client: TestClient, people: People, headers: dict[str, str]
) -> None:
    with unchanged(client):
        response = client.post(POAS, json=body(people.issue()), headers=headers)
    assert_problem(response, 401, "unauthenticated", "Bearer")
    assert response.headers["www-authenticate"].startswith("Bearer")
    read = client.get(f"{POAS}/{uuid.uuid4()}", headers=headers)
    assert_problem(read, 401, "unauthenticated")
    assert "www-authenticate" in read.headers


def test_a_court_key_may_not_issue_a_poa(client: TestClient, people: People) -> None:
    with unchanged(client):
        response = client.post(POAS, json=body(people.issue()), headers=COURT)
    assert_problem(response, 403, "forbidden", "court")
    assert "www-authenticate" not in response.headers


def test_a_record_sealed_by_a_key_the_service_was_not_given_is_never_served(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    """After a seal key rotation, a replica started without the retired key answers an
    `integrity` problem for the older POAs (and changes nothing), never their state."""
    settings = api_settings(postgres_url, tmp_path, people)
    with running(settings) as client:
        poa_id = issue(client, people)["poa_id"]
    old = SealKey.from_pem((settings.var_dir / "seal-key.pem").read_bytes())
    retired = tmp_path / "retired.pem"
    retired.write_text(pem_of(old.public_key))
    new = tmp_path / "seal-key.new.pem"
    new.write_bytes(SealKey.generate().to_pem())
    rotated = settings.model_copy(update={"seal_key": new})
    with running(rotated) as client:
        shown = client.get(f"/v1/powers-of-attorney/{poa_id}", headers=PORTAL)
        assert_problem(shown, 500, "integrity", "unknown key")
        revoke = people.act("epoa.revoke", uuid.UUID(poa_id), people.principal)
        with unchanged(client):
            refused = client.post(
                f"/v1/powers-of-attorney/{poa_id}/revocation", json=body(revoke), headers=PORTAL
            )
        assert_problem(refused, 500, "integrity", "unknown key")
    with running(rotated.model_copy(update={"retired_seal_keys": [retired]})) as client:
        shown = client.get(f"/v1/powers-of-attorney/{poa_id}", headers=PORTAL)
        assert shown.status_code == 200 and shown.json()["status"] == "active"


@pytest.mark.parametrize("assignment", ["state = NULL", "topic = NULL"])
def test_a_record_edited_to_hold_no_value_is_an_integrity_problem_on_every_route(
    database_url: str, tmp_path: Path, people: People, assignment: str
) -> None:
    """A row a database administrator set to NULL is damage to the store: reads and
    commands that meet it answer `integrity` (what the operator's alerts look for), never
    `internal`, and the command records nothing."""
    settings = api_settings(database_url, tmp_path, people)
    with running(settings) as client:
        poa_id = issue(client, people)["poa_id"]
        [issued] = client.get(f"{POAS}/{poa_id}/events", headers=COURT).json()
    edit(database_url, assignment, issued["position"])
    revoke = people.act("epoa.revoke", uuid.UUID(poa_id), people.principal)
    with running(settings) as client:
        for path in (f"{POAS}/{poa_id}", f"{POAS}/{poa_id}?at=2030-01-01T00:00:00Z"):
            assert_problem(client.get(path, headers=PORTAL), 500, "integrity", "record")
        assert_problem(client.get(f"{POAS}/{poa_id}/events", headers=COURT), 500, "integrity")
        with unchanged(client):
            refused = client.post(f"{POAS}/{poa_id}/revocation", json=body(revoke), headers=PORTAL)
        assert_problem(refused, 500, "integrity", "record")


def test_acting_on_an_ended_poa_is_told_how_and_when_it_ended(
    client: TestClient, people: People
) -> None:
    """`terminated` alone leaves the citizen asking why: every attorney renounced, or the
    case concluded."""
    poa_id = poa_id_of(issue(client, people))
    renounced = people.act(
        "epoa.renounce", poa_id, people.attorney, attorney_iin=people.attorney.iin
    )
    ended = client.post(f"{POAS}/{poa_id}/renunciation", json=body(renounced), headers=PORTAL)
    assert ended.status_code == 200, ended.text
    at = ended.json()["termination"]["at"]
    added = people.act(
        "epoa.add-attorney", poa_id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    with unchanged(client):
        response = client.post(f"{POAS}/{poa_id}/attorneys", json=body(added), headers=PORTAL)
    assert_problem(response, 409, "poa-not-active", "terminated", "renounced_by_all_attorneys", at)
