"""Reads a batch of the log and decodes the records the read models use.

Every record read is hashed; the ones a read model uses are decoded (records of accepted
documents, their idempotency keys, are not) once their seals are checked (one signature per
run of a stream in the batch, `domain.seal_runs`) or a signed head of the audit log vouches
for the batch (`projections.vouching`): a tampered record stops the projection instead of
being shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic

from domain.registry import Registry
from domain.seal import SealError
from domain.seal_runs import check_runs, open_all
from projections.read_model import ReadModel
from projections.vouching import Vouching


@dataclass(frozen=True)
class Batch:
    """The decoded events a batch of the log holds for the read models, each with its
    notification id, in log order."""

    events: list[tuple[int, object]]
    read: tuple[int, ...] = ()
    """The notification ids of every record of the batch, in order."""
    after: int = 0
    """The position it was read after: every record between it and the first is in it."""


class BatchReader:
    def __init__(
        self,
        registry: Registry,
        database_url: str,
        batch_size: int,
        read_models: Sequence[ReadModel],
    ) -> None:
        self.registry = registry
        self.batch_size = batch_size
        self._wanted = _wanted(read_models)
        self._vouching = Vouching(database_url, registry.sealed_mapper.public_keys)

    def read(self, after: int) -> Batch:
        """The batch of up to `batch_size` records after position `after`."""
        notifications = self.registry.recorder.select_notifications(
            after, self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return Batch([], after=after)
        events = self._decode(notifications, after)
        return Batch(events, tuple(n.id for n in notifications), after=after)

    def close(self) -> None:
        self._vouching.close()

    def _decode(
        self, notifications: Sequence[Notification], after: int
    ) -> list[tuple[int, object]]:
        """The records the read models use, decoded: without their own seal checks where a
        signed tree head vouches for the batch (`projections.vouching`), else with them."""
        mapper = self.registry.sealed_mapper
        used = [
            index
            for index, n in enumerate(notifications)
            if self._wanted is None or _is(n.topic, self._wanted)
        ]
        records = [notifications[i] for i in used]
        try:
            opened = open_all(notifications)
        except SealError:  # a record with no seal: no head can cover it, nor what follows
            self._vouching.forget()
            events = mapper.to_domain_events(records)
        else:
            ours = [opened[i] for i in used]
            hashes = [digest for _, digest in opened]
            if not self._vouching.covers(after, notifications[-1].id, hashes):
                check_runs(mapper.public_keys, records, ours)
            events = mapper.decode_opened(records, ours)
        return [(notifications[i].id, e) for i, e in zip(used, events, strict=True)]


def _wanted(read_models: Sequence[ReadModel]) -> tuple[type, ...] | None:
    """The event classes some read model uses; None if one of them takes every event."""
    if any(not model.events for model in read_models):
        return None
    return tuple({cls for model in read_models for cls in model.events})


def _is(topic: str, wanted: tuple[type, ...]) -> bool:
    found = resolve_topic(topic)
    return isinstance(found, type) and issubclass(found, wanted)
