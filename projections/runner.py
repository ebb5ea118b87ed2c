"""Keeps the read models up to date with the event log, batch by batch.

A batch's rows and the new positions commit in ONE transaction, so a crash before the
commit leaves both as they were and the batch is simply applied again: nothing twice,
nothing lost. Each read model has its own position, so one added later catches up from
zero without replaying the others. Batches are read, their seals checked and their records
decoded by `projections.batch_reader`, outside the write transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from domain.registry import Registry
from projections import authority, cases, persons, poa_status
from projections.appended import Appended
from projections.batch_reader import Batch, BatchReader
from projections.db import Database, connect
from projections.projected import channel_of, tell
from projections.read_model import ReadModel
from projections.rebuild import Shadow
from projections.writer_lock import WriterLock, writer_lock

log = logging.getLogger("epoa.projections")

READ_MODELS: tuple[ReadModel, ...] = (poa_status.MODEL, authority.MODEL, cases.MODEL)
TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking "
    "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)


LISTENING_POLL = 1.0
"""Seconds between the polls of a runner that listens for appends (PostgreSQL): each poll
is two queries, and in `epoa serve` their interpreter time is taken from the requests
(polling every 50 ms raised the p99 of authority checks by about a fifth)."""


def create_read_models(
    db: Database, read_models: Sequence[ReadModel] = READ_MODELS, with_persons: bool = True
) -> None:
    """The read models' tables, those an earlier version made brought to this shape first
    (`ReadModelShapeError` if one cannot be), and their positions; idempotent, and all or
    nothing. On PostgreSQL one process at a time: processes started together on one schema
    (API replicas, the projector) would otherwise race to make the same types and tables,
    and some would fail at start (a unique violation on `pg_type`). A transaction-level
    advisory lock named after the schema keeps them apart."""
    with db.transaction():
        if db.dialect == "postgresql":
            db.execute(
                "SELECT pg_advisory_xact_lock(hashtext('epoa-read-models:' || current_schema()))"
            )
        if with_persons:
            persons.create_table(db)
        db.create(TRACKING_DDL)
        for model in read_models:
            if model.upgrade is not None:
                model.upgrade(db)
            db.create(model.ddl)
        db.executemany(
            "INSERT INTO projection_tracking (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            [(model.name,) for model in read_models],
        )


class ProjectionLockedError(RuntimeError):
    """Another runner is the writer of this database's read models."""


