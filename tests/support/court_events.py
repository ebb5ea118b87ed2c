"""Court case events as a court system sends them: signed CloudEvent bytes, good and poison.

The bytes are built here and not by the code under test: the signature is a real CMS by the
court's certificate over the RFC 8785 bytes of the event without `signature`, and each
poison helper breaks exactly one rule, so a test can tell which check refused it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Final

import confluent_kafka
from cryptography.x509.oid import ExtendedKeyUsageOID

from domain.canonical import canonical_bytes
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from tests.support.people import Actor, People, now_text
from tests.support.pki import Issued, b64, common_name, make_cert, organisation, sign_cms

SOURCE: Final = "urn:kz:court:ecourt"
ABSENT: Final = object()
"""An override value that removes the attribute from the event."""


def event_data(kind: str, case_number: str) -> dict[str, Any]:
    if kind == JUDGMENT_IN_FORCE:
        return {
            "case_number": case_number,
            "judicial_act_id": "JA-2026-000123",
            "entered_into_force_on": "2026-11-20",
        }
    return {"case_number": case_number, "issued_on": "2026-11-24", "documents": ["EL-1"]}


def unsigned_case_event(
    kind: str, case_number: str, source: str = SOURCE, id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """The CloudEvent without `signature`; `overrides` set (or, with ABSENT, drop) attributes."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": kind,
        "subject": case_number,
        "time": now_text(),
        "datacontenttype": "application/json",
        "data": event_data(kind, case_number),
    }
    for name, value in overrides.items():
        if value is ABSENT:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def signature_of(event: dict[str, Any], signer: Issued, chain: Iterable[Any]) -> str:
    return b64(sign_cms(canonical_bytes(event), signer, tuple(chain)))


def signed_case_event(
    people: People,
    kind: str,
    case_number: str,
    source: str = SOURCE,
    id: str | None = None,
    *,
    signer: Actor | None = None,
    **overrides: Any,
) -> bytes:
    """The structured-mode JSON bytes of a case event signed by `signer` (the court)."""
    event = unsigned_case_event(kind, case_number, source, id, **overrides)
    actor = signer or people.court
    event["signature"] = signature_of(event, actor.issued, people.ca.chain)
    return json.dumps(event, ensure_ascii=False).encode()


def judgment(people: People, case_number: str, **overrides: Any) -> bytes:
    return signed_case_event(people, JUDGMENT_IN_FORCE, case_number, **overrides)


def execution(people: People, case_number: str, **overrides: Any) -> bytes:
    return signed_case_event(people, EXECUTION_DOCUMENTS_ISSUED, case_number, **overrides)


# -- poison: one broken rule each, with the reason the consumer must give ----------------------


def not_json(people: People, case_number: str) -> bytes:
    return judgment(people, case_number)[:-7]


def not_a_cloud_event(people: People, case_number: str) -> bytes:
    return json.dumps({"case_number": case_number, "status": "concluded"}).encode()


def unknown_type(people: People, case_number: str) -> bytes:
    return signed_case_event(people, "kz.court.case.appeal-filed", case_number)


def bit_flipped_signature(people: People, case_number: str) -> bytes:
    """A sound event whose CMS has one bit flipped in the signature value (its last byte)."""
    event = json.loads(judgment(people, case_number))
    der = bytearray(base64.b64decode(event["signature"]))
    der[-1] ^= 0x01
    event["signature"] = b64(bytes(der))
    return json.dumps(event).encode()


def missing_signature(people: People, case_number: str) -> bytes:
    return json.dumps(unsigned_case_event(JUDGMENT_IN_FORCE, case_number)).encode()


def untrusted_signer(people: People, case_number: str) -> bytes:
    """Signed by a court certificate from a CA the registry does not trust."""
    rogue_root = make_cert(common_name("Rogue Root CA"), ca=True, key_label="rogue-root")
    rogue_court = make_cert(
        organisation(people.court.iin, "Rogue Court"), issuer=rogue_root, key_label="rogue-court"
    )
    event = unsigned_case_event(JUDGMENT_IN_FORCE, case_number)
    event["signature"] = signature_of(event, rogue_court, [rogue_root.cert])
    return json.dumps(event).encode()


def signed_with_a_tls_server_key(people: People, case_number: str) -> bytes:
    """Signed by the court's own BIN under the trusted CA, but with a certificate whose
    extendedKeyUsage is serverAuth only: the key of its web server, not a signing key."""
    return judgment(people, case_number, signer=tls_server_of_the_court(people))


