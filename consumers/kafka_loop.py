"""The Kafka side of the case-events consumer: a group member applying each message once.

Delivery is at least once; effects are exactly once because the store, not Kafka, holds
the position: the messages one poll brought from a partition are applied in the transaction
that records the partition's new position (`consumers.settling`, `consumers.batch`), and a
partition newly assigned resumes at the store's position. Offsets are committed to Kafka as
well, only so that the usual tools show the group's lag. A partition whose log ends before
the store's position is another log than the one the store consumed (a topic created again):
it is named on `/readyz`, and held once the client goes back below the position, never read
as a run of messages already applied.

A failure that may pass (store or broker down) is retried with capped exponential backoff
and its partition does not move on (`consumers.backoff`). While waiting, the member keeps
polling with every partition paused, so it stays in its group however long the outage
lasts, and notices rebalances. A broker not there at start is waited for
(`consumers.connecting`).

Run with `main(settings)` (`epoa consume`): SIGTERM or SIGINT finishes the messages in hand,
then leaves the group. With a metrics port it also answers `/healthz` and `/readyz`
(`consumers.health`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from consumers.assignment import Partitions
from consumers.backoff import BACKOFF_FIRST_S, Backoff
from consumers.case_events import Decision
from consumers.connecting import Connecting, when_reachable
from consumers.dead_letters import DeadLetters
from consumers.health import store_check
from consumers.metrics import ConsumerMetrics
from consumers.positions import resume_offset
from consumers.readiness import Readiness
from consumers.settling import Settler
from domain.case_events import CaseEventVerifier
from domain.registry import Registry
from epoa.settings import Settings

log = logging.getLogger("epoa.consumer")

POLL_TIMEOUT_MS = 500
#: Offsets go to Kafka for monitoring only: a broker that does not answer holds up neither
#: the messages nor a shutdown for longer than this (kafka-python's default is 30 s).
COMMIT_TIMEOUT_MS = 5000
#: Leaving a group before the first assignment leaves it stuck on some brokers (tansu):
#: on shutdown, a member that was never assigned waits this long for its assignment.
FIRST_ASSIGNMENT_GRACE_S = 20.0

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
        try:
            self.dead_letters = DeadLetters(
                settings.kafka_bootstrap, settings.case_events_dlq_topic
            )
        except BaseException:
            self.consumer.close(autocommit=False)
            raise
        self.backoff = Backoff(stop, self._idle, self.metrics)
        self.settler = Settler(registry, verifier, self.dead_letters, self.backoff, self.metrics)
        self.next_offsets: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        #: Partitions whose log ends before the store's position, and why (`_check_ends`).
        self.below_end: dict[TopicPartition, str] = {}
        self.readiness = Readiness(self._failing)

    def run(self) -> None:
        self.consumer.subscribe([self.topic], listener=self.partitions)
        try:
            while not self.stop.is_set():
                batch = self._poll(POLL_TIMEOUT_MS)
                self._process_batch(batch)
                self._check_ends()
                self._position_new_partitions()
                self._commit()
                self._report()
        finally:
            self._close()

    # -- messages --------------------------------------------------------------------------

    def _process_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for partition, records in batch.items():
            if self.stop.is_set():
                return
            if not self.partitions.usable(partition):
                continue
            expected = self.next_offsets.get(partition)
            if expected is not None and records and records[0].offset < expected:
                # The client went back on its own: the position was past the log's end.
                self._hold(partition, records[0].offset, expected, "restarts at offset")
                continue
            wanted = partial(self.partitions.usable, partition)
            self.settler.settle(records, wanted, partial(self._done, partition))

    def _done(self, partition: TopicPartition, record: Any, decision: Decision) -> None:
        if self.after_commit is not None:
            self.after_commit(decision)
        self.next_offsets[partition] = record.offset + 1

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
                self._observe()
        finally:
            back = [p for p in paused_here if self.partitions.usable(p)]
            if back:
                self.consumer.resume(*back)

    # -- positions ---------------------------------------------------------------------------

    def _check_ends(self) -> None:
        """Name each partition whose log ends before the store's position. A partition never
        shrinks, so this is not the log the store consumed (a topic deleted and created again,
        another cluster's copy), or, for a moment, a new leader's high watermark still behind
        the old one's: named, not held. A client that goes back below the position (Kafka
        sends it to the earliest offset when it asked past the log's end) is held in
        `_process_batch`."""
        for partition, offset in self.next_offsets.items():
            usable = self.partitions.usable(partition)
            highwater = self.consumer.highwater(partition) if usable else None
            if highwater is None or highwater >= offset:
                self.below_end.pop(partition, None)
            elif partition not in self.below_end:
                why = self._not_the_log(partition, "ends at offset", highwater, offset)
                self.below_end[partition] = why
                log.error("partition %s", why, extra=self._where(partition, offset))

    def _hold(self, partition: TopicPartition, found: int, expected: int, what: str) -> None:
        """Consume the partition no more: its messages below `expected` would be taken for
        ones already applied. Left for an operator, never skipped."""
        why = self._not_the_log(partition, what, found, expected) + "; held"
        self.partitions.held[partition] = why
        self.consumer.pause(partition)
        log.error("partition %s", why, extra=self._where(partition, expected))

    @staticmethod
    def _not_the_log(partition: TopicPartition, what: str, found: int, expected: int) -> str:
        return (
            f"{partition.topic}[{partition.partition}] {what} {found}, before the store's "
            f"position {expected}: not the log the store consumed (created again, or "
            "another cluster's); its messages below the position are not applied"
        )

    @staticmethod
    def _where(partition: TopicPartition, offset: int) -> dict[str, object]:
        return {
            "event": "partition_not_the_log",
            "topic": partition.topic,
            "partition": partition.partition,
            "offset": offset,
        }

    def _position_new_partitions(self) -> None:
        """Seek each newly assigned partition to the store's position, then fetch from it."""
        while self.partitions.unpositioned and not self.stop.is_set():
            self._position(min(self.partitions.unpositioned))

    def _position(self, partition: TopicPartition) -> None:
        offset = self.backoff.until_done(
            lambda: resume_offset(self.recorder, partition.topic, partition.partition),
            lambda: partition in self.partitions.unpositioned,
            f"positioning {partition.topic}[{partition.partition}]",
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
            self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except KafkaError as error:
            log.info("offset commit skipped (monitoring only): %s", error)
            return
        self.committed.update({p: o.offset for p, o in offsets.items()})

    # -- the client ----------------------------------------------------------------------------

    def _poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        try:
            batch: dict[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as error:
            self.readiness.polled(answered=False)
            self.metrics.transient_failures.inc()
            log.warning("poll failed, retrying: %s", error)
            time.sleep(BACKOFF_FIRST_S)
            return {}
        self.readiness.polled(answered=True)
        return batch

    def _report(self) -> None:
        for partition in [p for p in self.next_offsets if p not in self.partitions.owned]:
            del self.next_offsets[partition]
            self.committed.pop(partition, None)
            self.below_end.pop(partition, None)
            self.metrics.forget_partition(partition.topic, partition.partition)
        for partition, offset in self.next_offsets.items():
            highwater = self.consumer.highwater(partition)
            unlike = partition in self.partitions.held or partition in self.below_end
            if highwater is not None and not unlike:
                self.metrics.set_lag(partition.topic, partition.partition, highwater - offset)
        self._observe()

    def _failing(self) -> str | None:
        """What keeps messages from being settled, for `/readyz`'s `settling`."""
        problems = [
            self.backoff.failing,
            *list(self.partitions.held.values()),
            *list(self.below_end.values()),
        ]
        return "; ".join(p for p in problems if p) or None

    def _observe(self) -> None:
        ready = self.readiness.observe(self.consumer, self.partitions)
        self.metrics.ready.set(1 if ready else 0)

    def _close(self) -> None:
        self.metrics.ready.set(0)
        try:
            deadline = time.monotonic() + FIRST_ASSIGNMENT_GRACE_S
            while not self.partitions.ever_assigned and time.monotonic() < deadline:
                self._poll(200)  # newly assigned partitions are paused: nothing comes back
            self._commit()
        finally:
            self.consumer.close(autocommit=False, timeout_ms=COMMIT_TIMEOUT_MS)
            self.dead_letters.close()
            self.settler.close()


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
    from epoa.clock_offset import ClockOffsetCollector, warn_if_off
    from epoa.storage import is_postgres
    from epoa.wiring import SettingsError, build_registry, build_verifier

    if not settings.kafka_bootstrap:
        raise SettingsError("EPOA_KAFKA_BOOTSTRAP is required to consume case events")
    verifier = build_verifier(settings)
    registry = build_registry(settings)
    metrics = ConsumerMetrics()
    if is_postgres(settings.database_url):
        warn_if_off(settings.database_url)
        metrics.registry.register(ClockOffsetCollector(settings.database_url))
    stop = threading.Event()
    members: list[CaseEventConsumer] = []
    store = store_check(settings.database_url, registry)
    connecting = Connecting()

    def checks() -> dict[str, str | None]:
        loop = members[0].readiness.problems() if members else {"broker": connecting.problem}
        return {"store": store(), **loop}

    server = None
    if metrics_port is not None:
        try:
            server = metrics.serve(metrics_port, checks=checks)[0]
        except OSError as error:  # the port taken, or not this machine's to listen on
            registry.close()
            raise SettingsError(
                f"EPOA_CONSUMER_METRICS_PORT={metrics_port}: cannot listen on "
                f"0.0.0.0:{metrics_port}: {error.strerror or error}"
            ) from None
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        member = when_reachable(
            lambda: CaseEventConsumer(settings, registry, verifier, stop, metrics, after_commit),
            settings.kafka_bootstrap,
            stop,
            connecting,
        )
        if member is not None:
            members.append(member)
            member.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.shutdown()
            server.server_close()
        registry.close()
    log.info("case-events consumer stopped")
    return 0


if __name__ == "__main__":
    from epoa.logging_setup import configure

    configured = Settings()
    configure(configured.effective_log_format, configured.log_level)
    raise SystemExit(main(configured, metrics_port=configured.consumer_metrics_port))
