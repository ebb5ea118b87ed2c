"""Query strings: a parameter a route does not take, or one given twice, is a 422 on every
route with an API key (after the key is checked), never ignored or read as its last value."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import auth, issue
from tests.support.people import People
from tests.support.problems import assert_problem

COURT = auth("court")
POAS = "/v1/powers-of-attorney"


def test_an_authority_check_with_a_repeated_or_unknown_parameter_is_refused_not_guessed(
    client: TestClient, people: People
) -> None:
    """`right=a&right=b` must not answer for `b` alone: the caller asked about both."""
    poa = issue(client, people, case_number="AUTH-Q-1", rights=["represent_first_instance"])
    query = "/v1/authority?case_number=AUTH-Q-1&attorney_iin=" + people.attorney.iin
    granted = f"{query}&right=represent_first_instance"
    assert client.get(granted, headers=COURT).json()["powers_of_attorney"] == [poa["poa_id"]]
    for asked, named in (
        (f"{granted}&right=refuse_claim", "more than once"),
        (f"{query}&right=refuse_claim&right=represent_first_instance", "more than once"),
        (f"{granted}&case_number=OTHER-1", "more than once"),
        (f"{granted}&at=2026-12-01T00:00:00Z&at=2027-01-01T00:00:00Z", "more than once"),
        (f"{granted}&attorney=850312400128", "unknown query parameter"),
    ):
        assert_problem(client.get(asked, headers=COURT), 422, "validation", named)
    at = f"{granted}&at=2099-01-01T00:00:00Z"
    assert client.get(at, headers=COURT).status_code == 200


def test_every_read_refuses_a_parameter_it_does_not_take_or_one_given_twice(
    client: TestClient, people: People
) -> None:
    """`?At=` or `?at=` twice must not answer with today's state as if it were the past."""
    poa = issue(client, people, case_number="QUERY-1")["poa_id"]
    past, later = "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"
    for path, named in (
        (f"{POAS}/{poa}?At={past}", "unknown query parameter"),
        (f"{POAS}/{poa}?at={past}&at={later}", "more than once"),
        (f"{POAS}/{poa}/events?at={past}", "unknown query parameter"),
        (f"/v1/cases/QUERY-1?at={past}", "['at']; this route takes none"),
        (f"/v1/persons/{people.attorney.iin}?at={past}", "unknown query parameter"),
        ("/v1/audit/proofs/inclusion?position=1&size=1", "unknown query parameter"),
        ("/v1/audit/proofs/consistency?first=0&first=1", "more than once"),
        (f"{POAS}/{poa}?at=2026-12-01T10:00:00+05:00", "send it as %2B"),
    ):
        assert_problem(client.get(path, headers=COURT), 422, "validation", named)
    assert client.get(f"{POAS}/{poa}?At={past}").status_code == 401  # the key comes first
    assert client.get(f"{POAS}/{poa}?at={later}", headers=COURT).status_code == 200


def test_a_number_of_a_query_string_is_read_only_as_decimal_digits(
    client: TestClient, people: People
) -> None:
    """`position=1_0` must not prove the record at position 10, nor `limit=1.0` list one."""
    issue(client, people, case_number="QUERY-2")
    auditor = auth("auditor")
    for path in (
        "/v1/audit/proofs/inclusion?position={}",
        "/v1/audit/proofs/inclusion?position=1&tree_size={}",
        "/v1/audit/proofs/consistency?first={}",
        "/v1/audit/proofs/consistency?first=0&second={}",
        f"{POAS}?case_number=QUERY-2&limit={{}}",
    ):
        for number in ("1_0", "1.0", "%201", "+1", "1%20", "%D9%A1", "0x1", "1e0"):
            answer = client.get(path.format(number), headers=auditor)
            assert_problem(answer, 422, "validation", "decimal digits")
        assert client.get(path.format("-1"), headers=auditor).status_code == 422
    assert client.get(f"{POAS}?case_number=QUERY-2&limit=01", headers=auditor).status_code == 200


def test_a_parameter_given_with_no_value_is_refused_never_read_as_left_out(
    client: TestClient, people: People
) -> None:
    """`status=` must not list the POAs of every status, nor `at=` answer for now."""
    poa = issue(client, people, case_number="QUERY-3")["poa_id"]
    check = f"/v1/authority?case_number=QUERY-3&attorney_iin={people.attorney.iin}"
    for path in (
        *(f"{POAS}?case_number=QUERY-3&{name}=" for name in ("status", "cursor", "limit")),
        *(f"{POAS}?{name}=" for name in ("case_number", "principal_iin", "attorney_iin")),
        f"{POAS}/{poa}?at=",
        f"{check}&right=represent_first_instance&at=",
        f"{check}&right=",
        "/v1/audit/proofs/inclusion?position=1&tree_size=",
        "/v1/audit/proofs/consistency?first=0&second=",
    ):
        assert_problem(client.get(path, headers=COURT), 422, "validation")
    assert client.get(f"{POAS}?case_number=QUERY-3", headers=COURT).json()["items"]
