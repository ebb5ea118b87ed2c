"""The read endpoints, the operations endpoints, case events and the OpenAPI document, through
the real app on PostgreSQL with real CMS signatures."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from projections import db, persons
from tests.support.api import auth, body, cloud_event, issue
from tests.support.people import CASE, People

pytestmark = pytest.mark.postgres
PORTAL, COURT, AUDITOR = auth("portal"), auth("court"), auth("auditor")
POAS = "/v1/powers-of-attorney"
RIGHT_CODES = (
    "represent_first_instance",
    "represent_appeal",
    "represent_cassation",
    "sign_and_file_claim",
    "file_complaints_and_applications",
    "refuse_claim",
    "recognise_claim",
    "increase_claims",
    "reduce_claims",
    "change_subject_or_grounds",
    "access_case_materials",
    "file_recusal",
    "file_petitions",
    "review_court_records",
    "appeal_judicial_acts",
    "conclude_settlement",
    "transfer_authority",
    "submit_enforcement_document",
    "receive_awarded_property",
)


def post_case_event(client: TestClient, event: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/case-events", json=event, headers=COURT)
    assert response.status_code in (200, 202), response.text
    return {"status": response.status_code, **response.json()}


def position(client: TestClient) -> int:
    return int(client.get("/readyz").json()["position"])


def import_directory(postgres_url: str, tmp_path: Path, people: People) -> None:
    """What `epoa persons import` does: the principal and the first attorney become known."""
    path = tmp_path / "persons.csv"
    path.write_text(
        "iin,full_name,birth_date\n"
        f"{people.principal.iin},Aigerim Principalova,1990-01-01\n"
        f"{people.attorney.iin},Nurlan Advokatov,1985-02-02\n"
    )
    database = db.connect(postgres_url)
    try:
        assert persons.import_csv(database, path) == 2
    finally:
        database.close()


# -- reference data and operations -----------------------------------------------------------


def test_the_rights_catalogue_lists_all_19_codes_with_three_titles_and_an_article(
    client: TestClient,
) -> None:
    response = client.get("/v1/rights")
    assert response.status_code == 200
    rights = response.json()
    assert [right["code"] for right in rights] == list(RIGHT_CODES)
    for right in rights:
        assert set(right["title"]) == {"en", "ru", "kk"}
        assert all(isinstance(t, str) and t.strip() for t in right["title"].values()), right
        assert re.search(r"\d", right["article"]), right


def test_the_audit_keys_are_ed25519_public_keys_by_key_id_one_of_them_current(
    client: TestClient,
) -> None:
    response = client.get("/v1/audit/keys")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [key["current"] for key in keys].count(True) == 1
    for key in keys:
        assert key["algorithm"] == "Ed25519" and re.fullmatch(r"[0-9a-f]+", key["key_id"])
        assert isinstance(load_pem_public_key(key["public_key_pem"].encode()), Ed25519PublicKey)


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_reports_a_position_that_grows_with_each_command(
    client: TestClient, people: People
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    before = ready.json()["position"]
    issue(client, people)
    assert position(client) > before


def test_metrics_count_requests_commands_by_outcome_and_show_the_projection_lag(
    client: TestClient, people: People
) -> None:
    request = body(people.issue())
    assert client.post(POAS, json=request, headers=PORTAL).status_code == 201
    assert client.post(POAS, json=request, headers=PORTAL).status_code == 200
    poa_id = uuid.UUID(client.post(POAS, json=request, headers=PORTAL).json()["poa_id"])
    for _ in range(2):
        revoke = body(people.act("epoa.revoke", poa_id, people.principal))
        client.post(f"{POAS}/{poa_id}/revocation", json=revoke, headers=PORTAL)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r'^epoa_http_requests_total\{method="POST",route="/v1/powers-of-attorney",status="201"\} 1',
        text,
        re.M,
    )
    assert re.search(r'^epoa_commands_total\{command="issue",outcome="recorded"\} 1', text, re.M)
    assert re.search(r'^epoa_commands_total\{command="issue",outcome="idempotent"\} 2', text, re.M)
    assert re.search(r'^epoa_commands_total\{command="revoke",outcome="recorded"\} 1', text, re.M)
    assert re.search(
        r'^epoa_commands_total\{command="revoke",outcome="poa-not-active"\} 1', text, re.M
    )
    assert re.search(r"^epoa_projection_lag_events \d", text, re.M)


# -- court case events -----------------------------------------------------------------------


def test_a_case_event_is_accepted_with_202_and_the_same_event_again_with_200(
    client: TestClient, people: People
) -> None:
    event = cloud_event(people, JUDGMENT_IN_FORCE, CASE, str(uuid.uuid4()))
    first = post_case_event(client, event)
    assert (first["status"], first["applied"], first["case_number"]) == (202, True, CASE)
    at = position(client)
    again = post_case_event(client, event)
    assert (again["status"], again["applied"]) == (200, False)
    assert position(client) == at


@pytest.mark.parametrize(
    "order",
    [
        (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED),
        (EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE),
    ],
    ids=["judgment first", "execution documents first"],
)
def test_both_case_events_in_either_order_conclude_the_case_and_terminate_its_poas(
    client: TestClient, people: People, order: tuple[str, str]
) -> None:
    case = "7594-26-00-2/4321"
    ids = [issue(client, people, case)["poa_id"] for _ in range(2)]
    first = post_case_event(client, cloud_event(people, order[0], case, str(uuid.uuid4())))
    assert (first["status"], first["concluded"], first["terminated"]) == (202, False, [])
    assert client.get(f"{POAS}/{ids[0]}", headers=COURT).json()["status"] == "active"
    second = post_case_event(client, cloud_event(people, order[1], case, str(uuid.uuid4())))
    assert (second["status"], second["concluded"]) == (202, True)
    assert sorted(second["terminated"]) == sorted(ids)
    for poa_id in ids:
        poa = client.get(f"{POAS}/{poa_id}", headers=AUDITOR).json()
        assert poa["status"] == "terminated"
        assert poa["termination"]["reason"] == "case_concluded"
    assert client.get(f"/v1/cases/{case}", headers=COURT).json()["status"] == "concluded"


def test_a_case_whose_number_contains_a_slash_is_read_with_its_poas(
    client: TestClient, people: People
) -> None:
    assert "/" in CASE
    poa = issue(client, people, CASE)
    response = client.get(f"/v1/cases/{CASE}", headers=PORTAL)
    assert response.status_code == 200, response.text
    case = response.json()
    assert (case["case_number"], case["status"]) == (CASE, "open")
    assert [p["poa_id"] for p in case["powers_of_attorney"]] == [poa["poa_id"]]


# -- the person directory --------------------------------------------------------------------


def test_a_person_is_found_once_the_directory_is_imported(
    client: TestClient, people: People, postgres_url: str, tmp_path: Path
) -> None:
    path = f"/v1/persons/{people.attorney.iin}"
    assert client.get(path, headers=PORTAL).status_code == 404
    import_directory(postgres_url, tmp_path, people)
    response = client.get(path, headers=COURT)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "iin": people.attorney.iin,
        "full_name": "Nurlan Advokatov",
        "birth_date": "1985-02-02",
    }


def test_issuing_fills_the_names_of_principal_and_attorney_from_the_directory(
    client: TestClient, people: People, postgres_url: str, tmp_path: Path
) -> None:
    import_directory(postgres_url, tmp_path, people)
    poa = issue(client, people)
    assert poa["principal"] == {"iin": people.principal.iin, "name": "Aigerim Principalova"}
    assert poa["attorneys"][0]["name"] == "Nurlan Advokatov"
    again = client.get(f"{POAS}/{poa['poa_id']}", headers=COURT).json()
    assert again["attorneys"][0]["name"] == "Nurlan Advokatov"


# -- the OpenAPI document --------------------------------------------------------------------


def test_the_openapi_document_has_an_example_for_every_post_body(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    posts = {
        path: operations["post"]
        for path, operations in response.json()["paths"].items()
        if "post" in operations
    }
    assert len(posts) == 5
    for path, operation in posts.items():
        contents = operation["requestBody"]["content"].values()
        examples = [c.get("examples") or c.get("example") for c in contents]
        assert examples and all(examples), path


def test_the_interactive_docs_load_every_file_from_this_service(client: TestClient) -> None:
    """A court's closed network reaches no CDN: each page's scripts, styles and icon are
    this service's own, and the page names no other host."""
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
        assert "//" not in re.sub(r"<!--.*?-->", "", response.text, flags=re.S), page
        files = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert len(files) >= 2, files
        for path in files:
            assert path.startswith("/docs/assets/"), path
            loaded = client.get(path)
            assert loaded.status_code == 200, path
            assert loaded.headers["content-type"].startswith(kinds[Path(path).suffix]), path
    metrics = client.get("/metrics").text
    assert 'method="GET",route="/docs/assets/{path}",status="200"' in metrics
    assert 'route="unmatched"' not in metrics


