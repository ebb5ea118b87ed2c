"""The application base of the registry: the sealed event store and a leaner `save`.

The wiring: every record sealed on write and checked on read (`domain.sealed_store`), and
a process recorder that keeps a consumer's positions in the same transaction as its events
(grouped on PostgreSQL, `domain.group_commit`).

`save` does what the library's does, but collects an aggregate's pending events by its
class: the library asks two runtime-checkable Protocols of every object saved, and on
Python 3.11 each such `isinstance` walks the Protocol's attributes (about 6% of an
append's CPU, `bench/store.py`). Anything that is not one of the library's aggregates goes
the library's way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.application import Application, ProcessingEvent, project_aggregate
from eventsourcing.domain import BaseAggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import EventStore, Mapper, ProcessRecorder, Recording, Tracking

from domain.group_commit import process_recorder
from domain.seal import SealKey, public_keys_of
from domain.sealed_store import SealedEventStore, SealedMapper


class SealedApplication(Application[UUID]):
    seal_key: SealKey
    retired_keys: tuple[Ed25519PublicKey, ...] = ()

    def construct_mapper(self) -> Mapper[UUID]:
        return SealedMapper(
            self.construct_transcoder(), self.seal_key, public_keys_of(*self.retired_keys)
        )

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder: events and a consumer's positions in one transaction; on
        PostgreSQL, concurrent commands share transactions (`domain.group_commit`)."""
        return process_recorder(self.factory)

    def construct_event_store(self) -> EventStore[UUID]:
        assert isinstance(self.mapper, SealedMapper)
        return SealedEventStore(self.mapper, self.recorder)

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    @property
    def sealed_mapper(self) -> SealedMapper:
        assert isinstance(self.mapper, SealedMapper)
        return self.mapper

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        processing_event = collected(objs)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library's deprecated hook, as it calls it
        return recordings

    def get_streams(
        self, aggregate_ids: Sequence[UUID]
    ) -> dict[UUID, list[DomainEventProtocol[UUID]]]:
        """The events of each of these aggregates, read at once (one statement on
        PostgreSQL), seals checked: a case with hundreds of POAs is one read, not two each."""
        assert isinstance(self.events, SealedEventStore)
        return self.events.get_streams(aggregate_ids)

    def get_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Any]:
        """The current state of each of these aggregates that exists, replayed from its
        events, read at once (`get_streams`). Not from the repository's cache, and not put
        in it: for a caller that writes what it changes itself."""
        streams = self.get_streams(aggregate_ids)
        return {
            aggregate_id: project_aggregate(None, events)
            for aggregate_id, events in streams.items()
        }


def collected(
    objs: Iterable[MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None],
    tracking: Tracking | None = None,
) -> ProcessingEvent[UUID]:
    """The pending events of `objs` (aggregates, events, or None), as the library's
    `ProcessingEvent.collect_events` gathers them, with an aggregate known by its class."""
    processing_event: ProcessingEvent[UUID] = ProcessingEvent(tracking)
    for obj in objs:
        if isinstance(obj, BaseAggregate):
            processing_event.events.extend(obj.collect_events())
            processing_event.aggregates[obj.id] = obj
        else:
            processing_event.collect_events(obj)
    return processing_event
