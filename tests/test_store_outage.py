"""While the store refuses the service, every kind of request answers 503 problem+json
within seconds, not after the store's retries have run for many seconds; once the store
is back, the very next command succeeds, with no restart of the service.

The outage is the service role's (its logins refused, its sessions ended), as in
`tests/test_resilience_outage.py`; it lasts longer than the pools try to replace a lost
connection (`epoa.storage.RECONNECT_TIMEOUT`), so recovery depends on them connecting again
when a request needs it, not on where a reconnection backoff stands.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from epoa.storage import RECONNECT_TIMEOUT
from tests.support.people import CASE, People
from tests.support.roles import ServiceRole, service_role
from tests.support.stack import Stack
from tests.support.traffic import RIGHT, signed
from tests.test_resilience_outage import allow_logins, refuse_logins, role_outage

pytestmark = pytest.mark.postgres

ANSWER_S = 8.0
"""A request during the outage answers within this (about 3.5 s is expected: three tries
of the store, each waiting 1 s for a connection)."""
RECOVERY_S = 5.0
"""The first command after the store is back answers within this."""


@pytest.fixture
def stack(tmp_path: Path, people: People) -> Iterator[tuple[ServiceRole, Stack]]:
    with service_role() as role, Stack(role, tmp_path, people) as stack:
        stack.init_database()
        stack.start_all(("api", "projector"))
        stack.wait_up("api")
        yield role, stack


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - began


def issue(client: httpx.Client, stack: Stack, people: People) -> httpx.Response:
    document = people.issue_document(case_number=CASE)
    headers = {"Authorization": f"Bearer {stack.keys['portal']}"}
    return client.post(
        "/v1/powers-of-attorney", json=signed(people, document, people.principal), headers=headers
    )


def assert_unavailable(response: httpx.Response, took: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("unavailable")
    assert "5432" not in response.json()["detail"], "the store's address is not shown"
    assert response.headers["retry-after"]
    assert took < ANSWER_S, f"503 after {took:.1f} s"


def test_requests_during_an_outage_answer_503_within_seconds_and_the_next_command_succeeds(
    stack: tuple[ServiceRole, Stack], people: People
) -> None:
    role, api = stack
    court = {"Authorization": f"Bearer {api.keys['court']}"}
    authority = {"case_number": CASE, "attorney_iin": people.attorney.iin, "right": RIGHT}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        before = issue(client, api, people)
        assert before.status_code == 201, before.text
        poa = f"/v1/powers-of-attorney/{before.json()['poa_id']}"
        assert client.get(poa, headers=court).status_code == 200

        with role_outage(role.name):
            began = time.monotonic()
            answers = {
                "issue": timed(issue, client, api, people),
                "read": timed(client.get, poa, headers=court),
            }
            time.sleep(0.05)  # past the authority cache's staleness bound
            answers["authority"] = timed(
                client.get, "/v1/authority", params=authority, headers=court
            )
            # Past the pools' reconnection series: none of them is still retrying.
            time.sleep(max(0.0, began + 3 * RECONNECT_TIMEOUT - time.monotonic()))
            answers["issue again"] = timed(issue, client, api, people)

        after, took = timed(issue, client, api, people)
        print({kind: f"{answer.status_code} in {s:.1f} s" for kind, (answer, s) in answers.items()})
        print(f"first command after the outage: {after.status_code} in {took:.1f} s")
        for answer in answers.values():
            assert_unavailable(*answer)
        assert after.status_code == 201, after.text
        assert took < RECOVERY_S, f"the first command after the outage took {took:.1f} s"
        assert client.get(poa, headers=court).status_code == 200
        answer = client.get("/v1/authority", params=authority, headers=court)
        assert answer.status_code == 200 and answer.json()["authorized"], answer.text
    assert api.alive("api") and api.alive("projector"), api.tails()
    assert api.starts["api"] == 1


def test_after_the_server_ended_every_idle_session_the_first_requests_succeed(
    stack: tuple[ServiceRole, Stack], people: People
) -> None:
    """A restart while no request came: the pools hold only connections the server ended.
    The first one found dead replaces them all, so no request pays one by one for them."""
    role, api = stack
    court = {"Authorization": f"Bearer {api.keys['court']}"}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        issued = issue(client, api, people)
        assert issued.status_code == 201, issued.text
        poa = f"/v1/powers-of-attorney/{issued.json()['poa_id']}"
        refuse_logins(role.name)  # every session ended, as a restart ends them
        allow_logins(role.name)  # and the server back at once
        time.sleep(1.5)  # idle past PING_AFTER: each pooled connection is checked
        answers = [timed(client.get, poa, headers=court), timed(issue, client, api, people)]
    for (answer, took), status in zip(answers, (200, 201), strict=True):
        assert answer.status_code == status, answer.text
        assert took < 1.0, f"{answer.request.method} answered after {took:.1f} s"
