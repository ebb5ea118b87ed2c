"""The library's mapper and event store, sealing every record on write and checking on read.

The seal lives inside the stored state, so the library's schema stays as it is. The event
store supplies each record's predecessor hash: from the records of the same save, from a
bounded cache of stream heads (rows never change, so a cached hash stays true), or by
reading the predecessor row.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from threading import Lock
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    EventStore,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Transcoder,
)

from domain.seal import GENESIS, OpenedRecord, SealError, SealKey, seal_state, verify_state
from domain.seal_runs import open_runs


class SealedMapper(Mapper[UUID]):
    def __init__(
        self,
        transcoder: Transcoder,
        seal_key: SealKey,
        public_keys: Mapping[bytes, Ed25519PublicKey],
    ) -> None:
        super().__init__(transcoder)
        self.seal_key = seal_key
        self.public_keys = dict(public_keys)
        self.public_keys.setdefault(seal_key.key_id, seal_key.public_key)

    def to_sealed(
        self, domain_event: DomainEventProtocol[UUID], predecessor: bytes
    ) -> tuple[StoredEvent, bytes]:
        plain = super().to_stored_event(domain_event)
        state, digest = seal_state(
            self.seal_key,
            plain.originator_id,
            plain.originator_version,
            plain.topic,
            predecessor,
            plain.state,
        )
        return StoredEvent(
            plain.originator_id, plain.originator_version, plain.topic, state
        ), digest

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        raise SealError("records are sealed by SealedEventStore.put, never without a predecessor")

    def open(self, stored_event: StoredEvent) -> tuple[StoredEvent, bytes, bytes]:
        """Verify the seal; return the unsealed record, its predecessor and its hash."""
        opened, digest = verify_state(
            self.public_keys,
            stored_event.originator_id,
            stored_event.originator_version,
            stored_event.topic,
            stored_event.state,
        )
        plain = StoredEvent(
            stored_event.originator_id,
            stored_event.originator_version,
            stored_event.topic,
            opened.body,
        )
        return plain, opened.predecessor, digest

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        plain, _, _ = self.open(stored_event)
        return super().to_domain_event(plain)

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent]
    ) -> list[DomainEventProtocol[UUID]]:
        """Decode a batch, checking one seal per run of a stream (`domain.seal_runs`)."""
        return self.decode_opened(stored_events, open_runs(self.public_keys, stored_events))

    def decode_opened(
        self,
        stored_events: Sequence[StoredEvent],
        opened: Sequence[tuple[OpenedRecord, bytes]],
    ) -> list[DomainEventProtocol[UUID]]:
        """Decode records already opened (`domain.seal_runs.open_all`) and vouched for."""
        return [
            super(SealedMapper, self).to_domain_event(
                StoredEvent(s.originator_id, s.originator_version, s.topic, parts.body)
            )
            for s, (parts, _) in zip(stored_events, opened, strict=True)
        ]


class _Heads:
    """A bounded cache of (stream -> (version, record hash)) of the newest known record."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self._items: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._maxsize = maxsize
        self._lock = Lock()

    def get(self, stream: str, version: int) -> bytes | None:
        with self._lock:
            item = self._items.get(stream)
        if item is not None and item[0] == version:
            return item[1]
        return None

    def put(self, stream: str, version: int, digest: bytes) -> None:
        with self._lock:
            current = self._items.get(stream)
            if current is None or current[0] < version:
                self._items[stream] = (version, digest)
                self._items.move_to_end(stream)
                if len(self._items) > self._maxsize:
                    self._items.popitem(last=False)


