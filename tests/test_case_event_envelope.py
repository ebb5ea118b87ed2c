"""What a court's CloudEvent may carry besides what the registry reads: CloudEvents 1.0
extension attributes (e.g. `traceparent`) are taken and covered by the signature; anything
else outside the envelope, and any date not written `YYYY-MM-DD`, is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.case_events import MAX_DATA_DEPTH, parse_case_event
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.errors import InvalidInputError, InvalidSignatureError
from domain.power_of_attorney import KZ_TIME
from tests.support.court_events import event_data, execution, judgment, nested, signed_case_event
from tests.support.people import People

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_extension_attributes_are_accepted_and_kept_in_the_signed_evidence(
    people: People,
) -> None:
    raw = judgment(people, "EXT-1", traceparent=TRACEPARENT, sequence=7, replayed=False)
    event = parse_case_event(raw, people.verifier)
    assert event.case_number == "EXT-1"
    assert event.evidence.document["traceparent"] == TRACEPARENT
    assert event.evidence.document["sequence"] == 7


def test_a_dataschema_that_is_a_uri_is_accepted_and_kept(people: People) -> None:
    schema = "https://ecourt.kz/schemas/judgment-entered-into-force/1.json"
    event = parse_case_event(judgment(people, "EXT-4", dataschema=schema), people.verifier)
    assert event.evidence.document["dataschema"] == schema


def test_an_extension_changed_after_signing_breaks_the_signature(people: People) -> None:
    sent = json.loads(judgment(people, "EXT-2", traceparent=TRACEPARENT))
    sent["traceparent"] = TRACEPARENT.replace("01", "00")
    with pytest.raises(InvalidSignatureError):
        parse_case_event(json.dumps(sent).encode(), people.verifier)


@pytest.mark.parametrize(
    ("attribute", "value", "words"),
    [
        ("traceParent", TRACEPARENT, "unknown attribute"),
        ("data_base64", "e30=", "unknown attribute"),
        ("averyveryverylongname", "x", "unknown attribute"),
        ("trace", {"parent": TRACEPARENT}, "extension attribute"),
        ("trace", [TRACEPARENT], "extension attribute"),
        ("trace", 1.5, "extension attribute"),
        ("trace", 2**31, "extension attribute"),
        ("trace", None, "extension attribute"),
        ("trace", "x" * 1025, "extension attribute"),
        ("dataschema", 5, "dataschema: an absolute URI"),
        ("dataschema", {"$ref": "x"}, "dataschema: an absolute URI"),
        ("dataschema", "schemas/judgment.json", "dataschema: an absolute URI"),
        ("dataschema", "", "dataschema: an absolute URI"),
    ],
)
def test_an_attribute_outside_the_cloudevents_rules_is_refused(
    people: People, attribute: str, value: Any, words: str
) -> None:
    raw = judgment(people, "EXT-3", **{attribute: value})
    with pytest.raises(InvalidInputError) as refused:
        parse_case_event(raw, people.verifier)
    assert words in str(refused.value)


@pytest.mark.parametrize("written", ["20261120", "2026-W47-1", "2026-11-2", "2026-11-20T00:00Z"])
@pytest.mark.parametrize(
    ("kind", "field"),
    [(JUDGMENT_IN_FORCE, "entered_into_force_on"), (EXECUTION_DOCUMENTS_ISSUED, "issued_on")],
)
def test_a_date_in_a_case_event_is_read_only_as_yyyy_mm_dd(
    people: People, kind: str, field: str, written: str
) -> None:
    data = {**event_data(kind, "EXT-4"), field: written}
    raw = signed_case_event(people, kind, "EXT-4", data=data)
    with pytest.raises(InvalidInputError) as refused:
        parse_case_event(raw, people.verifier)
    assert f"data.{field}: a date YYYY-MM-DD is required" in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "field"),
    [(JUDGMENT_IN_FORCE, "entered_into_force_on"), (EXECUTION_DOCUMENTS_ISSUED, "issued_on")],
)
def test_a_case_event_telling_of_a_later_day_than_its_time_is_refused(
    people: People, kind: str, field: str
) -> None:
    """A judgment said to enter into force tomorrow would end the case's POAs today."""
    moment = datetime.now(UTC) - timedelta(minutes=1)
    today = moment.astimezone(KZ_TIME).date()
    for day, accepted in ((today, True), (today + timedelta(days=1), False)):
        data = {**event_data(kind, "EXT-5"), field: day.isoformat()}
        raw = signed_case_event(people, kind, "EXT-5", data=data, time=moment.isoformat())
        if accepted:
            assert parse_case_event(raw, people.verifier).data[field] == day.isoformat()
            continue
        with pytest.raises(InvalidInputError) as refused:
            parse_case_event(raw, people.verifier)
        assert f"data.{field}: {day.isoformat()} is after the event's time" in str(refused.value)


