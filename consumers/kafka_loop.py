"""The Kafka side of the case-events consumer: a group member applying each message once.

Delivery is at least once; effects are exactly once because the store, not Kafka, holds
the position: each message's position is recorded in the transaction of its effects (see
`consumers.positions`) and a partition newly assigned resumes at the store's position.
Offsets are committed to Kafka as well, only so that the usual tools show the group's lag.

A message either succeeds, or is poison (dead-lettered, then its position moves on), or
fails for a reason that may pass (store or broker down): then the same message is retried
with capped exponential backoff and its partition does not move on. While waiting, the
member keeps polling with every partition paused, so it stays in its group however long
the outage lasts, and notices rebalances.

Run with `main(settings)` (`epoa consume`): SIGTERM or SIGINT finishes the message in hand,
then leaves the group.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from consumers.assignment import Partitions, broker_reachable
from consumers.case_events import CaseEventHandler, Decision, Outcome
from consumers.dead_letters import DeadLetters
from consumers.metrics import ConsumerMetrics
from consumers.positions import resume_offset, tracking_for
from domain.case_events import CaseEventVerifier
from domain.errors import StoreUnavailableError
from domain.registry import Registry
from epoa.settings import Settings

log = logging.getLogger("epoa.consumer")

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
POLL_TIMEOUT_MS = 500
#: Leaving a group before the first assignment leaves it stuck on some brokers (tansu):
#: on shutdown, a member that was never assigned waits this long for its assignment.
FIRST_ASSIGNMENT_GRACE_S = 20.0

#: Failures expected while the store or the broker is away. Anything else is retried as
#: well, since skipping a message would lose it, but logged with its traceback as a defect.
TRANSIENT = (StoreUnavailableError, OperationalError, InterfaceError, KafkaError)

T = TypeVar("T")
AfterCommit = Callable[[Decision], None]


class CaseEventConsumer:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        verifier: CaseEventVerifier,
        stop: threading.Event,
        metrics: ConsumerMetrics | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        if not settings.kafka_bootstrap:
            raise ValueError("EPOA_KAFKA_BOOTSTRAP is required to consume case events")
        self.topic = settings.case_events_topic
        self.handler = CaseEventHandler(registry, verifier)
        self.recorder = registry.process_recorder
        self.stop = stop
        self.metrics = metrics or ConsumerMetrics()
        self.after_commit = after_commit
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.consumer_group,
            client_id="epoa-case-events",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        )
        self.partitions = Partitions(self.consumer)
        self.dead_letters = DeadLetters(settings.kafka_bootstrap, settings.case_events_dlq_topic)
        self.next_offsets: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.broker_answered = False

    def run(self) -> None:
        self.consumer.subscribe([self.topic], listener=self.partitions)
        try:
            while not self.stop.is_set():
                batch = self._poll(POLL_TIMEOUT_MS)
                self._process_batch(batch)
                self._position_new_partitions()
                self._commit()
                self._report()
        finally:
            self._close()

    # -- messages --------------------------------------------------------------------------

    def _process_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for partition, records in batch.items():
            for record in records:
                if self.stop.is_set():
                    return
                if not self.partitions.usable(partition) or not self._process(partition, record):
                    break

    def _process(self, partition: TopicPartition, record: Any) -> bool:
        """Settle one message; False if it was left for later (stopping, partition moved)."""
        tracking = tracking_for(record.topic, record.partition, record.offset)
        dead_lettered = False

        def attempt() -> Decision:
            nonlocal dead_lettered
            decision = self.handler.handle(record.value, tracking)
            if decision.outcome is Outcome.POISON:
                if not dead_lettered:
                    self.dead_letters.publish(record, decision)
                    dead_lettered = True
                self.handler.settle(tracking)
            return decision

        decision = self._until_done(attempt, lambda: self.partitions.usable(partition), record)
        if decision is None:
            return False
        if self.after_commit is not None:
            self.after_commit(decision)
        self.next_offsets[partition] = record.offset + 1
        self._account(partition, record, decision)
        return True

    def _account(self, partition: TopicPartition, record: Any, decision: Decision) -> None:
        self.metrics.messages.labels(decision.outcome.value).inc()
        if decision.outcome is Outcome.POISON:
            self.metrics.dead_letters.labels(decision.reason or "").inc()
        highwater = self.consumer.highwater(partition)
        if highwater is not None:
            self.metrics.set_lag(record.topic, record.partition, highwater - record.offset - 1)
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

    # -- retrying ----------------------------------------------------------------------------

    def _until_done(
        self, work: Callable[[], T], wanted: Callable[[], bool], record: Any = None
    ) -> T | None:
        """`work()` once it succeeds; None if stopping or the work is no longer wanted."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                return work()
            except Exception as error:
                self.metrics.transient_failures.inc()
                where = f"{record.topic}[{record.partition}]@{record.offset}" if record else ""
                log.log(
                    logging.WARNING if isinstance(error, TRANSIENT) else logging.ERROR,
                    "attempt failed %s, retrying in %.1f s: %r",
                    where,
                    delay,
                    error,
                    exc_info=not isinstance(error, TRANSIENT),
                    extra={"event": "case_event_retry", "delay_s": delay},
                )
            self._idle(delay)
            if self.stop.is_set() or not wanted():
                return None
            delay = min(delay * 2, BACKOFF_CAP_S)

    def _idle(self, seconds: float) -> None:
        """Wait while polling with every partition paused: heartbeats and rebalances go on."""
        paused_here = self.partitions.owned - set(self.consumer.paused())
        if paused_here:
            self.consumer.pause(*paused_here)
        try:
            deadline = time.monotonic() + seconds
            while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
                unexpected = self._poll(max(1, int(min(left, 0.5) * 1000)))
                for partition, records in unexpected.items():
                    self.consumer.seek(partition, records[0].offset)
        finally:
            back = [p for p in paused_here if self.partitions.usable(p)]
            if back:
                self.consumer.resume(*back)

    # -- positions ---------------------------------------------------------------------------

    def _position_new_partitions(self) -> None:
        """Seek each newly assigned partition to the store's position, then fetch from it."""
        while self.partitions.unpositioned and not self.stop.is_set():
            self._position(min(self.partitions.unpositioned))

    def _position(self, partition: TopicPartition) -> None:
        offset = self._until_done(
            lambda: resume_offset(self.recorder, partition.topic, partition.partition),
            lambda: partition in self.partitions.unpositioned,
        )
        if offset is None:
            return
        self.consumer.seek(partition, offset)
        self.next_offsets[partition] = offset
        self.partitions.unpositioned.discard(partition)
        self.consumer.resume(partition)
        log.info(
            "partition %s[%d] resumes at offset %d",
            partition.topic,
            partition.partition,
            offset,
            extra={
                "event": "partition_positioned",
                "topic": partition.topic,
                "partition": partition.partition,
                "offset": offset,
            },
        )

    def _commit(self) -> None:
        """Tell Kafka how far the store got, for monitoring only."""
        offsets = {
            partition: OffsetAndMetadata(offset, "", -1)
            for partition, offset in self.next_offsets.items()
            if self.partitions.usable(partition) and self.committed.get(partition) != offset
        }
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError as error:
            log.info("offset commit skipped (monitoring only): %s", error)
            return
        self.committed.update({p: o.offset for p, o in offsets.items()})

    # -- the client ----------------------------------------------------------------------------

    def _poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        try:
            batch: dict[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as error:
            self.broker_answered = False
            self.metrics.transient_failures.inc()
            log.warning("poll failed, retrying: %s", error)
            time.sleep(BACKOFF_FIRST_S)
            return {}
        self.broker_answered = True
        return batch

    def _report(self) -> None:
        for partition in [p for p in self.next_offsets if p not in self.partitions.owned]:
            del self.next_offsets[partition]
            self.committed.pop(partition, None)
            self.metrics.forget_partition(partition.topic, partition.partition)
        for partition, offset in self.next_offsets.items():
            highwater = self.consumer.highwater(partition)
            if highwater is not None:
                self.metrics.set_lag(partition.topic, partition.partition, highwater - offset)
        ready = (
            bool(self.partitions.owned)
            and not self.partitions.unpositioned
            and self.broker_answered
            and broker_reachable(self.consumer)
        )
        self.metrics.ready.set(1 if ready else 0)

    def _close(self) -> None:
        self.metrics.ready.set(0)
        try:
            deadline = time.monotonic() + FIRST_ASSIGNMENT_GRACE_S
            while not self.partitions.ever_assigned and time.monotonic() < deadline:
                self._poll(200)  # newly assigned partitions are paused: nothing comes back
            self._commit()
        finally:
            self.consumer.close(autocommit=False)
            self.dead_letters.close()


def run_consumer(
    settings: Settings,
    registry: Registry,
    verifier: CaseEventVerifier,
    stop: threading.Event,
    metrics: ConsumerMetrics | None = None,
    *,
    after_commit: AfterCommit | None = None,
) -> None:
    """Consume until `stop` is set. `after_commit` runs once the store recorded a message."""
    CaseEventConsumer(settings, registry, verifier, stop, metrics, after_commit).run()


def main(
    settings: Settings,
    *,
    metrics_port: int | None = None,
    after_commit: AfterCommit | None = None,
) -> int:
    """`epoa consume`: run until SIGTERM or SIGINT; exit status 0 after a clean shutdown."""
    from epoa.wiring import SettingsError, build_registry, build_verifier

    if not settings.kafka_bootstrap:
        raise SettingsError("EPOA_KAFKA_BOOTSTRAP is required to consume case events")
    verifier = build_verifier(settings)
    registry = build_registry(settings)
    metrics = ConsumerMetrics()
    server = metrics.serve(metrics_port)[0] if metrics_port is not None else None
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        run_consumer(settings, registry, verifier, stop, metrics, after_commit=after_commit)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.shutdown()
        registry.close()
    log.info("case-events consumer stopped")
    return 0


if __name__ == "__main__":
    from epoa.logging_setup import configure

    configured = Settings()
    configure(configured.effective_log_format, configured.log_level)
    raise SystemExit(main(configured))
