"""Problems of the request itself over HTTP: `validation` and `not-found`, each with a useful
`detail` and, for commands, a store left exactly as it was (the refusals of a valid request
are in `test_api_refusals.py`)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.commands import MAX_BODY_BYTES
from domain.court_case import JUDGMENT_IN_FORCE
from tests.support.api import body, cloud_event, issue, signed
from tests.support.court_events import data_nested_deep
from tests.support.people import People
from tests.support.problems import (
    COURT,
    POAS,
    PORTAL,
    assert_problem,
    invalid_iin,
    poa_id_of,
    post_raw,
    unchanged,
)

pytestmark = pytest.mark.postgres


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


def test_a_misspelt_member_of_a_person_is_named_in_the_problem(
    client: TestClient, people: People
) -> None:
    """The portal shows the citizen which member is wrong, not only that one is."""
    stated = {"iin": people.attorney.iin, "nmae": "Berik Sadykov"}
    document = people.issue_document(attorneys=[stated])
    with unchanged(client):
        response = client.post(
            POAS, json=signed(people, document, people.principal), headers=PORTAL
        )
    assert_problem(response, 422, "validation", "attorneys[0]", "'nmae'")


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


def test_a_misspelt_or_repeated_list_filter_is_refused_not_ignored(client: TestClient) -> None:
    misspelt = client.get(POAS, params={"casenumber": "7594-26-00-2/1234"}, headers=COURT)
    assert_problem(misspelt, 422, "validation", "casenumber")
    twice = client.get(f"{POAS}?status=active&status=revoked", headers=COURT)
    assert_problem(twice, 422, "validation", "status", "more than once")
    every = f"{POAS}?case_number=A-1&principal_iin=850312400128&attorney_iin=790521300451"
    every += "&status=active&limit=5"
    assert client.get(every, headers=COURT).status_code == 200


def test_a_malformed_json_body_is_a_400_validation_problem(client: TestClient) -> None:
    with unchanged(client):
        response = post_raw(client, b'{"document": {"type": "epoa.issue",')
    assert_problem(response, 400, "validation", "malformed JSON")


def test_a_body_over_one_mebibyte_is_a_413_whether_its_length_is_declared_or_not(
    client: TestClient, people: People
) -> None:
    too_big = b'{"document": {}, "signature": "' + b"A" * MAX_BODY_BYTES + b'"}'
    with unchanged(client):
        for path, key in ((POAS, PORTAL), ("/v1/case-events", COURT)):
            headers = {**key, "Content-Type": "application/json"}
            declared = client.post(path, content=too_big, headers=headers)
            assert_problem(declared, 413, "validation", f"exceeds {MAX_BODY_BYTES} bytes")
            streamed = client.post(path, content=iter([too_big[:4096], too_big[4096:]]))
            assert streamed.status_code == 401  # the key is checked before any body is read
            streamed = client.post(
                path, content=iter([too_big[:4096], too_big[4096:]]), headers=headers
            )
            assert_problem(streamed, 413, "validation", f"exceeds {MAX_BODY_BYTES} bytes")


def test_a_client_gone_before_its_body_arrived_is_a_400_not_an_internal_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A portal that drops its connection mid-upload (a timeout, a network lost) sent no
    whole request: that is the client's, never a 500 counted against the service, whose
    5xx rate the runbook alerts on, nor an error logged with a traceback."""
    sent: list[dict[str, Any]] = []

    async def upload_then_leave(path: str, key: dict[str, str]) -> None:
        arriving = [
            {"type": "http.request", "body": b'{"document": {"type"', "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict[str, Any]:
            return arriving.pop(0) if arriving else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        headers += [(k.lower().encode(), v.encode()) for k, v in key.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await client.app(scope, receive, send)

    with unchanged(client), caplog.at_level(logging.INFO):
        for path, key in ((POAS, PORTAL), ("/v1/case-events", COURT)):
            sent.clear()
            assert client.portal is not None
            client.portal.call(upload_then_leave, path, key)
            started = [m for m in sent if m["type"] == "http.response.start"]
            assert [m["status"] for m in started] == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics


def test_a_body_of_exactly_one_mebibyte_is_read(client: TestClient, people: People) -> None:
    raw = json.dumps(body(people.issue())).encode()
    padded = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert len(padded) == MAX_BODY_BYTES
    response = post_raw(client, padded)
    assert response.status_code == 201, response.text


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


def test_a_case_event_with_data_nested_too_deep_is_refused_and_its_case_stays_usable(
    client: TestClient, people: People
) -> None:
    """Recorded, such data would fail every read of its case (500) and, deeper still, every
    command in it, the event that concludes it included."""
    case = "DEEP-1/26"
    poa_id = poa_id_of(issue(client, people, case))
    deep = json.loads(data_nested_deep(people, case))
    with unchanged(client):
        response = client.post("/v1/case-events", json=deep, headers=COURT)
    assert_problem(response, 422, "validation", "levels deep")
    judgment = cloud_event(people, JUDGMENT_IN_FORCE, case, str(uuid.uuid4()))
    assert client.post("/v1/case-events", json=judgment, headers=COURT).status_code == 202
    shown = client.get(f"/v1/cases/{case}", headers=COURT)
    assert shown.status_code == 200, shown.text
    assert [p["poa_id"] for p in shown.json()["powers_of_attorney"]] == [str(poa_id)]


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


def test_a_path_with_a_trailing_slash_is_not_found_never_redirected_to_the_host_it_names(
    client: TestClient, people: People
) -> None:
    """A redirect would be built from the request's `Host` (any host, over plain http), given
    before the key is checked, and followed by clients with the key and the signed body."""
    poa = issue(client, people)
    revoke = people.act("epoa.revoke", poa_id_of(poa), people.principal)
    forged = {"Host": "elsewhere.example"}
    for path in (f"{POAS}/", f"{POAS}/{poa['poa_id']}/", "/v1/rights/", "/v1/authority/"):
        response = client.get(path, headers={**COURT, **forged}, follow_redirects=False)
        assert_problem(response, 404, "not-found", path)
        assert "location" not in response.headers
    with unchanged(client):
        response = client.post(
            f"{POAS}/{poa['poa_id']}/revocation/",
            json=body(revoke),
            headers={**PORTAL, **forged},
            follow_redirects=False,
        )
    assert_problem(response, 404, "not-found", "revocation/")
    assert "location" not in response.headers


def test_a_method_the_path_lacks_is_405_naming_every_method_it_has(client: TestClient) -> None:
    response = client.delete(POAS, headers=PORTAL)
    assert_problem(response, 405, "validation", "method")
    assert response.headers["allow"] == "GET, HEAD, POST"
