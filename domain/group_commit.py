"""Group commit: concurrent commands share one PostgreSQL transaction.

The library's PostgreSQL recorder serialises every command behind `LOCK TABLE ... IN
EXCLUSIVE MODE`, so that notification ids are issued in commit order and a reader tailing
the log never passes a gap that a later commit fills. The lock stays; what changes is how
many commands one holder of the lock writes. Commands that arrive while transactions are
in flight queue up; when one ends, a waiting caller (there is no extra thread) takes the
queue (up to `MAX_BATCH` commands) and writes it in ONE transaction, with one `NOTIFY`.
Two transactions are in flight at most: while one commits, the next already waits for
the lock in the database and writes the moment it is free. A batch is one simple query
(values bound by the recorder), so one round trip:

- no command of the batch has a tracking position: `BEGIN`, the library's `lock_timeout`
  and table lock, `NOTIFY`, one `INSERT` of every event of every command, `COMMIT`. A
  unique violation (some command's version was taken) aborts all of it, and the batch is
  written as below;
- otherwise: the same, but the `INSERT` is `ON CONFLICT (originator_id,
  originator_version) DO NOTHING`, each tracking position is the library's own upsert
  (no row back unless the tracking id increases), and the outcome is read before
  `COMMIT` (a second round trip). A command any of whose events was not inserted, or
  whose position did not move, fails with the library's `IntegrityError`; if any failed,
  the transaction is rolled back and the others are written again in a new one.

Each command is all or nothing and conflict-checked by the primary key, as before. Two
commands of one batch never write the same (stream, version) or the same tracking name:
the later one waits for the next batch, where it meets the earlier one's committed row as
it would have one command at a time. Positions stay in commit order under the lock.

The whole transaction failing: a lost connection (or a failed `COMMIT`) fails every command
of the batch with the library's `OperationalError`/`InterfaceError`, which `insert_events`
retries as the library does; any other error of a batch of several commands sends each
command to be written alone, so that an error reaches only the command that caused it.
"""

from __future__ import annotations

import _thread
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder
from eventsourcing.utils import strtobool
from psycopg import ClientCursor, Connection, Cursor
from psycopg.abc import Query
from psycopg.errors import UniqueViolation
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Identifier, Literal

#: The environment key (`EPOA_GROUP_COMMIT` first, with the application's prefix).
GROUP_COMMIT = "GROUP_COMMIT"
#: Commands per transaction, at most.
MAX_BATCH = 32
#: Transactions in flight at once, at most: while one commits, the next waits for the
#: table lock in the database, and writes the moment it is free.
MAX_IN_FLIGHT = 2
#: As the library's `@retry` on `insert_events`: attempts, and seconds between them.
RETRY_ATTEMPTS = 10
RETRY_WAIT = 0.2

BEGIN, COMMIT = b"BEGIN", b"COMMIT"
RETURNING = b" RETURNING originator_id::text, originator_version, notification_id"
ON_CONFLICT_DO_NOTHING = b" ON CONFLICT (originator_id, originator_version) DO NOTHING"
IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)

Key = tuple[str, int]
Outcomes = dict["_Command", list[int] | Exception]


def process_recorder(factory: InfrastructureFactory[Any]) -> ProcessRecorder:
    """The application's process recorder: grouped on PostgreSQL unless switched off."""
    if isinstance(factory, PostgresFactory) and group_commit_enabled(factory):
        datastore = factory.datastore
        if datastore.single_row_tracking and not datastore.enable_db_functions:
            recorder = GroupCommitProcessRecorder(
                datastore,
                events_table_name=(factory.env.name.lower() or "stored") + "_events",
                tracking_table_name=(factory.env.name.lower() or "notification") + "_tracking",
            )
            if factory.env_create_table():
                recorder.create_table()
            return recorder
    return factory.process_recorder()


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


