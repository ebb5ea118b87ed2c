"""The read side as the API sees it: queries on per-thread connections, the projection
runner (in-process or apart), read-your-writes waits, and the authority cache.

The authority cache keeps the interval rows of `attorney_authority` per (case, attorney,
right) and answers "authorised now?" from them in Python, exactly as the SQL does. The rows
change only when the table's projection position moves (the runner commits a batch's rows
and its position in one transaction), so the cache is labelled with the last position it
saw and emptied whenever it sees another one. It sees one:

- whenever this process's runner commits a batch;
- whenever `position` or `wait_for` reads it (so a command's effect is in the next answer:
  read-your-writes holds for this replica's own commands);
- before answering, if the position was last confirmed more than `AUTHORITY_STALENESS`
  seconds ago (another process may be the projection writer: `epoa serve --no-projections`
  beside `epoa project`). A projection commit made that long before a request began is in
  its answer; a newer one may not be. Past a quarter of that age a confirmation starts in
  the background, so under steady load requests do not wait for it.

The async queries (the position, a key not held) run on the event loop itself through
psycopg's async connections on PostgreSQL, and in a few threads on SQLite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import psycopg

from domain.errors import StoreUnavailableError
from domain.registry import Registry
from epoa.storage import psycopg_conninfo, schema_of
from projections import authority, cases, persons, poa_status
from projections.db import Database, Params, Row, connect, quote
from projections.runner import Batch, ProjectionRunner

Key = tuple[str, str, str]
"""(case number, attorney IIN, right code)."""

AUTHORITY_STALENESS = 0.02
"""Seconds: a projection commit at least this old is always in an authority answer. Under
load the position is then read every 5 ms or so (`REFRESH_AFTER`); a read takes a few ms on
a busy event loop. For scale: `epoa project` polls the event log every 200 ms."""
REFRESH_AFTER = 0.25
"""Past this share of the bound, a request starts a position read and does not wait for
it: one read is in flight at a time, and a store slow to answer under load still has the
rest of the bound to do so before any request must wait."""
AUTHORITY_KEYS = 20_000
"""How many (case, attorney, right) the cache holds (under 1 KB each); the oldest goes first."""
ASYNC_CONNECTIONS = 4
"""Connections (PostgreSQL) or threads (SQLite) for the queries of async routes."""
CONNECT_TIMEOUT = 5
"""Seconds an async connection may take to open: an unreachable store is a quick 503."""
TRACKING_SQL = "SELECT name, position FROM projection_tracking"


class AuthorityCache:
    """The interval rows per key, valid for one projection position. Thread-safe."""

    def __init__(self, max_keys: int = AUTHORITY_KEYS) -> None:
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._rows: dict[Key, tuple[authority.Interval, ...]] = {}
        self._position: int | None = None
        self._generation = 0
        self.confirmed_at = float("-inf")
        """`time.monotonic()` before the newest position read: commits before it are seen."""

    def observe(self, position: int, since: float) -> None:
        """`position` was read from the database by a query that began at `since`."""
        with self._lock:
            if position != self._position:
                self._position = position
                self._generation += 1
                self._rows = {}
            self.confirmed_at = max(self.confirmed_at, since)

    def get(self, key: Key) -> tuple[tuple[authority.Interval, ...] | None, int]:
        """The rows (None if not held) and the generation to `put` them back with."""
        with self._lock:
            return self._rows.get(key), self._generation

    def put(self, key: Key, rows: tuple[authority.Interval, ...], generation: int) -> None:
        """Keep rows read after `get` returned `generation`, unless another position was
        seen meanwhile: then they may be older than what the cache has seen since."""
        with self._lock:
            if generation != self._generation or self._position is None:
                return
            if len(self._rows) >= self.max_keys:
                del self._rows[next(iter(self._rows))]
            self._rows[key] = rows


class _Runner(ProjectionRunner):
    """The in-process runner: tells the cache the position after each batch it commits."""

    def __init__(self, registry: Registry, database_url: str, cache: AuthorityCache) -> None:
        super().__init__(registry, database_url)
        self._cache = cache

    def apply(self, batch: Batch) -> int:
        applied = super().apply(batch)
        if batch.events:
            since = time.monotonic()
            self._cache.observe(authority_position(self.db.fetch(TRACKING_SQL)), since)
        return applied


class ReadModels:
    def __init__(
        self,
        database_url: str,
        *,
        authority_staleness: float = AUTHORITY_STALENESS,
        authority_keys: int = AUTHORITY_KEYS,
    ) -> None:
        self.database_url = database_url
        self.authority_staleness = authority_staleness
        self.authority_cache = AuthorityCache(authority_keys)
        self._local = threading.local()
        self._connections: list[Database] = []
        self._guard = threading.Lock()
        self.runner: ProjectionRunner | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._async: AsyncQueries = (
            AsyncPostgres(database_url)
            if urlsplit(database_url).scheme in ("postgresql", "postgres")
            else ThreadQueries(self.db)
        )
        self._confirming: asyncio.Task[None] | None = None
        persons.create_table(self.db())

    def db(self) -> Database:
        """This thread's connection: readers never wait on the runner's transaction."""
        found: Database | None = getattr(self._local, "db", None)
        if found is None:
            found = self._local.db = connect(self.database_url)
            with self._guard:
                self._connections.append(found)
        return found

    def attach(self, registry: Registry, run: bool) -> None:
        """Create the read tables; with `run`, apply new events in a background thread."""
        self.runner = _Runner(registry, self.database_url, self.authority_cache)
        if run:
            self._thread = threading.Thread(
                target=self.runner.run_forever,
                args=(self._stop, 0.05),
                name="epoa-projections",
                daemon=True,
            )
            self._thread.start()

    async def aclose(self) -> None:
        """Close what the event loop opened; `close` does the rest."""
        if self._confirming is not None:
            self._confirming.cancel()
        await self._async.aclose()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runner is not None:
            self.runner.close()
        self._async.close()
        with self._guard:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    # -- positions ---------------------------------------------------------------------------

    def position(self) -> int:
        """The notification id every read model has reached."""
        since = time.monotonic()
        rows = self.db().fetch(TRACKING_SQL)
        self.authority_cache.observe(authority_position(rows), since)
        return min((int(position) for _, position in rows), default=0)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: wait until every read model has applied `position`. The
        in-process runner is woken at once; the position is then read here all the same, so
        the authority cache sees it whoever applied it."""
        deadline = time.monotonic() + timeout
        if self._thread is not None and self.runner is not None:
            self.runner.wait_for(position, timeout)
        while self.position() < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    # -- queries -----------------------------------------------------------------------------

    def positions_of(self, originator_id: UUID) -> dict[int, int]:
        """Version -> position in the global log of one stream's records."""
        db = self.db()
        if db.dialect == "sqlite":
            sql = "SELECT originator_version, rowid FROM stored_events WHERE originator_id = ?"
            key: object = originator_id.hex
        else:
            sql = "SELECT originator_version, notification_id FROM epoa_events "
            sql += "WHERE originator_id = ?"
            key = originator_id
        return {int(v): int(p) for v, p in db.fetch(sql, (key,))}

    def names(self, iin: str) -> str | None:
        found = persons.find_person(self.db(), iin)
        return found["full_name"] if found else None

    def find_person(self, iin: str) -> dict[str, str] | None:
        return persons.find_person(self.db(), iin)

    def authority_at(
        self, case_number: str, attorney_iin: str, right: str, at: datetime
    ) -> list[str]:
        return authority.authority_at(self.db(), case_number, attorney_iin, right, at)

    async def authority_now(
        self, case_number: str, attorney_iin: str, right: str, at: datetime
    ) -> list[str]:
        """`authority_at` from the cache, for a request that began just now; the database
        is asked only for a key not held, or to confirm the position."""
        try:
            await self._confirmed(time.monotonic())
            key = (case_number, attorney_iin, right)
            found, generation = self.authority_cache.get(key)
            if found is None:
                rows = await self._async.fetch(authority.INTERVALS_SQL, key)
                found = authority.intervals_of(rows)
                self.authority_cache.put(key, found, generation)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreUnavailableError(f"the read models are unavailable: {error}") from error
        return authority.held_at(found, at)

    def list_poas(self, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        return poa_status.list_poas(self.db(), **filters)

    def get_case(self, case_number: str) -> dict[str, Any] | None:
        return cases.get_case(self.db(), case_number)

    # -- the cache's freshness ------------------------------------------------------------------

    async def _confirmed(self, began: float) -> None:
        """Return once the cache has seen a position read no earlier than `began` minus the
        staleness bound; past `REFRESH_AFTER` of it, start a read without waiting for it."""
        cache, bound = self.authority_cache, self.authority_staleness
        while began - cache.confirmed_at > bound:
            await asyncio.shield(self._confirmation())
        if began - cache.confirmed_at > bound * REFRESH_AFTER:
            self._confirmation()

    def _confirmation(self) -> asyncio.Task[None]:
        """The position read in flight, or a new one: one at a time, however many wait."""
        pending = self._confirming
        loop = asyncio.get_running_loop()
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._confirming = asyncio.ensure_future(self._read_position())
            pending.add_done_callback(_retrieve)
        return pending

    async def _read_position(self) -> None:
        since = time.monotonic()
        rows = await self._async.fetch(TRACKING_SQL)
        self.authority_cache.observe(authority_position(rows), since)


def authority_position(rows: Sequence[Row]) -> int:
    """The position of `attorney_authority` in the rows of `TRACKING_SQL`: its rows change
    only when it moves."""
    return next((int(position) for name, position in rows if name == authority.MODEL.name), 0)


class AsyncQueries:
    """Queries for async code: the event loop never blocks on them."""

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close what belongs to the running event loop."""

    def close(self) -> None:
        """Release the rest."""


class ThreadQueries(AsyncQueries):
    """SQLite: a few threads, each with its connection (a file read, no network)."""

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


def _retrieve(future: asyncio.Future[None]) -> None:
    """A failed background read is retried by the next request; it is not an error here."""
    if not future.cancelled():
        future.exception()
