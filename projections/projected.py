"""Read-your-writes across processes: the writer of the read models tells, in each batch's
transaction, the position every read model has then reached (`NOTIFY`, delivered at the
commit), on a channel of its schema's own. An API replica that runs no projections
(`epoa serve --no-projections`, beside `epoa project`) hears it and releases the commands
waiting for that position at once, instead of at its next read of the positions table,
which it then reads only as a safety net. PostgreSQL only; SQLite runs the projections in
the API's own process.

Only the live tables' writer tells: a rebuild's new tables are not what the API reads until
they are swapped in, and the swap itself tells nothing (the waiters' next read sees it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

from epoa.storage import is_postgres, psycopg_conninfo, schema_of
from projections.db import Database

log = logging.getLogger("epoa.projections")

REOPEN_AFTER = 5.0
"""Seconds between attempts to listen again after the connection was lost."""
WAIT = 0.5
"""Seconds one wait for a notification lasts: how soon `close` is heard."""


def channel_of(database_url: str) -> str | None:
    """The channel of the read models of this URL's schema (None: not PostgreSQL). A
    digest keeps it within PostgreSQL's 63 characters whatever the schema is called."""
    if not is_postgres(database_url):
        return None
    digest = hashlib.sha256(schema_of(database_url).encode()).hexdigest()[:16]
    return f"epoa_projected_{digest}"


def tell(db: Database, channel: str, position: int) -> None:
    """In the transaction that moved every read model to `position`: say so at its commit."""
    db.execute("SELECT pg_notify(?, ?)", (channel, str(position)))


class ProjectedListener:
    """A thread that hears each position told and gives it to `heard`; a lost connection
    is opened again `REOPEN_AFTER` seconds later, and meanwhile `listening` is False."""

    def __init__(self, database_url: str, heard: Callable[[int], None]) -> None:
        channel = channel_of(database_url)
        if channel is None:
            raise ValueError("positions are told on PostgreSQL only")
        self._channel = channel
        self._conninfo = psycopg_conninfo(database_url)
        self._heard = heard
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="epoa-projected-listener", daemon=True
        )
        self._thread.start()

    @property
    def listening(self) -> bool:
        """Whether the positions told are heard now (else the waiters must read them)."""
        return self._listening.is_set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    while not self._stop.is_set():
                        for notification in conn.notifies(timeout=WAIT):
                            self._heard(int(notification.payload))
            except (psycopg.Error, ValueError) as error:
                log.warning("cannot hear the projected positions (%s); reading them", error)
            finally:
                self._listening.clear()
            self._stop.wait(REOPEN_AFTER)
