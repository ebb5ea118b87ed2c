"""Settling the messages one poll brought from one partition: each applied, found to be a
duplicate, or dead-lettered, exactly once, in partition order.

All of them at once first: poison messages go to the dead-letter topic, then the events of
the good ones and the partition's new position are written in ONE transaction
(`consumers.batch`). A failure that may pass (store or broker away) retries the whole batch
with backoff; any other failure, or a batch that keeps conflicting with concurrent commands,
settles the same messages one by one, each in its own transaction, so that what fails
holds up only itself and the messages after it, never loses or repeats those before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

from eventsourcing.persistence import IntegrityError

from consumers.backoff import TRANSIENT, Backoff
from consumers.batch import CaseEventBatch
from consumers.case_events import REFUSALS, CaseEventHandler, Decision, Outcome
from consumers.dead_letters import DeadLetters
from consumers.metrics import ConsumerMetrics
from consumers.positions import resume_offset, tracking_for
from domain.case_events import CaseEventVerifier
from domain.outcomes import CaseEvent
from domain.registry import Registry

log = logging.getLogger("epoa.consumer")

#: Immediate attempts of a batch that conflicts with concurrent commands on its cases.
CONFLICT_ATTEMPTS = 3
#: Cases (and POAs) read at once: each read is a round trip to the store.
CONCURRENT_READS = 4

Done = Callable[[Any, Decision], None]


class _Fallback(Enum):
    ONE_BY_ONE = "one by one"


class Settler:
    def __init__(
        self,
        registry: Registry,
        verifier: CaseEventVerifier,
        dead_letters: DeadLetters,
        backoff: Backoff,
        metrics: ConsumerMetrics,
        readers: int = CONCURRENT_READS,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.readers = ThreadPoolExecutor(readers, thread_name_prefix="epoa-consumer-read")
        self.handler = CaseEventHandler(registry, verifier)
        self.dead_letters = dead_letters
        self.backoff = backoff

    def settle(self, records: Sequence[Any], wanted: Callable[[], bool], done: Done) -> None:
        """Settle `records` (one partition, in offset order); each is counted, logged and
        given to `done` once the store holds it. Returns early, leaving the rest, if
        stopping or no longer `wanted`."""
        if not records:
            return
        work = _Work(records)
        first, last = records[0], records[-1]
        where = f"{first.topic}[{first.partition}]@{first.offset}..{last.offset}"
        settled = self.backoff.until_done(lambda: self._batch(work), wanted, where)
        if settled is _Fallback.ONE_BY_ONE:
            for record in records:
                decision = self._one(work, record, wanted)
                if decision is None:
                    return
                self._account(record, decision)
                done(record, decision)
        elif settled is not None:
            for record, decision in zip(records, settled, strict=True):
                self._account(record, decision)
                done(record, decision)

    def _account(self, record: Any, decision: Decision) -> None:
        self.metrics.messages.labels(decision.outcome.value).inc()
        if decision.outcome is Outcome.POISON:
            self.metrics.dead_letters.labels(decision.reason or "").inc()
        level = logging.WARNING if decision.outcome is Outcome.POISON else logging.INFO
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        log.log(
            level,
            "case event %s: %s[%d]@%d case=%s reason=%s",
            decision.outcome.value,
            record.topic,
            record.partition,
            record.offset,
            decision.case_number,
            decision.reason,
            extra={"event": "case_event", **where, **decision.log_fields()},
        )

    def close(self) -> None:
        self.readers.shutdown(wait=True)

    # -- all at once ---------------------------------------------------------------------------

    def _batch(self, work: _Work) -> list[Decision] | _Fallback:
        for _ in range(CONFLICT_ATTEMPTS):
            try:
                return self._attempt(work)
            except TRANSIENT:
                raise
            except IntegrityError:
                continue  # a concurrent command took a version, or the position moved
            except REFUSALS as error:  # one event breaks a rule: it goes to the DLQ alone
                log.info("a batch holds an event the store refuses (%s); one by one", error)
                return _Fallback.ONE_BY_ONE
            except Exception:
                log.exception("a batch failed; settling its messages one by one")
                return _Fallback.ONE_BY_ONE
        return _Fallback.ONE_BY_ONE

    def _attempt(self, work: _Work) -> list[Decision]:
        first = work.records[0]
        stored = resume_offset(self.registry.process_recorder, first.topic, first.partition)
        decisions: list[Decision | None] = []
        good: list[tuple[int, CaseEvent]] = []
        batch = CaseEventBatch(self.registry, self.readers)
        batch.prefetch(_keys(r for r in work.records if r.offset >= stored))
        for record in work.records:
            if record.offset < stored:
                decisions.append(Decision(Outcome.DUPLICATE))
                continue
            parsed = work.parsed(record, self.handler)
            if isinstance(parsed, Decision):
                self._dead_letter(work, record, parsed)
                decisions.append(parsed)
            else:
                good.append((len(decisions), parsed))
                decisions.append(None)
        last = work.records[-1]
        if last.offset >= stored:
            applied = batch.apply([case_event for _, case_event in good])
            for (index, _), decision in zip(good, applied, strict=True):
                decisions[index] = decision
            batch.commit(tracking_for(last.topic, last.partition, last.offset))
        return [decision for decision in decisions if decision is not None]

    # -- one by one ----------------------------------------------------------------------------

    def _one(self, work: _Work, record: Any, wanted: Callable[[], bool]) -> Decision | None:
        tracking = tracking_for(record.topic, record.partition, record.offset)

        def attempt() -> Decision:
            decision = self.handler.handle(record.value, tracking, _headers(record))
            if decision.outcome is Outcome.POISON:
                self._dead_letter(work, record, decision)
                self.handler.settle(tracking)
            return decision

        where = f"{record.topic}[{record.partition}]@{record.offset}"
        return self.backoff.until_done(attempt, wanted, where)

    def _dead_letter(self, work: _Work, record: Any, decision: Decision) -> None:
        """Publish once per settling, however often the store part is retried; a crash
        before the position is recorded may publish it again, never lose it."""
        if record.offset not in work.dead_lettered:
            self.dead_letters.publish(record, decision)
            work.dead_lettered.add(record.offset)


def _keys(records: Iterable[Any]) -> Iterator[str]:
    """The case numbers the messages are keyed by (the contract's Kafka key), as far as
    they are text: a hint of the cases to read, the verified event has the last word."""
    for record in records:
        try:
            key = record.key.decode() if isinstance(record.key, bytes) else None
        except UnicodeDecodeError:
            key = None
        if key:
            yield key


def _headers(record: Any) -> list[tuple[str, bytes | None]]:
    return list(getattr(record, "headers", None) or [])


class _Work:
    """The records being settled, what parsing made of each, and which were dead-lettered."""

    def __init__(self, records: Sequence[Any]) -> None:
        self.records = records
        self.dead_lettered: set[int] = set()
        self._parsed: dict[int, CaseEvent | Decision] = {}

    def parsed(self, record: Any, handler: CaseEventHandler) -> CaseEvent | Decision:
        """Verified once: checking a signature costs more than the rest of a message."""
        found = self._parsed.get(record.offset)
        if found is None:
            found = self._parsed[record.offset] = handler.parse(record.value, _headers(record))
        return found
