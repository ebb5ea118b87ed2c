"""A repeat is answered with a receipt again: over the records the first answer covered.

A portal (or a court system) that sends a document again after a timeout never saw the
first answer: the repeat records nothing, and its receipt, signed now, names the same
records, with the same positions and hashes, as the first one did."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.receipt import verify_receipt
from domain.seal import public_keys_of
from epoa.wiring import build_registry
from projections.runner import ProjectionRunner
from tests.support.api import api_settings, body, cloud_event, running
from tests.support.people import People
from tests.support.problems import COURT, POAS, PORTAL, unchanged

pytestmark = pytest.mark.postgres


@pytest.fixture
def served(database_url: str, tmp_path: Path, people: People) -> Iterator[TestClient]:
    """The API on SQLite and on PostgreSQL: the records are found by each one's own SQL."""
    with running(api_settings(database_url, tmp_path, people)) as client:
        yield client


def sent_twice(client: TestClient, path: str, request: dict[str, Any]) -> tuple[Any, Any]:
    """The first answer and the repeat's; the repeat records nothing."""
    first = client.post(path, json=request, headers=COURT if "case-events" in path else PORTAL)
    assert first.status_code in (200, 201, 202), first.text
    with unchanged(client):
        again = client.post(path, json=request, headers=COURT if "case-events" in path else PORTAL)
    assert again.status_code == 200, again.text
    return first.json(), again.json()


def assert_same_records(client: TestClient, first: dict[str, Any], again: dict[str, Any]) -> None:
    keys = client.get("/v1/audit/keys").json()["keys"]
    public = public_keys_of(*[load_pem_public_key(k["public_key_pem"].encode()) for k in keys])  # type: ignore[arg-type]
    assert again["receipt"] is not None
    assert verify_receipt(again["receipt"], public)
    assert again["receipt"]["records"] == first["receipt"]["records"]
    assert again["receipt"]["issued_at"] >= first["receipt"]["issued_at"]


def test_an_issue_sent_again_is_answered_with_the_receipt_of_its_records(
    served: TestClient, people: People
) -> None:
    opening, opening_again = sent_twice(served, POAS, body(people.issue("REPEAT-1")))
    assert len(opening["receipt"]["records"]) == 4  # the POA, the case opened, its POA, the id
    assert_same_records(served, opening, opening_again)
    second, second_again = sent_twice(served, POAS, body(people.issue("REPEAT-1")))
    assert len(second["receipt"]["records"]) == 3  # the case was open already
    assert_same_records(served, second, second_again)


def test_a_repeat_after_later_changes_still_names_only_what_it_recorded(
    served: TestClient, people: People
) -> None:
    request = body(people.issue("REPEAT-2"))
    first = served.post(POAS, json=request, headers=PORTAL).json()
    poa_id = uuid.UUID(first["poa_id"])
    revoke = body(people.act("epoa.revoke", poa_id, people.principal))
    revoked, revoked_again = sent_twice(served, f"{POAS}/{poa_id}/revocation", revoke)
    assert_same_records(served, revoked, revoked_again)
    assert revoked_again["status"] == "revoked"
    again = served.post(POAS, json=request, headers=PORTAL).json()
    assert_same_records(served, first, again)
    assert again["status"] == "revoked"  # the POA as it is now, the records of then


def test_adding_and_renouncing_sent_again_name_their_records_and_the_termination(
    served: TestClient, people: People
) -> None:
    poa_id = uuid.UUID(
        served.post(POAS, json=body(people.issue("REPEAT-3")), headers=PORTAL).json()["poa_id"]
    )
    second = people.second_attorney
    add = body(
        people.act("epoa.add-attorney", poa_id, people.principal, attorney={"iin": second.iin})
    )
    added, added_again = sent_twice(served, f"{POAS}/{poa_id}/attorneys", add)
    assert_same_records(served, added, added_again)
    path = f"{POAS}/{poa_id}/renunciation"
    first = body(
        people.act("epoa.renounce", poa_id, people.attorney, attorney_iin=people.attorney.iin)
    )
    renounced, renounced_again = sent_twice(served, path, first)
    assert_same_records(served, renounced, renounced_again)
    last = body(people.act("epoa.renounce", poa_id, second, attorney_iin=second.iin))
    ended, ended_again = sent_twice(served, path, last)
    assert ended["status"] == "terminated"
    assert len(ended["receipt"]["records"]) == 3  # the renunciation, the end, the id
    assert_same_records(served, ended, ended_again)


