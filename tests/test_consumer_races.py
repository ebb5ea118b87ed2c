"""A case's two facts arriving every way at once: keyed by something other than the case
number (so on different partitions, read by different group members), the writ before the
judgment, each sent again, and each also posted over HTTP while the consumers apply them.
The case concludes once, its POAs end once, and every answer's receipt names records the
store holds.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi.testclient import TestClient
from kafka.partitioner.default import murmur2

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.receipt import make_receipt, verify_receipt
from domain.registry import Registry
from domain.repeats import stored_at
from domain.seal import public_keys_of
from epoa.settings import Settings
from tests.support.api import KEYS, auth, running
from tests.support.court_events import SOURCE, publish, signed_case_event
from tests.support.kafka_fixtures import TOPIC_PARTITIONS
from tests.support.people import People
from tests.support.postgres import insert_lock_held, writers_waiting
from tests.test_consumer_kafka import (
    case_events_of,
    consumer_settings,  # noqa: F401  (the `settings` fixture)
    consuming,
    counted,
    eventually,
    position,
    store_registry,  # noqa: F401  (the `store` fixture)
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CASES = 8


def keys_on_every_partition(case: str) -> list[bytes]:
    """One Kafka key per partition, none of them the case number (a court keying by region
    or by court house, say)."""
    found: dict[int, bytes] = {}
    for number in itertools.count():
        key = f"court-house-{case}-{number}".encode()
        found.setdefault((murmur2(key) & 0x7FFFFFFF) % TOPIC_PARTITIONS, key)
        if len(found) == TOPIC_PARTITIONS:
            return [found[p] for p in range(TOPIC_PARTITIONS)]
    raise AssertionError("unreachable")


@pytest.fixture(name="api")
def api_client(settings: Settings, tmp_path: Path, people: People) -> Iterator[TestClient]:
    """The API over the consumer's store (the same seal key), courts with their API key."""
    ca, keys = tmp_path / "api-ca.pem", tmp_path / "api-keys.json"
    ca.write_bytes(people.ca.root.pem)
    keys.write_text(json.dumps(KEYS))
    served = settings.model_copy(update={"trusted_ca": ca, "api_keys": keys})
    with running(served) as client:
        yield client


def test_both_facts_from_kafka_and_http_at_once_conclude_the_case_once(
    settings: Settings, store: Registry, people: People, api: TestClient, postgres_url: str
) -> None:
    bootstrap, topic = settings.kafka_bootstrap or "", settings.case_events_topic
    cases = [f"RACE-{uuid.uuid4().hex[:4]}-{n}" for n in range(CASES)]
    poas = {case: store.issue(people.issue(case_number=case)).poa.id for case in cases}
    facts: dict[str, dict[str, bytes]] = {}
    for case in cases:
        facts[case] = {
            kind: signed_case_event(people, kind, case, id=f"{case}-{kind}")
            for kind in (EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE)
        }
    messages = []
    for case in cases:
        writ_key, judgment_key, again_key = keys_on_every_partition(case)
        messages += [
            (writ_key, facts[case][EXECUTION_DOCUMENTS_ISSUED]),  # the writ first
            (judgment_key, facts[case][JUDGMENT_IN_FORCE]),
            (again_key, facts[case][JUDGMENT_IN_FORCE]),  # the same event, sent again
        ]
    answers: list[tuple[str, str, Any]] = []

    def post(case: str, kind: str) -> None:
        sent = api.post(
            "/v1/case-events",
            content=facts[case][kind],
            headers={**auth("court"), "Content-Type": "application/cloudevents+json"},
        )
        answers.append((case, kind, sent))

    with consuming(settings, people) as one, consuming(settings, people) as other:
        for metrics in (one, other):
            eventually(lambda m=metrics: m.value("epoa_consumer_ready") == 1, "both hold work")
        # Every writer reads the cases, then waits at the insert: they all race for them.
        with ThreadPoolExecutor(4) as posting:
            with insert_lock_held(postgres_url):
                placed = publish(bootstrap, topic, messages)
                eventually(lambda: writers_waiting(postgres_url) >= 2, "both consumers write")
                posted = [
                    posting.submit(post, case, kind)
                    for case in cases
                    for kind in (JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED)
                ]
                eventually(lambda: writers_waiting(postgres_url) >= 3, "the API writes too")
            for future in posted:
                future.result()
        highwater = Counter(partition for partition, _ in placed)
        eventually(
            lambda: all(position(store, topic, p) == highwater[p] for p in highwater),
            "every partition is settled",
        )
        seen = {o: counted(one, o) + counted(other, o) for o in ("applied", "duplicate", "poison")}

    statuses = Counter(sent.status_code for _, _, sent in answers)
    assert set(statuses) <= {200, 202}, [s.text for _, _, s in answers if s.status_code >= 300]
    http_applied = sum(1 for _, _, sent in answers if sent.json()["applied"])
    assert statuses[202] == http_applied
    assert seen["poison"] == 0
    assert seen["applied"] + seen["duplicate"] == len(messages)
    assert seen["applied"] + http_applied == 2 * CASES  # each fact applied by one way only

    keys = api.get("/v1/audit/keys").json()["keys"]
    public = public_keys_of(*[load_pem_public_key(k["public_key_pem"].encode()) for k in keys])  # type: ignore[arg-type]
    for case in cases:
        events = Counter(case_events_of(store, case))
        assert (events["JudgmentEnteredIntoForce"], events["ExecutionDocumentsIssued"]) == (1, 1)
        assert events["Concluded"] == 1, case
        poa_events = [type(e).__name__ for e in store.events.get(poas[case])]
        assert poa_events.count("Terminated") == 1, (case, poa_events)
        termination = store.get_poa(poas[case]).termination
        assert termination is not None and termination["reason"] == "case_concluded"

    terminations = {
        (str(poas[case]), version)
        for case in cases
        for version, event in enumerate(store.events.get(poas[case]), start=1)
        if type(event).__name__ == "Terminated"
    }
    for case, kind, sent in answers:
        answer = sent.json()
        receipt = answer["receipt"]
        assert verify_receipt(receipt, public), (case, kind)
        places = [(uuid.UUID(r["originator_id"]), r["version"]) for r in receipt["records"]]
        stored = make_receipt(store.seal_key, stored_at(store.recorder, places), store.clock())
        assert receipt["records"] == stored["records"], (case, kind)  # as the store holds them
        ended = {(r["originator_id"], r["version"]) for r in receipt["records"]} & terminations
        if _concluded_by(store, case, kind):  # its answer, or a repeat's, names the POA's end
            assert answer["concluded"] and ended == {(str(poas[case]), 2)}, (case, kind, answer)
            assert answer["terminated"] == ([str(poas[case])] if answer["applied"] else [])
        else:
            assert not ended and answer["terminated"] == [], (case, kind, answer)


def _concluded_by(store: Registry, case: str, kind: str) -> bool:
    """Whether the fact `kind` of `case` is the one that concluded it."""
    termination = store.get_poa(store.get_case(case).poa_ids[0]).termination
    assert termination is not None
    return bool(termination["source"] == f"case-event:{SOURCE}#{case}-{kind}")