class _Command:
    """One call of `insert_events`: its events and position, and what became of them."""

    QUEUED, TAKEN, DONE, ALONE = range(4)

    __slots__ = ("error", "events", "ids", "keys", "state", "tracking", "wake")

    def __init__(
        self, events: Sequence[StoredEvent], tracking: Tracking | None, uuid_column: bool
    ) -> None:
        self.events = events
        self.tracking = tracking
        self.keys: list[Key] = [
            (_stream(e.originator_id, uuid_column), e.originator_version) for e in events
        ]
        self.ids: list[int] = []
        self.error: Exception | None = None
        self.state = _Command.QUEUED
        self.wake = _Signal()

    def outcome(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.ids


class GroupCommitProcessRecorder(PostgresProcessRecorder):
    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._mutex = threading.Lock()
        self._queue: deque[_Command] = deque()
        self._writing = 0
        # Composed once, as bytes: every batch is one simple query of them.
        #: The library's table lock (and its `lock_timeout`), and one `NOTIFY`.
        self.lock_and_notify_statements = [
            *(_bytes(statement) for statement in self.lock_table_statements),
            _bytes(SQL("NOTIFY {0}").format(Identifier(self.channel_name))),
        ]
        self.insert_statement = _bytes(
            SQL(
                "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) VALUES "
            ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        )
        self._topic_literals: dict[str, bytes] = {}

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
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        tracking: Tracking | None = kwargs.get("tracking")
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                return self._insert_grouped(stored_events, tracking)
            except (InterfaceError, OperationalError):
                if attempt == RETRY_ATTEMPTS:
                    raise
                time.sleep(RETRY_WAIT * (1 + 0.1 * (random.random() - 0.5)))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the queue -------------------------------------------------------------------------

    def _insert_grouped(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None
    ) -> list[int]:
        command = _Command(stored_events, tracking, self.datastore.originator_id_type == "uuid")
        if len(set(command.keys)) < len(command.keys):  # as the database would refuse it
            raise IntegrityError("a command writes the same (stream, version) twice")
        with self._mutex:
            self._queue.append(command)
        while True:
            with self._mutex:
                if command.state in (_Command.DONE, _Command.ALONE):
                    break
                batch = None
                if command.state == _Command.QUEUED and self._writing < self.max_in_flight:
                    self._writing += 1
                    batch = self._take()
            if batch is None:
                command.wake.wait()
            else:
                self._commit(batch)
        if command.state == _Command.ALONE:
            command.state = _Command.DONE
            self._write([command])
        return command.outcome()

    def _commit(self, batch: list[_Command]) -> None:
        """Write a batch taken from the queue, then wake its callers and the oldest caller
        still queued (to take the next batch)."""
        try:
            self._write_batch(batch)
        finally:
            with self._mutex:
                self._writing -= 1
                for command in batch:
                    if command.state != _Command.ALONE:
                        command.state = _Command.DONE
                    command.wake.set()
                if self._queue:
                    self._queue[0].wake.set()

    def _take(self) -> list[_Command]:
        """The oldest commands, but one that writes a (stream, version) or a tracking name
        that an earlier command of this batch writes stays queued for the next batch."""
        batch: list[_Command] = []
        keys: set[Key] = set()
        names: set[str] = set()
        skipped: list[_Command] = []
        while self._queue and len(batch) < self.max_batch:
            command = self._queue.popleft()
            name = command.tracking.application_name if command.tracking else None
            if name in names or not keys.isdisjoint(command.keys):
                skipped.append(command)
                continue
            command.state = _Command.TAKEN
            batch.append(command)
            keys.update(command.keys)
            if name is not None:
                names.add(name)
        self._queue.extendleft(reversed(skipped))
        return batch

    def _write_batch(self, batch: list[_Command]) -> None:
        try:
            self._write(batch)
        except (InterfaceError, OperationalError) as error:
            for command in batch:
                command.error = _copy(error)
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
            else:
                for command in batch:
                    command.state = _Command.ALONE
        except BaseException:
            for command in batch:
                command.error = OperationalError("the group commit was interrupted")
            raise

    # -- the transactions ------------------------------------------------------------------

    def _write(self, commands: list[_Command]) -> None:
        """Write `commands`; set each one's ids or error. Raises only when a transaction
        failed as a whole: then nothing was committed or, for a connection lost during
        `COMMIT`, it is not known (as with the library)."""
        with self.datastore.get_connection() as conn:
            try:
                outcomes = self._transact(conn, commands)
            except BaseException:
                if conn.info.transaction_status in IN_TRANSACTION:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                raise
        for command, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                command.error = outcome
            else:
                command.ids = outcome

    def _transact(self, conn: Connection[DictRow], commands: list[_Command]) -> Outcomes:
        if not any(c.tracking for c in commands):
            try:
                return self._optimistic(conn, commands)
            except UniqueViolation:  # some command conflicts: find which, below
                conn.rollback()
        outcomes: Outcomes = {}
        pending = commands
        while pending:
            failed = self._checked(conn, pending, outcomes)
            if not failed:
                conn.commit()
                break
            conn.rollback()
            pending = [c for c in pending if c not in failed]
        return outcomes

    def _optimistic(self, conn: Connection[DictRow], commands: list[_Command]) -> Outcomes:
        """One round trip: the batch and its `COMMIT`; a conflict aborts all of it."""
        script = self._script([self._insert_rows(conn, commands) + RETURNING, COMMIT])
        with conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(script, prepare=False)
            inserted = _inserted(curs)
        return {c: [inserted[k] for k in c.keys] for c in commands}

    def _checked(
        self, conn: Connection[DictRow], commands: list[_Command], outcomes: Outcomes
    ) -> set[_Command]:
        """Write what of `commands` can be written and record each one's outcome; return
        the failed ones. The transaction is left open, to be committed or rolled back."""
        tracked = [c for c in commands if c.tracking is not None]
        mogrify = ClientCursor(conn).mogrify
        positions = [
            mogrify(
                self.insert_tracking_statement,
                {
                    "application_name": c.tracking.application_name,
                    "notification_id": c.tracking.notification_id,
                },
            ).encode()
            for c in tracked
            if c.tracking is not None
        ]
        rows = self._insert_rows(conn, commands) + ON_CONFLICT_DO_NOTHING + RETURNING
        with conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._script([rows, *positions]), prepare=False)
            inserted = _inserted(curs)
            moved: set[_Command] = set()
            for command in tracked:
                curs.nextset()
                if curs.fetchone() is not None:
                    moved.add(command)
        failed: set[_Command] = set()
        for command in commands:
            missing = next((k for k in command.keys if k not in inserted), None)
            tracking = command.tracking
            if missing is not None:
                outcomes[command] = IntegrityError(
                    f'duplicate key value violates unique constraint "{self.events_table_name}'
                    f'_pkey"\nDETAIL:  Key (originator_id, originator_version)='
                    f"({missing[0]}, {missing[1]}) already exists."
                )
            elif tracking is not None and command not in moved:
                outcomes[command] = IntegrityError(
                    "Failed to record tracking for "
                    f"{tracking.application_name} {tracking.notification_id}"
                )
            else:
                outcomes[command] = [inserted[k] for k in command.keys]
                continue
            failed.add(command)
        return failed

    def _script(self, statements: list[bytes]) -> bytes:
        """One simple query: `BEGIN`, the lock, `NOTIFY`, then `statements`."""
        return b";\n".join([BEGIN, *self.lock_and_notify_statements, *statements])

    def _insert_rows(self, conn: Connection[DictRow], commands: list[_Command]) -> bytes:
        """The `INSERT` of every event of `commands`, values bound here (a simple query has
        no parameters): ids and topics quoted by psycopg, states as hexadecimal."""
        topics = self._topic_literals
        rows = []
        for command in commands:
            for event in command.events:
                topic = topics.get(event.topic)
                if topic is None:
                    topic = topics[event.topic] = Literal(event.topic).as_bytes(conn)
                originator_id = event.originator_id
                rows.append(
                    b"(%s,%d,%s,decode('%s','hex'))"
                    % (
                        b"'%s'::uuid" % str(originator_id).encode()
                        if isinstance(originator_id, UUID)
                        else Literal(originator_id).as_bytes(conn),
                        event.originator_version,
                        topic,
                        event.state.hex().encode(),
                    )
                )
        return self.insert_statement + b",".join(rows)


def _inserted(curs: Cursor[tuple[Any, ...]]) -> dict[Key, int]:
    """The notification id of each (stream, version) the script's `INSERT` wrote."""
    while not (curs.statusmessage or "").startswith("INSERT"):
        if not curs.nextset():
            raise InternalError("group commit: the script returned no INSERT result")
    return {(row[0], row[1]): row[2] for row in curs.fetchall()}


def _stream(originator_id: UUID | str, uuid_column: bool) -> str:
    """A stream's id as the database gives it back in text (a UUID in canonical form)."""
    if isinstance(originator_id, UUID) or not uuid_column:
        return str(originator_id)
    try:
        return str(UUID(originator_id))
    except ValueError:  # the database will refuse it
        return originator_id


def _bytes(statement: Query) -> bytes:
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    assert isinstance(statement, Composable)
    return statement.as_bytes()


def _copy(error: Exception) -> Exception:
    """The same error for another waiting caller (one exception object per thread)."""
    copied = type(error)(*error.args)
    copied.__cause__ = error
    return copied
