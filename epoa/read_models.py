"""The read side as the API sees it: queries on a bounded pool of connections, the
projection runner (in-process or apart), read-your-writes waits, and the authority checks
answered from memory (`epoa/authority_cache.py`).

The API's sync routes run on worker threads that come and go with the load, so no
connection belongs to a thread: each query borrows one from the pool
(`projections/db_pool.py`, `EPOA_READ_POOL_SIZE` at most) and gives it back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from domain.registry import Registry
from epoa.async_queries import AsyncPostgres, AsyncQueries, ThreadQueries
from epoa.authority_cache import (
    AUTHORITY_KEYS,
    AUTHORITY_STALENESS,
    TRACKING_SQL,
    AuthorityCache,
    CachedAuthority,
)
from epoa.storage import EVENTS_TABLE, SQLITE_EVENTS_TABLE
from projections import authority, cases, persons, poa_list
from projections.db import Database
from projections.db_pool import READ_POOL_SIZE, connect_pooled
from projections.projected import ProjectedListener, channel_of
from projections.rebuild import REBUILDS
from projections.runner import ProjectionRunner

RUNNER_WAIT = 0.05
"""How long a command waits on the in-process runner before it reads the positions."""
POSITION_POLL = 0.005
"""Seconds between two reads of the positions for the commands waiting on another process's
runner (`--no-projections`); one read at a time answers all of them."""
TOLD_POSITION_POLL = 0.1
"""The same while the writer's positions are heard as it commits them (PostgreSQL,
`projections.projected`): the reads are a safety net."""


class _Runner(ProjectionRunner):
    """The in-process runner: tells the cache the position after each batch it commits."""

    def __init__(self, registry: Registry, database_url: str, cache: AuthorityCache) -> None:
        super().__init__(registry, database_url)
        self._cache = cache

    def committed(self, position: int, began: float) -> None:
        """The cache learns the new position before any command waiting for it goes on.
        Every projection commit before `began` is in it: the batch read the positions
        locked, and moved them no lower than they were."""
        self._cache.observe(position, began)
        super().committed(position, began)


class ReadModels:
    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int = READ_POOL_SIZE,
        authority_staleness: float = AUTHORITY_STALENESS,
        authority_keys: int = AUTHORITY_KEYS,
    ) -> None:
        self.database_url = database_url
        self._db = connect_pooled(database_url, pool_size)
        self.runner: ProjectionRunner | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        queries: AsyncQueries = (
            AsyncPostgres(database_url)
            if urlsplit(database_url).scheme in ("postgresql", "postgres")
            else ThreadQueries(self.db)
        )
        self.authority = CachedAuthority(queries, authority_staleness, authority_keys)
        self._polled = _SharedPosition(self.position, self._position_poll)
        self._told: ProjectedListener | None = None
        persons.create_table(self._db)

    @property
    def authority_cache(self) -> AuthorityCache:
        return self.authority.cache

    def db(self) -> Database:
        """The read models' connections, for any thread: readers never wait on the runner's
        transaction."""
        return self._db

    def attach(self, registry: Registry, run: bool) -> None:
        """Create the read tables; with `run`, apply new events in a background thread, else
        (PostgreSQL) hear the positions the other process's runner commits."""
        self.runner = _Runner(registry, self.database_url, self.authority_cache)
        if not run and channel_of(self.database_url) is not None:
            self._told = ProjectedListener(self.database_url, self._heard)
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
        await self.authority.aclose()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runner is not None:
            self.runner.close()
        if self._told is not None:
            self._told.close()
        self.authority.close()
        self._db.close()

    # -- positions ---------------------------------------------------------------------------

    def position(self) -> int:
        """The notification id every read model has reached."""
        since = time.monotonic()
        rows = self._db.fetch(TRACKING_SQL)
        self.authority_cache.observe_rows(rows, since)
        return min((int(position) for name, position in rows if name != REBUILDS), default=0)

    def _heard(self, position: int) -> None:
        """The other process's runner committed `position`: the authority cache lets go of
        what it held before it (claiming nothing about what it has seen, so its bound still
        asks the table), then the commands waiting for it go on, and their checks read it."""
        self.authority_cache.observe(position, float("-inf"))
        self._polled.heard(position)

    @property
    def hears_positions(self) -> bool:
        """Whether the positions another process's runner commits are heard as it does."""
        return self._told is not None and self._told.listening

    def _position_poll(self) -> float:
        return TOLD_POSITION_POLL if self.hears_positions else POSITION_POLL

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: wait until every read model has applied `position`. The
        in-process runner is woken and says when it committed the position (it has told
        the authority cache by then); the position is read from the table meanwhile, so
        another process's runner (`--no-projections`, or another replica holding the
        writer's lock) is seen too. Without a runner here, the commands waiting at once
        share the reads of the table (`POSITION_POLL`), and on PostgreSQL are released as
        soon as the other process's runner tells it committed their position."""
        deadline = time.monotonic() + timeout
        runner = self.runner if self._thread is not None else None
        if runner is None:
            return self._polled.reaches(position, deadline)
        while True:
            if runner.reached(position, RUNNER_WAIT):
                return True
            if self.position() >= position:
                return True
            if time.monotonic() >= deadline:
                return False

    # -- queries -----------------------------------------------------------------------------

    def positions_of(self, originator_id: UUID) -> dict[int, int]:
        """Version -> position in the global log of one stream's records."""
        db = self._db
        if db.dialect == "sqlite":
            sql = f"SELECT originator_version, rowid FROM {SQLITE_EVENTS_TABLE} "
            sql += "WHERE originator_id = ?"
            key: object = originator_id.hex
        else:
            sql = f"SELECT originator_version, notification_id FROM {EVENTS_TABLE} "
            sql += "WHERE originator_id = ?"
            key = originator_id
        return {int(v): int(p) for v, p in db.fetch(sql, (key,))}

    def names(self, iins: Sequence[str]) -> dict[str, str]:
        return persons.find_names(self._db, iins)

    def find_person(self, iin: str) -> dict[str, str] | None:
        return persons.find_person(self._db, iin)

    def authority_at(
        self, case_number: str, attorney_iin: str, right: str, at: datetime
    ) -> list[str]:
        return authority.authority_at(self._db, case_number, attorney_iin, right, at)

    async def authority_now(
        self, case_number: str, attorney_iin: str, right: str, at: datetime
    ) -> list[str]:
        """`authority_at` for a request that began just now, mostly from memory."""
        return await self.authority.now((case_number, attorney_iin, right), at)

    def list_poas(self, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        return poa_list.list_poas(self._db, **filters)

    def get_case(self, case_number: str) -> dict[str, Any] | None:
        return cases.get_case(self._db, case_number)


class _SharedPosition:
    """The read models' position for every thread that waits for one: at most one read in
    flight and one read begun per `interval()`; each answer, and each position told by the
    writer (`heard`), is seen by every waiter.

    The highest position read or told is kept: whatever a read ever showed was applied by
    then (a rebuild starts again below it, but no command waits for a position it has not
    recorded, and each new one is above every earlier one)."""

    def __init__(self, read: Callable[[], int], interval: Callable[[], float]) -> None:
        self._read = read
        self._interval = interval
        self._changed = threading.Condition()
        self._reading = False
        self._next_read = 0.0
        self._highest = 0

    def heard(self, position: int) -> None:
        """The writer told that every read model has committed `position`."""
        with self._changed:
            if position > self._highest:
                self._highest = position
                self._changed.notify_all()

    def reaches(self, position: int, deadline: float) -> bool:
        """Whether the position reaches `position` by `deadline` (`time.monotonic()`). A
        read's error goes to the thread that made it; the others go on waiting."""
        while True:
            with self._changed:
                while self._reading or time.monotonic() < self._next_read:
                    now = time.monotonic()
                    if self._highest >= position:
                        return True
                    if now >= deadline:
                        return False
                    self._changed.wait(
                        (deadline if self._reading else min(self._next_read, deadline)) - now
                    )
                if self._highest >= position:
                    return True
                self._reading = True
                self._next_read = time.monotonic() + self._interval()
            found = 0
            try:
                found = self._read()
            finally:
                with self._changed:
                    self._reading = False
                    self._highest = max(self._highest, found)
                    self._changed.notify_all()
            if found < position and time.monotonic() >= deadline:
                return False
