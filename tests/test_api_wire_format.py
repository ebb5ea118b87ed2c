"""How responses are written (every time in UTC with `Z`, HEAD answered as GET) and how
bodies are read (as JSON, whatever their `Content-Type`)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from tests.support.api import auth, body, cloud_event, issue, signed
from tests.support.court_events import judgment
from tests.support.people import CASE, People
from tests.support.problems import assert_problem, unchanged

pytestmark = pytest.mark.postgres
COURT = auth("court")
PORTAL = auth("portal")
POAS = "/v1/powers-of-attorney"
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_a_concluded_case_writes_its_times_as_its_poas_do(
    client: TestClient, people: People
) -> None:
    case = "7594-26-00-2/5555"
    issue(client, people, case)
    for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED):
        event = cloud_event(people, kind, case, str(uuid.uuid4()))
        assert client.post("/v1/case-events", json=event, headers=COURT).status_code == 202
    shown = client.get(f"/v1/cases/{case}", headers=COURT).json()
    poa = shown["powers_of_attorney"][0]
    assert shown["concluded_at"] == poa["termination"]["at"]
    times = [shown["concluded_at"], shown["judgment"]["at"], shown["execution_documents"]["at"]]
    assert all(UTC_TIME.fullmatch(t) for t in times), times
    assert shown["judgment"]["entered_into_force_on"] == "2026-11-20"


def times_in(value: Any) -> list[str]:
    """Every string of a response that starts like an RFC 3339 date-time."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in times_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in times_in(v)]
    return [value] if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value) else []


def test_every_time_a_response_writes_is_utc_with_z(client: TestClient, people: People) -> None:
    issued = issue(client, people)
    events = client.get(f"{POAS}/{issued['poa_id']}/events", headers=COURT).json()
    stated = client.get(
        "/v1/authority",
        params={
            "case_number": CASE,
            "attorney_iin": people.attorney.iin,
            "right": "represent_first_instance",
            "at": "2026-11-25T15:00:00+05:00",
        },
        headers=COURT,
    ).json()
    assert stated["at"] == "2026-11-25T10:00:00Z"
    first = events[0]
    written = times_in(issued) + times_in(events)
    for time in (
        issued["receipt"]["issued_at"],
        first["recorded_at"],
        first["evidence"]["signed_at"],
        first["evidence"]["received_at"],
    ):
        assert time in written
    assert all(UTC_TIME.fullmatch(t) for t in written), written


def test_head_answers_as_get_without_the_body(client: TestClient, people: People) -> None:
    issue(client, people)
    for path, headers in (("/healthz", {}), ("/v1/rights", {}), (POAS, COURT)):
        got, head = client.get(path, headers=headers), client.head(path, headers=headers)
        assert (got.status_code, head.status_code) == (200, 200)
        assert head.content == b"" and got.content
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-type"] == got.headers["content-type"]
    assert client.head(POAS).status_code == 401
    assert client.head("/v1/no-such-thing").status_code == 404
    metrics = client.get("/metrics").text
    assert 'method="HEAD",route="/v1/rights",status="200"' in metrics


def test_signed_at_is_read_as_rfc_3339_and_nothing_else(client: TestClient, people: People) -> None:
    """RFC 3339 allows `t`, `z` and a space; the ISO 8601 forms it does not define are
    refused, so the record never holds a time another reader would take differently."""
    moment = datetime.now(UTC) - timedelta(minutes=1)
    for allowed in ("%Y-%m-%dt%H:%M:%Sz", "%Y-%m-%d %H:%M:%SZ"):
        issue(client, people, "RFC3339-1", signed_at=moment.strftime(allowed))
    for form in (
        "%Y%m%dT%H%M%SZ",
        "%Y-%m-%dT%H:%M:%S+0000",
        "%G-W%V-%uT%H:%M:%SZ",
    ):
        document = people.issue_document("RFC3339-2", signed_at=moment.strftime(form))
        with unchanged(client):
            refused = client.post(
                POAS, json=signed(people, document, people.principal), headers=PORTAL
            )
        assert_problem(refused, 422, "validation", "signed_at")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_a_422_not_a_500(
    client: TestClient, people: People, moment: str
) -> None:
    document = people.issue_document("YEARS-1", signed_at=moment)
    event = json.loads(judgment(people, "YEARS-1", time=moment))
    query = {"case_number": "YEARS-1", "attorney_iin": people.attorney.iin}
    with unchanged(client):
        answers = [
            client.post(POAS, json=signed(people, document, people.principal), headers=PORTAL),
            client.post("/v1/case-events", json=event, headers=COURT),
            client.get(
                "/v1/authority",
                params={**query, "right": "represent_first_instance", "at": moment},
                headers=COURT,
            ),
        ]
    for answer in answers:
        assert_problem(answer, 422, "validation")
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_signed_body_is_read_as_json_whatever_its_content_type(
    client: TestClient, people: People, content_type: str | None
) -> None:
    raw = json.dumps(body(people.issue())).encode()
    headers = {**PORTAL, **({"Content-Type": content_type} if content_type else {})}
    response = client.post(POAS, content=raw, headers=headers)
    assert response.status_code == 201, response.text
    poa = client.get(response.headers["Location"], headers=PORTAL).json()
    assert poa["status"] == "active"


def test_no_answer_may_be_kept_by_a_cache(client: TestClient, people: People) -> None:
    """An authority answer or a POA's state kept by a browser or a proxy would be shown
    after a revocation; a person's name is personal data. Every answer, a problem's too,
    says `no-store`."""
    poa = issue(client, people)
    answers = [
        client.post(
            f"/v1/powers-of-attorney/{poa['poa_id']}/attorneys",
            json=body(
                people.act(
                    "epoa.add-attorney",
                    uuid.UUID(str(poa["poa_id"])),
                    people.principal,
                    attorney={"iin": people.second_attorney.iin},
                )
            ),
            headers=PORTAL,
        ),
        client.get(f"/v1/powers-of-attorney/{poa['poa_id']}", headers=COURT),
        client.get(
            "/v1/authority",
            params={
                "case_number": CASE,
                "attorney_iin": people.attorney.iin,
                "right": "represent_first_instance",
            },
            headers=COURT,
        ),
        client.get(f"/v1/persons/{people.attorney.iin}", headers=PORTAL),
        client.get("/v1/rights"),
        client.get("/v1/powers-of-attorney", headers=COURT, params={"limit": 0}),
        client.get("/v1/cases/NO-SUCH-CASE", headers=COURT),
        client.get("/healthz"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 200, 422, 404, 200]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.request.url
