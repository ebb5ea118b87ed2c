"""`epoa db init`: the owner sets up the schema once; the service then runs as a role that
can add events but never change them.

Who may do what on PostgreSQL (the reasoning is in docs/decisions/0004-operations.md):
- the owner (the admin URL) owns the event and tracking tables and their append-only
  triggers; only an owner can drop or disable a trigger, alter or drop the table;
- the service role may SELECT and INSERT event rows, and holds UPDATE only because the
  library's insert takes `LOCK TABLE ... IN EXCLUSIVE MODE`, which PostgreSQL 15 grants to
  holders of UPDATE, DELETE or TRUNCATE; the BEFORE UPDATE/DELETE/TRUNCATE triggers, which
  it cannot remove, refuse every change anyway;
- the service role owns the read-model tables (rebuildable from the events) and may
  create tables in the schema, so a new read model creates its own table at start, and in
  the schema beside it (`<schema>_rebuild`), where a rebuild builds its new tables.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import psycopg
from psycopg import sql

from epoa.settings import Settings
from epoa.storage import (
    EVENTS_TABLE,
    guard_append_only,
    persistence_env,
    psycopg_conninfo,
    quick_connection,
    schema_of,
)
from epoa.wiring import SettingsError
from projections.rebuild import shadow_schema

log = logging.getLogger("epoa")

TRACKING_TABLE = "epoa_tracking"
GUARD_TRIGGERS = ["epoa_append_only_rows", "epoa_append_only_truncate"]
OWNER_IS_SERVICE = "the service role must not be the owner: use another role"
INIT_HINT = "run `epoa db init` with EPOA_ADMIN_DATABASE_URL set to the schema owner's URL"

ACCESS_SQL = """
SELECT n.oid IS NOT NULL,
       COALESCE(has_schema_privilege(n.oid, 'CREATE'), false),
       c.oid IS NOT NULL,
       COALESCE(pg_has_role(c.relowner, 'USAGE'), false),
       COALESCE(has_table_privilege(c.oid, 'SELECT'), false),
       (SELECT count(*) FROM pg_trigger t
         WHERE t.tgrelid = c.oid AND t.tgname = ANY(%s) AND t.tgenabled <> 'D')
