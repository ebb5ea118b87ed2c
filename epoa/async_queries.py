"""Read queries for async code (the authority shortcut): the event loop never blocks on them.

On PostgreSQL they run on the event loop itself through a few psycopg async connections;
on SQLite (a local file, no network) in a few threads sharing the read models' connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from epoa.storage import CONNECT_TIMEOUT, psycopg_conninfo, schema_of
from projections.db import Database, Params, Row, quote

ASYNC_CONNECTIONS = 4
"""Connections (PostgreSQL) or threads (SQLite) for the queries of async routes."""


class AsyncQueries:
    """Queries for async code: the event loop never blocks on them."""

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close what belongs to the running event loop."""

    def close(self) -> None:
        """Release the rest."""


class ThreadQueries(AsyncQueries):
    """SQLite: a few threads over the read models' connection."""

    def __init__(self, db: Callable[[], Database]) -> None:
        self._db = db
        self._threads = ThreadPoolExecutor(ASYNC_CONNECTIONS, thread_name_prefix="epoa-reads")

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        def run() -> list[Row]:
            return self._db().fetch(sql, params)

        return await asyncio.get_running_loop().run_in_executor(self._threads, run)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)


class AsyncPostgres(AsyncQueries):
    """PostgreSQL: a few psycopg async connections of the running event loop, opened when
    first needed; one that fails (or whose query is cancelled) is closed, not reused."""

    def __init__(self, database_url: str, size: int = ASYNC_CONNECTIONS) -> None:
        self._conninfo = psycopg_conninfo(database_url)
        self._search_path = f"SET search_path TO {quote(schema_of(database_url))}".encode()
        self._size = size
        self._idle: list[psycopg.AsyncConnection[tuple[Any, ...]]] = []
        self._slots: asyncio.Semaphore | None = None
        self._owner: asyncio.AbstractEventLoop | None = None

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        loop = asyncio.get_running_loop()
        if self._owner is not loop or self._slots is None:
            self.close()  # another loop's connections cannot serve this one
            self._owner, self._slots = loop, asyncio.Semaphore(self._size)
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                cursor = await conn.execute(sql.replace("?", "%s"), params)
                rows = await cursor.fetchall()
            except BaseException:
                await conn.close()
                raise
            self._idle.append(conn)
            return rows

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
        try:
            await conn.execute(self._search_path)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    def close(self) -> None:
        # An async connection's close does no I/O but libpq's own: safe outside its loop.
        while self._idle:
            self._idle.pop().pgconn.finish()
        self._owner = self._slots = None
