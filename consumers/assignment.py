"""Which partitions this group member owns, and which still wait for their store position."""

from __future__ import annotations

from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition


class Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The partitions this member owns, and those still waiting for their store position.

    A partition is paused as soon as it is assigned and positioned by the loop: this
    callback runs on kafka-python's IO thread, where a slow or unreachable store would hold
    up the heartbeats.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.owned: set[TopicPartition] = set()
        self.unpositioned: set[TopicPartition] = set()
        #: Partitions not consumed, and why: their offsets are not those the store saw.
        self.held: dict[TopicPartition, str] = {}
        self.ever_assigned = False

    def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = set(assigned)
        if partitions:
            self.consumer.pause(*partitions)
        self.owned |= partitions
        self.unpositioned |= partitions
        self.ever_assigned = True

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owned -= set(revoked)
        self.unpositioned -= set(revoked)
        for partition in revoked:
            self.held.pop(partition, None)

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)

    def usable(self, partition: TopicPartition) -> bool:
        return (
            partition in self.owned
            and partition not in self.unpositioned
            and partition not in self.held
        )


def broker_reachable(consumer: KafkaConsumer) -> bool:
    """Whether the group coordinator is known and connected (kafka-python has no public
    call for this; when the attribute is missing the answer rests on the last poll)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return True
    return not coordinator.coordinator_unknown()


def group_stable(consumer: KafkaConsumer) -> bool:
    """Whether the member has joined its group and is not rebalancing (kafka-python's
    coordinator state; when the attribute is missing, the assignment callbacks decide)."""
    coordinator = getattr(consumer, "_coordinator", None)
    stable = getattr(coordinator, "stable", None)
    return True if stable is None else bool(stable())
