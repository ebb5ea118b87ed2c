"""The library's PostgreSQL process recorder, with the retries and reconnection bounds that
the composition root chooses (`epoa/storage.py` puts them in the application's environment).

The library retries each call of its recorders 10 times, 0.2 s apart, a number fixed in
its `@retry` decorators; each try waits up to `POSTGRES_CONNECT_TIMEOUT` for a pooled
connection, so while the server was away a request waited 12 s or more for its 503. Here
each retried method runs the library's own code (the function its decorator wraps) inside a
retry of `attempts` tries. The store's pool (psycopg_pool) gives up replacing a lost
connection after `reconnect_timeout` seconds instead of its default 5 minutes of doubling
pauses: once it has given up, the next request that needs a connection opens one at once.
A pooled connection is pinged before use only if it has not answered for a second
(`ping_if_idle`): a ping per checkout was a third of a command's time.
"""

from __future__ import annotations

import inspect
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from domain.seal import SealError

T = TypeVar("T")

#: The environment keys (each read with the application's prefix first: `EPOA_...`).
ATTEMPTS, RETRY_WAIT = "STORE_ATTEMPTS", "STORE_RETRY_WAIT"
RECONNECT_TIMEOUT, CONNECT_TIMEOUT = "RECONNECT_TIMEOUT", "CONNECT_TIMEOUT"

_library = PostgresProcessRecorder
_insert_events = inspect.unwrap(_library.insert_events)
_select_events = inspect.unwrap(_library.select_events)
_select_notifications = inspect.unwrap(_library.select_notifications)
_max_notification_id = inspect.unwrap(_library.max_notification_id)
_insert_tracking = inspect.unwrap(_library.insert_tracking)
_max_tracking_id = inspect.unwrap(_library.max_tracking_id)
_has_tracking_id = inspect.unwrap(_library.has_tracking_id)


def event_rows(
    recorder: PostgresProcessRecorder, template: str, params: Sequence[Any], prepare: bool = False
) -> list[Any]:
    """The rows (by column name) of `template`, SQL naming the event table `{schema}.{table}`."""
    statement = SQL(template).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, params, prepare=prepare)
        return curs.fetchall()


def _select_streams(
    recorder: PostgresProcessRecorder, originator_ids: Sequence[UUID]
) -> list[StoredEvent]:
    rows = event_rows(
        recorder,
        "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
        " WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version",
        (list(originator_ids),),
        prepare=True,
    )
    return [
        StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        for row in rows
    ]


def readable(call: Callable[[], T]) -> T:
    """`call()`, a read of stored rows: a row the library cannot convert (a `state` set to
    NULL by hand) is damage to the store, said as such (`SealError`), not a crash."""
    try:
        return call()
    except TypeError as error:
        raise SealError(f"a stored record cannot be read: {error}") from error


PING_AFTER = 1.0
"""Seconds a pooled connection may go unchecked: one that answered within them is handed
out without a round trip first (a call that still finds it dead is tried again, on
another connection, as any call is)."""
_answered: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_answered_lock = threading.Lock()


def ping_if_idle(conn: Any) -> None:
    """The pool's check at each checkout: a ping, unless the connection answered one lately.

    A connection that fails it was most likely ended with all the others of its time (a
    restart, a failover, while no request came): the pool is drained, so they are replaced
    at once, and the request waits for a new one instead of meeting the dead ones in turn,
    each costing it a wait for the pool's backoff (a second each, and the 503 of a request
    that met three)."""
    now = time.monotonic()
    with _answered_lock:
        last = _answered.get(conn)
    if last is not None and now - last < PING_AFTER:
        return
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        pool = getattr(conn, "_pool", None)  # set by the pool on checkout, before the check
        if isinstance(pool, ConnectionPool):
            pool.drain()
        raise
    with _answered_lock:
        _answered[conn] = now


