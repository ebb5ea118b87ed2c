"""Court case events (CloudEvents 1.0, structured JSON) turned into verified `CaseEvent`s.

Both entrances, `POST /v1/case-events` and the Kafka consumer, call `parse_case_event`; what
it refuses can never succeed (a poison message), what it returns is ready for the registry.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from domain.canonical import parse_json_object
from domain.court_case import (
    CASE_EVENT_TYPES,
    EXECUTION_DOCUMENTS_ISSUED,
    JUDGMENT_IN_FORCE,
    parse_case_number,
)
from domain.documents import parse_date
from domain.errors import InvalidInputError, SignerMismatchError
from domain.evidence import SignedDocument
from domain.outcomes import CaseEvent
from domain.power_of_attorney import KZ_TIME

REQUIRED = ("specversion", "id", "source", "type", "subject", "time", "data", "signature")
OPTIONAL = ("datacontenttype", "dataschema")
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
"""An absolute URI (RFC 3986: a scheme, then something), as `dataschema` must be."""
JSON_MEDIA_TYPE = re.compile(
    r'application/json[ \t]*(;[ \t]*charset[ \t]*=[ \t]*("utf-8"|utf-8)[ \t]*)?', re.IGNORECASE
)
"""`data`'s media type (RFC 9110: names in any case, a `charset` parameter): JSON, and the
structured event is UTF-8, so no other charset."""
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
"""CloudEvents 1.0: an extension attribute's name."""
MAX_ATTRIBUTE = 1024
MAX_SIGNATURE = 400_000
"""Base64 of the largest CMS the verifier accepts (256 KiB)."""
DATA_FIELDS = {
    JUDGMENT_IN_FORCE: ("case_number", "judicial_act_id", "entered_into_force_on"),
    EXECUTION_DOCUMENTS_ISSUED: ("case_number", "issued_on", "documents"),
}
"""The members of each type's `data` (contract, section 5)."""
RESERVED = "at"
"""The one member `data` may not hold: the case shows each fact with its own `at`."""
MAX_DATA_DEPTH = 16
"""How deeply `data` may nest objects and lists (it is an object holding a list); deeper
data would be recorded, then fail every read and every command of its case."""
MAX_EVENT_BYTES = 1 << 20
"""The largest event taken (1 MiB), from Kafka as from HTTP, whose body limit it is: the
same event is never recorded through one entrance and refused through the other."""


class CaseEventVerifier(Protocol):
    court_bins: frozenset[str]

    def verify(
        self, document: dict[str, Any], signature_b64: str, *, signed_at_field: str = ...
    ) -> SignedDocument: ...


def parse_case_event(
    raw: bytes | str, verifier: CaseEventVerifier, *, binary_mode_header: str | None = None
) -> CaseEvent:
    """Parse, validate and verify one message; raise a `DomainError` naming what is wrong.

    `binary_mode_header` is the header (`ce_specversion` on Kafka, `ce-specversion` over
    HTTP) by which the message says it is in CloudEvents binary content mode, the default
    of several SDKs: a value that is then no event is refused saying so, since it lacks
    the attributes that the signature must cover. A structured event with such a header
    is read as structured."""
    try:
        return _parse_case_event(raw, verifier)
    except InvalidInputError as error:
        if binary_mode_header is None or _structured(raw):
            raise
        raise type(error)(
            f"the {binary_mode_header} header marks CloudEvents binary content mode; only "
            "structured mode is taken (the whole signed event as one JSON object, "
            f"application/cloudevents+json): {error.detail}"
        ) from None


def _structured(raw: bytes | str) -> bool:
    """Whether the value is a structured-mode event (which a stray `ce_*` header beside it
    does not make a binary-mode one): a JSON object with `specversion`."""
    try:
        return "specversion" in parse_json_object(raw)
    except InvalidInputError:
        return False


def _parse_case_event(raw: bytes | str, verifier: CaseEventVerifier) -> CaseEvent:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_BYTES:
        raise InvalidInputError(f"the event is {size} bytes, more than {MAX_EVENT_BYTES}")
    event = parse_json_object(raw)
    _check_envelope(event)
    data = _check_data(event["type"], event["data"], event["subject"])
    unsigned = {key: value for key, value in event.items() if key != "signature"}
    evidence = verifier.verify(unsigned, event["signature"], signed_at_field="time")
    if evidence.signer_kind != "organisation":
        raise SignerMismatchError(
            f"case events must be signed by a court system (BIN); signed by {evidence.signer_id}"
        )
    if verifier.court_bins and evidence.signer_id not in verifier.court_bins:
        raise SignerMismatchError(
            f"BIN {evidence.signer_id} is not a court system's: only the BINs of "
            "EPOA_COURT_BINS may sign case events"
        )
    _require_not_after_time(event["type"], data, evidence)
    return CaseEvent(
        source=event["source"],
        event_id=event["id"],
        type=event["type"],
        case_number=event["subject"],
        data=data,
        evidence=evidence,
    )


