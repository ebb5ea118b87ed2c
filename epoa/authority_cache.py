"""Authority checks answered from memory, exactly as the SQL answers them.

The cache keeps the interval rows of `attorney_authority` per (case, attorney, right) and
answers "authorised now?" from them in Python. The rows change only when the table's
projection position moves (the runner commits a batch's rows and its position in one
transaction), so the cache is labelled with the last position it saw and emptied whenever
it sees another one. It sees one:

- whenever this process's runner commits a batch;
- whenever the read models' `position` or `wait_for` reads it (so a command's effect is in
  the next answer: read-your-writes holds for this replica's own commands);
- before answering, if the position was last confirmed more than `AUTHORITY_STALENESS`
  seconds ago (another process may be the projection writer: `epoa serve --no-projections`
  beside `epoa project`). A projection commit made that long before a request began is in
  its answer; a newer one may not be. Past a quarter of that age a confirmation starts in
  the background, so under steady load requests do not wait for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import datetime

import psycopg

from domain.errors import StoreUnavailableError
from epoa.async_queries import AsyncQueries
from projections import authority
from projections.db import Row
from projections.rebuild import REBUILDS

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
TRACKING_SQL = "SELECT name, position FROM projection_tracking"


class AuthorityCache:
    """The interval rows per key, valid for one projection position. Thread-safe."""

    def __init__(self, max_keys: int = AUTHORITY_KEYS) -> None:
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._rows: dict[Key, tuple[authority.Interval, ...]] = {}
        self._position: int | None = None
        self._rebuilds: int | None = None
        self._generation = 0
        self.confirmed_at = float("-inf")
        """`time.monotonic()` before the newest position read: commits before it are seen."""

    def observe(self, position: int, since: float, rebuilds: int | None = None) -> None:
        """`position` was read from the database by a query that began at `since`, with
        the count of `rebuilds` put in place (None: not read, as after a batch's commit)."""
        with self._lock:
            rebuilt = rebuilds is not None and rebuilds != self._rebuilds
            if position != self._position or rebuilt:
                self._position = position
                self._generation += 1
                self._rows = {}
            if rebuilds is not None:
                self._rebuilds = rebuilds
            self.confirmed_at = max(self.confirmed_at, since)

    def observe_rows(self, rows: Sequence[Row], since: float) -> None:
        """The rows of `TRACKING_SQL`, read by a query that began at `since`."""
        rebuilds = next((int(count) for name, count in rows if name == REBUILDS), 0)
        self.observe(authority_position(rows), since, rebuilds)

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


def authority_position(rows: Sequence[Row]) -> int:
    """The position of `attorney_authority` in the rows of `TRACKING_SQL`: its rows change
    only when it moves."""
    return next((int(position) for name, position in rows if name == authority.MODEL.name), 0)


class CachedAuthority:
    """`authority_at` for a request that began just now, from the cache; the database is
    asked (through `queries`, without blocking the event loop) only for a key not held, or
    to confirm the position."""

    def __init__(
        self,
        queries: AsyncQueries,
        staleness: float = AUTHORITY_STALENESS,
        max_keys: int = AUTHORITY_KEYS,
    ) -> None:
        self.queries = queries
        self.staleness = staleness
        self.cache = AuthorityCache(max_keys)
        self._confirming: asyncio.Task[None] | None = None

    async def now(self, key: Key, at: datetime) -> list[str]:
        try:
            await self._confirmed(time.monotonic())
            found, generation = self.cache.get(key)
            if found is None:
                rows = await self.queries.fetch(authority.INTERVALS_SQL, key)
                found = authority.intervals_of(rows)
                self.cache.put(key, found, generation)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreUnavailableError(f"the read models are unavailable: {error}") from error
        return authority.held_at(found, at)

    async def aclose(self) -> None:
        if self._confirming is not None:
            self._confirming.cancel()
        await self.queries.aclose()

    def close(self) -> None:
        self.queries.close()

    async def _confirmed(self, began: float) -> None:
        """Return once the cache has seen a position read no earlier than `began` minus the
        staleness bound; past `REFRESH_AFTER` of it, start a read without waiting for it."""
        cache, bound = self.cache, self.staleness
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
        self.cache.observe_rows(await self.queries.fetch(TRACKING_SQL), since)


def _retrieve(future: asyncio.Future[None]) -> None:
    """A failed background read is retried by the next request; it is not an error here."""
    if not future.cancelled():
        future.exception()
