"""A least-privilege service role made by `epoa db init` in a fresh schema, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from tests.support.postgres import DATABASE, SERVER, fresh_schema


@dataclass(frozen=True)
class ServiceRole:
    name: str
    password: str
    admin_url: str
    """The owner's (superuser's) URL of the fresh schema."""
    url: str
    """The service role's URL of the same schema, password included."""


@contextmanager
def service_role() -> Iterator[ServiceRole]:
    with fresh_schema() as admin_url:
        name = "epoa_t_" + uuid.uuid4().hex[:12]
        password = uuid.uuid4().hex
        host = urlsplit(SERVER).netloc.rsplit("@", 1)[-1]
        query = urlsplit(admin_url).query
        url = f"postgresql://{name}:{password}@{host}/{DATABASE}?{query}"
        try:
            yield ServiceRole(name, password, admin_url, url)
        finally:
            drop_role(name)


def drop_role(name: str) -> None:
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        if exists is None:
            return
        role = sql.Identifier(name)
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))