class SealedEventStore(EventStore[UUID]):
    mapper: SealedMapper

    def __init__(self, mapper: SealedMapper, recorder: Any) -> None:
        super().__init__(mapper, recorder)
        self.heads = _Heads()

    def put(
        self, domain_events: Sequence[DomainEventProtocol[UUID]], **kwargs: Any
    ) -> list[Recording[UUID]]:
        stored: list[StoredEvent] = []
        written: dict[str, tuple[int, bytes]] = {}
        for domain_event in domain_events:
            stream = str(domain_event.originator_id)
            version = domain_event.originator_version
            predecessor = self._predecessor(domain_event.originator_id, version, written)
            record, digest = self.mapper.to_sealed(domain_event, predecessor)
            written[stream] = (version, digest)
            stored.append(record)
        notification_ids = self.recorder.insert_events(stored, **kwargs)
        for stream, (version, digest) in written.items():
            self.heads.put(stream, version, digest)
        return self._recordings(domain_events, stored, notification_ids)

    @staticmethod
    def _recordings(
        domain_events: Sequence[DomainEventProtocol[UUID]],
        stored: list[StoredEvent],
        notification_ids: Sequence[int] | None,
    ) -> list[Recording[UUID]]:
        if not notification_ids:
            return []
        return [
            Recording(
                d,
                Notification(
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                    id=n,
                ),
            )
            for d, s, n in zip(domain_events, stored, notification_ids, strict=True)
        ]

    def _predecessor(
        self, originator_id: UUID, version: int, written: dict[str, tuple[int, bytes]]
    ) -> bytes:
        if version == 1:
            return GENESIS
        stream = str(originator_id)
        same_save = written.get(stream)
        if same_save is not None and same_save[0] == version - 1:
            return same_save[1]
        cached = self.heads.get(stream, version - 1)
        if cached is not None:
            return cached
        rows = list(self.recorder.select_events(originator_id, gt=version - 2, lte=version - 1))
        if not rows:
            raise SealError(f"{stream}: version {version - 1} is missing; cannot chain {version}")
        _, _, digest = self.mapper.open(rows[0])
        return digest

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEventProtocol[UUID]]:
        rows = self.recorder.select_events(
            originator_id=originator_id, gt=gt, lte=lte, desc=desc, limit=limit
        )
        from_start = gt is None and (not desc or limit is None)
        return self._checked(originator_id, rows, desc, from_start)

    def get_streams(
        self, originator_ids: Sequence[UUID]
    ) -> dict[UUID, list[DomainEventProtocol[UUID]]]:
        """The events of each stream that has any, checked as `get` checks them; where the
        recorder can (PostgreSQL), all read in one statement."""
        select = getattr(self.recorder, "select_streams", None)
        by_stream: dict[UUID, list[StoredEvent]] = {}
        if select is None:
            for originator_id in originator_ids:
                by_stream[originator_id] = list(self.recorder.select_events(originator_id))
        else:
            for row in select(originator_ids):
                by_stream.setdefault(UUID(str(row.originator_id)), []).append(row)
        return {
            originator_id: list(self._checked(originator_id, rows, False, from_start=True))
            for originator_id, rows in by_stream.items()
            if rows
        }

    def _checked(
        self, originator_id: UUID, rows: Sequence[StoredEvent], desc: bool, from_start: bool
    ) -> Iterator[DomainEventProtocol[UUID]]:
        """The rows as events, each seal and link checked. `from_start`: the rows were read
        from the stream's beginning, so the first must be version 1 (its row deleted, the
        second would otherwise pass for a first in a process with no head of the stream)."""
        stream = str(originator_id)
        first = min((row.originator_version for row in rows), default=1)
        if from_start and first != 1:
            raise SealError(f"{stream}: version 1 is missing; the stream starts at {first}")
        ordered = list(reversed(rows)) if desc else list(rows)
        previous: tuple[int, bytes] | None = None
        events = []
        opened = open_runs(self.mapper.public_keys, ordered)
        for row, (parts, digest) in zip(ordered, opened, strict=True):
            version, predecessor = row.originator_version, parts.predecessor
            plain = StoredEvent(row.originator_id, version, row.topic, parts.body)
            if previous is None:
                expected = GENESIS if version == 1 else self.heads.get(stream, version - 1)
            else:
                if version != previous[0] + 1:
                    raise SealError(f"{stream}: version {version} follows {previous[0]}")
                expected = previous[1]
            if expected is not None and predecessor != expected:
                raise SealError(f"{stream}: version {version} does not link to its predecessor")
            previous = (version, digest)
            events.append(Mapper.to_domain_event(self.mapper, plain))
        if previous is not None:
            self.heads.put(stream, previous[0], previous[1])
        return iter(reversed(events)) if desc else iter(events)