def tls_server_of_the_court(people: People) -> Actor:
    server = people.ca.signer(
        organisation(people.court.iin, "Court Web Server"),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        key_label="court-tls-server",
    )
    return Actor(people.court.iin, server)


def signed_by_a_person(people: People, case_number: str) -> bytes:
    return judgment(people, case_number, signer=people.principal)


def invalid_case_number(people: People, case_number: str) -> bytes:
    bad = "no such case!"
    return judgment(people, case_number, subject=bad, data=event_data(JUDGMENT_IN_FORCE, bad))


def judgment_in_force_tomorrow(people: People, case_number: str) -> bytes:
    """A judgment said to enter into force on a day after the event's `time`."""
    data = {**event_data(JUDGMENT_IN_FORCE, case_number), "entered_into_force_on": "2999-01-01"}
    return judgment(people, case_number, data=data)


def nested(levels: int) -> Any:
    """An execution document wrapped in `levels` lists."""
    value: Any = "EL-1"
    for _ in range(levels):
        value = [value]
    return value


def data_nested_deep(people: People, case_number: str) -> bytes:
    """Execution documents nested 300 lists deep: signed and canonical, but more than any
    read of its case could show."""
    data = {**event_data(EXECUTION_DOCUMENTS_ISSUED, case_number), "documents": [nested(300)]}
    return execution(people, case_number, data=data)


def data_with_a_member_at(people: People, case_number: str) -> bytes:
    """A judgment whose `data` holds `at`, the name under which the registry shows when it
    recorded the judgment."""
    data = {**event_data(JUDGMENT_IN_FORCE, case_number), "at": "2020-01-01T00:00:00Z"}
    return judgment(people, case_number, data=data)


def in_binary_mode(case_number: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A judgment as a CloudEvents SDK sends it by default on Kafka (binary content mode):
    its attributes in `ce_*` headers, only `data` in the value, so no signature over them."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", JUDGMENT_IN_FORCE.encode()),
        ("ce_subject", case_number.encode()),
        ("content-type", b"application/json"),
    ]
    return json.dumps(event_data(JUDGMENT_IN_FORCE, case_number)).encode(), headers


POISON: Final[dict[str, tuple[Callable[[People, str], bytes], str]]] = {
    "bad JSON": (not_json, "validation"),
    "not a CloudEvent": (not_a_cloud_event, "validation"),
    "unknown type": (unknown_type, "validation"),
    "bit-flipped signature": (bit_flipped_signature, "invalid-signature"),
    "missing signature": (missing_signature, "validation"),
    "untrusted signer": (untrusted_signer, "untrusted-certificate"),
    "a TLS server key signing": (signed_with_a_tls_server_key, "untrusted-certificate"),
    "a person signing": (signed_by_a_person, "signer-mismatch"),
    "invalid case number": (invalid_case_number, "validation"),
    "a judgment in force on a later day": (judgment_in_force_tomorrow, "validation"),
    "data nested too deep": (data_nested_deep, "validation"),
    "a data member at": (data_with_a_member_at, "validation"),
}
"""Each poison message by name: how to make it, and the DLQ reason it must get."""


# -- publishing, by a client independent of the consumer's -------------------------------------


def publish(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    timeout: float = 15.0,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[tuple[int, int]]:
    """Produce (key, value) pairs with librdkafka, each with `headers`; return each one's
    (partition, offset).

    `murmur2_random` is the partitioner of Java and kafka-python clients, so a case number
    lands on the partition any other producer of the court would choose.
    """
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    batch = list(messages)
    placed: dict[int, tuple[int, int]] = {}
    errors: list[object] = []

    def delivered(index: int) -> Callable[[confluent_kafka.KafkaError | None, Any], None]:
        def report(error: confluent_kafka.KafkaError | None, message: Any) -> None:
            if error is not None:
                errors.append(error)
            else:
                placed[index] = (message.partition(), message.offset())

        return report

    for index, (key, value) in enumerate(batch):
        producer.produce(
            topic, key=key, value=value, headers=headers or [], on_delivery=delivered(index)
        )
        producer.poll(0)
    if producer.flush(timeout) != 0 or errors:
        raise RuntimeError(f"publishing to {topic} failed: {errors or 'messages still queued'}")
    return [placed[index] for index in range(len(batch))]
