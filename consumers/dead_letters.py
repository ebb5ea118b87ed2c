"""The dead-letter topic: the original bytes of a poison message, and why it was refused.

A message goes there before its position moves on, and `publish` returns only once the
broker has acknowledged it (all in-sync replicas), so a crash in between, or an
acknowledgement later than `ACK_TIMEOUT_S` (the message is then sent again), can at worst
dead-letter a message twice, never lose it. Its key, value and headers are the ones
received (but for headers named `epoa.*`, which are this service's), so it can be replayed
to the case-events topic unchanged once its cause is fixed. A message
too large to be sent again with the headers (one close to the size limit) is dead-lettered
without its value and its own headers, which header `epoa.value.omitted` describes (size,
SHA-256; a key over 1 KiB goes too, as `epoa.key.omitted`): the original stays at its
source offset, and its partition moves on.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from consumers.case_events import Decision

DETAIL_LIMIT = 2000
ACK_TIMEOUT_S = 10.0


def dead_letter_headers(
    topic: str, partition: int, offset: int, decision: Decision
) -> list[tuple[str, bytes]]:
    detail = (decision.detail or "")[:DETAIL_LIMIT]
    return [
        ("epoa.reason", (decision.reason or "").encode()),
        ("epoa.detail", detail.encode()),
        ("epoa.source.topic", topic.encode()),
        ("epoa.source.partition", str(partition).encode()),
        ("epoa.source.offset", str(offset).encode()),
    ]


def original_headers(record: Any) -> list[tuple[str, bytes]]:
    """The message's own headers (`traceparent`, `ce_*`, ...), kept so that a replay is the
    message as sent; any named `epoa.*` is left out, so that only this service says why."""
    return [
        (str(key), bytes(value or b""))
        for key, value in (getattr(record, "headers", None) or [])
        if not str(key).startswith("epoa.")
    ]


MAX_KEPT_KEY = 1024
"""A dead letter too large to send whole keeps its key up to this size (a case number)."""


def _described(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The dead letter of a message too large to send again: no value and none of the
    message's own headers (either may be what is too large), each described by its size and
    SHA-256; the key too if it is long. The original stays at its source offset."""
    described = [*headers, ("epoa.value.omitted", _size_and_digest(value))]
    if key is not None and len(key) > MAX_KEPT_KEY:
        described.append(("epoa.key.omitted", _size_and_digest(key)))
        key = None
    return key, b"", described


def _size_and_digest(data: bytes) -> bytes:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}".encode()


class DeadLetterUnacknowledged(KafkaTimeoutError):  # type: ignore[misc]
    """The broker did not take a dead letter in time: retried, as any broker outage."""


class DeadLetters:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        timeout_ms = int(ACK_TIMEOUT_S * 1000)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="epoa-case-events-dlq",
            acks="all",
            max_block_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )

    def publish(self, record: Any, decision: Decision) -> None:
        """Publish `record` (a kafka-python ConsumerRecord) and wait for the broker's ack."""
        value = record.value
        if record.key is None and value is None:
            value = b""  # Kafka refuses a message with neither; the headers still say why
        own = dead_letter_headers(record.topic, record.partition, record.offset, decision)
        try:
            try:
                self._send(record.key, value, [*original_headers(record), *own])
            except MessageSizeTooLargeError:  # refused by this client or by the broker
                self._send(*_described(record.key, value or b"", own))
        except KafkaTimeoutError as error:  # the client's words name no topic nor message
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            raise DeadLetterUnacknowledged(
                f"the broker did not acknowledge the dead letter of {where} on {self.topic}"
                f" within {ACK_TIMEOUT_S:.0f} s: {error}"
            ) from error

    def _send(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        self._producer.flush(timeout=ACK_TIMEOUT_S)
        future.get(timeout=ACK_TIMEOUT_S)

    def close(self) -> None:
        self._producer.close(timeout=ACK_TIMEOUT_S)