def test_case_events_sent_again_name_the_case_records_and_the_terminations(
    served: TestClient, people: People
) -> None:
    case = "REPEAT-4"
    served.post(POAS, json=body(people.issue(case)), headers=PORTAL)
    served.post(POAS, json=body(people.issue(case)), headers=PORTAL)
    path = "/v1/case-events"
    judgment = cloud_event(people, JUDGMENT_IN_FORCE, case, "judgment-4")
    first, first_again = sent_twice(served, path, judgment)
    assert_same_records(served, first, first_again)
    execution = cloud_event(people, EXECUTION_DOCUMENTS_ISSUED, case, "execution-4")
    concluding, concluding_again = sent_twice(served, path, execution)
    assert len(concluding["terminated"]) == 2 and concluding_again["terminated"] == []
    # the event, the conclusion, two terminations, the (source, id)
    assert len(concluding["receipt"]["records"]) == 5
    assert_same_records(served, concluding, concluding_again)


def test_a_case_event_that_opened_its_case_names_the_opening_again(
    served: TestClient, people: People
) -> None:
    event = cloud_event(people, JUDGMENT_IN_FORCE, "REPEAT-5", "judgment-5")
    first, again = sent_twice(served, "/v1/case-events", event)
    assert len(first["receipt"]["records"]) == 3  # the case opened, the event, the (source, id)
    assert_same_records(served, first, again)


def test_one_document_sent_by_several_clients_at_once_is_recorded_once_with_one_receipt(
    served: TestClient, people: People
) -> None:
    """Retries that cross (a portal's and its proxy's): one 201, every other answer 200,
    and each receipt names the same records."""
    request = body(people.issue("REPEAT-6"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: served.post(POAS, json=request, headers=PORTAL), range(8))
        )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    [first] = [a.json() for a in answers if a.status_code == 201]
    for answer in answers:
        assert_same_records(served, first, answer.json())


def test_a_repeat_answers_once_the_read_models_show_what_it_names(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    """Another replica accepted the document a moment ago (its answer, still waiting for
    the read models, was lost to the portal); the repeat answers only once they show it,
    as a 201 would, so the list and the authority asked next hold the POA."""
    settings = api_settings(postgres_url, tmp_path, people)
    evidence = people.issue("REPEAT-7")
    stop = threading.Event()
    with running(settings, run_projections=False) as client:
        other = build_registry(settings)
        runner = ProjectionRunner(other, postgres_url)
        apart = threading.Thread(target=runner.run_forever, args=(stop, 0.05), daemon=True)
        try:
            first = other.issue(evidence)
            seen: list[Any] = []

            def repeat_then_read() -> None:
                again = client.post(POAS, json=body(evidence), headers=PORTAL)
                listed = client.get(POAS, params={"case_number": "REPEAT-7"}, headers=PORTAL)
                allowed = client.get(
                    "/v1/authority",
                    params={
                        "case_number": "REPEAT-7",
                        "attorney_iin": people.attorney.iin,
                        "right": "represent_first_instance",
                    },
                    headers=PORTAL,
                )
                seen.extend([again.status_code, listed.json()["items"], allowed.json()])

            asking = threading.Thread(target=repeat_then_read)
            asking.start()
            time.sleep(0.5)  # the read models lag: their runner starts only now
            apart.start()
            asking.join(timeout=30)
        finally:
            stop.set()
            if apart.is_alive():
                apart.join(timeout=10)
            runner.close()
            other.close()
    status, items, authority = seen
    assert status == 200
    assert [item["poa_id"] for item in items] == [str(first.poa.id)]
    assert authority["authorized"] is True
