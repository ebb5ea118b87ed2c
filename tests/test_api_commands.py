"""The HTTP commands, through the real app on PostgreSQL with real CMS signatures."""

from __future__ import annotations

import base64
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient

from domain.receipt import verify_receipt
from domain.seal import public_keys_of
from epoa.wiring import build_registry
from projections.runner import ProjectionRunner
from tests.support.api import api_settings, auth, body, issue, running
from tests.support.people import CASE, People

pytestmark = pytest.mark.postgres
PORTAL, COURT = auth("portal"), auth("court")


def authorised(client: TestClient, iin: str, case: str = CASE) -> bool:
    response = client.get(
        "/v1/authority",
        params={"case_number": case, "attorney_iin": iin, "right": "represent_first_instance"},
        headers=COURT,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["authorized"])


def test_issuing_answers_201_with_the_poa_its_location_and_a_verifiable_receipt(
    client: TestClient, people: People
) -> None:
    response = client.post("/v1/powers-of-attorney", json=body(people.issue()), headers=PORTAL)
    assert response.status_code == 201
    poa = response.json()
    assert response.headers["location"] == f"/v1/powers-of-attorney/{poa['poa_id']}"
    assert poa["status"] == "active" and poa["case_number"] == CASE
    assert poa["principal"]["iin"] == people.principal.iin
    assert [a["iin"] for a in poa["attorneys"]] == [people.attorney.iin]
    keys = client.get("/v1/audit/keys").json()["keys"]
    public = [load_pem_public_key(k["public_key_pem"].encode()) for k in keys]
    assert verify_receipt(poa["receipt"], public_keys_of(*public))  # type: ignore[arg-type]
    assert len(poa["receipt"]["records"]) == 4


def test_a_receipt_verifies_as_the_readme_says_against_the_keys_and_the_events(
    client: TestClient, people: People
) -> None:
    """By the published recipe alone: RFC 8785 bytes without `signature`, the key of
    `key_id` from /v1/audit/keys, and record hashes the POA's sealed events show."""
    poa = client.post("/v1/powers-of-attorney", json=body(people.issue()), headers=PORTAL).json()
    receipt = poa["receipt"]
    keys = {k["key_id"]: k["public_key_pem"] for k in client.get("/v1/audit/keys").json()["keys"]}
    key = load_pem_public_key(keys[receipt["key_id"]].encode())
    assert isinstance(key, Ed25519PublicKey)
    unsigned = {name: value for name, value in receipt.items() if name != "signature"}
    key.verify(base64.b64decode(receipt["signature"]), rfc8785.dumps(unsigned))
    events = client.get(f"/v1/powers-of-attorney/{poa['poa_id']}/events", headers=COURT).json()
    receipted = {(r["originator_id"], r["version"]): r["record_hash"] for r in receipt["records"]}
    for event in events:
        assert receipted[(poa["poa_id"], event["version"])] == event["seal"]["record_hash"]
    forged = {**unsigned, "issued_at": "2020-01-01T00:00:00Z"}
    with pytest.raises(InvalidSignature):
        key.verify(base64.b64decode(receipt["signature"]), rfc8785.dumps(forged))


def test_the_same_document_again_answers_200_with_the_same_poa(
    client: TestClient, people: People
) -> None:
    request = body(people.issue())
    first = client.post("/v1/powers-of-attorney", json=request, headers=PORTAL)
    again = client.post("/v1/powers-of-attorney", json=request, headers=PORTAL)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["poa_id"] == first.json()["poa_id"]