@dataclass(frozen=True)
class StorePolicy:
    """How often a call is tried, and how the pool reconnects (None: the library's way)."""

    attempts: int = 10
    retry_wait: float = 0.2
    reconnect_timeout: float | None = None
    connect_timeout: int | None = None

    @classmethod
    def of(cls, env: Environment) -> StorePolicy:
        def number(key: str, kind: Callable[[str], Any], default: Any) -> Any:
            value = env.get(key)
            return kind(value) if value else default

        return cls(
            attempts=max(1, number(ATTEMPTS, int, cls.attempts)),
            retry_wait=number(RETRY_WAIT, float, cls.retry_wait),
            reconnect_timeout=number(RECONNECT_TIMEOUT, float, None),
            connect_timeout=number(CONNECT_TIMEOUT, int, None),
        )

    def apply_to(self, datastore: PostgresDatastore) -> None:
        """Bound the reconnection of the store's pool (not yet open: it opens on first use)."""
        pool = datastore.pool
        if pool._check is not None:  # the library's pre-ping: ping only connections idle a while
            pool._check = ping_if_idle
        if self.reconnect_timeout is not None:
            pool.reconnect_timeout = self.reconnect_timeout
        if self.connect_timeout is not None and isinstance(pool.kwargs, dict):
            pool.kwargs["connect_timeout"] = self.connect_timeout


class RetryingProcessRecorder(PostgresProcessRecorder):
    """`PostgresProcessRecorder` whose calls are tried `policy.attempts` times."""

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
        )
        self.policy = policy or StorePolicy()

    def create_table(self) -> None:
        """The library's, by one process at a time: processes started together on one
        schema (API replicas, the members of a consumer group) would otherwise race to make
        the same types, tables and functions, and some would fail at start (a unique
        violation on `pg_type`, `tuple concurrently updated`, the tracking table's first
        row taken). A session-level advisory lock, named after the schema, keeps them apart;
        the server releases it if the process dies."""
        key = f"epoa-create-tables:{self.datastore.schema}"
        with self.datastore.get_connection() as conn:  # autocommit: a session-level lock
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def retried(self, call: Callable[[], T]) -> T:
        """`call()`, tried again after a lost connection or an unreachable server."""
        attempts, wait = self.policy.attempts, self.policy.retry_wait
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except (InterfaceError, OperationalError):
                if attempt >= attempts:
                    raise
                time.sleep(wait * (1 + 0.1 * (random.random() - 0.5)))
        raise AssertionError("unreachable")  # pragma: no cover

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids: Sequence[int] | None = self.retried(
            lambda: _insert_events(self, stored_events, **kwargs)
        )
        return ids

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        rows: Sequence[StoredEvent] = self.retried(
            lambda: readable(lambda: _select_events(self, originator_id, **kwargs))
        )
        return rows

    def select_streams(self, originator_ids: Sequence[UUID]) -> Sequence[StoredEvent]:
        """Every record of these streams, by stream and version: one statement where
        `select_events` would take one round trip per stream."""
        rows: Sequence[StoredEvent] = self.retried(
            lambda: readable(lambda: _select_streams(self, originator_ids))
        )
        return rows

    def select_notifications(
        self, start: int | None, limit: int, *args: Any, **kwargs: Any
    ) -> Sequence[Notification]:
        rows: Sequence[Notification] = self.retried(
            lambda: readable(lambda: _select_notifications(self, start, limit, *args, **kwargs))
        )
        return rows

    def max_notification_id(self) -> int | None:
        found: int | None = self.retried(lambda: _max_notification_id(self))
        return found

    def insert_tracking(self, tracking: Tracking) -> None:
        self.retried(lambda: _insert_tracking(self, tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        found: int | None = self.retried(lambda: _max_tracking_id(self, application_name))
        return found

    def has_tracking_id(self, application_name: str, notification_id: int | None) -> bool:
        """Not retried itself: its one query is `max_tracking_id`, which is."""
        return bool(_has_tracking_id(self, application_name, notification_id))