def test_a_listed_poa_reads_as_its_own_state_does(client: TestClient, people: People) -> None:
    case = "LIST-SAME-1"
    kept = issue(client, people, case)
    gone = issue(client, people, case)
    revocation = people.act(
        "epoa.revoke", uuid.UUID(gone["poa_id"]), people.principal, reason="no longer needed"
    )
    revoked = client.post(
        f"{POAS}/{gone['poa_id']}/revocation", json=body(revocation), headers=PORTAL
    )
    assert revoked.status_code == 200, revoked.text
    page = client.get(POAS, params={"case_number": case}, headers=COURT).json()
    assert {item["poa_id"] for item in page["items"]} == {kept["poa_id"], gone["poa_id"]}
    for item in page["items"]:
        state = client.get(f"{POAS}/{item['poa_id']}", headers=COURT).json()
        state.pop("receipt")
        if state["termination"] is not None:
            assert state["termination"].pop("detail") == "no longer needed"
        listed = dict(item)
        assert listed.pop("expires_at") is None
        assert listed == state


def test_the_attorneys_of_an_ended_poa_show_their_authority_ending_with_it(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people, "UNTIL-1")
    revocation = people.act("epoa.revoke", uuid.UUID(poa["poa_id"]), people.principal)
    revoked = client.post(
        f"{POAS}/{poa['poa_id']}/revocation", json=body(revocation), headers=PORTAL
    ).json()
    ended_at = revoked["termination"]["at"]
    assert [(a["status"], a["until"]) for a in revoked["attorneys"]] == [("active", ended_at)]
    listed = client.get(POAS, params={"case_number": "UNTIL-1"}, headers=COURT).json()
    assert listed["items"][0]["attorneys"] == revoked["attorneys"]
    before = client.get(
        f"{POAS}/{poa['poa_id']}", params={"at": poa["issued_at"]}, headers=COURT
    ).json()
    assert before["status"] == "active"
    assert before["attorneys"][0]["until"] is None