FROM (SELECT 1) AS one
LEFT JOIN pg_namespace n ON n.nspname = %s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %s
"""


@dataclass(frozen=True)
class StoreAccess:
    """What the connecting role may do to the event table of its schema."""

    schema_exists: bool
    may_create: bool
    table_exists: bool
    may_own: bool
    may_read: bool
    guards: int

    @property
    def managed(self) -> bool:
        """The schema belongs to another role (`epoa db init`): use it, change nothing."""
        return self.table_exists and not self.may_own


def store_access(database_url: str) -> StoreAccess | None:
    """None on SQLite, which has no roles."""
    if urlsplit(database_url).scheme not in ("postgresql", "postgres"):
        return None
    params = (GUARD_TRIGGERS, schema_of(database_url), EVENTS_TABLE)
    with psycopg.connect(psycopg_conninfo(database_url), connect_timeout=5) as conn:
        row = conn.execute(ACCESS_SQL, params).fetchone()
    assert row is not None
    schema_exists, may_create, table_exists, may_own, may_read, guards = row
    return StoreAccess(
        bool(schema_exists),
        bool(may_create),
        bool(table_exists),
        bool(may_own),
        bool(may_read),
        int(guards),
    )


OWNER_WARNING = (
    "EPOA_ENV=production and this process connects as a role that owns the event table (its "
    "owner, a member of it, or a superuser): such a role can drop the append-only triggers "
    "and rewrite history; connect as the service role `epoa db init` makes"
)


def prepare_store(
    database_url: str, env: MutableMapping[str, str], production: bool = False
) -> bool:
    """Before the registry is built: True if the schema is managed by its owner, in which
    case the library must not run its DDL (`env` is changed so) and the guard must already
    be in place; a store this role can neither find nor create is a settings error. In
    `production`, a role that owns (or would own) the event table is warned of at start."""
    access = store_access(database_url)
    if access is None:
        return False
    if access.managed:
        if not access.may_read:
            raise SettingsError(
                f"this role may not read {EVENTS_TABLE} (it holds no grant on it: a restore "
                f"with --no-privileges leaves none); {INIT_HINT}"
            )
        if access.guards < len(GUARD_TRIGGERS):
            raise SettingsError(
                f"the append-only triggers on {EVENTS_TABLE} are missing or disabled; {INIT_HINT}"
            )
        env["CREATE_TABLE"] = "n"
        return True
    if not access.table_exists and not access.may_create:
        schema = schema_of(database_url)
        raise SettingsError(
            f"no event table in schema {schema!r} and this role may not create one; {INIT_HINT}"
        )
    if production:  # it owns the table, or makes it and will own it
        log.warning(OWNER_WARNING)
    return False


@dataclass(frozen=True)
class InitReport:
    role: str
    schema: str
    owned_by_role: list[str]

    def __str__(self) -> str:
        tables = ", ".join(self.owned_by_role) or "none yet"
        return (
            f"schema {self.schema!r} ready; role {self.role!r} may insert and read events "
            f"({EVENTS_TABLE}: SELECT, INSERT, UPDATE refused by triggers) and owns the read "
            f"models: {tables}"
        )


def init_database(settings: Settings) -> InitReport:
    """Create the schema, its tables and triggers as the owner, then the service role of
    `EPOA_DATABASE_URL` with its password, and its grants. Safe to run again."""
    service_url = settings.database_url
    role, admin = _service_role(service_url, settings.admin_database_url)
    service, schema = urlsplit(service_url), schema_of(service_url)
    owner_url = _with_schema(admin, schema)
    with psycopg.connect(psycopg_conninfo(owner_url), autocommit=True) as conn:
        if conn.execute("SELECT current_user = %s", (role,)).fetchone() == (True,):
            raise SettingsError(OWNER_IS_SERVICE)
        for name in (schema, shadow_schema(service_url)):
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
    # The role first: an owner that may not make it stops before any table is made.
    with psycopg.connect(psycopg_conninfo(owner_url)) as conn, conn.transaction():
        # The URL holds the password percent-encoded; the role gets it as the file has it,
        # as the processes send it when they connect.
        password = unquote(service.password) if service.password else None
        _ensure_role(conn, role, password)
    _create_tables(owner_url)
    with psycopg.connect(psycopg_conninfo(owner_url)) as conn, conn.transaction():
        owned = _grant(conn, role, schema, service.path.strip("/") or "postgres")
        conn.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
                sql.Identifier(shadow_schema(service_url)), sql.Identifier(role)
            )
        )
    return InitReport(role, schema, owned)


def _service_role(service_url: str, admin: str | None) -> tuple[str, str]:
    """The service role and the owner's URL, once the two URLs are known fit for `epoa db
    init`: all that can be told from them is refused before any connection is made or
    anything is changed."""
    if not admin:
        raise SettingsError(f"EPOA_ADMIN_DATABASE_URL is required; {INIT_HINT}")
    service, owner = urlsplit(service_url), urlsplit(admin)
    if service.scheme not in ("postgresql", "postgres"):
        raise SettingsError("`epoa db init` needs a postgresql:// EPOA_DATABASE_URL")
    if owner.scheme not in ("postgresql", "postgres"):
        raise SettingsError("`epoa db init` needs a postgresql:// EPOA_ADMIN_DATABASE_URL")
    if service.path.strip("/") != owner.path.strip("/"):
        raise SettingsError("EPOA_ADMIN_DATABASE_URL and EPOA_DATABASE_URL name other databases")
    if not service.username:
        raise SettingsError("EPOA_DATABASE_URL must name the service role: postgresql://ROLE@...")
    if _user_of(service_url) == _user_of(admin):
        raise SettingsError(OWNER_IS_SERVICE)
    return unquote(service.username), admin


def _user_of(url: str) -> str:
    """The role a URL connects as, with the default `psycopg_conninfo` gives one naming
    none: the service role given as the owner is refused before connecting, since the
    owner's first statement would otherwise fail as a permission the service lacks."""
    return unquote(urlsplit(url).username or "postgres")


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["schema"] = schema
    return parts._replace(query=urlencode(query)).geturl()


def _create_tables(owner_url: str) -> None:
    """Build the registry and the read models once, as the owner: the same code that
    creates them in development, so the schema can never differ from the code's."""
    from domain.registry import Registry
    from domain.seal import SealKey
    from epoa.read_models import ReadModels

    registry = Registry(persistence_env(owner_url), SealKey.generate())
    try:
        guard_append_only(owner_url)
        read_models = ReadModels(owner_url)
        try:
            read_models.attach(registry, run=False)
        finally:
            read_models.close()
    finally:
        registry.close()


_ROLE_LIMITS = {
    "rolsuper": "NOSUPERUSER",
    "rolcreatedb": "NOCREATEDB",
    "rolcreaterole": "NOCREATEROLE",
    "rolreplication": "NOREPLICATION",
    "rolbypassrls": "NOBYPASSRLS",
}
"""What the service role must not be, by its column in `pg_roles`."""


def _ensure_role(conn: psycopg.Connection[tuple[object, ...]], role: str, pw: str | None) -> None:
    """Create the service role, or bring an existing one to LOGIN and none of the powers
    above. Only what differs is altered: PostgreSQL lets only a superuser name SUPERUSER,
    REPLICATION or BYPASSRLS in `ALTER ROLE`, even to take them away, and the owner of a
    managed database is no superuser."""
    columns = ", ".join(_ROLE_LIMITS)
    found = conn.execute(
        f"SELECT {columns} FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    password = sql.SQL("PASSWORD {}").format(sql.Literal(pw)) if pw else sql.SQL("")
    if found is None:
        limits = sql.SQL(" ".join(_ROLE_LIMITS.values()))
        statement = sql.SQL("CREATE ROLE {} LOGIN {} {}").format(
            sql.Identifier(role), limits, password
        )
    else:
        held = [limit for limit, has in zip(_ROLE_LIMITS.values(), found, strict=True) if has]
        statement = sql.SQL("ALTER ROLE {} LOGIN {} {}").format(
            sql.Identifier(role), sql.SQL(" ".join(held)), password
        )
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as error:
        raise SettingsError(
            f"the owner may not create or change the role {role!r}: {error.diag.message_primary}; "
            "give the owner CREATEROLE, or create the role (LOGIN, no other powers) as a "
            "superuser and run epoa db init again"
        ) from None
    superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if superuser.fetchone() != (True,):
        # Handing tables to the role needs membership in it.
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def _grant(
    conn: psycopg.Connection[tuple[object, ...]], role: str, schema: str, database: str
) -> list[str]:
    r, s = sql.Identifier(role), sql.Identifier(schema)
    events, tracking = sql.Identifier(schema, EVENTS_TABLE), sql.Identifier(schema, TRACKING_TABLE)
    for statement in (
        "GRANT CONNECT ON DATABASE {db} TO {r}",
        "GRANT USAGE, CREATE ON SCHEMA {s} TO {r}",
        "REVOKE ALL ON {events} FROM {r}",
        "GRANT SELECT, INSERT, UPDATE ON {events} TO {r}",
        "REVOKE ALL ON {tracking} FROM {r}",
        "GRANT SELECT, INSERT, UPDATE ON {tracking} TO {r}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ):
        conn.execute(
            sql.SQL(statement).format(
                db=sql.Identifier(database), r=r, s=s, events=events, tracking=tracking
            )
        )
    read_models = [
        str(name)
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> ALL(%s)"
            " ORDER BY tablename",
            (schema, [EVENTS_TABLE, TRACKING_TABLE]),
        ).fetchall()
    ]
    for table in read_models:
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(schema, table), r))
    return read_models


def probe(database_url: str, timeout_s: int = 2) -> int:
    """The newest notification id, read over a new connection with short timeouts: the
    readiness probe must answer fast, not wait out the pool's retries."""
    with quick_connection(database_url, timeout_s) as conn:
        query = sql.SQL("SELECT max(notification_id) FROM {}").format(
            sql.Identifier(schema_of(database_url), EVENTS_TABLE)
        )
        row = conn.execute(query).fetchone()
    return int(row[0] or 0) if row else 0
