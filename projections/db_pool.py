"""The read models' connection API over a bounded pool of PostgreSQL connections, for a
process whose many threads read (the API: its worker threads come and go with the load).

A statement borrows a connection for itself, a transaction for its length; none is tied to
a thread, so however often threads are retired and started, the process holds at most
`size` sessions for its reads. As with one connection (`projections.db.PostgresDatabase`):
a statement alone that found its connection ended by the server (a restart, a failover)
runs once more, after the pool has dropped every other connection the server ended; while
the server cannot be reached every call raises `StoreUnavailableError` (HTTP 503) within
`WAIT` seconds. The pool gives up replacing lost connections after `RECONNECT_TIMEOUT`
seconds, and the next call that waits for one opens it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool

from epoa.storage import CONNECT_TIMEOUT, RECONNECT_TIMEOUT, psycopg_conninfo, schema_of
from projections.db import (
    Database,
    Params,
    PostgresDatabase,
    Row,
    _pyformat,
    _unavailable,
    connect,
    quote,
)

T = TypeVar("T")
Connection = psycopg.Connection[Row]

READ_POOL_SIZE = 8
"""Connections at most (`EPOA_READ_POOL_SIZE`): a read holds one for a few milliseconds."""
WAIT = 2.0
"""Seconds a call waits for a free connection before it answers 503."""
IDLE = 60.0
"""Seconds a connection beyond the first may stay unused before it is closed."""


class PostgresPool(Database):
    dialect = PostgresDatabase.dialect
    sortable = PostgresDatabase.sortable
    for_update = PostgresDatabase.for_update
    rows_as_json = PostgresDatabase.rows_as_json

    def __init__(self, conninfo: str, schema: str, size: int = READ_POOL_SIZE) -> None:
        super().__init__()
        search_path = f"SET search_path TO {quote(schema)}".encode()

        def configure(conn: Connection) -> None:
            conn.execute(search_path)

        self._pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            min_size=1,
            max_size=max(1, size),
            open=False,
            configure=configure,
            timeout=WAIT,
            max_idle=IDLE,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name="epoa-reads",
        )
        self._pool.open()
        self._local = threading.local()

    @property
    def size(self) -> int:
        return self._pool.max_size

    def _held(self) -> Connection | None:
        """The connection of this thread's transaction, if it is in one."""
        held: Connection | None = getattr(self._local, "conn", None)
        return held

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing on one borrowed connection; a transaction inside a transaction of
        the same thread joins the outer one."""
        if self._held() is not None:
            yield
            return
        with _unavailable(), self._pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction(), conn.pipeline():
                    yield
            finally:
                self._local.conn = None

    def _begin(self) -> AbstractContextManager[object]:
        return self.transaction()

    # Each call borrows its own connection: no lock shared by the threads.

    def execute(self, sql: str, params: Params = ()) -> None:
        self._run(sql, params, fetch=False)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            self._run_many(sql, rows)

    def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return self._run(sql, params, fetch=True)

    def _run(self, sql: str, params: Params, fetch: bool) -> list[Row]:
        def statement(conn: Connection) -> list[Row]:
            cursor = conn.execute(_pyformat(sql), params)
            return cursor.fetchall() if fetch else []

        held = self._held()
        if held is None:
            return self._alone(statement)
        with _unavailable():
            return statement(held)

    def _alone(self, statement: Callable[[Connection], T]) -> T:
        """A statement outside a transaction. One that found its connection ended by the
        server runs once more (statements alone are retried only as a whole, so nothing is
        applied twice)."""
        for attempt in (1, 2):
            with _unavailable(), self._pool.connection() as conn:
                try:
                    return statement(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if attempt == 2 or not (conn.closed or conn.broken):
                        raise
            self._pool.check()  # the server may have ended the idle ones too
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_many(self, sql: str, rows: list[Params]) -> None:
        with self.transaction():
            conn = self._held()
            assert conn is not None
            with _unavailable(), conn.cursor() as cursor:
                cursor.executemany(_pyformat(sql), rows)

    def close(self) -> None:
        self._pool.close()


def connect_pooled(database_url: str, size: int = READ_POOL_SIZE) -> Database:
    """Connections for many threads to the database of `EPOA_DATABASE_URL`: a bounded pool
    on PostgreSQL; on SQLite (a local file) one connection, shared."""
    if urlsplit(database_url).scheme in ("postgresql", "postgres"):
        return PostgresPool(psycopg_conninfo(database_url), schema_of(database_url), size)
    return connect(database_url)
