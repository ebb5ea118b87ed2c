"""Every problem type of the contract over HTTP: status, media type, `type`, a useful `detail`,
and, for commands, a store that the refused request left exactly as it was."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.canonical import canonical_bytes
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.iin import is_valid_iin_bin
from tests.support.api import api_settings, auth, body, cloud_event, running, signed
from tests.support.people import CASE, People
from tests.support.pki import b64, common_name, make_cert, person, sign_cms

pytestmark = pytest.mark.postgres
PORTAL, COURT = auth("portal"), auth("court")
POAS = "/v1/powers-of-attorney"
PROBLEM_BASE = "urn:epoa:problem:"


@pytest.fixture
def client(postgres_url: str, tmp_path: Path, people: People) -> Iterator[TestClient]:
    with running(api_settings(postgres_url, tmp_path, people)) as client:
        yield client


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


def issue(client: TestClient, people: People, **fields: Any) -> dict[str, Any]:
    response = client.post(POAS, json=body(people.issue(**fields)), headers=PORTAL)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


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


# -- validation ------------------------------------------------------------------------------


def test_a_bad_iin_in_the_document_is_a_validation_problem_and_stores_nothing(
    client: TestClient, people: People
) -> None:
    document = people.issue_document(attorneys=[{"iin": invalid_iin()}])
    with unchanged(client):
        response = client.post(
            POAS, json=signed(people, document, people.principal), headers=PORTAL
        )
    assert_problem(response, 422, "validation", "iin", invalid_iin())


def test_an_unknown_right_is_a_validation_problem_and_stores_nothing(
    client: TestClient, people: People
) -> None:
    document = people.issue_document(rights=["represent_first_instance", "fly_the_plane"])
    with unchanged(client):
        response = client.post(
            POAS, json=signed(people, document, people.principal), headers=PORTAL
        )
    assert_problem(response, 422, "validation", "fly_the_plane")


def test_a_bad_case_number_in_an_authority_query_is_a_validation_problem(
    client: TestClient, people: People
) -> None:
    params = {
        "case_number": "no spaces allowed!",
        "attorney_iin": people.attorney.iin,
        "right": "represent_first_instance",
    }
    response = client.get("/v1/authority", params=params, headers=COURT)
    assert_problem(response, 422, "validation", "case_number")


def test_a_poa_id_that_is_not_a_uuid_is_a_validation_problem(
    client: TestClient, people: People
) -> None:
    assert_problem(client.get(f"{POAS}/not-a-uuid", headers=COURT), 422, "validation", "poa_id")
    revoke = people.act("epoa.revoke", uuid.uuid4(), people.principal)
    with unchanged(client):
        response = client.post(f"{POAS}/not-a-uuid/revocation", json=body(revoke), headers=PORTAL)
    assert_problem(response, 422, "validation", "poa_id")


def test_a_body_without_its_signature_member_is_a_validation_problem(
    client: TestClient, people: People
) -> None:
    with unchanged(client):
        response = client.post(POAS, json={"document": people.issue_document()}, headers=PORTAL)
    assert_problem(response, 422, "validation", "signature")


def test_a_query_parameter_out_of_range_is_a_validation_problem(client: TestClient) -> None:
    response = client.get(POAS, params={"limit": 0}, headers=COURT)
    assert_problem(response, 422, "validation", "limit")
    assert response.json()["errors"][0]["loc"] == ["query", "limit"]


def test_a_time_without_a_zone_is_a_validation_problem_not_an_internal_error(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people)
    response = client.get(
        f"{POAS}/{poa['poa_id']}", params={"at": "2026-01-01T00:00:00"}, headers=COURT
    )
    assert_problem(response, 422, "validation", "zone")


def test_a_bare_number_as_a_moment_is_a_validation_problem_not_a_time_in_1970(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people)
    response = client.get(f"{POAS}/{poa['poa_id']}", params={"at": "20261125"}, headers=COURT)
    assert_problem(response, 422, "validation", "RFC 3339")


def test_a_bare_number_as_the_moment_of_an_authority_check_is_refused_not_read_as_1970(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people)
    query = {
        "case_number": poa["case_number"],
        "attorney_iin": people.attorney.iin,
        "right": poa["rights"][0],
    }
    for moment in ("20261125", "1700000000", "2026-11-25"):
        response = client.get("/v1/authority", params={**query, "at": moment}, headers=COURT)
        assert_problem(response, 422, "validation", "RFC 3339")
    later = client.get(
        "/v1/authority", params={**query, "at": "2099-01-01T00:00:00+05:00"}, headers=COURT
    )
    assert later.status_code == 200, later.text


def test_a_bad_iin_as_a_list_filter_is_a_validation_problem(client: TestClient) -> None:
    response = client.get(POAS, params={"principal_iin": invalid_iin()}, headers=COURT)
    assert_problem(response, 422, "validation", "principal_iin")


def test_a_malformed_json_body_is_a_400_validation_problem(client: TestClient) -> None:
    with unchanged(client):
        response = post_raw(client, b'{"document": {"type": "epoa.issue",')
    assert_problem(response, 400, "validation", "malformed JSON")


def test_a_case_event_body_that_is_not_one_json_object_is_a_400_as_on_every_command(
    client: TestClient,
) -> None:
    headers = {**COURT, "Content-Type": "application/cloudevents+json"}
    for raw in (b'{"specversion": "1.0",', b"[]", b'"event"', b"", b'{"id": "1", "id": "2"}'):
        with unchanged(client):
            response = client.post("/v1/case-events", content=raw, headers=headers)
        assert_problem(response, 400, "validation")
    with unchanged(client):
        response = client.post("/v1/case-events", json={"specversion": "1.0"}, headers=COURT)
    assert_problem(response, 422, "validation", "missing")


def test_duplicate_member_names_in_the_body_are_a_400_validation_problem(
    client: TestClient, people: People
) -> None:
    first = signed(people, people.issue_document(), people.principal)
    second = signed(people, people.issue_document(), people.principal)
    one, other = json.dumps(first["document"]), json.dumps(second["document"])
    raw = f'{{"document": {one}, "document": {other}, "signature": "{first["signature"]}"}}'
    with unchanged(client):
        response = post_raw(client, raw.encode())
    assert_problem(response, 400, "validation", "duplicate", "document")


def test_duplicate_member_names_inside_the_document_are_a_400_validation_problem(
    client: TestClient, people: People
) -> None:
    request = signed(people, people.issue_document(), people.principal)
    inner = json.dumps(request["document"])
    assert inner.endswith("}")
    twice = inner[:-1] + ', "rights": ["refuse_claim"]}'
    raw = f'{{"document": {twice}, "signature": "{request["signature"]}"}}'.encode()
    with unchanged(client):
        response = post_raw(client, raw)
    assert_problem(response, 400, "validation", "duplicate", "rights")


def test_a_revocation_of_one_poa_posted_to_another_is_refused_and_changes_nothing(
    client: TestClient, people: People
) -> None:
    a, b = poa_id_of(issue(client, people)), poa_id_of(issue(client, people))
    revoke_a = people.act("epoa.revoke", a, people.principal)
    with unchanged(client):
        response = client.post(f"{POAS}/{b}/revocation", json=body(revoke_a), headers=PORTAL)
    assert_problem(response, 422, "validation", "poa_id", str(a))
    for poa_id in (a, b):
        assert client.get(f"{POAS}/{poa_id}", headers=COURT).json()["status"] == "active"


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


# -- signer-mismatch -------------------------------------------------------------------------


def test_an_issue_signed_by_the_attorney_is_a_signer_mismatch(
    client: TestClient, people: People
) -> None:
    request = signed(people, people.issue_document(), people.attorney)
    with unchanged(client):
        response = client.post(POAS, json=request, headers=PORTAL)
    assert_problem(response, 403, "signer-mismatch", people.principal.iin)


def test_a_case_event_signed_by_a_person_is_a_signer_mismatch(
    client: TestClient, people: People
) -> None:
    event = cloud_event(people, JUDGMENT_IN_FORCE, CASE, str(uuid.uuid4()), people.principal)
    with unchanged(client):
        response = client.post("/v1/case-events", json=event, headers=COURT)
    assert_problem(response, 403, "signer-mismatch", "court")


# -- not-found -------------------------------------------------------------------------------


def test_an_unknown_poa_is_not_found_for_reads_and_commands(
    client: TestClient, people: People
) -> None:
    unknown = uuid.uuid4()
    assert_problem(client.get(f"{POAS}/{unknown}", headers=COURT), 404, "not-found", str(unknown))
    assert_problem(
        client.get(f"{POAS}/{unknown}/events", headers=COURT), 404, "not-found", str(unknown)
    )
    revoke = people.act("epoa.revoke", unknown, people.principal)
    with unchanged(client):
        response = client.post(f"{POAS}/{unknown}/revocation", json=body(revoke), headers=PORTAL)
    assert_problem(response, 404, "not-found", str(unknown))


def test_an_unknown_case_is_not_found(client: TestClient) -> None:
    response = client.get("/v1/cases/7594-26-00-2/9999", headers=COURT)
    assert_problem(response, 404, "not-found", "7594-26-00-2/9999")


def test_an_unknown_person_is_not_found(client: TestClient, people: People) -> None:
    response = client.get(f"/v1/persons/{people.third_attorney.iin}", headers=PORTAL)
    assert_problem(response, 404, "not-found", people.third_attorney.iin)


def test_an_unknown_route_is_not_found(client: TestClient) -> None:
    assert_problem(
        client.get("/v1/nothing-here", headers=COURT), 404, "not-found", "/v1/nothing-here"
    )


def test_a_method_the_path_lacks_is_405_naming_every_method_it_has(client: TestClient) -> None:
    response = client.delete(POAS, headers=PORTAL)
    assert_problem(response, 405, "validation", "method")
    assert response.headers["allow"] == "GET, POST"


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
