"""Where a rebuild of the read models is built, and how it replaces the live tables at once.

A rebuild replays the whole log into tables of their own (a schema beside the events' on
PostgreSQL, a file beside the database on SQLite) while the live tables keep answering
and keep following the log. Only when the new tables have caught up do they take the live
ones' place, in one transaction: a reader sees the old tables or the new ones, never tables
half refilled (an authority check answering `false` for a POA that is active all along).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from epoa.storage import persistence_env, psycopg_conninfo, schema_of
from projections.db import Database, PostgresDatabase, SqliteDatabase, quote
from projections.read_model import ReadModel

SHADOW_SUFFIX = "_rebuild"
"""The rebuild's schema is the events' schema with this suffix (`epoa db init` makes it)."""
SHADOW_TRACKING = "projection_tracking"
REBUILDS = "rebuilds"
"""The row of `projection_tracking` that counts the rebuilds put in place, in its `position`
column: a position alone does not say that the tables were replaced (a rebuild that met no
new event ends where the old tables were), and whatever holds rows read from them (the
authority cache of every API process) must know it."""


class RebuildSpaceError(RuntimeError):
    """There is nowhere to build the new tables (the rebuild schema is missing)."""


def shadow_schema(database_url: str) -> str:
    return schema_of(database_url) + SHADOW_SUFFIX


class Shadow:
    """The new tables while they are built, and the move that makes them the live ones."""

    def __init__(self, database_url: str, read_models: Sequence[ReadModel]) -> None:
        self.read_models = tuple(read_models)
        self._postgres = urlsplit(database_url).scheme in ("postgresql", "postgres")
        if self._postgres:
            self._live_schema = schema_of(database_url)
            self._schema = shadow_schema(database_url)
            self._conninfo = psycopg_conninfo(database_url)
            self._require_schema()
            self.db: Database = PostgresDatabase(self._conninfo, self._schema)
        else:
            live = persistence_env(database_url)["SQLITE_DBNAME"]
            self._path = Path(live + ".rebuild")
            self._remove_files()
            self.db = SqliteDatabase(str(self._path))
        self._drop_tables()

    @property
    def tables(self) -> list[str]:
        return [table for model in self.read_models for table in model.tables]

    def replace(self, live: Database, position: int) -> None:
        """Make the new tables the live ones, at `position`, in ONE transaction of `live`."""
        names = [model.name for model in self.read_models]
        own = "" if self._postgres else "main."  # never the attached new tables
        with live.transaction():
            for table in self.tables:
                live.execute(f"DROP TABLE IF EXISTS {own}{table}")
            if self._postgres:
                for table in self.tables:
                    moved = f"{quote(self._schema)}.{table}"
                    live.execute(f"ALTER TABLE {moved} SET SCHEMA {quote(self._live_schema)}")
            else:
                for model in self.read_models:
                    live.create(model.ddl)
                for table in self.tables:
                    live.execute(f"INSERT INTO main.{table} SELECT * FROM rebuild.{table}")
            live.executemany(
                "UPDATE projection_tracking SET position = ? WHERE name = ?",
                [(position, name) for name in names],
            )
            live.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (?, 1) ON CONFLICT "
                "(name) DO UPDATE SET position = projection_tracking.position + 1",
                (REBUILDS,),
            )

    @contextmanager
    def attached(self, live: Database) -> Iterator[None]:
        """SQLite: the new tables readable from `live`'s connection meanwhile."""
        if self._postgres:
            yield
            return
        live.execute("ATTACH DATABASE ? AS rebuild", (str(self._path),))
        try:
            yield
        finally:
            live.execute("DETACH DATABASE rebuild")

    def close(self) -> None:
        """Drop what is left of the new tables (all of them, unless they were moved)."""
        with contextlib.suppress(Exception):
            self._drop_tables()
        self.db.close()
        if not self._postgres:
            self._remove_files()

    def _drop_tables(self) -> None:
        with self.db.transaction():
            for table in [*self.tables, SHADOW_TRACKING]:
                self.db.execute(f"DROP TABLE IF EXISTS {table}")

    def _require_schema(self) -> None:
        """The schema exists or this role may make it (a schema owner, the tests' superuser);
        a service role may not, so `epoa db init` makes it beside the events' schema."""
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,)
            ).fetchone()
            if found is not None:
                return
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self._schema)}".encode())
            except psycopg.errors.InsufficientPrivilege:
                raise RebuildSpaceError(
                    f"a rebuild is built in schema {self._schema!r}, which does not exist and "
                    "this role may not create: run `epoa db init` (it makes it)"
                ) from None

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{self._path}{suffix}")
