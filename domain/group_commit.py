"""Group commit: concurrent commands share one PostgreSQL transaction.

The library's PostgreSQL recorder serialises every command behind `LOCK TABLE ... IN
EXCLUSIVE MODE`, so that notification ids are issued in commit order and a reader tailing
the log never passes a gap that a later commit fills. The lock stays; what changes is how
many commands one holder of the lock writes. Commands that arrive while transactions are
in flight queue up; when one ends, a waiting caller (there is no extra thread) takes the
queue (up to `MAX_BATCH` commands) and writes it in ONE transaction, with one `NOTIFY`
(`domain/group_commit_writes.py`). Three transactions are in flight at most: while one
commits, the next ones already wait for the lock in the database, and each writes the
moment it is free.

Each command is all or nothing and conflict-checked by the primary key, as before. Two
commands of one batch never write the same (stream, version) or the same tracking name:
the later one waits for the next batch, where it meets the earlier one's committed row as
it would have one command at a time. Positions stay in commit order under the lock.

The whole transaction failing: a lost connection (or a failed `COMMIT`) fails every command
of the batch with the library's `OperationalError`/`InterfaceError`, which `insert_events`
retries as the other calls are (`domain/postgres_recorder.py`); any other error of a batch
of several commands sends each command to be written alone, so that an error reaches only
the command that caused it.
"""

from __future__ import annotations

import _thread
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import strtobool

from domain.group_commit_writes import BatchWriter, Command, Key
from domain.postgres_recorder import RetryingProcessRecorder, StorePolicy

#: The environment key (`EPOA_GROUP_COMMIT` first, with the application's prefix).
GROUP_COMMIT = "GROUP_COMMIT"
#: Commands per transaction, at most.
MAX_BATCH = 32
#: Transactions in flight at once, at most: while one commits, the next ones wait for the
#: table lock in the database. With 8 writers on 2 cores, 3 did 2-8% more appends/s than
#: 2 (whose batches are larger) and 4 about 15% fewer (`bench/store.py`).
MAX_IN_FLIGHT = 3


def process_recorder(factory: InfrastructureFactory[Any]) -> ProcessRecorder:
    """The application's process recorder: grouped on PostgreSQL unless switched off; on
    PostgreSQL with the retries and reconnection bounds of the environment."""
    if not isinstance(factory, PostgresFactory):
        return factory.process_recorder()
    datastore = factory.datastore
    policy = StorePolicy.of(factory.env)
    policy.apply_to(datastore)
    events = (factory.env.name.lower() or "stored") + "_events"
    tracking = (factory.env.name.lower() or "notification") + "_tracking"
    grouped = datastore.single_row_tracking and not datastore.enable_db_functions
    kind = (
        GroupCommitProcessRecorder
        if grouped and group_commit_enabled(factory)
        else RetryingProcessRecorder
    )
    recorder = kind(
        datastore, events_table_name=events, tracking_table_name=tracking, policy=policy
    )
    if factory.env_create_table():
        recorder.create_table()
    return recorder


def group_commit_enabled(factory: InfrastructureFactory[Any]) -> bool:
    return bool(strtobool(factory.env.get(GROUP_COMMIT) or "yes"))


class _Signal:
    """Wakes one waiting thread; lighter than `threading.Event` (no condition, no lock
    made per wait). `set` is called under the recorder's mutex; a woken thread looks
    again, under the mutex, at what it waits for."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()
        self._set = False


class _Queued(Command):
    """A command in the queue: where it stands, and how its caller is woken."""

    QUEUED, TAKEN, DONE, ALONE = range(4)

    __slots__ = ("state", "wake")

    def __init__(
        self, events: Sequence[StoredEvent], tracking: Tracking | None, uuid_column: bool
    ) -> None:
        super().__init__(events, tracking, uuid_column)
        self.state = _Queued.QUEUED
        self.wake = _Signal()


class GroupCommitProcessRecorder(BatchWriter):
    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        policy: StorePolicy | None = None,
    ) -> None:
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
            policy=policy,
        )
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._mutex = threading.Lock()
        self._queue: deque[_Queued] = deque()
        self._writing = 0

    @property
    def queued(self) -> int:
        """Commands waiting for the transaction in flight to end."""
        with self._mutex:
            return len(self._queue)

    # -- the recorder's interface ----------------------------------------------------------

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:  # a position alone: no events, no table lock
            return super().insert_events(stored_events, **kwargs)
        tracking: Tracking | None = kwargs.get("tracking")
        return self.retried(lambda: self._insert_grouped(stored_events, tracking))

    # -- the queue -------------------------------------------------------------------------

    def _insert_grouped(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None
    ) -> list[int]:
        command = _Queued(stored_events, tracking, self.datastore.originator_id_type == "uuid")
        if len(set(command.keys)) < len(command.keys):  # as the database would refuse it
            raise IntegrityError("a command writes the same (stream, version) twice")
        with self._mutex:
            self._queue.append(command)
        while True:
            with self._mutex:
                if command.state in (_Queued.DONE, _Queued.ALONE):
                    break
                batch = None
                if command.state == _Queued.QUEUED and self._writing < self.max_in_flight:
                    self._writing += 1
                    batch = self._take()
            if batch is None:
                command.wake.wait()
            else:
                self._commit(batch)
        if command.state == _Queued.ALONE:
            command.state = _Queued.DONE
            self.write([command])
        return command.outcome()

    def _commit(self, batch: list[_Queued]) -> None:
        """Write a batch taken from the queue, then wake its callers and the oldest caller
        still queued (to take the next batch)."""
        try:
            self._write_batch(batch)
        finally:
            with self._mutex:
                self._writing -= 1
                for command in batch:
                    if command.state != _Queued.ALONE:
                        command.state = _Queued.DONE
                    command.wake.set()
                if self._queue:
                    self._queue[0].wake.set()

    def _take(self) -> list[_Queued]:
        """The oldest commands, but one that writes a (stream, version) or a tracking name
        that an earlier command of this batch writes stays queued for the next batch."""
        batch: list[_Queued] = []
        keys: set[Key] = set()
        names: set[str] = set()
        skipped: list[_Queued] = []
        while self._queue and len(batch) < self.max_batch:
            command = self._queue.popleft()
            name = command.tracking.application_name if command.tracking else None
            if name in names or not keys.isdisjoint(command.keys):
                skipped.append(command)
                continue
            command.state = _Queued.TAKEN
            batch.append(command)
            keys.update(command.keys)
            if name is not None:
                names.add(name)
        self._queue.extendleft(reversed(skipped))
        return batch

    def _write_batch(self, batch: list[_Queued]) -> None:
        try:
            self.write(batch)
        except (InterfaceError, OperationalError) as error:
            for command in batch:
                command.error = _copy(error)
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
            else:
                for command in batch:
                    command.state = _Queued.ALONE
        except BaseException:
            for command in batch:
                command.error = OperationalError("the group commit was interrupted")
            raise


def _copy(error: Exception) -> Exception:
    """The same error for another waiting caller (one exception object per thread)."""
    copied = type(error)(*error.args)
    copied.__cause__ = error
    return copied