class ProjectionRunner:
    def __init__(
        self,
        registry: Registry,
        database_url: str,
        batch_size: int = 500,
        read_models: Sequence[ReadModel] = READ_MODELS,
        tables: Database | None = None,
    ) -> None:
        """`tables`: where the read models are written, if not beside the events (a
        rebuild's new tables, which only their builder writes)."""
        self.registry = registry
        self.batch_size = batch_size
        self.read_models = tuple(read_models)
        self._database_url = database_url
        self._owns_db = tables is None
        self.db = connect(database_url) if tables is None else tables
        self._lock = writer_lock(database_url) if tables is None else WriterLock()
        channel = getattr(registry.recorder, "channel_name", None) if tables is None else None
        self._appended = Appended(database_url, channel)
        #: Where the live tables' positions are told (`projections.projected`).
        self._projected = channel_of(database_url) if tables is None else None
        self._advanced = threading.Condition()
        self._reached = 0
        """The highest position every read model was seen at (committed)."""
        self._last_read = 0
        self._start: int | None = None
        """Where the next batch begins: the position this runner's last batch left every
        read model at, while it stays the writer; None: read the positions first."""
        self._wake = threading.Event()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="epoa-projections-read")
        self._batches = BatchReader(registry, database_url, batch_size, self.read_models)
        self._create()

    def _create(self) -> None:
        create_read_models(self.db, self.read_models, with_persons=self._owns_db)

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
        found = min(self.positions().values())
        self._seen(found)
        return found

    def reached(self, position: int, wait: float) -> bool:
        """Whether every read model has applied `position`, as far as this runner has seen
        (its own commits, the positions it read) while it is the writer, waiting up to
        `wait` for it. No query: the many commands that wait at once do not queue for the
        runner's connection. A runner that is not the writer knows nothing: False."""
        deadline = time.monotonic() + wait
        self._wake.set()
        with self._advanced:
            while not (self._lock.held and self._reached >= position):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._advanced.wait(remaining)
        return True

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: wait until every read model has applied `position`, whichever
        runner applies it (the table is read every 50 ms while this one has not)."""
        deadline = time.monotonic() + timeout
        while not self.reached(position, min(0.05, max(0.0, deadline - time.monotonic()))):
            if self.position() >= position:
                return True
            if time.monotonic() >= deadline:
                return False
        return True

    def _seen(self, position: int) -> None:
        with self._advanced:
            if position > self._reached:
                self._reached = position
                self._advanced.notify_all()

    # -- applying --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply the next batch, if this runner is the writer; return how many it applied."""
        if not self._writing():
            return 0
        batch = self.read_batch()
        self._last_read = len(batch.read)
        return self.apply(batch)

    def _writing(self) -> bool:
        """Whether this runner is the writer, taking the lock if it is free."""
        was_writer = self._lock.held
        if not self._lock.acquire():
            return False
        if not was_writer:  # another writer may have rebuilt the tables meanwhile
            self._start = None
            with self._advanced:
                self._reached = 0
        return True

    def read_batch(self, after: int | None = None) -> Batch:
        """Read and decode outside the write transaction, which on SQLite blocks commands.
        By default the batch after the positions this runner's last batch left (read from
        the table if it does not know them): `apply` checks them again, locked."""
        start = after if after is not None else self._start
        return self._batches.read(self.position() if start is None else start)

    def apply(self, batch: Batch) -> int:
        """Apply what each read model has not applied yet, and move the positions, at once.

        The positions are read again, locked, inside the transaction: a batch another runner
        committed meanwhile is skipped, not applied twice; a batch read after a position the
        tables are no longer at (another runner rebuilt them meanwhile) is not applied at
        all (0), as it would leave out the records before it.
        """
        numbers = batch.read or tuple(number for number, _ in batch.events)
        if not numbers:
            return 0
        last = numbers[-1]
        began = time.monotonic()
        self._start = None
        with self.db.transaction():
            positions = self.positions(for_update=True)
            if min(positions.values()) < batch.after:
                return 0
            applied = sum(1 for number in numbers if number > min(positions.values()))
            for model in self.read_models:
                after = positions[model.name]
                model.apply(self.db, [(n, event) for n, event in batch.events if n > after])
            marks = ", ".join("?" * len(positions))
            self.db.execute(
                f"UPDATE projection_tracking SET position = ? WHERE name IN ({marks}) "
                "AND position < ?",
                (last, *positions, last),
            )
            if self._projected is not None:
                tell(self.db, self._projected, last)  # every read model is at `last` or past it
        self._start = last
        self.committed(last, began)
        return applied

    def committed(self, position: int, began: float) -> None:
        """Every read model is at `position`, committed by a transaction that began at
        `began` (`time.monotonic()`): release the commands waiting for it."""
        self._seen(position)

    def catch_up(self) -> int:
        """Apply batches until the end of the log; return how many events were applied.
        A batch shorter than `batch_size` reached the end: no read is spent to learn it.
        While a full batch is applied the next one is read and decoded beside it: the seal
        checks and the database's replies leave the interpreter to each other. `apply`
        reads the positions again, so a batch read ahead is never applied twice."""
        total, self._last_read = 0, 0
        ahead: Future[Batch] | None = None
        try:
            while self._writing():
                known = ahead is None and self._start is not None
                batch = ahead.result() if ahead is not None else self.read_batch()
                self._last_read = len(batch.read)
                ahead = None
                if self._last_read >= self.batch_size:
                    ahead = self._reader.submit(self.read_batch, batch.read[-1])
                applied = self.apply(batch)
                total += applied
                if not applied and known and self._start is None:
                    continue  # the positions were not where it left them: read them
                if not applied or self._last_read < self.batch_size:
                    break
        finally:
            if ahead is not None:
                ahead.cancel()
        return total

    def run_forever(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Apply new events until `stop` is set: woken by each append on PostgreSQL
        (`projections.appended`), else polling (cheap)."""
        while not stop.is_set():
            try:
                self.catch_up()
            except Exception:
                log.exception("projection batch failed; retrying in %.1fs", poll_interval)
                self._last_read = 0
            if self._last_read < self.batch_size:
                self._idle(stop, poll_interval)

    def _idle(self, stop: threading.Event, poll_interval: float) -> None:
        """Sleep until the next poll, an append, a `wait_for` nudge, or `stop`, whichever
        comes first. A runner told of every append polls only as a safety net."""
        if self._appended.listening:
            poll_interval = max(poll_interval, LISTENING_POLL)
        deadline = time.monotonic() + poll_interval
        while not stop.is_set() and not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._start = None  # the poll reads the positions, whoever moved them
                break
            if self._appended.wait(min(remaining, 0.05), self._wake):
                break
        self._wake.clear()

    def rebuild(self) -> int:
        """Replay the whole log into new tables (`projections.rebuild`) while the live ones
        keep answering and following the log, then put the new ones in their place in one
        transaction; return how many events the new tables were built from. Persons are
        kept. A rebuild that fails leaves the live tables as they were."""
        if not self._lock.acquire():
            raise ProjectionLockedError("another runner is writing the read models")
        shadow = Shadow(self._database_url, self.read_models)
        try:
            builder = ProjectionRunner(
                self.registry, self._database_url, self.batch_size, self.read_models, shadow.db
            )
            try:
                total = self._build_beside_the_live_tables(builder)
                position = builder.position()
                with shadow.attached(self.db):
                    shadow.replace(self.db, position)
            finally:
                builder.close()
        finally:
            shadow.close()
        self._start = None
        self._seen(position)
        self.catch_up()
        return total

    def _build_beside_the_live_tables(self, builder: ProjectionRunner) -> int:
        """The new tables caught up with the log, and the live ones no further on (they
        follow it in a thread of their own until the new ones are nearly there)."""
        stop = threading.Event()
        follower = threading.Thread(
            target=self.run_forever, args=(stop,), name="epoa-projections-live", daemon=True
        )
        follower.start()
        try:
            total = builder.catch_up()
        finally:
            stop.set()
            follower.join()
        self.catch_up()
        return total + builder.catch_up()

    def close(self) -> None:
        self._reader.shutdown(cancel_futures=True)
        self._appended.close()
        self._lock.release()
        self._batches.close()
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
