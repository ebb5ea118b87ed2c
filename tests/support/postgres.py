"""A real PostgreSQL for the tests: one database, one fresh schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

SERVER = os.environ.get("EPOA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("EPOA_TEST_DATABASE", "epoa_test")
"""The database the tests make their schemas in; processes sharing one also share its NOTIFY
channels, so runs that must not wake each other's projectors name databases of their own."""


def require_services() -> bool:
    return os.environ.get("EPOA_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """A missing service fails the run in CI and skips (loudly) elsewhere."""
    if require_services():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(f"service unavailable: {reason}")


def ensure_database() -> None:
    try:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL at {SERVER}: {error}")


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Yield a database URL whose `schema` is new and empty; drop it afterwards."""
    ensure_database()
    schema = "t_" + uuid.uuid4().hex[:16]
    conninfo = f"{SERVER}/{DATABASE}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{conninfo}?schema={schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_rebuild" CASCADE')  # a rebuild's


def connect(database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A superuser connection to the test database with the URL's schema on the path."""
    base, _, query = database_url.partition("?")
    schema = query.removeprefix("schema=")
    conn = psycopg.connect(base, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


def tamper(url: str, sql: str, *params: object) -> None:
    """What a database administrator could do: switch the guard off and edit rows."""
    with connect(url) as conn:
        conn.execute("ALTER TABLE epoa_events DISABLE TRIGGER USER")
        conn.execute(sql, params)  # type: ignore[arg-type]
        conn.execute("ALTER TABLE epoa_events ENABLE TRIGGER USER")


@contextmanager
def insert_lock_held(database_url: str) -> Iterator[None]:
    """Hold the table lock every insert of events takes (`docs/decisions/0007`): writers
    block inside their transaction, their reads done and their events not yet written,
    until the block ends."""
    with connect(database_url) as conn:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE epoa_events IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def writers_waiting(database_url: str) -> int:
    """How many transactions wait for the lock of `insert_lock_held`."""
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'epoa_events'::regclass AND NOT granted"
        ).fetchone()
    assert row is not None
    return int(str(row[0]))
