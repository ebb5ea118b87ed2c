"""`EPOA_DATABASE_URL` to the library's persistence settings, and the append-only guard.

The persistence module is always set explicitly: the library falls back to an in-memory
store when it is not, which would silently lose every record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg

EVENTS_TABLE = "epoa_events"
SQLITE_EVENTS_TABLE = "stored_events"
"""The library's own name on SQLite, where a record's position is its `rowid`."""
STORE_ATTEMPTS = 3
"""Tries of each call to the event store (the library's own is 10). Each try waits up to
`POSTGRES_CONNECT_TIMEOUT` (1 s) for a pooled connection, then 0.2 s before the next:
while the server is away a call fails after about 3 x 1 + 2 x 0.2 = 3.4 s, so a request
answers 503 within a few seconds; a server back within that time (a restart, a failover)
is not seen by the client at all."""
STORE_RETRY_WAIT = 0.2
RECONNECT_TIMEOUT = 2.0
"""Seconds the pools (the event store's and the read models') keep trying to replace a
connection they lost before giving up; the next request that needs one then opens it at
once. psycopg_pool doubles the pause between tries (1, 2, 4, ... s) for up to 5 minutes by
default, so a service could stay down for many seconds after the server was back."""
CONNECT_TIMEOUT = 2
"""Seconds a new connection may take (libpq's `connect_timeout`): a server that does not
answer at all is given up on as quickly as one that refuses."""


def persistence_env(database_url: str) -> dict[str, str]:
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        path = sqlite_path(database_url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": "y",
        }
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            # How long a call waits for a pooled connection (see `STORE_ATTEMPTS`).
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "EPOA_STORE_ATTEMPTS": str(STORE_ATTEMPTS),
            "EPOA_STORE_RETRY_WAIT": str(STORE_RETRY_WAIT),
            "EPOA_RECONNECT_TIMEOUT": str(RECONNECT_TIMEOUT),
            "EPOA_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "POSTGRES_POOL_SIZE": query.get("pool_size", ["10"])[0],
            # A pooled connection idle for a second is pinged before use, so one the server
            # ended (a restart, a failover) is replaced first (`ping_if_idle` in
            # domain/postgres_recorder.py); a call that still meets one is tried again.
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_MAX_OVERFLOW": "10",
            "CREATE_TABLE": "y",
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"][0]
        return env
    raise ValueError(
        f"EPOA_DATABASE_URL: unsupported scheme {parts.scheme!r} "
        "(sqlite:///path or postgresql://user@host:port/db?schema=name)"
    )


def sqlite_path(database_url: str) -> str:
    parts = urlsplit(database_url)
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ValueError("EPOA_DATABASE_URL: sqlite:///relative/path or sqlite:////abs/path")
    return path


def store_exists(database_url: str) -> bool:
    """Whether the event store is there: its SQLite file, or its PostgreSQL table. Making
    none, unlike every other use of the URL (the service makes its store on first start)."""
    if urlsplit(database_url).scheme == "sqlite":
        return Path(sqlite_path(database_url)).is_file()
    table = f"{_ident(schema_of(database_url))}.{EVENTS_TABLE}"
    conninfo = psycopg_conninfo(database_url)
    with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def psycopg_conninfo(database_url: str) -> str:
    """A libpq connection string for the same database (without the `schema` parameter),
    with the defaults `persistence_env` gives the event store (127.0.0.1, user and database
    `postgres`), so the read models never reach another server or role than the events.
    Built by hand: `urlunsplit` drops an empty host with its `//`, which libpq then reads
    as `key=value` pairs."""
    parts = urlsplit(database_url)
    user, _, host = parts.netloc.rpartition("@")
    if not parts.username:
        user = f"postgres{user}"  # what is left is `:password`, if anything
    if not parts.hostname:
        host = f"127.0.0.1{host}"  # what is left is `:port`, if anything
    return f"postgresql://{user}@{host}/{parts.path.lstrip('/') or 'postgres'}"


def is_postgres(database_url: str) -> bool:
    return urlsplit(database_url).scheme in ("postgresql", "postgres")


def quick_connection(database_url: str, timeout_s: int = 2) -> psycopg.Connection[Any]:
    """A new connection with short connect and statement timeouts, for a probe that must
    answer within seconds during an outage, not after the pools' retries (`/readyz`, the
    clock's offset at a scrape)."""
    options = f"-c statement_timeout={timeout_s * 1000}"
    return psycopg.connect(
        psycopg_conninfo(database_url), connect_timeout=timeout_s, options=options
    )


def schema_of(database_url: str) -> str:
    return parse_qs(urlsplit(database_url).query).get("schema", ["public"])[0]


APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION {schema}.epoa_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'epoa: % of event rows is refused: the event store is append-only', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS epoa_append_only_rows ON {schema}.{table};
CREATE TRIGGER epoa_append_only_rows BEFORE UPDATE OR DELETE ON {schema}.{table}
  FOR EACH ROW EXECUTE FUNCTION {schema}.epoa_refuse_change();
DROP TRIGGER IF EXISTS epoa_append_only_truncate ON {schema}.{table};
CREATE TRIGGER epoa_append_only_truncate BEFORE TRUNCATE ON {schema}.{table}
  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.epoa_refuse_change();
"""


STATE_COMPRESSION = "lz4"
"""How PostgreSQL compresses the records' states. Its default, pglz, tries every state
(about 4 KB, mostly base64 of the CMS and certificate) and gives up (it saves under a
quarter), spending about a fifth of the server's time per append; lz4 saves about 28%, in
less time. A server built without lz4 keeps its default."""


def guard_append_only(database_url: str) -> None:
    """Make the database itself refuse UPDATE, DELETE and TRUNCATE of event rows, and store
    new states compressed by `STATE_COMPRESSION` (rows already written stay as they are)."""
    if urlsplit(database_url).scheme not in ("postgresql", "postgres"):
        return
    schema = schema_of(database_url)
    sql = APPEND_ONLY_SQL.format(schema=_ident(schema), table=EVENTS_TABLE)
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('epoa-append-only-guard'))")
        try:
            conn.execute(sql.encode())
            _compress_states(conn, schema)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('epoa-append-only-guard'))")


def _compress_states(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> None:
    table = f"{_ident(schema)}.{EVENTS_TABLE}"
    row = conn.execute(
        "SELECT attcompression FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'state'",
        (table,),
    ).fetchone()
    if row is None or row[0] == "l":  # `pg_attribute.attcompression` of lz4
        return
    try:
        conn.execute(
            f"ALTER TABLE {table} ALTER COLUMN state SET COMPRESSION {STATE_COMPRESSION}".encode()
        )
    except psycopg.errors.FeatureNotSupported:  # built without lz4: pglz, as before
        return


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe schema name {name!r}")
    return '"' + name + '"'