def test_a_command_is_visible_to_the_next_read_and_authority_check(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people)
    assert authorised(client, people.attorney.iin)
    assert (
        client.get(f"/v1/powers-of-attorney/{poa['poa_id']}", headers=COURT).json()["status"]
        == "active"
    )
    revoke = people.act("epoa.revoke", uuid.UUID(str(poa["poa_id"])), people.principal)
    response = client.post(
        f"/v1/powers-of-attorney/{poa['poa_id']}/revocation", json=body(revoke), headers=PORTAL
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert not authorised(client, people.attorney.iin)


def test_with_the_read_models_applied_apart_each_answer_is_already_readable(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    """`epoa serve --no-projections` beside `epoa project`: commands in flight at once wait
    for the other runner together, and each 201 still means the reads show the POA."""
    settings = api_settings(postgres_url, tmp_path, people)
    stop = threading.Event()
    with running(settings, run_projections=False) as client:
        registry = build_registry(settings)
        runner = ProjectionRunner(registry, postgres_url)
        apart = threading.Thread(target=runner.run_forever, args=(stop, 0.2), daemon=True)
        apart.start()
        try:
            cases = [f"APART-{n}" for n in range(12)]

            def issue_and_read(case: str) -> tuple[bool, bool]:
                poa = issue(client, people, case_number=case)
                listed = client.get(
                    "/v1/powers-of-attorney", params={"case_number": case}, headers=COURT
                ).json()["items"]
                shown = [item["poa_id"] for item in listed] == [poa["poa_id"]]
                return shown, authorised(client, people.attorney.iin, case)

            with ThreadPoolExecutor(6) as pool:
                seen = list(pool.map(issue_and_read, cases))
        finally:
            stop.set()
            apart.join(timeout=10)
            runner.close()
            registry.close()
    assert seen == [(True, True)] * len(cases)


def test_adding_an_attorney_and_renouncing_through_http(client: TestClient, people: People) -> None:
    poa = issue(client, people)
    poa_id = uuid.UUID(str(poa["poa_id"]))
    add = people.act(
        "epoa.add-attorney", poa_id, people.principal, attorney={"iin": people.second_attorney.iin}
    )
    added = client.post(
        f"/v1/powers-of-attorney/{poa_id}/attorneys", json=body(add), headers=PORTAL
    )
    assert added.status_code == 200
    assert len(added.json()["attorneys"]) == 2
    assert authorised(client, people.second_attorney.iin)
    renounce = people.act(
        "epoa.renounce", poa_id, people.second_attorney, attorney_iin=people.second_attorney.iin
    )
    renounced = client.post(
        f"/v1/powers-of-attorney/{poa_id}/renunciation", json=body(renounce), headers=PORTAL
    )
    assert renounced.status_code == 200
    assert renounced.json()["attorneys"][1]["status"] == "renounced"
    assert not authorised(client, people.second_attorney.iin)
    assert authorised(client, people.attorney.iin)


def test_the_state_and_the_authority_at_a_past_moment(client: TestClient, people: People) -> None:
    poa = issue(client, people)
    poa_id = uuid.UUID(str(poa["poa_id"]))
    moment = client.get(f"/v1/powers-of-attorney/{poa_id}", headers=COURT).json()["issued_at"]
    revoke = people.act("epoa.revoke", poa_id, people.principal)
    client.post(f"/v1/powers-of-attorney/{poa_id}/revocation", json=body(revoke), headers=PORTAL)
    past = client.get(f"/v1/powers-of-attorney/{poa_id}", params={"at": moment}, headers=COURT)
    assert past.json()["status"] == "active"
    then = client.get(
        "/v1/authority",
        params={
            "case_number": CASE,
            "attorney_iin": people.attorney.iin,
            "right": "represent_first_instance",
            "at": moment,
        },
        headers=COURT,
    ).json()
    assert then["authorized"] and then["powers_of_attorney"] == [str(poa_id)]


def test_listing_pages_through_every_poa_once(client: TestClient, people: People) -> None:
    ids = {issue(client, people, case_number="LIST-1")["poa_id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"case_number": "LIST-1", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/powers-of-attorney", params=params, headers=COURT).json()
        seen += [item["poa_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


def test_the_events_of_a_poa_show_payload_evidence_and_seal(
    client: TestClient, people: People
) -> None:
    poa = issue(client, people)
    events = client.get(f"/v1/powers-of-attorney/{poa['poa_id']}/events", headers=COURT).json()
    assert [e["type"] for e in events] == ["PowerOfAttorney.Issued"]
    assert events[0]["position"] == poa["receipt"]["records"][0]["position"]
    assert events[0]["evidence"]["signer_id"] == people.principal.iin
    assert len(events[0]["seal"]["record_hash"]) == 64
    assert events[0]["seal"]["predecessor"] == "00" * 32
