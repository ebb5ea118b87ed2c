"""Keeps the read models up to date with the event log, batch by batch.

A batch's rows and the new positions commit in ONE transaction, so a crash before the
commit leaves both as they were and the batch is simply applied again: nothing twice,
nothing lost. Each read model has its own position, so one added later catches up from
zero without replaying the others. Every record is decoded by the registry's mapper,
which checks its seal: a tampered record stops the projection instead of being shown.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eventsourcing.persistence import Notification

from domain.registry import Registry
from projections import authority, cases, persons, poa_status
from projections.db import connect
from projections.read_model import ReadModel
from projections.writer_lock import writer_lock

log = logging.getLogger("epoa.projections")

READ_MODELS: tuple[ReadModel, ...] = (poa_status.MODEL, authority.MODEL, cases.MODEL)
MAX_DECODERS = 8
PARALLEL_FROM = 64
"""Fewer notifications than this are decoded in the calling thread: not worth a hand-off."""
TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking "
    "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)


class ProjectionLockedError(RuntimeError):
    """Another runner is the writer of this database's read models."""


@dataclass(frozen=True)
class Batch:
    """Decoded events, each with its notification id, in log order."""

    events: list[tuple[int, object]]


class ProjectionRunner:
    def __init__(
        self,
        registry: Registry,
        database_url: str,
        batch_size: int = 500,
        read_models: Sequence[ReadModel] = READ_MODELS,
    ) -> None:
        self.registry = registry
        self.batch_size = batch_size
        self.read_models = tuple(read_models)
        self.db = connect(database_url)
        self._lock = writer_lock(database_url)
        self._threads = min(os.cpu_count() or 1, MAX_DECODERS)
        self._decoders = ThreadPoolExecutor(self._threads, thread_name_prefix="epoa-decode")
        self._advanced = threading.Condition()
        self._wake = threading.Event()
        self._create()

    def _create(self) -> None:
        persons.create_table(self.db)
        self.db.create(TRACKING_DDL)
        for model in self.read_models:
            self.db.create(model.ddl)
        self.db.executemany(
            "INSERT INTO projection_tracking (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            [(model.name,) for model in self.read_models],
        )

    # -- positions -----------------------------------------------------------------------

    def positions(self, for_update: bool = False) -> dict[str, int]:
        names = [model.name for model in self.read_models]
        marks = ", ".join("?" * len(names))
        rows = self.db.fetch(
            f"SELECT name, position FROM projection_tracking WHERE name IN ({marks})"
            + (self.db.for_update if for_update else ""),
            names,
        )
        return {str(name): int(position) for name, position in rows}

    def position(self) -> int:
        """The notification id every read model has reached."""
        return min(self.positions().values())

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: wait until every read model has applied `position`."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.position() < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(min(remaining, 0.05))
        return True

    # -- applying --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply the next batch, if this runner is the writer; return how many it applied."""
        if not self._lock.acquire():
            return 0
        return self.apply(self.read_batch())

    def read_batch(self, after: int | None = None) -> Batch:
        """Read and decode outside the write transaction, which on SQLite blocks commands."""
        start = self.position() if after is None else after
        notifications = self.registry.recorder.select_notifications(
            start, self.batch_size, inclusive_of_start=False
        )
        return Batch(self._decode(notifications))

    def _decode(self, notifications: Sequence[Notification]) -> list[tuple[int, object]]:
        """Seal checks dominate and release the GIL: spread them over the decoder threads."""
        mapper = self.registry.mapper

        def decode(part: Sequence[Notification]) -> list[tuple[int, object]]:
            return [(n.id, mapper.to_domain_event(n)) for n in part]

        if len(notifications) < PARALLEL_FROM:
            return decode(notifications)
        size = -(-len(notifications) // self._threads)
        parts = [notifications[i : i + size] for i in range(0, len(notifications), size or 1)]
        return [item for part in self._decoders.map(decode, parts) for item in part]

    def apply(self, batch: Batch) -> int:
        """Apply what each read model has not applied yet, and move the positions, at once.

        The positions are read again, locked, inside the transaction: a batch another runner
        committed meanwhile is skipped, not applied twice.
        """
        if not batch.events:
            return 0
        last = batch.events[-1][0]
        with self.db.transaction():
            positions = self.positions(for_update=True)
            applied = sum(1 for number, _ in batch.events if number > min(positions.values()))
            for model in self.read_models:
                after = positions[model.name]
                model.apply(self.db, [event for number, event in batch.events if number > after])
            self.db.executemany(
                "UPDATE projection_tracking SET position = ? WHERE name = ? AND position < ?",
                [(last, name, last) for name in positions],
            )
        with self._advanced:
            self._advanced.notify_all()
        return applied

    def catch_up(self) -> int:
        """Apply batches until the end of the log; return how many events were applied."""
        total = 0
        while applied := self.run_once():
            total += applied
        return total

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Poll the log until `stop` is set (SQLite has no notifications; polling is cheap)."""
        while not stop.is_set():
            try:
                applied = self.catch_up()
            except Exception:
                log.exception("projection batch failed; retrying in %.1fs", poll_interval)
                applied = 0
            if not applied:
                self._idle(stop, poll_interval)

    def _idle(self, stop: threading.Event, poll_interval: float) -> None:
        """Sleep until the next poll, a `wait_for` nudge, or `stop`, whichever comes first."""
        deadline = time.monotonic() + poll_interval
        while not stop.is_set() and not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.wait(min(remaining, 0.05))
        self._wake.clear()

    def rebuild(self) -> int:
        """Drop the read models' tables and replay the whole log (persons are kept).

        Drop, create and reset commit together; the replay then goes batch by batch, so
        readers see the tables refill and `wait_for` stays truthful meanwhile.
        """
        if not self._lock.acquire():
            raise ProjectionLockedError("another runner is writing the read models")
        with self.db.transaction():
            for model in self.read_models:
                for table in model.tables:
                    self.db.execute(f"DROP TABLE IF EXISTS {table}")
                self.db.create(model.ddl)
            self.db.executemany(
                "UPDATE projection_tracking SET position = 0 WHERE name = ?",
                [(model.name,) for model in self.read_models],
            )
        return self.catch_up()

    def close(self) -> None:
        self._decoders.shutdown()
        self._lock.release()
        self.db.close()

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
