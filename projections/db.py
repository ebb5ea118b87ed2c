"""One small connection API over sqlite3 and psycopg, so each read model has one code path.

The read models live in the database of the events (one thing to back up, rebuildable from
it). Their SQL is written once, with `?` placeholders and `{sortable}` as the type of every
column compared or ordered as text (times, ids): on PostgreSQL that type carries the "C"
collation, so text order is byte order, whatever the database's locale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import psycopg

from domain.errors import StoreUnavailableError
from epoa.storage import persistence_env, psycopg_conninfo, schema_of

Params = Sequence[Any]
Row = tuple[Any, ...]


class Database(ABC):
    """A connection shared by threads: a lock keeps one thread's transaction its own."""

    dialect: str
    sortable: str
    for_update: str
    """Appended to a SELECT that must lock the rows it reads until the transaction ends."""
    columns_sql: str
    """The names of a table's columns (`columns`), the table's name its one parameter."""
    rows_as_json = False
    """Whether `insert` sends its rows as one JSON parameter (PostgreSQL)."""
    insert_parameters = 0
    """Without `rows_as_json`: parameters per multi-row INSERT statement."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; a transaction inside a transaction joins the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._begin():
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    def execute(self, sql: str, params: Params = ()) -> None:
        with self._lock:
            self._run(sql, params, fetch=False)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            with self._lock:
                self._run_many(sql, rows)

    def insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Params], on_conflict: str = ""
    ) -> None:
        """Many rows per statement (a statement per row costs a round trip's work each);
        an upsert's rows must have distinct keys, as one statement touches a row once.

        On PostgreSQL the rows go as one JSON array that `json_populate_recordset` reads
        as rows of the table's own type: one statement, of the same text however many
        rows, so psycopg parses it once and the server plans it once."""
        rows = list(rows)
        if not rows:
            return
        if self.rows_as_json:
            names = ", ".join(columns)
            records = json.dumps(
                [dict(zip(columns, item, strict=True)) for item in rows],
                ensure_ascii=False,
                default=_bytea,
            )
            self.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} "
                f"FROM json_populate_recordset(NULL::{table}, ?) {on_conflict}".rstrip(),
                (records,),
            )
            return
        row = "(" + ", ".join("?" * len(columns)) + ")"
        per_statement = max(1, self.insert_parameters // len(columns))
        with self.transaction():
            for at in range(0, len(rows), per_statement):
                chunk = rows[at : at + per_statement]
                values = ", ".join([row] * len(chunk))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} {on_conflict}"
                self.execute(sql.rstrip(), [value for item in chunk for value in item])

    def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return self._run(sql, params, fetch=True)

    def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.fetch(sql, params)
        return rows[0] if rows else None

    def columns(self, table: str) -> set[str]:
        """The names of the table's columns; none if there is no such table."""
        return {str(row[0]) for row in self.fetch(self.columns_sql, (table,))}

    def create(self, statements: Iterable[str]) -> None:
        """Run DDL written with `{sortable}` for this dialect."""
        with self.transaction():
            for statement in statements:
                self.execute(statement.format(sortable=self.sortable))

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _begin(self) -> AbstractContextManager[object]: ...

    @abstractmethod
    def _run(self, sql: str, params: Params, fetch: bool) -> list[Row]: ...

    @abstractmethod
    def _run_many(self, sql: str, rows: list[Params]) -> None: ...


class SqliteDatabase(Database):
    dialect = "sqlite"
    sortable = "TEXT"
    for_update = ""
    columns_sql = "SELECT name FROM pragma_table_info(?)"
    insert_parameters = 900
    """Under the oldest SQLite's limit of 999."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )

    @contextmanager
    def _begin(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock now: a read that later wants to write can deadlock.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _run(self, sql: str, params: Params, fetch: bool) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def _run_many(self, sql: str, rows: list[Params]) -> None:
        self._conn.executemany(sql, rows)

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    """One connection, opened again when the server ended it; while the server cannot be
    reached every call raises `StoreUnavailableError` (HTTP 503), never a raw driver error."""

    dialect = "postgresql"
    sortable = 'TEXT COLLATE "C"'
    for_update = " FOR UPDATE"
    columns_sql = (
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?"
    )
    rows_as_json = True

    def __init__(self, conninfo: str, schema: str) -> None:
        super().__init__()
        self._conninfo, self._schema = conninfo, schema
        self._conn = self._open()

    def _open(self) -> psycopg.Connection[Row]:
        with _unavailable():
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2)
            conn.execute(f"SET search_path TO {quote(self._schema)}".encode())
        return conn

    @property
    def conn(self) -> psycopg.Connection[Row]:
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._open()
        return self._conn

    @contextmanager
    def _begin(self) -> Iterator[None]:
        with _unavailable(), self.conn.transaction(), self._conn.pipeline():
            yield

    def _run(self, sql: str, params: Params, fetch: bool) -> list[Row]:
        """Outside a transaction a statement found a connection the server had ended only
        when it used it: it runs once more on a new one (statements alone are retried only
        as a whole, so nothing is applied twice)."""
        try:
            return self._statement(sql, params, fetch)
        except StoreUnavailableError:
            if self._depth or not (self._conn.closed or self._conn.broken):
                raise
            return self._statement(sql, params, fetch)

    def _statement(self, sql: str, params: Params, fetch: bool) -> list[Row]:
        with _unavailable():
            cursor = self.conn.execute(_pyformat(sql), params)
            return cursor.fetchall() if fetch else []

    def _run_many(self, sql: str, rows: list[Params]) -> None:
        with _unavailable(), self.conn.cursor() as cursor:
            cursor.executemany(_pyformat(sql), rows)

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        raise StoreUnavailableError(f"the read-model database is unavailable: {error}") from error


def connect(database_url: str) -> Database:
    """A connection to the database of `EPOA_DATABASE_URL` (the schema of its events)."""
    scheme = urlsplit(database_url).scheme
    if scheme == "sqlite":
        return SqliteDatabase(persistence_env(database_url)["SQLITE_DBNAME"])
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(psycopg_conninfo(database_url), schema_of(database_url))
    raise ValueError(f"unsupported database URL scheme {scheme!r}")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _bytea(value: object) -> str:
    """A `bytes` value as the text form of BYTEA, which `json_populate_recordset` reads."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not a column value")


@lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """`?` to psycopg's `%s`; our SQL never has `?` inside a literal."""
    return sql.replace("%", "%%").replace("?", "%s")
