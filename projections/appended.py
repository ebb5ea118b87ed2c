"""A wake-up when events are appended: on PostgreSQL every transaction that appends
events sends `NOTIFY` on the recorder's channel (the library's recorder and group commit
alike), delivered at its commit, so the projection runner applies new events at once
instead of at its next poll. Where it cannot listen (SQLite, a lost connection) it sleeps
out the poll interval as before; a lost listener is opened again at a later wait.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from epoa.storage import psycopg_conninfo

log = logging.getLogger("epoa.projections")

REOPEN_AFTER = 5.0
"""Seconds between attempts to listen again after the connection was lost."""


class Appended:
    def __init__(self, database_url: str, channel: str | None) -> None:
        """`channel`: the recorder's notification channel (None: it has none, poll)."""
        postgres = urlsplit(database_url).scheme in ("postgresql", "postgres")
        self._conninfo = psycopg_conninfo(database_url) if postgres and channel else None
        self._channel = channel or ""
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._next_try = 0.0

    @property
    def listening(self) -> bool:
        """Whether appends are being notified (else the caller must poll)."""
        return self._conn is not None

    def wait(self, timeout: float, wake: threading.Event) -> bool:
        """Wait up to `timeout` for an append (True) or for `wake`; False otherwise."""
        conn = self._listening()
        if conn is None:
            return wake.wait(timeout)
        try:
            return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error as error:
            log.warning("lost the append notifications (%s); polling meanwhile", error)
            self.close()
            return False

    def _listening(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if self._conn is not None or self._conninfo is None:
            return self._conn
        if time.monotonic() < self._next_try:
            return None
        self._next_try = time.monotonic() + REOPEN_AFTER
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except psycopg.Error as error:
            log.warning("cannot listen for appended events (%s); polling", error)
            return None
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
