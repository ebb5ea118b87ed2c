"""Only one projection runner writes to a PostgreSQL schema at a time.

Several workers may run for availability; a session-level advisory lock on a dedicated
connection elects the writer, and the others keep trying, so one takes over when the
writer's connection ends. The lock saves wasted work; correctness does not depend on it,
as every batch also locks its tracking rows. SQLite has one writer by construction.
"""

from __future__ import annotations

import time

import psycopg

from epoa.storage import psycopg_conninfo, schema_of

LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('epoa-projections'), hashtext(%s))"
ALIVE_EVERY = 1.0
"""Seconds between checks that the lock's session lives: a batch written meanwhile by a
runner that lost it is still applied once, as its tracking rows are locked."""


class WriterLock:
    @property
    def held(self) -> bool:
        """Whether this process was the writer at the last `acquire`."""
        return True

    def acquire(self) -> bool:
        """True if this process is (still) the writer."""
        return True

    def release(self) -> None:
        """Let another runner become the writer."""


class PostgresWriterLock(WriterLock):
    def __init__(self, database_url: str) -> None:
        self._conninfo = psycopg_conninfo(database_url)
        self._schema = schema_of(database_url)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._held = False
        self._checked_at = 0.0

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> bool:
        if self._held and (time.monotonic() < self._checked_at + ALIVE_EVERY or self._alive()):
            return True
        self._held = False
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            row = self._conn.execute(LOCK_SQL, (self._schema,)).fetchone()
        except psycopg.OperationalError:
            self.release()
            return False
        self._held = bool(row and row[0])
        self._checked_at = time.monotonic()
        return self._held

    def _alive(self) -> bool:
        """A lock dies with its connection; ask the server, not the socket's last state."""
        assert self._conn is not None
        try:
            self._conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        self._checked_at = time.monotonic()
        return True

    def release(self) -> None:
        self._held = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def writer_lock(database_url: str) -> WriterLock:
    if database_url.startswith(("postgresql:", "postgres:")):
        return PostgresWriterLock(database_url)
    return WriterLock()
