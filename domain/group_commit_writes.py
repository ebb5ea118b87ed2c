"""The transactions of group commit: several commands written in ONE PostgreSQL transaction,
each still all or nothing and conflict-checked (`domain/group_commit.py` queues them).

A batch is one simple query (values bound here), so one round trip:

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
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InternalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import ClientCursor, Connection, Cursor
from psycopg.abc import Query
from psycopg.errors import UniqueViolation
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Identifier, Literal

from domain.postgres_recorder import RetryingProcessRecorder, StorePolicy

BEGIN, COMMIT = b"BEGIN", b"COMMIT"
RETURNING = b" RETURNING originator_id::text, originator_version, notification_id"
ON_CONFLICT_DO_NOTHING = b" ON CONFLICT (originator_id, originator_version) DO NOTHING"
IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)

Key = tuple[str, int]


class Command:
    """One call of `insert_events`: its events and position, and what became of them."""

    __slots__ = ("error", "events", "ids", "keys", "tracking")

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

    def outcome(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.ids


Outcomes = dict[Command, list[int] | Exception]


class BatchWriter(RetryingProcessRecorder):
    """Writes commands together; `write` sets each one's ids or error."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
        policy: StorePolicy | None = None,
    ) -> None:
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
            policy=policy,
        )
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

    def write(self, commands: Sequence[Command]) -> None:
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

    def _transact(self, conn: Connection[DictRow], commands: Sequence[Command]) -> Outcomes:
        if not any(c.tracking for c in commands):
            try:
                return self._optimistic(conn, commands)
            except UniqueViolation:  # some command conflicts: find which, below
                conn.rollback()
        outcomes: Outcomes = {}
        pending = list(commands)
        while pending:
            failed = self._checked(conn, pending, outcomes)
            if not failed:
                conn.commit()
                break
            conn.rollback()
            pending = [c for c in pending if c not in failed]
        return outcomes

    def _optimistic(self, conn: Connection[DictRow], commands: Sequence[Command]) -> Outcomes:
        """One round trip: the batch and its `COMMIT`; a conflict aborts all of it."""
        script = self._script([self._insert_rows(conn, commands) + RETURNING, COMMIT])
        with conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(script, prepare=False)
            inserted = _inserted(curs)
        return {c: [inserted[k] for k in c.keys] for c in commands}

    def _checked(
        self, conn: Connection[DictRow], commands: list[Command], outcomes: Outcomes
    ) -> set[Command]:
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
            moved: set[Command] = set()
            for command in tracked:
                curs.nextset()
                if curs.fetchone() is not None:
                    moved.add(command)
        failed: set[Command] = set()
        for command in commands:
            outcome = self._outcome(command, inserted, moved)
            outcomes[command] = outcome
            if isinstance(outcome, Exception):
                failed.add(command)
        return failed

    def _outcome(
        self, command: Command, inserted: dict[Key, int], moved: set[Command]
    ) -> list[int] | Exception:
        missing = next((k for k in command.keys if k not in inserted), None)
        tracking = command.tracking
        if missing is not None:
            return IntegrityError(
                f'duplicate key value violates unique constraint "{self.events_table_name}'
                f'_pkey"\nDETAIL:  Key (originator_id, originator_version)='
                f"({missing[0]}, {missing[1]}) already exists."
            )
        if tracking is not None and command not in moved:
            return IntegrityError(
                "Failed to record tracking for "
                f"{tracking.application_name} {tracking.notification_id}"
            )
        return [inserted[k] for k in command.keys]

    def _script(self, statements: list[bytes]) -> bytes:
        """One simple query: `BEGIN`, the lock, `NOTIFY`, then `statements`."""
        return b";\n".join([BEGIN, *self.lock_and_notify_statements, *statements])

    def _insert_rows(self, conn: Connection[DictRow], commands: Sequence[Command]) -> bytes:
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