def test_the_day_of_a_case_event_is_its_day_in_kazakhstan(people: People) -> None:
    """At 20:00 UTC it is the next day in Kazakhstan (UTC+5): a judgment in force on that
    day, sent then, is accepted; one on the day after is not."""
    now = datetime.now(UTC)
    moment = now.replace(hour=20, minute=0, second=0, microsecond=0)
    if moment > now:  # the last 20:00 UTC gone by, within the day the court's key is valid
        moment -= timedelta(days=1)
    next_day = (moment + timedelta(days=1)).date()
    for day, accepted in ((next_day, True), (next_day + timedelta(days=1), False)):
        data = {**event_data(JUDGMENT_IN_FORCE, "EXT-6"), "entered_into_force_on": str(day)}
        raw = signed_case_event(
            people, JUDGMENT_IN_FORCE, "EXT-6", data=data, time=moment.isoformat()
        )
        if accepted:
            parse_case_event(raw, people.verifier)
        else:
            with pytest.raises(InvalidInputError, match="is after the event's time"):
                parse_case_event(raw, people.verifier)


def test_data_may_nest_sixteen_levels_deep_and_no_deeper(people: People) -> None:
    """`data` is level 1, its `documents` level 2: each list inside adds one."""
    for levels, accepted in ((MAX_DATA_DEPTH - 2, True), (MAX_DATA_DEPTH - 1, False)):
        data = {**event_data(EXECUTION_DOCUMENTS_ISSUED, "EXT-7"), "documents": [nested(levels)]}
        raw = execution(people, "EXT-7", data=data)
        if accepted:
            assert parse_case_event(raw, people.verifier).data == data
            continue
        with pytest.raises(InvalidInputError, match="more than 16 levels deep"):
            parse_case_event(raw, people.verifier)


@pytest.mark.parametrize("kind", [JUDGMENT_IN_FORCE, EXECUTION_DOCUMENTS_ISSUED])
def test_a_data_member_at_is_refused_and_other_members_of_a_court_s_own_are_kept(
    people: People, kind: str
) -> None:
    """`at` is what the case shows beside each fact: when the registry recorded it."""
    data = {**event_data(kind, "EXT-8"), "at": "2020-01-01T00:00:00Z"}
    with pytest.raises(InvalidInputError, match=r"data\.at: the registry shows"):
        parse_case_event(signed_case_event(people, kind, "EXT-8", data=data), people.verifier)
    data = {**event_data(kind, "EXT-8"), "court_name": "x", "Case_number": "y"}
    parsed = parse_case_event(signed_case_event(people, kind, "EXT-8", data=data), people.verifier)
    assert parsed.data == data


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"'],
)
def test_data_said_to_be_json_in_any_spelling_rfc_9110_allows_is_accepted(
    people: People, content_type: str
) -> None:
    """`application/json; charset=utf-8`, which HTTP libraries write, was refused."""
    raw = judgment(people, "TYPE-1", datacontenttype=content_type)
    assert parse_case_event(raw, people.verifier).evidence.document["datacontenttype"] == (
        content_type
    )


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json; charset=utf-16", "application/jsonx", "", 7, None],
)
def test_data_said_to_be_other_than_utf_8_json_is_refused(
    people: People, content_type: object
) -> None:
    raw = judgment(people, "TYPE-2", datacontenttype=content_type)
    with pytest.raises(InvalidInputError, match="datacontenttype: application/json expected"):
        parse_case_event(raw, people.verifier)