def _check_envelope(event: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED if name not in event]
    if missing:
        raise InvalidInputError(f"not a signed CloudEvent: missing {missing}")
    if event["specversion"] != "1.0":
        raise InvalidInputError(f"specversion: '1.0' expected, got {event['specversion']!r}")
    for name in ("id", "source", "type", "subject", "time", "signature"):
        value = event[name]
        limit = MAX_SIGNATURE if name == "signature" else MAX_ATTRIBUTE
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidInputError(f"{name}: a non-empty string of at most {limit} characters")
    if event["type"] not in CASE_EVENT_TYPES:
        raise InvalidInputError(f"type: unknown case event type {event['type']!r}")
    content_type = event.get("datacontenttype", "application/json")
    if not isinstance(content_type, str) or not JSON_MEDIA_TYPE.fullmatch(content_type):
        raise InvalidInputError(
            "datacontenttype: application/json expected (with charset=utf-8 at most), "
            f"got {str(content_type)[:80]!r}"
        )
    schema = event.get("dataschema", "urn:x")
    if not isinstance(schema, str) or len(schema) > MAX_ATTRIBUTE or not URI.fullmatch(schema):
        raise InvalidInputError(
            f"dataschema: an absolute URI of at most {MAX_ATTRIBUTE} characters (CloudEvents 1.0)"
        )
    unknown = [name for name in event if not _known_attribute(name)]
    if unknown:
        raise InvalidInputError(f"unknown attribute(s) {unknown}")
    _check_extensions(event)
    parse_case_number(event["subject"])


def _known_attribute(name: str) -> bool:
    return name in REQUIRED or name in OPTIONAL or EXTENSION_NAME.fullmatch(name) is not None


def _check_extensions(event: dict[str, Any]) -> None:
    """Extension attributes (CloudEvents 1.0: lower-case letters and digits, e.g. the
    `traceparent` of distributed tracing) are kept, as the signature covers them, but only
    with the JSON form of a CloudEvents type: a string, a 32-bit integer or a boolean."""
    for name, value in event.items():
        if name in REQUIRED or name in OPTIONAL:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and -(2**31) <= value < 2**31:
            continue
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE:
            raise InvalidInputError(
                f"{name}: an extension attribute is a string of at most {MAX_ATTRIBUTE} "
                "characters, a 32-bit integer or a boolean"
            )


def _check_data(kind: str, data: object, subject: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError("data: an object is required")
    if data.get("case_number") != subject:
        raise InvalidInputError("data.case_number must equal the event's subject")
    _require_shallow(data)
    _require_fields(data, DATA_FIELDS[kind])
    if kind == JUDGMENT_IN_FORCE:
        if not isinstance(data["judicial_act_id"], str) or not data["judicial_act_id"]:
            raise InvalidInputError("data.judicial_act_id: a non-empty string is required")
        parse_date(data["entered_into_force_on"], "data.entered_into_force_on")
    else:
        parse_date(data["issued_on"], "data.issued_on")
        if not isinstance(data["documents"], list) or not data["documents"]:
            raise InvalidInputError("data.documents: a non-empty list is required")
    return data


def _require_shallow(data: dict[str, Any]) -> None:
    """Refuse `data` nesting objects or lists deeper than `MAX_DATA_DEPTH` (walked level by
    level, without recursion, so that no depth the JSON reader took can exhaust the stack)."""
    level: list[dict[str, Any] | list[Any]] = [data]
    for _ in range(MAX_DATA_DEPTH):
        level = [inner for value in level for inner in _containers_in(value)]
        if not level:
            return
    raise InvalidInputError(f"data: nests objects and lists more than {MAX_DATA_DEPTH} levels deep")


def _containers_in(value: dict[str, Any] | list[Any]) -> list[dict[str, Any] | list[Any]]:
    members = value.values() if isinstance(value, dict) else value
    return [inner for inner in members if isinstance(inner, dict | list)]


def _require_not_after_time(kind: str, data: dict[str, Any], evidence: SignedDocument) -> None:
    """The day the event tells of has come by the event's `time` (its day in Kazakhstan):
    a judgment said to enter into force, or documents said to be issued, on a later day
    would end the case's POAs before it happened."""
    field = "entered_into_force_on" if kind == JUDGMENT_IN_FORCE else "issued_on"
    day = parse_date(data[field], f"data.{field}")
    today = evidence.signed_at.astimezone(KZ_TIME).date()
    if day > today:
        raise InvalidInputError(
            f"data.{field}: {day.isoformat()} is after the event's time ({today.isoformat()} "
            "in Kazakhstan): a case event tells of what has happened"
        )


def _require_fields(data: dict[str, Any], names: tuple[str, ...]) -> None:
    """Its type's members; others are kept (the signature covers them) but for `at`, which
    could never be told from what the registry adds beside them when it shows the case."""
    missing = [name for name in names if name not in data]
    if missing:
        raise InvalidInputError(f"data: missing {missing}")
    if RESERVED in data:
        raise InvalidInputError(
            f"data.{RESERVED}: the registry shows under this name when it recorded the fact; "
            "the moment of the event goes in its `time`"
        )
